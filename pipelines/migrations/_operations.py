"""Operations shared by this app's migrations (the loader skips modules starting with ``_``)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """``AddIndex``, built with CREATE INDEX CONCURRENTLY where the database has it."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)


def trigram_index_create(schema_editor: Any, name: str, table: str, column: str) -> None:
    """A GIN trigram index on ``UPPER(column)`` (what ``icontains`` compares), built CONCURRENTLY.

    PostgreSQL only (the caller checks): pg_trgm is a trusted extension (PostgreSQL 13+), which
    the database owner may create without superuser rights.
    """
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
    )
