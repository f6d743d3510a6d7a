"""Bulk inserts with PostgreSQL COPY (multi-row INSERT on SQLite)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from django.db import connection, models
from django.utils import timezone

# Text handed to COPY in blocks of about this many characters (B6: 1 MB blocks match raw \copy).
COPY_BLOCK_CHARS = 1 << 20
# Rows per UPDATE … FROM jsonb_to_recordset(…) statement (rows_update): bounded memory.
UPDATE_BATCH = 5000


def rows_copy(model: type[models.Model], objects: Sequence[models.Model], *, batch_size: int = 5000) -> None:
    """Insert OBJECTS (unsaved, no primary key) as fast as the database allows.

    PostgreSQL: one ``COPY … FROM STDIN`` through the current transaction's connection —
    several times faster than INSERT for large uploads. Auto timestamps are filled here, as
    COPY bypasses the model. Elsewhere: ``bulk_create``.
    """
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects, batch_size=batch_size)
        return
    pairs = [(f, f.column) for f in model._meta.concrete_fields if not f.primary_key and f.column]
    fields = [f for f, _ in pairs]
    now = timezone.now()
    columns = ", ".join(connection.ops.quote_name(column) for _, column in pairs if column)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor, cursor.connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for obj in objects:
            copy.write_row([_value(obj, field, now) for field in fields])


def _value(obj: models.Model, field: models.Field[Any, Any], now: Any) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    value = getattr(obj, field.attname)
    if isinstance(field, models.JSONField):
        return None if value is None else json.dumps(value)
    return value


def rows_delete(queryset: models.QuerySet[Any]) -> int:
    """One set-based ``DELETE … WHERE …`` for QUERYSET, whatever points at its rows.

    Django's ``delete()`` loads every row of a model that others reference (to cascade in
    Python): a million entries would be read into memory first. Callers delete the
    referencing rows themselves, first, in the same transaction (the database's foreign keys
    refuse anything they forget), then call this.
    """
    return int(queryset._raw_delete(queryset.db))


def copy_text(model: type[models.Model], columns: Sequence[str], lines: Iterable[str]) -> int:
    """``COPY <model's table> (COLUMNS) FROM STDIN`` of LINES, rows already in PostgreSQL's text
    format (tab-separated, ``\\N`` for NULL, each ending with a newline). Returns the row count.

    LINES may be a generator: its rows are sent in blocks of about 1 MB as it produces them,
    so the server stores one block while the caller prepares the next. It runs while the COPY
    holds the connection, so it must not query the database (other connections are fine).
    PostgreSQL only; runs in the caller's transaction.
    """
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    table = connection.ops.quote_name(model._meta.db_table)
    count = 0
    with connection.cursor() as cursor, cursor.connection.cursor().copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
        block: list[str] = []
        size = 0
        for line in lines:
            block.append(line)
            size += len(line)
            if size >= COPY_BLOCK_CHARS:
                copy.write("".join(block))
                count += len(block)
                block.clear()
                size = 0
        if block:
            copy.write("".join(block))
            count += len(block)
    return count


def copy_json(value: Any) -> str:
    """VALUE as JSON, escaped for a COPY text field (backslashes doubled; JSON itself never
    holds a raw tab or newline). orjson where it can (about 10× the standard library), the
    standard library for what orjson refuses (integers beyond 64 bits)."""
    text = json_text(value)
    return text.replace("\\", "\\\\") if "\\" in text else text


def json_text(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """VALUE as JSON text: orjson where it can, the standard library for what orjson refuses
    (integers beyond 64 bits). DEFAULT serialises what neither knows, as in ``json.dumps``."""
    try:
        return orjson.dumps(value, default=default).decode()
    except TypeError:
        return json.dumps(value, default=default)


def rows_update(model: type[models.Model], objects: Sequence[models.Model], fields: Sequence[str]) -> int:
    """Write FIELDS of OBJECTS (saved rows) back, as fast as the database allows. Returns the row count.

    PostgreSQL: one ``UPDATE … FROM jsonb_to_recordset(%s)`` per ``UPDATE_BATCH`` rows, the rows
    sent as one JSON document (orjson) that the server unpacks into typed columns. Django's
    ``bulk_update`` builds a ``CASE WHEN id = … THEN …`` per column per row instead, which
    PostgreSQL plans and evaluates row by row, and arrays of JSON texts cost the client-side
    quoting one regex pass per element: for the 2,231 report modules of a year's aggregation
    both took seconds (``make bench``: aggregation). Only model metadata (table and column
    names, column types) goes into the SQL text; the values travel as the parameter.
    Elsewhere: ``bulk_update``.
    """
    if not objects:
        return 0
    if connection.vendor != "postgresql":
        return int(model._default_manager.bulk_update(objects, fields, batch_size=1000))
    from psycopg import sql

    meta = model._meta
    targets = [_concrete_field(meta.get_field(name)) for name in fields]
    pk = _concrete_field(meta.pk)
    aliases = [f"c{index}" for index in range(len(targets))]
    assignments: list[sql.Composable] = [
        sql.SQL("{} = v.{}").format(sql.Identifier(_column(field)), sql.Identifier(alias))
        for field, alias in zip(targets, aliases, strict=True)
    ]
    record: list[sql.Composable] = [
        sql.SQL("{} {}").format(sql.Identifier(alias), sql.SQL(_record_type(field)))
        for alias, field in zip(["pk", *aliases], [pk, *targets], strict=True)
    ]
    query = sql.SQL(
        "UPDATE {table} AS t SET {assignments} FROM jsonb_to_recordset(%s::jsonb) AS v({record}) WHERE t.{pk} = v.pk"
    ).format(
        table=sql.Identifier(meta.db_table),
        assignments=sql.SQL(", ").join(assignments),
        record=sql.SQL(", ").join(record),
        pk=sql.Identifier(_column(pk)),
    )
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objects), UPDATE_BATCH):
            named = list(zip(aliases, targets, strict=True))
            rows = [
                {"pk": obj.pk, **{alias: _update_value(obj, field) for alias, field in named}}
                for obj in objects[start : start + UPDATE_BATCH]
            ]
            # Datetimes go as ISO 8601, Decimals as strings: PostgreSQL casts both back.
            cursor.execute(query, [json_text(rows, default=str)])
            updated += cursor.rowcount
    return updated


def _concrete_field(field: Any) -> models.Field[Any, Any]:
    if not isinstance(field, models.Field) or not field.column:
        raise TypeError(f"rows_update writes concrete columns only, not {field!r}")
    return field


def _column(field: models.Field[Any, Any]) -> str:
    return str(field.column)


def _record_type(field: models.Field[Any, Any]) -> str:
    return "jsonb" if isinstance(field, models.JSONField) else str(field.db_type(connection))


def _update_value(obj: models.Model, field: models.Field[Any, Any]) -> Any:
    value = getattr(obj, field.attname)
    if isinstance(field, models.JSONField):
        return value  # nested as JSON in the document, read back as jsonb
    return field.get_db_prep_value(value, connection, prepared=False)
