"""Writes of the carbon domain. Keyword-only ``<noun>_<verb>`` functions."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from carbon.catalogue import spec_for
from carbon.catalogue.base import EmissionRow, EntryError
from carbon.choices import CarbonReportType, DataEntryTypeId, ModuleStatus, ModuleTypeId
from carbon.compute import ComputeContext, entry_emissions
from carbon.models import (
    CarbonReport,
    CarbonReportModule,
    DataEntry,
    DataEntryEmission,
    EmissionType,
    Factor,
    User,
    YearConfiguration,
)
from carbon.reference_data import DATA_ENTRY_TYPE_MODULE, MODULE_DATA_ENTRY_TYPES
from carbon.selectors import (
    INJECTED_MODULE_FIELDS,
    INJECTED_SUBMODULE_FIELDS,
    DbLookups,
    factor_index,
    recalculation_status,
)
from carbon.stats import ModuleFigures, RawSum, it_kg, module_stats, report_stats, same_figures
from config.bulk import copy_json, copy_text, rows_copy, rows_delete, rows_update
from pipelines.choices import ACTIVE_JOB_STATES, EntityType, IngestionMethod, JobType, TargetType
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import ActiveJobConflict, Scope, pipeline_create

ProgressCallback = Callable[[int, int], None]
MAX_ERROR_DETAILS = 100


@dataclass(frozen=True)
class AdminLogin:
    username: str
    # None when the account predates the file (its password is whatever was set then).
    password: str | None
    created: bool


def admin_user_ensure(*, username: str, password_file: Path) -> AdminLogin:
    """Make sure an embedded install has a superuser to log in with.

    1. If any superuser exists, create nothing; return the login remembered in
       ``password_file`` when it belongs to USERNAME, else the username without a password.
    2. Otherwise create USERNAME with a random password, write it to ``password_file``
       (mode 0600, outside the repository's tracked files) and return it.
    """
    remembered = password_file.read_text(encoding="utf-8").strip() if password_file.exists() else None
    with transaction.atomic():
        if User.objects.filter(is_superuser=True).exists():
            user = User.objects.filter(username=username, is_superuser=True).first()
            if user is not None and remembered and user.check_password(remembered):
                return AdminLogin(username=username, password=remembered, created=False)
            existing = user.username if user else User.objects.filter(is_superuser=True).order_by("id")[0].username
            return AdminLogin(username=existing, password=None, created=False)
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.write_text(password + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return AdminLogin(username=username, password=password, created=True)


# --- Emission recalculation ---------------------------------------------------------------------


@dataclass
class RecalcStats:
    recalculated: int = 0
    emissions: int = 0
    errors: int = 0
    warnings: int = 0
    error_details: list[dict[str, Any]] = field(default_factory=list)
    affected_module_ids: set[int] = field(default_factory=set)

    def as_meta(self) -> dict[str, Any]:
        return {
            "recalculated": self.recalculated,
            "emissions": self.emissions,
            "errors": self.errors,
            "warnings": self.warnings,
            "error_details": self.error_details,
            "affected_module_ids": sorted(self.affected_module_ids),
        }


def emissions_recalculate(
    *,
    data_entry_type_id: int,
    year: int,
    carbon_report_module_ids: list[int] | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = 5000,
) -> RecalcStats:
    """Recompute the emissions of every entry of (det, year) from the year's factors.

    Runs inside the caller's transaction (the job's data transaction, under lock 1237).
    1. Load the year's factors for the det once; reference data is read lazily and cached.
       Delete the slice's old emissions (one statement).
    2. Stream the entries by id in batches of BATCH_SIZE (memory stays flat with the count).
    3. Per entry: compute its rows; an EntryError or any non-database exception is recorded
       for that entry (it gets no emission) and the slice goes on; a database error aborts
       the whole recalculation (the connection is gone or poisoned).
    4. Per batch: insert the new emissions (COPY text on PostgreSQL), report progress.
    """
    spec = spec_for(data_entry_type_id)
    ctx = ComputeContext(
        year=year,
        factors=factor_index(data_entry_type_id=data_entry_type_id, year=year),
        lookups=DbLookups(year=year),
    )
    scopes = dict(EmissionType.objects.values_list("id", "scope"))
    entries = DataEntry.objects.filter(year=year, data_entry_type_id=data_entry_type_id)
    if carbon_report_module_ids is not None:
        entries = entries.filter(carbon_report_module_id__in=carbon_report_module_ids)
    total = entries.count()
    stats = RecalcStats()
    now = timezone.now()
    # The slice's old emissions go in one set-based statement (same transaction: a failed
    # recalculation restores them).
    rows_delete(DataEntryEmission.objects.filter(data_entry__in=entries))
    store = _emissions_copy if connection.vendor == "postgresql" else _emissions_create
    last_id = 0
    while True:
        batch = list(
            entries.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "carbon_report_module_id", "data")[:batch_size]
        )
        if not batch:
            break
        last_id = batch[-1][0]
        new_rows: list[tuple[int, int, EmissionRow]] = []
        for entry_id, crm_id, data in batch:
            stats.affected_module_ids.add(crm_id)
            ctx.warnings.clear()
            try:
                rows = entry_emissions(spec, data, ctx)
            except EntryError as exc:
                _record_error(stats, entry_id, str(exc))
                continue
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                _record_error(stats, entry_id, f"{exc.__class__.__name__}: {exc}")
                continue
            stats.warnings += len(ctx.warnings)
            new_rows.extend((entry_id, crm_id, row) for row in rows)
        store(new_rows, scopes, now)
        stats.recalculated += len(batch)
        stats.emissions += len(new_rows)
        if progress is not None:
            progress(stats.recalculated, total)
    return stats


# The columns a COPY of emissions fills, in the order _emissions_copy writes them.
_EMISSION_COPY_FIELDS = ("data_entry", "carbon_report_module", "emission_type", "primary_factor", "kg_co2eq",
                         "additional_value", "scope", "is_rollup", "meta", "computed_at")  # fmt: skip


def _emissions_copy(rows: list[tuple[int, int, EmissionRow]], scopes: dict[int, int | None], now: Any) -> None:
    """PostgreSQL: ROWS as COPY text lines (no model instances, one JSON encoding per row)."""
    if not rows:
        return
    computed_at = now.isoformat()
    lines = []
    for entry_id, crm_id, row in rows:
        rollup = bool(row.meta.get("is_rollup"))
        scope = None if rollup else scopes.get(row.emission_type_id)
        lines.append(
            f"{entry_id}\t{crm_id}\t{row.emission_type_id}\t{_copy_value(row.factor_id)}\t{row.kg_co2eq}\t"
            f"{_copy_value(row.additional_value)}\t{_copy_value(scope)}\t{'t' if rollup else 'f'}\t"
            f"{copy_json(dict(row.meta))}\t{computed_at}\n"
        )
    columns = {f.name: f.column for f in DataEntryEmission._meta.concrete_fields if f.column}
    copy_text(DataEntryEmission, [columns[name] for name in _EMISSION_COPY_FIELDS], lines)


def _copy_value(value: Any) -> str:
    return "\\N" if value is None else str(value)


def _emissions_create(rows: list[tuple[int, int, EmissionRow]], scopes: dict[int, int | None], now: Any) -> None:
    """Other databases: model instances, bulk-inserted."""
    objects = []
    for entry_id, crm_id, row in rows:
        rollup = bool(row.meta.get("is_rollup"))
        objects.append(
            DataEntryEmission(
                data_entry_id=entry_id,
                carbon_report_module_id=crm_id,
                emission_type_id=row.emission_type_id,
                primary_factor_id=row.factor_id,
                kg_co2eq=row.kg_co2eq,
                additional_value=row.additional_value,
                scope=None if rollup else scopes.get(row.emission_type_id),
                is_rollup=rollup,
                meta=dict(row.meta),
                computed_at=now,
            )
        )
    rows_copy(DataEntryEmission, objects)


def _record_error(stats: RecalcStats, entry_id: int, message: str) -> None:
    stats.errors += 1
    if len(stats.error_details) < MAX_ERROR_DETAILS:
        stats.error_details.append({"data_entry_id": entry_id, "error": message[:500]})


# --- Aggregation -------------------------------------------------------------------------------


def module_stats_recompute(*, module_type_id: int, year: int, carbon_report_module_ids: list[int] | None = None) -> int:
    """Recompute the stats of (module, year)'s report modules and their reports' rollups.

    Modules that were emptied (figures but no entry left) are included whatever the scope.
    Set-based: one query for the modules, one SUM … GROUP BY (module, emission type) over the
    non-rollup emission rows, one COUNT of entries, then bulk updates; the reports' rollups
    read their 8 modules once. A module whose figures changed goes back to IN_PROGRESS (its
    validation no longer holds). Returns the number of modules refreshed.
    """
    now = timezone.now()
    computed_at = now.isoformat()
    modules = CarbonReportModule.objects.filter(module_type_id=module_type_id, report__year=year)
    if carbon_report_module_ids is not None:
        # Modules that had entries and have none now (a re-upload dropped their unit) are
        # refreshed too: no recalculation lists them, since no entry of theirs is left.
        emptied = modules.filter(stats__entry_count__gt=0).exclude(
            Exists(DataEntry.objects.filter(carbon_report_module_id=OuterRef("pk")))
        )
        modules = modules.filter(Q(id__in=carbon_report_module_ids) | Q(id__in=emptied.values("id")))
    targets = list(modules.only("id", "report_id", "status", "stats", "module_type_id"))
    if not targets:
        return 0
    ids = [m.pk for m in targets]
    raw: dict[int, dict[int, RawSum]] = {pk: {} for pk in ids}
    for row in (
        DataEntryEmission.objects.filter(carbon_report_module_id__in=ids, is_rollup=False)
        .values("carbon_report_module_id", "emission_type_id")
        .annotate(kg=Sum("kg_co2eq"), quantity=Sum("additional_value"))
    ):
        raw[row["carbon_report_module_id"]][row["emission_type_id"]] = RawSum(row["kg"] or 0.0, row["quantity"])
    counts = dict(
        DataEntry.objects.filter(carbon_report_module_id__in=ids)
        .values("carbon_report_module_id")
        .annotate(n=Count("id"))
        .values_list("carbon_report_module_id", "n")
    )
    for module in targets:
        stats = module_stats(
            module_type_id=module_type_id,
            raw=raw[module.pk],
            entry_count=counts.get(module.pk, 0),
            computed_at=computed_at,
        )
        stats["it_kg"] = it_kg(raw[module.pk])
        # A validation holds for the figures it saw: changed figures need validating again.
        if not same_figures(module.stats, stats) and (module.stats is not None or stats["entry_count"]):
            module.status = ModuleStatus.IN_PROGRESS
        module.stats = stats
        module.last_updated = now
    rows_update(CarbonReportModule, targets, ["stats", "status", "last_updated"])
    reports_recompute(report_ids=sorted({m.report_id for m in targets}), now=now)
    return len(targets)


def reports_recompute(*, report_ids: list[int], now: Any = None) -> None:
    """Roll the modules' stats up into their reports (one read of the modules, one bulk update)."""
    now = now or timezone.now()
    by_report: dict[int, list[ModuleFigures]] = {pk: [] for pk in report_ids}
    for report_id, module_type_id, status, stats in CarbonReportModule.objects.filter(
        report_id__in=report_ids
    ).values_list("report_id", "module_type_id", "status", "stats"):
        by_report[report_id].append(
            ModuleFigures(
                module_type_id=module_type_id, status=status, stats=stats, it_kg=float((stats or {}).get("it_kg", 0.0))
            )
        )
    reports = list(CarbonReport.objects.filter(id__in=report_ids).only("id"))
    for report in reports:
        report.stats, report.completion_progress, report.overall_status = report_stats(
            modules=by_report[report.pk], computed_at=now.isoformat()
        )
        report.last_updated = now
    rows_update(CarbonReport, reports, ["stats", "completion_progress", "overall_status", "last_updated"])


