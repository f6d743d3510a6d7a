"""Factor CSV ingestion (``factor_ingest``; reference-domain §4.1–§4.4, SPEC §4.2).

A factor file holds the coefficients of one data-entry type for one year (or, for equipment
and common purchases, of a whole module, each row naming its type in a routing column). Its
rows are UPSERTED on the factor identity (det, year, emission type, normalised classification):
an existing factor keeps its id (emissions point at it) and takes the file's values; a factor
the file no longer carries is kept and reported stale (``carbon.selectors.stale_factors``),
never deleted — entries may still use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from carbon.catalogue import spec_for, specs_for_module
from carbon.catalogue.base import Column, ColumnError, FactorShape
from carbon.choices import DataEntryTypeId, ModuleTypeId
from carbon.compute import classification_key, normalised_classification
from carbon.models import Factor
from carbon.reference_data import EMISSION_TYPES
from ingestion.csvio import RowErrors, csv_open

Progress = Callable[[int], None]
# (data-entry type, emission type, classification key): what makes two factor rows the same factor.
Identity = tuple[int, int, str]

PROGRESS_EVERY = 10_000
# Keys per ``IN (…)`` lookup and rows per write statement: far below SQLite's bound-parameter
# limit, and small enough that PostgreSQL plans each statement quickly.
LOOKUP_CHUNK = 1_000
WRITE_CHUNK = 1_000

_KNOWN_EMISSION_TYPES = frozenset(row.id for row in EMISSION_TYPES)


def char_limit(model: type[models.Model], name: str) -> int:
    """The max_length of a CharField, so length checks follow the schema."""
    model_field = model._meta.get_field(name)
    if not isinstance(model_field, models.CharField) or model_field.max_length is None:
        raise TypeError(f"{model.__name__}.{name} is not a bounded CharField")
    return model_field.max_length


KEY_MAX_LENGTH = char_limit(Factor, "classification_key")


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class LaterRowWins:
    """Duplicate detection over a whole file, for upserts where the later row wins.

    Remembers, per identity, the row that currently holds it — as a 16-byte digest, so the
    memory is a few dozen bytes per distinct identity whatever the rows carry (the rows
    themselves are streamed and never kept). ``claim`` returns the earlier row an identity
    replaces, if any.
    """

    def __init__(self) -> None:
        self._holder: dict[bytes, int] = {}

    def claim(self, identity: object, row: int) -> int | None:
        digest = hashlib.blake2b(repr(identity).encode(), digest_size=16).digest()
        earlier = self._holder.get(digest)
        self._holder[digest] = row
        return earlier


def duplicate_reason(later: int) -> str:
    return f"duplicates row {later} (same identity); the later row is kept"


@dataclass
class FactorIngestOutcome:
    row_errors: RowErrors
    rows_processed: int = 0
    factors_created: int = 0
    factors_updated: int = 0
    batches_processed: int = 0
    # Data-entry types that got a factor written: each needs a recalculation.
    dets_touched: set[int] = field(default_factory=set)

    @property
    def rows_skipped(self) -> int:
        return len(self.row_errors.rows)

    @property
    def factors_written(self) -> int:
        return self.factors_created + self.factors_updated

    def stats(self) -> dict[str, Any]:
        return {
            "rows_processed": self.rows_processed,
            "factors_created": self.factors_created,
            "factors_updated": self.factors_updated,
            "factors_upserted": self.factors_written,
            "factors_deleted": 0,
            "rows_skipped": self.rows_skipped,
            "batches_processed": self.batches_processed,
            "data_entry_type_ids": sorted(self.dets_touched),
            "row_errors": self.row_errors.items,
            "row_errors_count": self.row_errors.count,
        }


@dataclass(frozen=True)
class FactorFile:
    """What one factor upload is about, settled before any row is read."""

    module: ModuleTypeId
    shape: FactorShape
    # The one data-entry type every row belongs to; None for a module-level, routed file.
    pinned: DataEntryTypeId | None

    @property
    def required_columns(self) -> list[str]:
        columns = [c.name for c in (*self.shape.classification, *self.shape.values) if c.required and c.default is None]
        if self.shape.routing is not None and self.pinned is None:
            columns.insert(0, self.shape.routing.name)
        return columns


@dataclass(frozen=True)
class _FactorRow:
    row: int
    det: int
    emission_type_id: int
    classification: dict[str, str]
    key: str
    values: dict[str, Any]

    @property
    def identity(self) -> Identity:
        return (self.det, self.emission_type_id, self.key)


def factor_file_resolve(*, module_type_id: int, data_entry_type_id: int | None) -> FactorFile:
    """The factor shape of an upload: the pinned type's, else the module's shared routed file
    (equipment, common purchases), else the module's only factor type. ValueError otherwise."""
    try:
        module = ModuleTypeId(module_type_id)
    except ValueError:
        raise ValueError(f"module_type_id={module_type_id} is not a module (1–8)") from None
    if data_entry_type_id is not None:
        try:
            spec = spec_for(data_entry_type_id)
        except KeyError:
            raise ValueError(f"data_entry_type_id={data_entry_type_id} is not a data-entry type") from None
        if spec.module != module:
            raise ValueError(f"data_entry_type_id={data_entry_type_id} does not belong to module {module.label}")
        if spec.factor is None:
            raise ValueError(f"{DataEntryTypeId(spec.det).label} has no emission factors")
        return FactorFile(module=module, shape=spec.factor, pinned=spec.det)
    with_factors = [s for s in specs_for_module(module) if s.factor is not None]
    routed: list[FactorShape] = []
    for spec in with_factors:
        if spec.factor is not None and spec.factor.routing is not None and all(spec.factor is not r for r in routed):
            routed.append(spec.factor)
    if len(routed) == 1:
        return FactorFile(module=module, shape=routed[0], pinned=None)
    if len(with_factors) == 1 and with_factors[0].factor is not None:
        return FactorFile(module=module, shape=with_factors[0].factor, pinned=with_factors[0].det)
    names = ", ".join(f"{int(s.det)} ({DataEntryTypeId(s.det).label})" for s in with_factors)
    raise ValueError(f"module {module.label} has no module-level factor file; set data_entry_type_id to one of {names}")


