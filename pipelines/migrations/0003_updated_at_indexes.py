"""Index ``updated_at`` of pipelines and jobs, for the live-event relay (``pipelines.relay``).

Without Redis, each web process tails the database for changed pipelines every half second:

    SELECT id, updated_at FROM pipelines_pipeline
    WHERE updated_at > %s ORDER BY updated_at DESC LIMIT 500;
    SELECT id, pipeline_id, updated_at FROM pipelines_ingestionjob
    WHERE updated_at > %s ORDER BY updated_at DESC LIMIT 500;

Both must be a short backward range scan of an index, not a scan of the whole history.

On PostgreSQL the indexes are built CONCURRENTLY: the job table is the one workers write all
the time, and a plain CREATE INDEX would block their writes while it reads every row. That
needs a migration outside a transaction (``atomic = False``); should it fail half-way, an
INVALID index is left behind: drop it and migrate again. SQLite builds them the usual way.
"""

from __future__ import annotations

from django.db import migrations, models

from pipelines.migrations._operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("pipelines", "0002_job_pipeline_fk_restrict"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="pipeline",
            index=models.Index(fields=["updated_at"], name="pipeline_updated_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="ingestionjob",
            index=models.Index(fields=["updated_at"], name="job_updated_idx"),
        ),
    ]