# --- Year configuration ------------------------------------------------------------------------

UNCERTAINTY_TAGS = ("low", "medium", "high", "none")
REDUCTION_OBJECTIVE_KEYS = ("institutional_footprint", "population_projections", "unit_scenarios")


class YearConfigurationExists(Exception):
    """The year is already configured (409)."""


class ConfigInvalid(ValueError):
    """A config change that breaks a rule; ``field`` is the dotted path of the offending value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def year_configuration_default_config() -> dict[str, Any]:
    """Every module and data-entry type enabled, no thresholds (reference-domain §6.3)."""
    return {
        "modules": {
            str(int(module)): {
                "enabled": True,
                "uncertainty_tag": "medium",
                "submodules": {str(int(det)): {"enabled": True, "threshold": None} for det in dets},
            }
            for module, dets in MODULE_DATA_ENTRY_TYPES.items()
        },
        "reduction_objectives": {
            **{key: [] for key in REDUCTION_OBJECTIVE_KEYS},
            "files": dict.fromkeys(REDUCTION_OBJECTIVE_KEYS),
            "goals": [],
        },
    }


def year_configuration_create(
    *, year: int, user: Any = None, is_started: bool = False, config: dict[str, Any] | None = None
) -> tuple[YearConfiguration, Pipeline]:
    """Open a year and start provisioning it.

    1. Refuse a year that exists (YearConfigurationExists → 409).
    2. Insert the configuration (default config, deep-merged with CONFIG minus the read API's
       injected fields, and validated).
    3. Start a ``unit_sync`` pipeline for the year; its success stamps
       ``configuration_completed``, which opens the year to uploads.
    """
    merged = _config_merge(year_configuration_default_config(), year_configuration_config_strip(config=config or {}))
    _config_validate(merged)
    with transaction.atomic():
        if YearConfiguration.objects.select_for_update().filter(year=year).exists():
            raise YearConfigurationExists(f"Year {year} is already configured")
        configuration = YearConfiguration.objects.create(
            year=year, is_started=is_started, config=merged, unit_source=str(settings.UNIT_SOURCE_URL or "")
        )
        pipeline = unit_sync_start(year=year, user=user)
    return configuration, pipeline


def unit_sync_start(*, year: int, user: Any = None) -> Pipeline:
    """Start a ``unit_sync`` pipeline for YEAR (its handler lives in the ingestion app)."""
    scope = Scope(
        entity_type=EntityType.GLOBAL_PER_YEAR,
        target_type=TargetType.REFERENCE_DATA,
        ingestion_method=IngestionMethod.API,
        year=year,
    )
    return pipeline_create(job_type=JobType.UNIT_SYNC, scope=scope, config={"target_year": year}, created_by=user)[0]


def year_units_sync(*, year: int, user: Any = None) -> Pipeline:
    """Sync a year's units: create the year if it is new (which starts its sync), else sync again."""
    if not YearConfiguration.objects.filter(year=year).exists():
        return year_configuration_create(year=year, user=user)[1]
    return unit_sync_start(year=year, user=user)


