"""Migration 0005 fills Pipeline.search_text of an existing history as the engine writes it."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from pipelines import rules
from pipelines.models import IngestionJob, Pipeline
from pipelines.selectors import job_views
from tests.pipelines.api_helpers import DONE_OK, FAILED, RUNNING, pipeline_build

migration = importlib.import_module("pipelines.migrations.0005_search_text")


@pytest.mark.django_db
def test_the_backfill_writes_what_the_status_refresh_writes() -> None:
    made = [pipeline_build(DONE_OK), pipeline_build(FAILED, message="row 2: unknown unit"), pipeline_build(RUNNING)]
    IngestionJob.objects.filter(pipeline=made[0]).exclude(parent=None).update(status_message="same")
    IngestionJob.objects.filter(pipeline=made[2]).update(status_message="")
    expected = {p.pk: rules.pipeline_search_text(job_views(p.jobs.all())) for p in made}
    Pipeline.objects.update(search_text="stale")
    # the fill reads only the editor's connection (SQLite refuses a real editor inside a test's transaction)
    migration.search_text_fill(apps, SimpleNamespace(connection=connection))
    # a pipeline whose jobs have no message keeps what it had: the column's default on a new install
    expected[made[2].pk] = "stale"
    assert dict(Pipeline.objects.values_list("pk", "search_text")) == expected
    assert expected[made[0].pk].split(rules.SEARCH_SEPARATOR) == ["SUCCESS: done", "same"]
