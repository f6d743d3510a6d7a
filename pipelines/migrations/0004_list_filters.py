"""The list's filters without scans of the whole history (``GET /api/v1/sync/pipelines``).

- ``Pipeline.job_types``: the job types a pipeline holds, as bits (``rules.JOB_TYPE_BITS``),
  written with its status; filled here from the jobs already there. The job_type filter reads
  it instead of an EXISTS over the jobs for each of 100k pipelines.
- ``pipeline_list_cover_idx`` replaces ``pipeline_created_idx``: the same (created_at, id)
  order, covering every scalar filter column, so the per-status counters and deep OFFSET pages
  are index-only scans on PostgreSQL.
- ``pipeline_unit_code_upper_idx``: q's unit-code term (``unit_code__iexact``).
- PostgreSQL only: trigram indexes (``pg_trgm``) on ``UPPER(last_error)`` and
  ``UPPER(status_message)`` of the jobs, for ``q``, which the selector sends as
  ``UPPER(col::text) LIKE UPPER('%…%')`` (Django's icontains): a substring search that no
  b-tree can serve. pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may
  create it without superuser rights.

Indexes are built CONCURRENTLY on PostgreSQL (workers write the job table all the time), so
the migration runs outside a transaction; should it fail half-way, drop the INVALID index it
left and migrate again.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.models.functions import Upper

from pipelines.migrations._operations import AddIndexConcurrentlyOnPostgres, trigram_index_create

# Same bits as pipelines.rules.JOB_TYPE_BITS at the time of this migration (frozen here).
JOB_TYPE_BITS = {
    "csv_ingest": 1 << 0,
    "api_ingest": 1 << 1,
    "factor_ingest": 1 << 2,
    "reference_ingest": 1 << 3,
    "unit_sync": 1 << 4,
    "emission_recalc": 1 << 5,
    "module_emission_recalc": 1 << 6,
    "aggregation": 1 << 7,
}

# As pipelines.models.TRIGRAM_INDEXES at the time of this migration (frozen here).
TRIGRAM_INDEXES = (
    ("pipeline_last_error_trgm_idx", "pipelines_pipeline", "last_error"),
    ("job_status_message_trgm_idx", "pipelines_ingestionjob", "status_message"),
)


def job_types_fill(apps: Any, schema_editor: Any) -> None:
    """Each existing pipeline's job_types from its jobs (batched; new rows get it from the engine)."""
    pipeline_model = apps.get_model("pipelines", "Pipeline")
    job_model = apps.get_model("pipelines", "IngestionJob")
    db = schema_editor.connection.alias
    masks: dict[Any, int] = {}
    for pipeline_id, job_type in job_model.objects.using(db).values_list("pipeline_id", "job_type").distinct():
        masks[pipeline_id] = masks.get(pipeline_id, 0) | JOB_TYPE_BITS.get(job_type, 0)
    by_mask: dict[int, list[Any]] = {}
    for pipeline_id, mask in masks.items():
        by_mask.setdefault(mask, []).append(pipeline_id)
    for mask, ids in by_mask.items():
        for start in range(0, len(ids), 5000):
            pipeline_model.objects.using(db).filter(pk__in=ids[start : start + 5000]).update(job_types=mask)


def trigram_indexes_create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite scans; its installs are small
    for name, table, column in TRIGRAM_INDEXES:
        trigram_index_create(schema_editor, name, table, column)


def trigram_indexes_drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _column in TRIGRAM_INDEXES:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("pipelines", "0003_updated_at_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="pipeline",
            name="job_types",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(job_types_fill, migrations.RunPython.noop, elidable=True),
        AddIndexConcurrentlyOnPostgres(
            model_name="pipeline",
            index=models.Index(
                fields=["-created_at", "-id"],
                include=("status", "kind", "job_types", "module_type_id", "year", "has_errors", "unit_id"),
                name="pipeline_list_cover_idx",
            ),
        ),
        migrations.RemoveIndex(model_name="pipeline", name="pipeline_created_idx"),
        AddIndexConcurrentlyOnPostgres(
            model_name="pipeline",
            index=models.Index(Upper("unit_code"), name="pipeline_unit_code_upper_idx"),
        ),
        migrations.RunPython(trigram_indexes_create, trigram_indexes_drop),
    ]