def year_configuration_patch(
    *, year: int, is_started: bool | None = None, config: dict[str, Any] | None = None
) -> YearConfiguration:
    """Change a year: open it to end users, and/or deep-merge CONFIG into its config (validated).

    The read API's injected fields (job summaries, incomplete flags) are dropped from CONFIG
    first: a client may send back what it read, and they must never be stored.
    """
    config = year_configuration_config_strip(config=config) if config else config
    with transaction.atomic():
        configuration = YearConfiguration.objects.select_for_update().get(year=year)
        if config:
            merged = _config_merge(configuration.config or year_configuration_default_config(), config)
            _config_validate(merged)
            configuration.config = merged
        if is_started is not None:
            configuration.is_started = is_started
        configuration.save(update_fields=["config", "is_started", "updated_at"])
    return configuration


def year_configuration_config_strip(*, config: dict[str, Any]) -> dict[str, Any]:
    """CONFIG without the read-only fields the read API injects (reference-domain §6.3).

    1. Copy the top level; for each module object, drop its injected keys.
    2. For each of its submodule objects, drop theirs. Anything else is left for validation.
    """
    stripped = dict(config)
    modules = stripped.get("modules")
    if not isinstance(modules, dict):
        return stripped
    stripped["modules"] = {}
    for module_key, module in modules.items():
        if isinstance(module, dict):
            module = {k: v for k, v in module.items() if k not in INJECTED_MODULE_FIELDS}
            if isinstance(module.get("submodules"), dict):
                module["submodules"] = {
                    det_key: (
                        {k: v for k, v in sub.items() if k not in INJECTED_SUBMODULE_FIELDS}
                        if isinstance(sub, dict)
                        else sub
                    )
                    for det_key, sub in module["submodules"].items()
                }
        stripped["modules"][module_key] = module
    return stripped


