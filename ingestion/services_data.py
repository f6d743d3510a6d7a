"""Activity-data CSV ingestion (``csv_ingest``; reference-domain §3, SPEC §4.2).

Two shapes of file:
- per year (back office): one file for many units, a ``unit_institutional_id`` column (the
  unit's cf). It REPLACES the previous per-year rows of the same year and data-entry types,
  for every unit — in the same transaction as the insert, and only when at least one row is
  valid (the engine rolls an ERROR job back, so a file of invalid rows changes nothing).
- unit-specific (a unit's module page): every row goes to one report module. It replaces the
  previous unit-specific rows of that module and type (re-uploading the same file does not
  duplicate it), and never touches rows of other sources.
Manual rows and API rows are never touched by either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from carbon.catalogue import spec_for, specs_for_module
from carbon.catalogue.base import DataEntryTypeSpec, EntryError, RowParser, normalise
from carbon.choices import CarbonReportType, DataEntrySource, DataEntryTypeId, ModuleTypeId, TransportMode
from carbon.compute import OVERRIDE_KEY, ComputeContext, FactorIndex
from carbon.models import (
    CarbonProject,
    CarbonReport,
    CarbonReportModule,
    DataEntry,
    DataEntryEmission,
    Location,
    Unit,
)
from carbon.selectors import DbLookups, factor_index
from config.bulk import copy_json, copy_text, rows_copy, rows_delete
from ingestion.csvio import CsvFile, RowErrors, csv_open

UNIT_COLUMN = "unit_institutional_id"
OVERRIDE_COLUMN = "kg_co2eq"
PROGRESS_EVERY = 10_000

Progress = Callable[[int], None]
# One valid row: (report module, unit, data-entry type, data).
_Entry = tuple[int, int, int, dict[str, Any]]
# The columns a COPY of entries fills, the per-row ones first (see _copy_line).
_COPY_FIELDS = ("carbon_report_module", "unit", "data_entry_type", "data", "module_type", "year", "status",
                "source", "source_job_id", "created_by", "created_at", "updated_at")  # fmt: skip


class IngestRefused(ValueError):
    """The upload cannot be processed at all (fail fast: one clear error, nothing written)."""


@dataclass
class DataIngestOutcome:
    row_errors: RowErrors
    rows_read: int = 0
    rows_processed: int = 0
    rows_with_factors: int = 0
    rows_without_factors: int = 0
    rows_deleted: int = 0
    batches: int = 0
    # Data-entry types whose rows changed (inserted or replaced): each needs a recalculation.
    dets: set[int] = field(default_factory=set)

    @property
    def rows_skipped(self) -> int:
        return len(self.row_errors.rows)

    def stats(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_processed": self.rows_processed,
            "rows_with_factors": self.rows_with_factors,
            "rows_without_factors": self.rows_without_factors,
            "rows_skipped": self.rows_skipped,
            "rows_deleted": self.rows_deleted,
            "batches_processed": self.batches,
            "row_errors": self.row_errors.items,
            "row_errors_count": self.row_errors.count,
        }


@dataclass
class _Plan:
    """What one upload is about, settled before any row is read."""

    module: ModuleTypeId
    year: int
    specs: list[DataEntryTypeSpec]
    indices: dict[int, FactorIndex]
    unit_specific: CarbonReportModule | None

    @property
    def inferred(self) -> bool:
        return len(self.specs) > 1


def data_csv_ingest(
    *,
    path: Path,
    module_type_id: int,
    year: int,
    job_id: int,
    max_row_errors: int,
    batch_size: int,
    data_entry_type_id: int | None = None,
    carbon_report_module_id: int | None = None,
    progress: Progress | None = None,
) -> DataIngestOutcome:
    """Load PATH into data entries, inside the caller's transaction (under lock 1237).

    1. Plan: the data-entry types the file may hold (the pinned one, or the module's; a file
       shared by several types routes each row by the factor it matches); refuse at once when
       a type needs factors and the year has none, or when types cannot be told apart.
    2. Per-year files: read the unit column once, map cfs to report modules, creating the
       report and its 8 modules for a known unit that has none for the year.
    3. Delete the rows this file replaces.
    4. Stream the rows: parse and normalise every column (row errors name row and column),
       route, insert in batches of BATCH_SIZE (one COPY each on PostgreSQL, fed while rows
       are parsed where no row needs a query; see ``_entries_store``). PROGRESS runs every
       PROGRESS_EVERY rows read, possibly while a batch's COPY holds this connection: it may
       write through another connection (the engine's ``jobs`` alias) or raise to cancel.
    """
    plan = _plan(module_type_id, year, data_entry_type_id, carbon_report_module_id)
    outcome = DataIngestOutcome(row_errors=RowErrors(limit=max_row_errors))
    required = _required_columns(plan)
    with csv_open(path, required=required) as csv_file:
        units = {} if plan.unit_specific else _unit_modules(csv_file, plan)
    outcome.rows_deleted = _replaced_entries_delete(plan)
    outcome.dets |= {int(s.det) for s in plan.specs} if outcome.rows_deleted else set()
    with csv_open(path, required=required) as csv_file:
        entries = _entries(csv_file, plan, units, outcome, progress)
        _entries_store(entries, plan, job_id, batch_size, outcome)
    return outcome


def _plan(module_type_id: int, year: int, det: int | None, crm_id: int | None) -> _Plan:
    try:
        module = ModuleTypeId(module_type_id)
    except ValueError:
        raise IngestRefused(f"module_type_id={module_type_id} is not a module (1–8)") from None
    if det is not None:
        try:
            spec = spec_for(det)
        except KeyError:
            raise IngestRefused(f"data_entry_type_id={det} is not a data-entry type") from None
        if spec.module != module:
            raise IngestRefused(f"data_entry_type_id={det} does not belong to module {module.label}")
        if not spec.csv_upload:
            raise IngestRefused(f"{DataEntryTypeId(det).label} has no CSV upload (entered in the UI only)")
        specs = [spec]
    else:
        uploadable = [s for s in specs_for_module(module) if s.csv_upload]
        shared = [s for s in uploadable if s.factor_match is not None]
        specs = uploadable if len(uploadable) == 1 else shared
        if not specs:
            names = ", ".join(f"{int(s.det)} ({DataEntryTypeId(s.det).label})" for s in uploadable)
            raise IngestRefused(f"module {module.label} has several data-entry types; pick one of {names}")
    indices = {int(s.det): factor_index(data_entry_type_id=s.det, year=year) for s in specs}
    _guard_factors(module, year, specs, indices)
    unit_specific = None
    if crm_id is not None:
        if len(specs) != 1:
            raise IngestRefused("a unit-specific upload needs its data_entry_type_id")
        unit_specific = (
            CarbonReportModule.objects.select_related("report")
            .filter(pk=crm_id, module_type_id=module, report__year=year)
            .first()
        )
        if unit_specific is None:
            raise IngestRefused(f"carbon_report_module_id={crm_id} is not a {module.label} module of {year}")
    return _Plan(module=module, year=year, specs=specs, indices=indices, unit_specific=unit_specific)


def _guard_factors(
    module: ModuleTypeId, year: int, specs: list[DataEntryTypeSpec], indices: dict[int, FactorIndex]
) -> None:
    if len(specs) > 1 and not any(len(index) for index in indices.values()):
        raise IngestRefused(
            f"No factors available for module={module.label} year={year}. This module tells its rows' "
            "data-entry type from the factor they match, so every row would fail. Upload factors for this "
            "module and year before its data."
        )
    for spec in specs:
        if spec.requires_factors and not len(indices[int(spec.det)]):
            raise IngestRefused(
                f"No factors available for module={module.label} year={year} "
                f"({DataEntryTypeId(spec.det).label}). Upload factors for this module and year before "
                "ingesting data — every row needs a matched factor."
            )


def _required_columns(plan: _Plan) -> list[str]:
    common = set.intersection(*(set(s.required_columns) for s in plan.specs))
    ordered = [c.name for c in plan.specs[0].columns if c.name in common]
    return ordered if plan.unit_specific else [UNIT_COLUMN, *ordered]


def _unit_modules(csv_file: CsvFile, plan: _Plan) -> dict[str, tuple[int, int]]:
    """cf → (report module, unit) of the plan's module and year, for every cf the file names.

    Known units without a report for the year get their Calculator project, report and 8
    modules here (as an upload of their data is the first sign of them that year).
    """
    rows = 0
    cfs: set[str] = set()
    at = csv_file.columns.index(UNIT_COLUMN)
    for _, values in csv_file.records():
        rows += 1
        if at < len(values):
            cfs.add(values[at].strip())
    if not rows:
        raise IngestRefused("The file has a header but no data rows")
    cfs.discard("")
    if not cfs:
        raise IngestRefused(f"No {UNIT_COLUMN} value in the file: a per-year upload names each row's unit")
    units = {
        cf: pk for cf, pk in Unit.objects.filter(institutional_id__in=cfs).values_list("institutional_id", "id") if cf
    }
    by_unit = _report_modules(plan, list(units.values()))
    missing = [unit_id for unit_id in units.values() if unit_id not in by_unit]
    if missing:
        reports_ensure(unit_ids=missing, year=plan.year)
        by_unit.update(_report_modules(plan, missing))
    return {cf: (by_unit[unit_id], unit_id) for cf, unit_id in units.items() if unit_id in by_unit}


def _report_modules(plan: _Plan, unit_ids: list[int]) -> dict[int, int]:
    """unit → its Calculator report module of the plan's module and year, where it has one."""
    return dict(
        CarbonReportModule.objects.filter(
            module_type_id=plan.module,
            report__year=plan.year,
            report__unit_id__in=unit_ids,
            report__project__report_type=CarbonReportType.CALCULATOR,
        ).values_list("report__unit_id", "id")
    )


def reports_ensure(*, unit_ids: list[int], year: int) -> int:
    """Create the Calculator project, the year's report and its 8 modules where missing.

    Set-based and idempotent (unique constraints + ignore_conflicts), so a concurrent
    provisioning of the same units cannot fail it. Returns the number of reports created.
    """
    if not unit_ids:
        return 0
    CarbonProject.objects.bulk_create(
        [CarbonProject(unit_id=u, report_type=CarbonReportType.CALCULATOR) for u in unit_ids], ignore_conflicts=True
    )
    projects = dict(
        CarbonProject.objects.filter(unit_id__in=unit_ids, report_type=CarbonReportType.CALCULATOR).values_list(
            "unit_id", "id"
        )
    )
    before = CarbonReport.objects.filter(project_id__in=projects.values(), year=year).count()
    CarbonReport.objects.bulk_create(
        [CarbonReport(project_id=p, unit_id=u, year=year) for u, p in projects.items()], ignore_conflicts=True
    )
    reports = list(
        CarbonReport.objects.filter(project_id__in=projects.values(), year=year).values_list("id", flat=True)
    )
    CarbonReportModule.objects.bulk_create(
        [CarbonReportModule(report_id=r, module_type_id=int(m)) for r in reports for m in ModuleTypeId],
        ignore_conflicts=True,
    )
    return len(reports) - before


def _replaced_entries(plan: _Plan) -> QuerySet[DataEntry]:
    dets = [int(s.det) for s in plan.specs]
    if plan.unit_specific is not None:
        return DataEntry.objects.filter(
            carbon_report_module=plan.unit_specific,
            data_entry_type_id__in=dets,
            source=DataEntrySource.CSV_MODULE_UNIT_SPECIFIC,
        )
    return DataEntry.objects.filter(
        year=plan.year, data_entry_type_id__in=dets, source=DataEntrySource.CSV_MODULE_PER_YEAR
    )


def _replaced_entries_delete(plan: _Plan) -> int:
    """Delete what the file replaces: emissions first (one statement), then the entries."""
    entries = _replaced_entries(plan)
    DataEntryEmission.objects.filter(data_entry__in=entries).delete()
    return rows_delete(entries)


def _entries(
    csv_file: CsvFile,
    plan: _Plan,
    units: dict[str, tuple[int, int]],
    outcome: DataIngestOutcome,
    progress: Progress | None,
) -> Iterator[_Entry]:
    """The file's valid rows, parsed and normalised; every other row becomes its row errors.

    Each declaration's row parser is compiled for the file's header once (values read by
    position); a shared file's row is parsed again only when its routed type parses otherwise.
    Counts every row read and reports progress every PROGRESS_EVERY rows.
    """
    columns = csv_file.columns
    width = len(columns)
    parsers: dict[int, RowParser] = {}
    compiled: dict[tuple[int, int], RowParser] = {}
    for spec in plan.specs:
        # Types declaring the same columns and checks (equipment 10/11/12…) share one parser.
        shape = (id(spec.columns), id(spec.check))
        if shape not in compiled:
            compiled[shape] = spec.row_parser(columns)
        parsers[int(spec.det)] = compiled[shape]
    first = plan.specs[0]
    parse_first = parsers[int(first.det)]
    unit_at = -1 if plan.unit_specific else columns.index(UNIT_COLUMN)
    override_at = columns.index(OVERRIDE_COLUMN) if OVERRIDE_COLUMN in columns else -1
    # Columns named "" (blank header cells) hold values a row may not have (see _extra).
    blank_at = [index for index, name in enumerate(columns) if name == ""]
    # Unit-specific rows are stamped with their unit too (the reference left it empty).
    fixed = (plan.unit_specific.pk, plan.unit_specific.report.unit_id) if plan.unit_specific else None
    errors = outcome.row_errors
    counts = _FactorCount(plan)
    route = _Router(plan)
    member_ids: dict[tuple[int, str], int] = {}
    padding = [""] * width
    for row_number, values in csv_file.records():
        outcome.rows_read += 1
        if progress is not None and outcome.rows_read % PROGRESS_EVERY == 0:
            progress(outcome.rows_read)
        count = len(values)
        if count > width or blank_at:
            extra = _extra(values, width, blank_at)
            if extra:
                errors.add(row_number, None, f"has more values than the header has columns (extra: {extra!r})")
                continue
        if count < width:
            values.extend(padding[count:])  # a short row: its missing values are empty
        if fixed is not None:
            crm_id, unit_id = fixed
        else:
            cf = values[unit_at].strip()
            target = units.get(cf)
            if target is None:
                errors.add(
                    row_number, UNIT_COLUMN, f"unknown unit {cf!r} (no unit has this cf)" if cf else "is required"
                )
                continue
            crm_id, unit_id = target
        spec = first
        data, problems = parse_first(values)
        routed = False
        if not problems and plan.inferred:
            match = route(data)
            if isinstance(match, str):
                problems = [(None, match)]
            else:
                spec, routed = match, True
                parse = parsers[int(spec.det)]
                if parse is not parse_first:
                    data, problems = parse(values)
        if override_at >= 0:
            override = values[override_at].strip()
            if override:
                _override(data, override, problems)
        if problems:
            for column, reason in problems:
                errors.add(row_number, column, reason)
            continue
        if spec.det == DataEntryTypeId.MEMBER and not _member_unique(row_number, data, crm_id, member_ids, errors):
            continue
        if spec.det == DataEntryTypeId.TRAIN and not _stations_resolve(row_number, data, errors):
            continue
        counts.add(spec, data, routed=routed, outcome=outcome)
        yield crm_id, unit_id, int(spec.det), data


def _extra(values: list[str], width: int, blank_at: list[int]) -> str:
    """What a row holds beyond the named columns: its surplus values (joined by commas), or the
    value under a blank header cell — the one a ``{column: value}`` view keeps under ``""``."""
    if len(values) > width:
        return ",".join(values[width:])
    present = [index for index in blank_at if index < len(values)]
    return values[present[-1]] if present else ""


def _override(data: dict[str, Any], text: str, problems: list[tuple[str | None, str]]) -> None:
    try:
        value = float(text)
    except ValueError:
        problems.append((OVERRIDE_COLUMN, f"must be a number (got {text!r})"))
        return
    if not math.isfinite(value):
        # NaN/inf are not JSON: PostgreSQL would refuse the whole batch.
        problems.append((OVERRIDE_COLUMN, f"must be a finite number (got {text!r})"))
        return
    data[OVERRIDE_KEY] = value


class _FactorCount:
    """``rows_with_factors`` / ``rows_without_factors``: whether a row has a factor of its year.

    A routed row has one (its routing found it). A type with ``factor_match`` asks it (one
    lookup); other types compute the row's emissions (their factor is found inside the formula).
    """

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.ctx = ComputeContext(year=plan.year, factors=FactorIndex([]), lookups=DbLookups(year=plan.year))

    def add(self, spec: DataEntryTypeSpec, data: dict[str, Any], *, routed: bool, outcome: DataIngestOutcome) -> None:
        outcome.dets.add(int(spec.det))
        if routed or self._has_factor(spec, data):
            outcome.rows_with_factors += 1
        else:
            outcome.rows_without_factors += 1

    def _has_factor(self, spec: DataEntryTypeSpec, data: dict[str, Any]) -> bool:
        factors = self.plan.indices[int(spec.det)]
        try:
            if spec.factor_match is not None:
                return spec.factor_match(data, factors) is not None
            self.ctx.factors = factors
            return bool(spec.compute(data, self.ctx))
        except EntryError:
            return False


class _Router:
    """The one type of a shared-file row, from the factor it matches; else the reason why not.

    ``factor_match`` reads only the row's factor classification columns (a declaration rule,
    tests/carbon/test_compiled_rows.py), so the outcome is remembered per tuple of those values:
    a file names few distinct kinds (reference-domain §3.3 memoises per (kind, subkind) too).
    """

    MEMO_SIZE = 10_000

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        shapes = [spec.factor for spec in plan.specs]
        names = {column.name for shape in shapes if shape is not None for column in shape.classification}
        self.keys = tuple(sorted(names)) if all(shapes) else None
        self.memo: dict[tuple[Any, ...], DataEntryTypeSpec | str | None] = {}

    def __call__(self, data: dict[str, Any]) -> DataEntryTypeSpec | str:
        if self.keys is None:
            found = self._match(data)
        else:
            key = tuple(map(data.get, self.keys))
            if key in self.memo:
                found = self.memo[key]
            else:
                if len(self.memo) >= self.MEMO_SIZE:
                    self.memo.clear()
                found = self.memo[key] = self._match(data)
        if found is None:
            keys = ", ".join(f"{k}={v}" for k, v in data.items() if k not in {"note", "name"})
            return f"no factor of {self.plan.year} matches this row ({keys}), so its data-entry type is unknown"
        return found

    def _match(self, data: dict[str, Any]) -> DataEntryTypeSpec | str | None:
        """The matching type; None when none matches; the reason when it cannot be told."""
        matched: list[DataEntryTypeSpec] = []
        for spec in self.plan.specs:
            assert spec.factor_match is not None  # plans route only between such types
            try:
                if spec.factor_match(data, self.plan.indices[int(spec.det)]) is not None:
                    matched.append(spec)
            except EntryError as exc:
                return str(exc)
        if len(matched) == 1:
            return matched[0]
        if not matched:
            return None
        names = ", ".join(DataEntryTypeId(s.det).label for s in matched)
        return f"factors of several data-entry types match this row ({names})"


def _member_unique(
    row_number: int, data: dict[str, Any], crm_id: int, seen: dict[tuple[int, str], int], errors: RowErrors
) -> bool:
    """A person appears once per unit's headcount (the file, and manual rows kept in the DB)."""
    key = (crm_id, normalise(data.get("user_institutional_id", "")))
    if key in seen:
        errors.add(row_number, "user_institutional_id", f"duplicates row {seen[key]} for the same unit")
        return False
    manual = DataEntry.objects.filter(
        carbon_report_module_id=crm_id,
        data_entry_type_id=DataEntryTypeId.MEMBER,
        source=DataEntrySource.USER_MANUAL,
        data__user_institutional_id=data.get("user_institutional_id"),
    )
    if manual.exists():
        errors.add(row_number, "user_institutional_id", "this person is already entered manually for the unit")
        return False
    seen[key] = row_number
    return True


def _stations_resolve(row_number: int, data: dict[str, Any], errors: RowErrors) -> bool:
    """Give each end of a train trip its station's natural key, from (country, name).

    None found keeps the row without the key (no emission, reported by the recalculation);
    several found is a row error, since picking one would be a guess.
    """
    for end in ("origin", "destination"):
        if data.get(f"{end}_natural_key"):
            continue
        country = str(data.get(f"{end}_country_code", "")).strip().upper()
        name = normalise(data.get(f"{end}_name", ""))
        keys = list(
            Location.objects.filter(
                transport_mode=TransportMode.TRAIN, country_code=country, name_key=name
            ).values_list("natural_key", flat=True)[:5]
        )
        if len(keys) > 1:
            errors.add(row_number, f"{end}_name", f"station {name!r} in {country} is ambiguous: {len(keys)} matches")
            return False
        if keys:
            data[f"{end}_natural_key"] = keys[0]
    return True


def _entries_store(
    entries: Iterator[_Entry], plan: _Plan, job_id: int, batch_size: int, outcome: DataIngestOutcome
) -> None:
    """Insert ENTRIES in batches of BATCH_SIZE rows, one COPY per batch on PostgreSQL.

    When no row needs the database to be read (every type routes by factor: equipment,
    purchases), a batch's rows are parsed while its COPY streams them, so the server stores
    rows as Python prepares the next ones. Otherwise (members, trains, formulas reading
    reference data) a batch is prepared first, then copied.
    """
    postgres = connection.vendor == "postgresql"
    streamed = postgres and all(spec.factor_match is not None for spec in plan.specs)
    source = DataEntrySource.CSV_MODULE_UNIT_SPECIFIC if plan.unit_specific else DataEntrySource.CSV_MODULE_PER_YEAR
    for first in entries:
        batch = chain((first,), islice(entries, batch_size - 1))
        if postgres:
            line = _copy_line(plan, source, job_id)
            written = copy_text(DataEntry, _copy_columns(), map(line, batch) if streamed else [line(e) for e in batch])
        else:
            objects = [
                DataEntry(carbon_report_module_id=crm_id, data_entry_type_id=det, module_type_id=int(plan.module),
                          year=plan.year, unit_id=unit_id, data=data, source=source, source_job_id=job_id)
                for crm_id, unit_id, det, data in batch
            ]  # fmt: skip
            rows_copy(DataEntry, objects)
            written = len(objects)
        outcome.rows_processed += written
        outcome.batches += 1


def _copy_columns() -> list[str]:
    columns = {f.name: f.column for f in DataEntry._meta.concrete_fields if f.column}
    return [columns[name] for name in _COPY_FIELDS]


def _copy_line(plan: _Plan, source: int, job_id: int) -> Callable[[_Entry], str]:
    """An entry as one COPY text line of _COPY_FIELDS; the columns every row shares are
    formatted once per batch (auto timestamps too: COPY bypasses the model)."""
    now = timezone.now().isoformat()
    status = DataEntry._meta.get_field("status").get_default()
    shared = f"\t{int(plan.module)}\t{plan.year}\t{status}\t{source}\t{job_id}\t\\N\t{now}\t{now}\n"

    def line(entry: _Entry) -> str:
        crm_id, unit_id, det, data = entry
        return f"{crm_id}\t{unit_id}\t{det}\t{copy_json(data)}{shared}"

    return line
