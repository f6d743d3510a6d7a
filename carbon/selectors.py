"""Reads of the carbon domain."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import IntegerChoices, Max, Min, Q, QuerySet, TextChoices
from django.utils import timezone

from carbon.catalogue import CATALOGUE, specs_for_module
from carbon.choices import CarbonReportType, DataEntryTypeId, ModuleStatus, TransportMode
from carbon.compute import FactorIndex, FactorRecord
from carbon.labels import pipeline_labels
from carbon.models import (
    BuildingRoom,
    CarbonReport,
    CarbonReportModule,
    CurrencyRate,
    Factor,
    Location,
    Unit,
    YearConfiguration,
)
from carbon.permissions import AccessScope
from carbon.reference_data import MODULE_DATA_ENTRY_TYPES
from pipelines.choices import ACTIVE_JOB_STATES, EntityType, JobResult, JobState, JobType, TargetType
from pipelines.models import IngestionJob


def factor_index(*, data_entry_type_id: int, year: int) -> FactorIndex:
    """All factors of (det, year), one query. Classifications are stored normalised."""
    rows = Factor.objects.filter(data_entry_type_id=data_entry_type_id, year=year).values_list(
        "id", "emission_type_id", "classification", "values"
    )
    return FactorIndex(
        FactorRecord(id=pk, emission_type_id=emission_type_id, classification=classification, values=values)
        for pk, emission_type_id, classification, values in rows
    )


class DbLookups:
    """Reference data for one year's compute, read lazily and cached for the whole slice."""

    def __init__(self, *, year: int) -> None:
        self.year = year
        self._airports: dict[str, tuple[float, float] | None] = {}
        self._stations: dict[str, tuple[float, float] | None] = {}
        self._rooms: dict[tuple[str, str], float | None] | None = None
        self._rates: dict[str, float] | None = None

    def airport(self, iata: str) -> tuple[float, float] | None:
        code = iata.strip().upper()
        if code not in self._airports:
            row = (
                Location.objects.filter(transport_mode=TransportMode.PLANE, iata_code=code)
                .values_list("latitude", "longitude")
                .first()
            )
            self._airports[code] = (row[0], row[1]) if row else None
        return self._airports[code]

    def station(self, natural_key: str) -> tuple[float, float] | None:
        if natural_key not in self._stations:
            row = Location.objects.filter(natural_key=natural_key).values_list("latitude", "longitude").first()
            self._stations[natural_key] = (row[0], row[1]) if row else None
        return self._stations[natural_key]

    def room_surface(self, building: str, room: str) -> float | None:
        if self._rooms is None:
            # One read of the whole table: rooms number in the thousands, entries far more.
            self._rooms = {
                (b.lower(), r.lower()): surface
                for b, r, surface in BuildingRoom.objects.values_list(
                    "building_name", "room_name", "room_surface_square_meter"
                )
            }
        return self._rooms.get((building.strip().lower(), room.strip().lower()))

    def rate_to_eur(self, currency: str) -> float | None:
        if self._rates is None:
            self._rates = dict(CurrencyRate.objects.filter(year=self.year).values_list("currency", "rate_to_eur"))
            self._rates.setdefault("eur", 1.0)
        return self._rates.get(currency.strip().lower())


def year_provisioned(*, year: int) -> bool:
    """The upload gate: a year accepts uploads once a unit_sync has completed for it."""
    return YearConfiguration.objects.filter(year=year, configuration_completed__isnull=False).exists()


@dataclass(frozen=True)
class RecalculationStatus:
    module_type_id: int
    data_entry_type_id: int
    last_factor_job_id: int | None
    last_recalc_job_id: int | None
    last_recalc_result: str | None

    @property
    def needs_recalculation(self) -> bool:
        """Factors changed since the last recalculation, or the last one failed (§4.4).

        Module-level factor uploads (equipment, purchases: det NULL) count for every det of the
        module — the reference missed them.
        """
        if self.last_factor_job_id is None:
            return False
        if self.last_recalc_job_id is None or self.last_recalc_result == JobResult.ERROR:
            return True
        return self.last_factor_job_id > self.last_recalc_job_id