def _config_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _config_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _config_validate(config: dict[str, Any]) -> None:
    modules = config.get("modules")
    if not isinstance(modules, dict):
        raise ConfigInvalid("modules", "must be an object keyed by module id")
    for module_key, module in modules.items():
        path = f"modules.{module_key}"
        try:
            module_type = ModuleTypeId(int(module_key))
        except ValueError:
            raise ConfigInvalid(path, "is not a module id (1–8)") from None
        if not isinstance(module, dict):
            raise ConfigInvalid(path, "must be an object")
        if "enabled" in module and not isinstance(module["enabled"], bool):
            raise ConfigInvalid(f"{path}.enabled", "must be true or false")
        if module.get("uncertainty_tag") not in (None, *UNCERTAINTY_TAGS):
            raise ConfigInvalid(f"{path}.uncertainty_tag", f"must be one of {', '.join(UNCERTAINTY_TAGS)}")
        allowed = {str(int(det)) for det in MODULE_DATA_ENTRY_TYPES[module_type]}
        for det_key, sub in (module.get("submodules") or {}).items():
            sub_path = f"{path}.submodules.{det_key}"
            if det_key not in allowed:
                raise ConfigInvalid(sub_path, f"is not a data-entry type of module {module_key}")
            threshold = (sub or {}).get("threshold")
            if threshold is None:
                continue
            if module_type == ModuleTypeId.HEADCOUNT:
                raise ConfigInvalid(f"{sub_path}.threshold", "headcount takes no threshold")
            if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
                raise ConfigInvalid(f"{sub_path}.threshold", "must be a number ≥ 0 (kg CO2eq) or null")


