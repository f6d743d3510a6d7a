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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from carbon.catalogue import spec_for, specs_for_module
from carbon.catalogue.base import DataEntryTypeSpec, EntryError, normalise
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
from config.bulk import rows_copy, rows_delete
from ingestion.csvio import CsvFile, RowErrors, csv_open

UNIT_COLUMN = "unit_institutional_id"
OVERRIDE_COLUMN = "kg_co2eq"
PROGRESS_EVERY = 10_000

Progress = Callable[[int], None]


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
       route, insert in batches of BATCH_SIZE.
    """
    plan = _plan(module_type_id, year, data_entry_type_id, carbon_report_module_id)
    outcome = DataIngestOutcome(row_errors=RowErrors(limit=max_row_errors))
    required = _required_columns(plan)
    with csv_open(path, required=required) as csv_file:
        units = {} if plan.unit_specific else _unit_modules(csv_file, plan)
    outcome.rows_deleted = _replaced_entries_delete(plan)
    outcome.dets |= {int(s.det) for s in plan.specs} if outcome.rows_deleted else set()
    ctx = ComputeContext(year=year, factors=FactorIndex([]), lookups=DbLookups(year=year))
    batch: list[DataEntry] = []
    member_ids: dict[tuple[int, str], int] = {}
    with csv_open(path, required=required) as csv_file:
        for row_number, raw in csv_file.rows():
            outcome.rows_read += 1
            entry = _entry_from_row(row_number, raw, plan, units, outcome, ctx, member_ids, job_id)
            if entry is not None:
                batch.append(entry)
            if len(batch) >= batch_size:
                _flush(batch, outcome)
            if progress is not None and outcome.rows_read % PROGRESS_EVERY == 0:
                progress(outcome.rows_read)
    _flush(batch, outcome)
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
    for _, raw in csv_file.rows():
        rows += 1
        cfs.add(raw.get(UNIT_COLUMN, "").strip())
    if not rows:
        raise IngestRefused("The file has a header but no data rows")
    cfs.discard("")
    if not cfs:
        raise IngestRefused(f"No {UNIT_COLUMN} value in the file: a per-year upload names each row's unit")
    units = {
        cf: pk for cf, pk in Unit.objects.filter(institutional_id__in=cfs).values_list("institutional_id", "id") if cf
    }
    reports_ensure(unit_ids=list(units.values()), year=plan.year)
    by_unit = dict(
        CarbonReportModule.objects.filter(
            module_type_id=plan.module,
            report__year=plan.year,
            report__unit_id__in=units.values(),
            report__project__report_type=CarbonReportType.CALCULATOR,
        ).values_list("report__unit_id", "id")
    )
    return {cf: (by_unit[unit_id], unit_id) for cf, unit_id in units.items() if unit_id in by_unit}


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


def _entry_from_row(
    row_number: int,
    raw: dict[str, str],
    plan: _Plan,
    units: dict[str, tuple[int, int]],
    outcome: DataIngestOutcome,
    ctx: ComputeContext,
    member_ids: dict[tuple[int, str], int],
    job_id: int,
) -> DataEntry | None:
    errors = outcome.row_errors
    if raw.get(""):
        errors.add(row_number, None, f"has more values than the header has columns (extra: {raw['']!r})")
        return None
    target = _row_target(row_number, raw, plan, units, errors)
    if target is None:
        return None
    crm_id, unit_id = target
    spec, data = _row_data(row_number, raw, plan, errors)
    if spec is None or data is None:
        return None
    if spec.det == DataEntryTypeId.MEMBER and not _member_unique(row_number, data, crm_id, member_ids, errors):
        return None
    if spec.det == DataEntryTypeId.TRAIN and not _stations_resolve(row_number, data, errors):
        return None
    ctx.factors = plan.indices[int(spec.det)]
    try:
        with_factor = bool(spec.compute(data, ctx))
    except EntryError:
        with_factor = False
    if with_factor:
        outcome.rows_with_factors += 1
    else:
        outcome.rows_without_factors += 1
    outcome.dets.add(int(spec.det))
    return DataEntry(
        carbon_report_module_id=crm_id,
        data_entry_type_id=int(spec.det),
        module_type_id=int(plan.module),
        year=plan.year,
        unit_id=unit_id,
        data=data,
        source=DataEntrySource.CSV_MODULE_UNIT_SPECIFIC if plan.unit_specific else DataEntrySource.CSV_MODULE_PER_YEAR,
        source_job_id=job_id,
    )


def _row_target(
    row_number: int, raw: dict[str, str], plan: _Plan, units: dict[str, tuple[int, int]], errors: RowErrors
) -> tuple[int, int] | None:
    """(report module, unit) a row belongs to. Unit-specific rows are stamped with their unit
    too (the reference left it empty)."""
    if plan.unit_specific is not None:
        return plan.unit_specific.pk, plan.unit_specific.report.unit_id
    cf = raw.get(UNIT_COLUMN, "").strip()
    if not cf:
        errors.add(row_number, UNIT_COLUMN, "is required")
        return None
    if cf not in units:
        errors.add(row_number, UNIT_COLUMN, f"unknown unit {cf!r} (no unit has this cf)")
        return None
    return units[cf]


def _row_data(
    row_number: int, raw: dict[str, str], plan: _Plan, errors: RowErrors
) -> tuple[DataEntryTypeSpec | None, dict[str, Any] | None]:
    spec = plan.specs[0]
    data, parsed = spec.parse_row(raw)
    problems: list[tuple[str | None, str]] = list(parsed)
    if not problems and plan.inferred:
        routed = _route(data, plan)
        if isinstance(routed, str):
            problems = [(None, routed)]
        else:
            spec = routed
            data, parsed = spec.parse_row(raw)
            problems = list(parsed)
    override = (raw.get(OVERRIDE_COLUMN) or "").strip()
    if override:
        try:
            data[OVERRIDE_KEY] = float(override)
        except ValueError:
            problems.append((OVERRIDE_COLUMN, f"must be a number (got {override!r})"))
    for column, reason in problems:
        errors.add(row_number, column, reason)
    return (None, None) if problems else (spec, data)


def _route(data: dict[str, Any], plan: _Plan) -> DataEntryTypeSpec | str:
    """The one type of a shared-file row, from the factor it matches; else the reason why not."""
    matched: list[DataEntryTypeSpec] = []
    for spec in plan.specs:
        assert spec.factor_match is not None  # plans route only between such types
        try:
            if spec.factor_match(data, plan.indices[int(spec.det)]) is not None:
                matched.append(spec)
        except EntryError as exc:
            return str(exc)
    if len(matched) == 1:
        return matched[0]
    keys = ", ".join(f"{k}={v}" for k, v in data.items() if k not in {"note", "name"})
    if not matched:
        return f"no factor of {plan.year} matches this row ({keys}), so its data-entry type is unknown"
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


def _flush(batch: list[DataEntry], outcome: DataIngestOutcome) -> None:
    if not batch:
        return
    rows_copy(DataEntry, batch)
    outcome.rows_processed += len(batch)
    outcome.batches += 1
    batch.clear()
