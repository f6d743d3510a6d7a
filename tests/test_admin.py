"""Every model is in the admin; engine tables are read-only there."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from carbon.models import User
from pipelines.models import IngestionJob, Pipeline, Worker
from tests.factories import DataEntryFactory, IngestionJobFactory

PROJECT_APPS = ("carbon", "pipelines")


def test_every_project_model_is_registered() -> None:
    missing = [
        model.__name__
        for app in PROJECT_APPS
        for model in apps.get_app_config(app).get_models()
        if not admin.site.is_registered(model)
    ]
    assert missing == []


@pytest.mark.django_db
def test_every_changelist_and_change_page_renders(client: Client, superuser: User) -> None:
    # given: one row in the big tables and the engine's tables
    DataEntryFactory.create()
    IngestionJobFactory.create()
    Worker.objects.create(id="host:1", hostname="host", pid=1)
    client.force_login(superuser)
    for app in PROJECT_APPS:
        for model in apps.get_app_config(app).get_models():
            opts = model._meta
            changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
            assert changelist.status_code == 200, opts.label
            obj = model._default_manager.first()
            if obj is not None:
                change = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
                assert change.status_code == 200, opts.label


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Pipeline, IngestionJob, Worker])
def test_engine_tables_are_read_only_in_admin(model: type, client: Client, superuser: User) -> None:
    model_admin = admin.site._registry[model]
    request = client.request().wsgi_request
    request.user = superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)
