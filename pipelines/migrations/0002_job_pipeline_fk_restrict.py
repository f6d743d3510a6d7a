"""Make job → pipeline a named, immediate ON DELETE RESTRICT foreign key on PostgreSQL.

Django creates foreign keys DEFERRABLE INITIALLY DEFERRED, so a job inserted before its
pipeline row would only fail at COMMIT — exactly how the reference system's FK-ordering bugs
slipped through. Replacing the constraint makes the INSERT itself fail, and makes deleting a
pipeline that still has jobs fail in the database, whatever the ORM does.
SQLite keeps Django's deferred constraint (it cannot alter one in place): there the violation
surfaces at COMMIT.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

CONSTRAINT = "job_pipeline_fk"


def _pipeline_fk_names(cursor: Any) -> list[str]:
    cursor.execute(
        """
        SELECT con.conname
        FROM pg_constraint con
        JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
        WHERE con.conrelid = 'pipelines_ingestionjob'::regclass
          AND con.contype = 'f'
          AND att.attname = 'pipeline_id'
        """
    )
    return [row[0] for row in cursor.fetchall()]


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for name in _pipeline_fk_names(cursor):
            cursor.execute(f"ALTER TABLE pipelines_ingestionjob DROP CONSTRAINT {quote(name)}")
        cursor.execute(
            f"ALTER TABLE pipelines_ingestionjob ADD CONSTRAINT {quote(CONSTRAINT)} "
            "FOREIGN KEY (pipeline_id) REFERENCES pipelines_pipeline (id) "
            "ON DELETE RESTRICT NOT DEFERRABLE"
        )


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE pipelines_ingestionjob DROP CONSTRAINT IF EXISTS {quote(CONSTRAINT)}")
        cursor.execute(
            f"ALTER TABLE pipelines_ingestionjob ADD CONSTRAINT {quote('pipelines_ingestionjob_pipeline_id_fk')} "
            "FOREIGN KEY (pipeline_id) REFERENCES pipelines_pipeline (id) DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