def recalculation_status(*, year: int) -> list[RecalculationStatus]:
    """Per (module, det) of a year: latest successful factor upload vs latest recalculation. Two queries."""
    finished_ok = Q(state=JobState.FINISHED) & ~Q(result__in=(JobResult.ERROR, JobResult.CANCELLED))
    factor_jobs = (
        IngestionJob.objects.filter(finished_ok, job_type=JobType.FACTOR_INGEST, year=year)
        .values("module_type_id", "data_entry_type_id")
        .annotate(last=Max("id"))
    )
    by_det: dict[int, int] = {}
    by_module: dict[int, int] = {}
    for row in factor_jobs:
        if row["data_entry_type_id"] is not None:
            by_det[row["data_entry_type_id"]] = max(by_det.get(row["data_entry_type_id"], 0), row["last"])
        elif row["module_type_id"] is not None:
            by_module[row["module_type_id"]] = max(by_module.get(row["module_type_id"], 0), row["last"])
    recalcs: dict[int, tuple[int, str | None]] = {}
    # A module recalculation counts for each type it ran (a type that failed in it, as ERROR).
    for pk, job_type, det, result, meta in (
        IngestionJob.objects.filter(
            job_type__in=(JobType.EMISSION_RECALC, JobType.MODULE_EMISSION_RECALC),
            year=year,
            state=JobState.FINISHED,
            # A unit-specific recalculation covers one unit's modules, not the type's year; it
            # neither clears the flag nor may show another unit's job to a principal.
            unit_id__isnull=True,
        )
        .order_by("id")
        .values_list("id", "job_type", "data_entry_type_id", "result", "meta")
    ):
        if job_type == JobType.EMISSION_RECALC and det is not None:
            recalcs[det] = (pk, result)
        elif job_type == JobType.MODULE_EMISSION_RECALC:
            for det_key, outcome in ((meta or {}).get("per_det") or {}).items():
                recalcs[int(det_key)] = (pk, JobResult.ERROR if outcome.get("fatal") else result)
    statuses = []
    for module, dets in MODULE_DATA_ENTRY_TYPES.items():
        for det in dets:
            candidates = [v for v in (by_det.get(det), by_module.get(module)) if v is not None]
            recalc = recalcs.get(det)
            statuses.append(
                RecalculationStatus(
                    module_type_id=module,
                    data_entry_type_id=det,
                    last_factor_job_id=max(candidates) if candidates else None,
                    last_recalc_job_id=recalc[0] if recalc else None,
                    last_recalc_result=recalc[1] if recalc else None,
                )
            )
    return statuses


def stale_factors(*, year: int) -> list[dict[str, Any]]:
    """Factors the latest successful upload covering their (det, year) did not carry (§4.1, §4.4).

    Uploads never delete factors (entries may still point at them); a factor left out of the
    newest file is kept but reported stale so an operator can review it. A module-level file
    (equipment, purchases: det NULL) covers every det its routing column can name. Two queries.
    """
    uploads = (
        IngestionJob.objects.filter(
            job_type=JobType.FACTOR_INGEST,
            year=year,
            state=JobState.FINISHED,
            result__in=(JobResult.SUCCESS, JobResult.WARNING),
        )
        .values("module_type_id", "data_entry_type_id")
        .annotate(last=Max("id"))
    )
    covering: dict[int, int] = {}
    for row in uploads:
        if row["data_entry_type_id"] is not None:
            dets = [row["data_entry_type_id"]]
        elif row["module_type_id"] is not None:
            dets = [s.det for s in specs_for_module(row["module_type_id"]) if s.factor and s.factor.routing]
        else:
            dets = []
        for det in dets:
            covering[det] = max(covering.get(det, 0), row["last"])
    if not covering:
        return []
    # One query whatever the number of covered types: (det = d AND last_seen <> job) OR …
    # (a factor never stamped, last_seen NULL, counts as unseen).
    unseen = Q()
    for det, job_id in covering.items():
        unseen |= Q(data_entry_type_id=det) & ~Q(last_seen_job_id=job_id)
    rows = (
        Factor.objects.filter(unseen, year=year)
        .order_by("data_entry_type_id", "id")
        .values("id", "data_entry_type_id", "emission_type_id", "classification", "last_seen_job_id")
    )
    return [dict(row) for row in rows]


