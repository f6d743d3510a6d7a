"""The list's ``q`` reads one column of the pipelines (``GET /api/v1/sync/pipelines``).

- ``Pipeline.search_text``: its jobs' messages, each once, in job order, joined by U+001F
  (``rules.pipeline_search_text``), written with its status; filled here from the jobs.
- PostgreSQL only: a trigram index on ``UPPER(search_text)`` replaces those on
  ``UPPER(last_error)`` (one of those messages) and on the jobs' ``UPPER(status_message)``.
  The jobs' index made ``q`` an 8,000-row bitmap scan of the job table, then a hash of the
  matches joined back to every pipeline, for a term in 8% of a 100k history (57 ms); on one
  column of the pipelines, the planner walks the list's index until the page is full when the
  term is common, and reads the index when it is rare.
- ``job_active_pipeline_idx``: the live messages of queued and running jobs, which q also
  searches (they change on every progress write, which does not refresh the pipeline).

Built CONCURRENTLY on PostgreSQL, outside a transaction; should it fail half-way, drop the
INVALID index it left and migrate again.
"""

from __future__ import annotations

from itertools import groupby
from operator import itemgetter
from typing import Any

from django.db import migrations, models

from pipelines.migrations._operations import AddIndexConcurrentlyOnPostgres, trigram_index_create

SEPARATOR = "\x1f"  # as pipelines.rules.SEARCH_SEPARATOR at the time of this migration
OLD_TRIGRAM_INDEXES = (
    ("pipeline_last_error_trgm_idx", "pipelines_pipeline", "last_error"),
    ("job_status_message_trgm_idx", "pipelines_ingestionjob", "status_message"),
)
NEW_TRIGRAM_INDEX = ("pipeline_search_text_trgm_idx", "pipelines_pipeline", "search_text")


def search_text_fill(apps: Any, schema_editor: Any) -> None:
    """Each existing pipeline's search_text from its jobs' messages (streamed, written in batches)."""
    pipeline_model = apps.get_model("pipelines", "Pipeline")
    job_model = apps.get_model("pipelines", "IngestionJob")
    db = schema_editor.connection.alias
    jobs = job_model.objects.using(db).exclude(status_message="").order_by("pipeline_id", "id")
    rows = jobs.values_list("pipeline_id", "status_message").iterator(chunk_size=5000)
    batch: list[Any] = []
    for pipeline_id, messages in groupby(rows, key=itemgetter(0)):
        text = SEPARATOR.join(dict.fromkeys(message for _, message in messages))
        batch.append(pipeline_model(pk=pipeline_id, search_text=text))
        if len(batch) >= 2000:
            pipeline_model.objects.using(db).bulk_update(batch, ["search_text"])
            batch = []
    if batch:
        pipeline_model.objects.using(db).bulk_update(batch, ["search_text"])


def trigram_indexes_swap(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite scans; its installs are small
    name, table, column = NEW_TRIGRAM_INDEX
    trigram_index_create(schema_editor, name, table, column)
    # The planner chooses between walking the list's index (a common term) and reading this one
    # (a rare term) from the expression's statistics: with the default sample, a term in 0.3%
    # of a 100k history was estimated at 1%, and its walk read 15,000 rows (49 ms) where the
    # index gave the 334 matches in 9 ms. A 1000-entry histogram estimated it within 40%.
    schema_editor.execute(f'ALTER INDEX "{name}" ALTER COLUMN 1 SET STATISTICS 1000')
    schema_editor.execute(f'ANALYZE "{table}"')
    for old, _table, _column in OLD_TRIGRAM_INDEXES:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{old}"')


def trigram_indexes_unswap(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for old, table, column in OLD_TRIGRAM_INDEXES:
        trigram_index_create(schema_editor, old, table, column)
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{NEW_TRIGRAM_INDEX[0]}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("pipelines", "0004_list_filters"),
    ]

    operations = [
        migrations.AddField(
            model_name="pipeline",
            name="search_text",
            field=models.TextField(blank=True, default="", db_default="", editable=False),
        ),
        migrations.RunPython(search_text_fill, migrations.RunPython.noop, elidable=True),
        AddIndexConcurrentlyOnPostgres(
            model_name="ingestionjob",
            index=models.Index(
                fields=["pipeline"],
                condition=models.Q(("state__in", ["NOT_STARTED", "RUNNING"])),
                name="job_active_pipeline_idx",
            ),
        ),
        migrations.RunPython(trigram_indexes_swap, trigram_indexes_unswap),
    ]