def factors_ingest(
    *,
    path: Path,
    module_type_id: int,
    data_entry_type_id: int | None,
    year: int,
    job_id: int,
    max_row_errors: int,
    progress: Progress | None = None,
    batch_size: int | None = None,
) -> FactorIngestOutcome:
    """Upsert the factors of PATH for YEAR, inside the caller's transaction (under lock 1237).

    1. Resolve the factor shape (ValueError for a module or type without factors) and open the
       file, requiring the shape's required classification, value (and routing) columns.
    2. Per row: parse every classification and value column (a bad value is a row error naming
       its row and column), route the row to its data-entry type, resolve its emission type
       (none → a row error naming the classification columns), normalise the classification.
    3. A later row with the same identity replaces an earlier one, which becomes a row error.
    4. Every BATCH_SIZE identities: update the factors that exist (same ids) and create the
       others, stamping ``last_seen_job_id = JOB_ID`` on all of them. Nothing is deleted.
    """
    factor_file = factor_file_resolve(module_type_id=module_type_id, data_entry_type_id=data_entry_type_id)
    limit = batch_size or settings.INGEST_COPY_BATCH_SIZE
    outcome = FactorIngestOutcome(row_errors=RowErrors(limit=max_row_errors))
    holders = LaterRowWins()
    pending: dict[Identity, _FactorRow] = {}
    # Identities a previous batch already wrote and counted: rewritten, not counted again.
    rewritten: set[Identity] = set()
    with csv_open(path, required=factor_file.required_columns) as csv_file:
        for row_number, raw in csv_file.rows():
            outcome.rows_processed += 1
            factor_row = _factor_row(row_number, raw, factor_file, outcome.row_errors)
            if factor_row is not None:
                identity = factor_row.identity
                earlier = holders.claim(identity, row_number)
                if earlier is not None:
                    outcome.row_errors.add(earlier, None, duplicate_reason(row_number))
                    if identity not in pending:
                        rewritten.add(identity)
                pending[identity] = factor_row
            if len(pending) >= limit:
                _factors_write(pending, rewritten, year=year, job_id=job_id, outcome=outcome)
            if progress is not None and outcome.rows_processed % PROGRESS_EVERY == 0:
                progress(outcome.rows_processed)
    _factors_write(pending, rewritten, year=year, job_id=job_id, outcome=outcome)
    if progress is not None:
        progress(outcome.rows_processed)
    return outcome


def _factor_row(
    row_number: int, raw: Mapping[str, str], factor_file: FactorFile, errors: RowErrors
) -> _FactorRow | None:
    shape = factor_file.shape
    ok = True
    if raw.get(""):
        errors.add(row_number, None, "has more values than the header has columns")
        ok = False
    det = _row_det(row_number, raw, factor_file, errors)
    classification = _columns_parse(shape.classification, row_number, raw, errors)
    values = _columns_parse(shape.values, row_number, raw, errors)
    if not ok or det is None or classification is None or values is None:
        return None
    emission_type = _emission_type(shape, det, classification)
    if emission_type is None or emission_type not in _KNOWN_EMISSION_TYPES:
        shown = ", ".join(f"{c.name}={classification.get(c.name)!r}" for c in shape.classification)
        errors.add(row_number, None, f"no emission type for this classification ({shown})")
        return None
    key = classification_key(classification)
    if len(key) > KEY_MAX_LENGTH:
        errors.add(row_number, None, f"the classification is too long (more than {KEY_MAX_LENGTH} characters)")
        return None
    return _FactorRow(
        row=row_number,
        det=det,
        emission_type_id=emission_type,
        classification=normalised_classification(classification),
        key=key,
        values={name: value for name, value in values.items() if value is not None},
    )