# --- Computed factors (research facilities, reference-domain §4.5) ----------------------------

# Where each research-facility source sits in the emission tree. ``by_emission_type`` holds a
# node's whole-subtree sum (each kg once), so one key per source suffices — no subtree walk
# that would add rollups and intermediate nodes again (the reference's double count).
FACILITY_SOURCE_NODES: dict[str, tuple[int, ...]] = {
    "processemissions": (70000,),
    "building_energycombustions": (60200,),
    "building_rooms": (60100,),
    "purchases_common": (90000,),
    "purchases_additional": (90900,),
    "equipments": (80000,),
}
FACILITY_COMMON_NODES = (70000, 60000, 80000, 90000)


@dataclass
class ComputedFactorStats:
    updated: int = 0
    skipped: int = 0
    errors: int = 0
    error_details: list[dict[str, Any]] = field(default_factory=list)


def research_facility_factors_compute(*, data_entry_type_id: int, year: int) -> ComputedFactorStats:
    """Fill the research-facility factors of (det, year) from the facilities' own reports.

    A facility is itself a unit (``researchfacility_id`` = its cf). Its Calculator report's
    ``by_emission_type`` gives the kg to spread over the facility's users:
    det 70 — ``kg_co2eq_sum`` = process + buildings + equipment + purchases (kept when the
    upload already set it); det 71 — one ``kg_co2eq_sum_<source>`` per source, where purchases
    in common exclude the additional purchases. A facility without unit or report is a
    per-factor error; the others are still computed.
    """
    stats = ComputedFactorStats()
    factors = list(Factor.objects.filter(data_entry_type_id=data_entry_type_id, year=year).order_by("id"))
    facility_ids = {str((f.classification or {}).get("researchfacility_id", "")) for f in factors}
    by_cf = dict(
        CarbonReport.objects.filter(
            year=year, unit__institutional_id__in=facility_ids, project__report_type=CarbonReportType.CALCULATOR
        ).values_list("unit__institutional_id", "stats")
    )
    for factor in factors:
        cf = str((factor.classification or {}).get("researchfacility_id", ""))
        if cf not in by_cf:
            stats.errors += 1
            stats.error_details.append({"factor_id": factor.pk, "error": f"no {year} report for facility unit {cf}"})
            continue
        by_type = {int(k): float(v) for k, v in ((by_cf[cf] or {}).get("by_emission_type") or {}).items()}
        values = dict(factor.values or {})
        if data_entry_type_id == DataEntryTypeId.RESEARCH_FACILITIES:
            if values.get("kg_co2eq_sum") not in (None, ""):
                stats.skipped += 1
                continue
            values["kg_co2eq_sum"] = sum(by_type.get(node, 0.0) for node in FACILITY_COMMON_NODES)
        else:
            for source, nodes in FACILITY_SOURCE_NODES.items():
                kg = sum(by_type.get(node, 0.0) for node in nodes)
                if source == "purchases_common":
                    kg -= by_type.get(90900, 0.0)
                values[f"kg_co2eq_sum_{source}"] = kg
        factor.values = values
        factor.is_computed = True
        factor.save(update_fields=["values", "is_computed", "updated_at"])
        stats.updated += 1
    return stats