# --- Reads behind the REST API (SPEC §6.2) -------------------------------------------------------
#
# Every list costs a fixed number of queries whatever its size: a COUNT and one page query
# (related rows joined), or grouped aggregates — never one query per row.

MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _page(queryset: QuerySet[Any], *, limit: int, offset: int, row: Callable[[Any], dict[str, Any]]) -> Page:
    """One COUNT over the whole filtered set and one query for the slice."""
    total = queryset.count()
    return Page(
        items=[row(item) for item in queryset[offset : offset + limit]], total=total, limit=limit, offset=offset
    )


def _enum_name(choices: type[IntegerChoices], value: int | None) -> str | None:
    return None if value is None else choices(value).name


# Units


def unit_visible_ids(*, scope: AccessScope) -> frozenset[int] | None:
    """The units SCOPE may list; None means every unit.

    Superadmins and global back office see all; everyone else the units of their roles: back
    office subtrees, principals' units, and a standard user's own units (which give them no
    report or pipeline, but the unit pickers must still show them).
    """
    if scope.sees_all_units:
        return None
    return scope.backoffice_unit_ids | scope.principal_unit_ids | scope.standard_unit_ids


def _unit_row(unit: Unit) -> dict[str, Any]:
    principal = unit.principal
    return {
        "institutional_code": unit.institutional_code,
        "institutional_id": unit.institutional_id,
        "name": unit.name,
        "label_fr": unit.label_fr,
        "label_en": unit.label_en,
        "level": unit.level,
        "parent_institutional_code": unit.parent_institutional_code,
        "parent_institutional_id": unit.parent_institutional_id,
        "path_institutional_code": unit.path_institutional_code,
        "path_name": unit.path_name,
        "unit_type_label": unit.unit_type_label,
        "is_active": unit.is_active,
        "principal": (
            None
            if principal is None
            else {"username": principal.username, "email": principal.email, "display_name": principal.display_name}
        ),
    }


