"""Reduction objectives of a year (reference-domain §4.6): footprint, population, scenarios.

Stored in ``YearConfiguration.config["reduction_objectives"]``; an upload REPLACES its
category's rows and records the file. Two entry points share the parsing: a synchronous
upload (all rows valid, or nothing changes) and the ``csv_ingest`` job (valid rows kept,
each invalid one reported; none valid → the job fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from carbon.catalogue.base import Column
from carbon.models import YearConfiguration
from carbon.services import year_configuration_default_config
from ingestion.csvio import RowErrors, csv_open


@dataclass(frozen=True)
class ObjectiveKind:
    key: str
    columns: tuple[Column, ...]


KINDS: dict[int, ObjectiveKind] = {
    0: ObjectiveKind(
        "institutional_footprint",
        (
            Column("year", "int", required=True, minimum=1990, maximum=2100),
            Column("category", required=True),
            Column("co2", "float", required=True, minimum=0),
        ),
    ),
    1: ObjectiveKind(
        "population_projections",
        (
            Column("year", "int", required=True, minimum=1990, maximum=2100),
            Column("pop", "int", required=True, minimum=0),
        ),
    ),
    2: ObjectiveKind(
        "unit_scenarios",
        (
            Column("scenario", required=True),
            Column("year", "int", required=True, minimum=1990, maximum=2100),
            Column("reduction_percentage", "float", required=True, minimum=0, maximum=1),
        ),
    ),
}
CATEGORY_NAMES = {"footprint": 0, "population": 1, "scenarios": 2}


class ObjectivesInvalid(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:5]))
        self.errors = errors


def objectives_parse(*, path: Path, kind_id: int, max_row_errors: int) -> tuple[list[dict[str, Any]], RowErrors]:
    """Parse every row of PATH as objectives of KIND_ID: (valid rows, row errors)."""
    if kind_id not in KINDS:
        raise ValueError(
            f"reduction_objective_type_id must be 0 (footprint), 1 (population) or 2 (scenarios), got {kind_id}"
        )
    kind = KINDS[kind_id]
    errors = RowErrors(limit=max_row_errors)
    rows: list[dict[str, Any]] = []
    with csv_open(path, required=[c.name for c in kind.columns]) as csv_file:
        for row_number, raw in csv_file.rows():
            parsed: dict[str, Any] = {}
            for column in kind.columns:
                try:
                    parsed[column.name] = column.parse(raw.get(column.name))
                except ValueError as exc:
                    errors.add(row_number, column.name, str(exc))
            if row_number not in errors.rows:
                rows.append(parsed)
    return rows, errors


def objectives_store(*, year: int, kind_id: int, rows: list[dict[str, Any]], file_path: str, filename: str) -> None:
    """Replace the year's rows of this kind and record the file (in one locked update)."""
    key = KINDS[kind_id].key
    with transaction.atomic():
        configuration = YearConfiguration.objects.select_for_update().get(year=year)
        config = configuration.config or year_configuration_default_config()
        objectives = config.setdefault("reduction_objectives", {})
        objectives[key] = rows
        objectives.setdefault("files", {})[key] = {
            "path": file_path,
            "filename": filename,
            "uploaded_at": timezone.now().isoformat(),
            "rows_processed": len(rows),
        }
        configuration.config = config
        configuration.save(update_fields=["config", "updated_at"])


def objectives_upload(*, year: int, category: str, path: Path, file_path: str) -> int:
    """The synchronous upload: all rows valid, or ObjectivesInvalid listing "Row N, field 'x': …"."""
    if category not in CATEGORY_NAMES:
        raise ObjectivesInvalid([f"category must be one of {', '.join(CATEGORY_NAMES)}"])
    kind_id = CATEGORY_NAMES[category]
    rows, errors = objectives_parse(path=path, kind_id=kind_id, max_row_errors=1000)
    if errors.count:
        raise ObjectivesInvalid([f"Row {e['row']}, field '{e['column']}': {e['reason']}" for e in errors.items])
    if not rows:
        raise ObjectivesInvalid(["the file has no data rows"])
    objectives_store(year=year, kind_id=kind_id, rows=rows, file_path=file_path, filename=path.name)
    return len(rows)