def _columns_parse(
    columns: Iterable[Column], row_number: int, raw: Mapping[str, str], errors: RowErrors
) -> dict[str, Any] | None:
    """Every column of RAW parsed; None when one failed (each failure is reported)."""
    parsed: dict[str, Any] = {}
    ok = True
    for column in columns:
        try:
            parsed[column.name] = column.parse(raw.get(column.name))
        except ColumnError as exc:
            errors.add(row_number, column.name, str(exc))
            ok = False
    return parsed if ok else None


def _row_det(row_number: int, raw: Mapping[str, str], factor_file: FactorFile, errors: RowErrors) -> int | None:
    """The row's data-entry type: the pinned one, or the one its routing column names.

    A pinned upload of a routed shape may still carry the routing column; a row it routes
    elsewhere is a row error rather than being filed under the wrong type.
    """
    routing = factor_file.shape.routing
    value = raw.get(routing.name, "") if routing is not None else ""
    if routing is None or (factor_file.pinned is not None and not value.strip()):
        return int(factor_file.pinned) if factor_file.pinned is not None else None
    try:
        route = routing.parse(value)
    except ColumnError as exc:
        errors.add(row_number, routing.name, str(exc))
        return None
    det = factor_file.shape.routes.get(route)
    if det is None:
        errors.add(row_number, routing.name, f"{route!r} names no data-entry type")
        return None
    if factor_file.pinned is not None and det != factor_file.pinned:
        pinned = DataEntryTypeId(factor_file.pinned).label
        errors.add(row_number, routing.name, f"{route!r} is not {pinned}, the type this upload is for")
        return None
    return int(det)


def _emission_type(shape: FactorShape, det: int, classification: Mapping[str, Any]) -> int | None:
    emission_type = shape.emission_type(classification)
    if emission_type is None and shape.routing is not None:
        # A routed shape is shared by several types, so it cannot name one emission type: a
        # row takes the type its data-entry type is filed under (equipment 80100/80200/80300,
        # purchases 90200…90800), which that type's declaration gives for any of its rows.
        emission_type = spec_for(det).override_type(classification)
    return emission_type


def _factors_write(
    pending: dict[Identity, _FactorRow],
    rewritten: set[Identity],
    *,
    year: int,
    job_id: int,
    outcome: FactorIngestOutcome,
) -> None:
    """Upsert PENDING, then empty it.

    Django's ``bulk_create(update_conflicts=True)`` cannot target the PARTIAL unique index
    ``factor_identity`` (it emits ``ON CONFLICT (…)`` without the index's ``WHERE year IS NOT
    NULL``, which both PostgreSQL and SQLite refuse), so the upsert is set-based in two steps:
    look the batch's identities up, then bulk-update the existing factors and bulk-create the
    others. That is race-free because every writer of a (module, year)'s factors holds the
    advisory lock 1237 (factor_ingest and the computed-factor job alike).
    """
    if not pending:
        return
    existing = _factor_ids(pending.keys(), year=year)
    now = timezone.now()
    updates: list[Factor] = []
    creates: list[Factor] = []
    for identity, factor_row in pending.items():
        pk = existing.get(identity)
        if pk is not None:
            updates.append(
                Factor(
                    pk=pk,
                    classification=factor_row.classification,
                    values=factor_row.values,
                    last_seen_job_id=job_id,
                    # The file's values replace any computed ones (research-facility sums).
                    is_computed=False,
                    updated_at=now,
                )
            )
            if identity not in rewritten:
                outcome.factors_updated += 1
        else:
            creates.append(
                Factor(
                    data_entry_type_id=factor_row.det,
                    emission_type_id=factor_row.emission_type_id,
                    year=year,
                    classification=factor_row.classification,
                    classification_key=factor_row.key,
                    values=factor_row.values,
                    last_seen_job_id=job_id,
                )
            )
            outcome.factors_created += 1
        outcome.dets_touched.add(factor_row.det)
    Factor.objects.bulk_update(
        updates, ["classification", "values", "last_seen_job_id", "is_computed", "updated_at"], batch_size=WRITE_CHUNK
    )
    Factor.objects.bulk_create(creates, batch_size=WRITE_CHUNK)
    outcome.batches_processed += 1
    pending.clear()
    rewritten.clear()


def _factor_ids(identities: Iterable[Identity], *, year: int) -> dict[Identity, int]:
    """The ids of the factors of YEAR that have one of IDENTITIES (one query per chunk of keys)."""
    keys_by_det: dict[int, set[str]] = {}
    for det, _, key in identities:
        keys_by_det.setdefault(det, set()).add(key)
    found: dict[Identity, int] = {}
    for det, keys in keys_by_det.items():
        for chunk in chunks(sorted(keys), LOOKUP_CHUNK):
            rows = Factor.objects.filter(data_entry_type_id=det, year=year, classification_key__in=chunk).values_list(
                "id", "emission_type_id", "classification_key"
            )
            for pk, emission_type_id, key in rows:
                found[(det, emission_type_id, key)] = pk
    return found