def unit_list(
    *,
    scope: AccessScope,
    level: int | None = None,
    q: str = "",
    parent: str = "",
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """The units SCOPE may see, filtered, one page.

    1. Restrict to ``unit_visible_ids`` (nothing when the user has no role on any unit).
    2. ``level``: exact; ``q``: a substring of the name, the directory code or the cf;
       ``parent``: the parent's directory code or cf (as the directory sends them).
    3. Order by directory code (unique, so pages never overlap); COUNT + one joined page query.
    """
    units = Unit.objects.select_related("principal").order_by("institutional_code")
    visible = unit_visible_ids(scope=scope)
    if visible is not None:
        units = units.filter(id__in=sorted(visible))
    if level is not None:
        units = units.filter(level=level)
    if q:
        units = units.filter(
            Q(name__icontains=q) | Q(institutional_code__icontains=q) | Q(institutional_id__icontains=q)
        )
    if parent:
        units = units.filter(Q(parent_institutional_code=parent) | Q(parent_institutional_id=parent))
    return _page(units, limit=limit, offset=offset, row=_unit_row)


# Factors

FACTOR_FIELDS = (
    "id",
    "data_entry_type_id",
    "emission_type_id",
    "year",
    "classification",
    "values",
    "is_computed",
    "last_seen_job_id",
    "updated_at",
)


def factor_list(*, year: int, data_entry_type_id: int | None = None, limit: int = 50, offset: int = 0) -> Page:
    """The factors of a year (optionally one data-entry type), by type then id; COUNT + one page query."""
    factors = Factor.objects.filter(year=year).order_by("data_entry_type_id", "id")
    if data_entry_type_id is not None:
        factors = factors.filter(data_entry_type_id=data_entry_type_id)
    return _page(factors.values(*FACTOR_FIELDS), limit=limit, offset=offset, row=dict)


# Carbon reports

# The stored stats, restricted to the reference shape (reference-domain §7.1–§7.2); modules
# also keep their IT share for the report rollup, which is no part of that shape.
MODULE_STATS_KEYS = (
    "scope1",
    "scope2",
    "scope3",
    "total",
    "by_emission_type",
    "by_additional_value",
    "entry_count",
    "computed_at",
)
REPORT_STATS_KEYS = (*MODULE_STATS_KEYS, "it_total_kg", "highest_category_module_id")


def _stats_view(stats: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {key: stats[key] for key in keys if key in stats}


def _report_row(report: CarbonReport) -> dict[str, Any]:
    return {
        "id": report.pk,
        "year": report.year,
        "unit": {
            "institutional_code": report.unit.institutional_code,
            "institutional_id": report.unit.institutional_id,
            "name": report.unit.name,
        },
        "overall_status": _enum_name(ModuleStatus, report.overall_status),
        "completion_progress": report.completion_progress,
        "stats": _stats_view(report.stats, REPORT_STATS_KEYS),
        "last_updated": report.last_updated,
    }


def _visible_reports(scope: AccessScope) -> QuerySet[CarbonReport]:
    reports = CarbonReport.objects.select_related("unit")
    visible = scope.visible_unit_ids()
    return reports if visible is None else reports.filter(unit_id__in=sorted(visible))


def carbon_report_list(
    *, scope: AccessScope, year: int | None = None, unit: str = "", limit: int = 50, offset: int = 0
) -> Page:
    """The Calculator reports of the units SCOPE may see (others are dropped, never refused).

    ``unit`` matches the unit's cf or directory code. Ordered by year, then unit code, then
    id; COUNT + one page query joined with the units. Simulator projects' reports are not
    listed (one report per unit and year is what the reporting screens expect).
    """
    reports = _visible_reports(scope).filter(project__report_type=CarbonReportType.CALCULATOR)
    if year is not None:
        reports = reports.filter(year=year)
    if unit:
        reports = reports.filter(Q(unit__institutional_id=unit) | Q(unit__institutional_code=unit))
    reports = reports.order_by("year", "unit__institutional_code", "id")
    return _page(reports, limit=limit, offset=offset, row=_report_row)


def carbon_report_get(*, scope: AccessScope, report_id: int) -> dict[str, Any] | None:
    """One report with its modules, or None when it does not exist or SCOPE may not see it. Two queries."""
    report = _visible_reports(scope).filter(pk=report_id).first()
    if report is None:
        return None
    labels = pipeline_labels()["module"]
    modules = [
        {
            "module_type_id": module_type_id,
            "module_label": labels[module_type_id][0] if module_type_id in labels else None,
            "status": _enum_name(ModuleStatus, status),
            "stats": _stats_view(stats, MODULE_STATS_KEYS),
            "last_updated": last_updated,
        }
        for module_type_id, status, stats, last_updated in CarbonReportModule.objects.filter(report_id=report.pk)
        .order_by("module_type_id")
        .values_list("module_type_id", "status", "stats", "last_updated")
    ]
    return {**_report_row(report), "modules": modules}


# Recalculation status and aggregation health


def recalculation_status_by_module(*, year: int) -> list[dict[str, Any]]:
    """``recalculation_status`` grouped by module, in the reference's shape (§6 of the core spec).

    At most three queries: the two of ``recalculation_status`` and the results of the factor
    jobs it names (skipped when there are none). A module needs recalculation when any of its
    types does.
    """
    statuses = recalculation_status(year=year)
    factor_ids = {s.last_factor_job_id for s in statuses if s.last_factor_job_id is not None}
    results = dict(IngestionJob.objects.filter(id__in=factor_ids).values_list("id", "result")) if factor_ids else {}
    by_module: dict[int, list[dict[str, Any]]] = {}
    for status in statuses:
        by_module.setdefault(status.module_type_id, []).append(
            {
                "module_type_id": status.module_type_id,
                "data_entry_type_id": status.data_entry_type_id,
                "year": year,
                "needs_recalculation": status.needs_recalculation,
                "last_factor_job_id": status.last_factor_job_id,
                "last_factor_job_result": (
                    None if status.last_factor_job_id is None else results.get(status.last_factor_job_id)
                ),
                "last_recalculation_job_id": status.last_recalc_job_id,
                "last_recalculation_job_result": status.last_recalc_result,
            }
        )
    return [
        {
            "module_type_id": module,
            "year": year,
            "needs_recalculation": any(d["needs_recalculation"] for d in dets),
            "data_entry_types": dets,
        }
        for module, dets in by_module.items()
    ]


class WhyStale(TextChoices):
    NO_AGGREGATION_EVER = "no_aggregation_ever"
    PENDING_AGGREGATION_STUCK = "pending_aggregation_stuck"
    LAST_AGGREGATION_FAILED = "last_aggregation_failed"
    LAST_AGGREGATION_TOO_OLD = "last_aggregation_too_old"


def aggregation_staleness(*, older_than_minutes: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The (module, year) scopes whose report stats may be stale, for monitors (read-only).

    Two queries whatever the history: the distinct (module, year) pairs of the report modules,
    and one aggregate over the aggregation jobs grouped by (module, year). Each pair gets the
    first reason that holds, in this order, and fresh successes are omitted:
    1. ``pending_aggregation_stuck`` — an aggregation has been waiting or running since
       before the cutoff (now − OLDER_THAN_MINUTES);
    2. ``no_aggregation_ever`` — no aggregation of the pair ever finished;
    3. ``last_aggregation_failed`` — the latest finished one ended ERROR or CANCELLED;
    4. ``last_aggregation_too_old`` — the latest success finished before the cutoff.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=older_than_minutes)
    pairs = list(
        CarbonReportModule.objects.values_list("module_type_id", "report__year")
        .order_by("report__year", "module_type_id")
        .distinct()
    )
    finished = Q(state=JobState.FINISHED)
    aggregates = {
        (row["module_type_id"], row["year"]): row
        for row in IngestionJob.objects.filter(
            # Year-wide aggregations only: a unit-specific one refreshes a single unit (and its
            # job must stay invisible to other units' principals).
            job_type=JobType.AGGREGATION,
            module_type_id__isnull=False,
            year__isnull=False,
            unit_id__isnull=True,
        )
        .values("module_type_id", "year")
        .annotate(
            last_id=Max("id"),
            last_finished_id=Max("id", filter=finished),
            last_failed_id=Max("id", filter=finished & Q(result__in=(JobResult.ERROR, JobResult.CANCELLED))),
            last_finished_at=Max("finished_at", filter=finished),
            last_success_at=Max("finished_at", filter=finished & Q(result__in=(JobResult.SUCCESS, JobResult.WARNING))),
            oldest_active_at=Min("created_at", filter=Q(state__in=ACTIVE_JOB_STATES)),
        )
        .order_by()
    }
    stale: list[dict[str, Any]] = []
    for module_type_id, year in pairs:
        row = aggregates.get((module_type_id, year))
        why: WhyStale | None
        if row is not None and row["oldest_active_at"] is not None and row["oldest_active_at"] < cutoff:
            why = WhyStale.PENDING_AGGREGATION_STUCK
        elif row is None or row["last_finished_id"] is None:
            why = WhyStale.NO_AGGREGATION_EVER
        elif row["last_failed_id"] == row["last_finished_id"]:
            why = WhyStale.LAST_AGGREGATION_FAILED
        elif row["last_success_at"] is None or row["last_success_at"] < cutoff:
            why = WhyStale.LAST_AGGREGATION_TOO_OLD
        else:
            why = None
        if why is not None:
            stale.append(
                {
                    "module_type_id": module_type_id,
                    "year": year,
                    "last_finished_aggregation_at": row["last_finished_at"] if row else None,
                    "why_stale": why.value,
                    "last_aggregation_job_id": row["last_id"] if row else None,
                }
            )
    return stale


# Year configurations

# Read-only fields the read API adds to ``config`` (reference-domain §6.3); never stored.
INJECTED_SUBMODULE_FIELDS = (
    "latest_data_job",
    "latest_api_data_job",
    "latest_factor_job",
    "latest_reference_job",
    "incomplete",
    "incomplete_reasons",
)
INJECTED_MODULE_FIELDS = ("latest_common_data_job", "latest_common_factor_job", "incomplete")
# Types whose factors may come from their module's common file (a routing column names them).
COMMON_FACTOR_TYPES = frozenset(int(s.det) for s in CATALOGUE.values() if s.factor is not None and s.factor.routing)
# Types that cannot be computed without reference data: airports, stations, rooms.
REFERENCE_DATA_TYPES = frozenset({DataEntryTypeId.PLANE, DataEntryTypeId.TRAIN, DataEntryTypeId.BUILDING})

# (job_type, year, module, det) → (latest id, latest successful id)
_JobKey = tuple[str, int | None, int | None, int | None]


def _job_key(job_type: str, year: int | None, module: int | None, det: int | None) -> _JobKey:
    """Reference data is global: its jobs count for every year, and a det-pinned one for its
    type whatever module the uploader named."""
    if job_type == JobType.REFERENCE_INGEST:
        return (job_type, None, None if det is not None else module, det)
    return (job_type, year, module, det)


def year_configuration_list(*, scope: AccessScope) -> list[dict[str, Any]]:
    """Every year, newest first; users who may not view configuration see started years only."""
    configurations = YearConfiguration.objects.order_by("-year")
    if not scope.can_view_configuration:
        configurations = configurations.filter(is_started=True)
    return year_configuration_views(configurations=list(configurations))


def year_configuration_get(*, scope: AccessScope, year: int) -> dict[str, Any] | None:
    """One year, or None when it does not exist or is not started and SCOPE may not view configuration."""
    configuration = YearConfiguration.objects.filter(year=year).first()
    if configuration is None or not (configuration.is_started or scope.can_view_configuration):
        return None
    return year_configuration_views(configurations=[configuration])[0]


def year_configuration_views(*, configurations: list[YearConfiguration]) -> list[dict[str, Any]]:
    """The read representation of CONFIGURATIONS, config enriched with the injected fields.

    Two queries for any number of years:
    1. Per (job type, year, module, det) of the years' per-year jobs — CSV and API data,
       factors — and of reference-data jobs (global, any year): the latest job id and the
       latest successful (SUCCESS/WARNING) job id, grouped in SQL.
    2. The summaries of those latest jobs.
    Then, per submodule, ``latest_*_job`` are the summaries of its own (det-pinned) jobs;
    ``incomplete_reasons`` lists ``missing_factor`` when no factor upload for the type ever
    succeeded (for types of a common file, the module's det-less upload counts too) and
    ``missing_reference`` when a type needing reference data has none. Per module,
    ``latest_common_*_job`` are its det-less jobs, and it is incomplete when a submodule is, or
    when it has a common factor file that never succeeded. Disabled modules and submodules
    are never incomplete.
    """
    years = [c.year for c in configurations]
    if not years:
        return []
    ok = Q(state=JobState.FINISHED, result__in=(JobResult.SUCCESS, JobResult.WARNING))
    per_year = Q(year__in=years) & (
        Q(job_type__in=(JobType.CSV_INGEST, JobType.API_INGEST), target_type=TargetType.DATA_ENTRIES)
        | Q(job_type=JobType.FACTOR_INGEST)
    )
    latest: dict[_JobKey, tuple[int, int | None]] = {}
    for row in (
        IngestionJob.objects.filter(
            per_year | Q(job_type=JobType.REFERENCE_INGEST), entity_type=EntityType.MODULE_PER_YEAR
        )
        .values("job_type", "year", "module_type_id", "data_entry_type_id")
        .annotate(last=Max("id"), last_ok=Max("id", filter=ok))
        .order_by()
    ):
        key = _job_key(row["job_type"], row["year"], row["module_type_id"], row["data_entry_type_id"])
        previous = latest.get(key)
        if previous is not None:  # reference data of several years: keep the newest of each
            oks = [v for v in (previous[1], row["last_ok"]) if v is not None]
            latest[key] = (max(previous[0], row["last"]), max(oks) if oks else None)
        else:
            latest[key] = (row["last"], row["last_ok"])
    summaries = {
        row["id"]: {
            "job_id": row["id"],
            "pipeline_id": str(row["pipeline_id"]),
            "state": row["state"],
            "result": row["result"],
            "finished_at": row["finished_at"],
        }
        for row in IngestionJob.objects.filter(id__in=[last for last, _ in latest.values()]).values(
            "id", "pipeline_id", "state", "result", "finished_at"
        )
    }
    return [
        {
            "year": c.year,
            "is_started": c.is_started,
            "configuration_completed": c.configuration_completed,
            "unit_source": c.unit_source,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "config": _config_with_job_fields(c.config or {}, c.year, latest, summaries),
        }
        for c in configurations
    ]


def _config_with_job_fields(
    config: dict[str, Any],
    year: int,
    latest: dict[_JobKey, tuple[int, int | None]],
    summaries: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    def summary(job_type: str, module: int, *dets: int | None) -> dict[str, Any] | None:
        found = [latest[k][0] for k in (_job_key(job_type, year, module, det) for det in dets) if k in latest]
        return summaries.get(max(found)) if found else None

    def succeeded(job_type: str, module: int, *dets: int | None) -> bool:
        keys = (_job_key(job_type, year, module, det) for det in dets)
        return any(k in latest and latest[k][1] is not None for k in keys)

    enriched = copy.deepcopy(config)
    modules = enriched.get("modules")
    if not isinstance(modules, dict):
        return enriched
    for module_key, module in modules.items():
        if not isinstance(module, dict) or not str(module_key).isdigit():
            continue
        module_id = int(module_key)
        module_enabled = module.get("enabled", True) is not False
        submodules = module.get("submodules")
        submodules = submodules if isinstance(submodules, dict) else {}
        has_common_file = False
        any_incomplete = False
        for det_key, sub in submodules.items():
            if not isinstance(sub, dict) or not str(det_key).isdigit():
                continue
            det = int(det_key)
            common = det in COMMON_FACTOR_TYPES
            has_common_file |= common
            needs_reference = det in REFERENCE_DATA_TYPES
            # A type's reference file, or a det-less one of its module (rooms for buildings).
            reference = summary(JobType.REFERENCE_INGEST, module_id, det, None) if needs_reference else None
            sub["latest_data_job"] = summary(JobType.CSV_INGEST, module_id, det)
            sub["latest_api_data_job"] = summary(JobType.API_INGEST, module_id, det)
            sub["latest_factor_job"] = summary(JobType.FACTOR_INGEST, module_id, det)
            sub["latest_reference_job"] = reference
            reasons = []
            if module_enabled and sub.get("enabled", True) is not False:
                if not succeeded(JobType.FACTOR_INGEST, module_id, det, *((None,) if common else ())):
                    reasons.append("missing_factor")
                if needs_reference and not succeeded(JobType.REFERENCE_INGEST, module_id, det, None):
                    reasons.append("missing_reference")
            sub["incomplete"] = bool(reasons)
            sub["incomplete_reasons"] = reasons
            any_incomplete |= bool(reasons)
        module["latest_common_data_job"] = summary(JobType.CSV_INGEST, module_id, None)
        module["latest_common_factor_job"] = summary(JobType.FACTOR_INGEST, module_id, None)
        module["incomplete"] = module_enabled and (
            any_incomplete or (has_common_file and not succeeded(JobType.FACTOR_INGEST, module_id, None))
        )
    return enriched