# --- Manual recalculation (SPEC §5.3, reference-pipeline-core §6) -------------------------------


class RecalculationTargetUnknown(LookupError):
    """The module or data-entry type to recalculate does not exist (404)."""


class RecalculationInvalid(ValueError):
    """A recalculation request that cannot start; ``field`` names the culprit (400)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NothingToRecalculate(Exception):
    """``only_stale`` and no type of the module is stale (400)."""


@dataclass(frozen=True)
class RecalculationStarted:
    pipeline: Pipeline
    job: IngestionJob
    message: str
    data_entry_type_ids: list[int]


def emission_recalculation_start(
    *,
    module_type_id: int,
    year: int,
    data_entry_type_id: int | None = None,
    only_stale: bool = False,
    user: Any = None,
) -> RecalculationStarted:
    """Start a manual recalculation pipeline (recalc → one aggregation).

    1. The module must exist, and so must a given type (RecalculationTargetUnknown → 404); the
       type must be one of the module's (RecalculationInvalid → 400).
    2. One type: an ``emission_recalc`` root for (module, det, year); ``pipeline_create``
       refuses with ActiveJobConflict (→ 409) while one is active for that scope.
    3. Whole module: its types — with ONLY_STALE, only those whose factors changed since their
       last recalculation (none → NothingToRecalculate, 400; the handler filters again when it
       runs) — in one ``module_emission_recalc`` root. Refused with ActiveJobConflict while a
       module recalculation of (module, year) is active.
    """
    try:
        module = ModuleTypeId(module_type_id)
    except ValueError:
        raise RecalculationTargetUnknown(f"Module type {module_type_id} not found") from None
    if data_entry_type_id is not None:
        try:
            det = DataEntryTypeId(data_entry_type_id)
        except ValueError:
            raise RecalculationTargetUnknown(f"Data entry type {data_entry_type_id} not found") from None
        if DATA_ENTRY_TYPE_MODULE[det] != module:
            raise RecalculationInvalid(
                "data_entry_type_id", f"{int(det)} is not a data entry type of module {int(module)}"
            )
        pipeline, job = pipeline_create(
            job_type=JobType.EMISSION_RECALC,
            scope=Scope(module_type_id=int(module), data_entry_type_id=int(det), year=year),
            created_by=user,
        )
        return RecalculationStarted(
            pipeline=pipeline, job=job, message="Emission recalculation scheduled", data_entry_type_ids=[int(det)]
        )
    dets = [int(d) for d in MODULE_DATA_ENTRY_TYPES[module]]
    if only_stale:
        stale = {s.data_entry_type_id for s in recalculation_status(year=year) if s.needs_recalculation}
        dets = [d for d in dets if d in stale]
        if not dets:
            raise NothingToRecalculate("No data entry types require recalculation for this module")
    with transaction.atomic():
        # No unique index covers module recalculations (their scope has no det), so two
        # simultaneous requests can both pass this check. The loser only costs time: both run
        # under the (module, year) lock one after the other and write the same figures.
        active = IngestionJob.objects.filter(
            job_type=JobType.MODULE_EMISSION_RECALC,
            module_type_id=int(module),
            year=year,
            state__in=ACTIVE_JOB_STATES,
        ).first()
        if active is not None:
            raise ActiveJobConflict(
                f"A {JobType.MODULE_EMISSION_RECALC} for this scope is already active "
                f"(job {active.pk}, pipeline {active.pipeline_id})",
                job=active,
            )
        pipeline, job = pipeline_create(
            job_type=JobType.MODULE_EMISSION_RECALC,
            scope=Scope(module_type_id=int(module), year=year),
            config={"only_stale": True, "data_entry_type_ids": dets} if only_stale else {},
            created_by=user,
        )
    return RecalculationStarted(
        pipeline=pipeline,
        job=job,
        message=f"Module emission recalculation scheduled for {len(dets)} data entry types",
        data_entry_type_ids=dets,
    )
