"""Migrations, reference enumerations and naming rules of the schema."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, models

from carbon.choices import DataEntryTypeId, ModuleTypeId
from carbon.models import DataEntryType, EmissionType, ModuleType, User
from carbon.reference_data import EMISSION_TYPES, MODULE_EMISSION_ROOTS, reference_rows_sync
from pipelines.models import TRIGRAM_INDEXES

PROJECT_APPS = ("carbon", "pipelines", "ingestion")


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_module_types_are_loaded_with_reference_ids() -> None:
    assert list(ModuleType.objects.values_list("id", "code")) == [(m.value, m.name.lower()) for m in ModuleTypeId]
    assert ModuleType.objects.get(pk=4).code == "equipment"


@pytest.mark.django_db
def test_data_entry_types_are_loaded_with_reference_ids_and_modules() -> None:
    assert set(DataEntryType.objects.values_list("id", flat=True)) == {d.value for d in DataEntryTypeId}
    by_id = dict(DataEntryType.objects.values_list("id", "module_type_id"))
    assert by_id[20] == 2  # plane → professional travel
    assert by_id[67] == 5  # additional purchases → purchase
    assert by_id[71] == 6  # animal facilities → research facilities
    assert sorted(k for k, v in by_id.items() if v == 4) == [10, 11, 12]


@pytest.mark.django_db
def test_emission_type_tree_is_loaded() -> None:
    assert EmissionType.objects.count() == len(EMISSION_TYPES)
    lighting_office = EmissionType.objects.get(pk=6010101)
    assert lighting_office.code == "buildings__rooms__lighting__office"
    assert lighting_office.scope == 2
    ancestors = []
    node: EmissionType | None = lighting_office.parent
    while node is not None:
        ancestors.append(node.pk)
        node = node.parent
    assert ancestors == [60101, 60100, 60000]
    assert EmissionType.objects.get(pk=60105).scope == 1  # heating_thermal is scope 1
    assert EmissionType.objects.get(pk=60300).category == "embodied_energy"
    assert EmissionType.objects.get(pk=2000413).code == "waste__recycling__inert_waste"
    assert EmissionType.objects.get(pk=10020002).parent_id == 100200
    rollups = set(EmissionType.objects.filter(is_rollup=True).values_list("id", flat=True))
    assert rollups == {40000, 60100}
    assert not EmissionType.objects.filter(is_rollup=True, scope__isnull=False).exists()


def test_module_emission_roots_are_disjoint_subtrees() -> None:
    parents = {row.id: row.parent_id for row in EMISSION_TYPES}
    for roots in MODULE_EMISSION_ROOTS.values():
        for root in roots:
            assert parents[root] is None, f"{root} is not a root: its subtree would be walked twice"


@pytest.mark.django_db
def test_reference_rows_sync_is_idempotent() -> None:
    before = (ModuleType.objects.count(), DataEntryType.objects.count(), EmissionType.objects.count())
    reference_rows_sync(apps)
    reference_rows_sync(apps)
    assert (ModuleType.objects.count(), DataEntryType.objects.count(), EmissionType.objects.count()) == before
    assert before == (8, len(DataEntryTypeId), len(EMISSION_TYPES))


def _project_models() -> list[type[models.Model]]:
    return [m for app in PROJECT_APPS for m in apps.get_app_config(app).get_models()]


# Rows of these tables are never deleted or re-keyed (PROTECT, loaded by migrations), so an
# index on the referencing side would only cost writes on the big tables.
NO_INDEX_NEEDED_TARGETS = {ModuleType, DataEntryType, EmissionType}


def test_foreign_keys_have_indexes_leading_with_them() -> None:
    for model in _project_models():
        for field in model._meta.concrete_fields:
            if not isinstance(field, models.ForeignKey) or field.related_model in NO_INDEX_NEEDED_TARGETS:
                continue
            leading = [index.fields[0].lstrip("-") for index in model._meta.indexes if index.fields] + [
                c.fields[0] for c in model._meta.constraints if isinstance(c, models.UniqueConstraint) and c.fields
            ]
            assert field.name in leading, f"{model.__name__}.{field.name} has no index leading with it"


# PostgreSQL only: Django's SQLite introspection cannot parse some CHECK clauses, and the
# declarations under test are the same on both databases.
@pytest.mark.postgres
@pytest.mark.django_db
def test_database_has_no_anonymous_index_or_constraint() -> None:
    # given: the names the models declare
    for model in _project_models():
        declared = {i.name for i in model._meta.indexes} | {c.name for c in model._meta.constraints}
        declared |= {name for name, table, _column in TRIGRAM_INDEXES if table == model._meta.db_table}
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
        for name, info in found.items():
            if info["primary_key"] or info["foreign_key"]:
                continue  # FK constraint names are Django's to choose (job → pipeline is renamed)
            if info["check"] and _is_positive_field(model, info["columns"]):
                continue  # Django's own ">= 0" of Positive*Field, part of the column type
            if name.endswith("_like") and info["columns"] == ["id"]:
                continue  # PostgreSQL's LIKE-able twin of a varchar primary key (Worker.id)
            if model is User and info["columns"] == ["username"]:
                continue  # inherited from django.contrib.auth
            assert name in declared, f"{model._meta.db_table}: anonymous {name} on {info['columns']}"


def test_no_anonymous_unique_fields() -> None:
    for model in _project_models():
        for field in model._meta.concrete_fields:
            if field.unique and not field.primary_key and model.__name__ != "User":
                raise AssertionError(f"{model.__name__}.{field.name}: unique=True is anonymous; name a constraint")


def test_every_choices_field_is_backed_by_a_check_constraint() -> None:
    for model in _project_models():
        checked = {
            name
            for c in model._meta.constraints
            if isinstance(c, models.CheckConstraint)
            for name in _fields_in(c.condition)
        }
        for field in model._meta.concrete_fields:
            if field.choices and field.model is model:
                assert field.name in checked, f"{model.__name__}.{field.name} has choices but no CHECK"


def _is_positive_field(model: type[models.Model], columns: list[str]) -> bool:
    positive = (models.PositiveIntegerField, models.PositiveSmallIntegerField, models.PositiveBigIntegerField)
    by_column = {f.column: f for f in model._meta.concrete_fields}
    return len(columns) == 1 and isinstance(by_column.get(columns[0]), positive)


def _fields_in(q: object) -> set[str]:
    if isinstance(q, models.Q):
        names: set[str] = set()
        for child in q.children:
            if isinstance(child, tuple):
                names.add(child[0].split("__")[0])
            else:
                names |= _fields_in(child)
        return names
    return set()
