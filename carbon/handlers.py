"""Job handlers of the carbon domain, registered with the engine by ``CarbonConfig.ready()``."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, transaction

from carbon.choices import DataEntryTypeId, ModuleTypeId
from carbon.reference_data import DATA_ENTRY_TYPE_MODULE, MODULE_DATA_ENTRY_TYPES
from carbon.selectors import recalculation_status
from carbon.services import emissions_recalculate, module_stats_recompute
from pipelines.choices import JobResult, JobType
from pipelines.locks import lock_module_year, lock_year
from pipelines.registry import HandlerResult, JobContext, register


def _require(value: int | None, what: str, job_type: str) -> int:
    if value is None:
        raise ValueError(f"{job_type} needs {what}; the job has none")
    return value


@register(JobType.EMISSION_RECALC)
def emission_recalc(ctx: JobContext) -> HandlerResult:
    """Recompute one (data-entry type, year), optionally only some report modules.

    1. Take the (module, year) lock: no factor or data upload of that slice is half-written.
    2. Recompute every entry (streamed in batches, per-entry errors isolated).
    3. WARNING when some entries failed; the fan-in payload names the report modules whose
       figures may have changed (those recomputed, plus any the parent emptied).
    """
    job = ctx.job
    det = _require(job.data_entry_type_id, "a data-entry type", JobType.EMISSION_RECALC)
    year = _require(job.year, "a year", JobType.EMISSION_RECALC)
    module = job.module_type_id or DATA_ENTRY_TYPE_MODULE[DataEntryTypeId(det)]
    ctx.progress("Recalculating emissions…")
    lock_module_year(module_type_id=module, year=year)
    scope = ctx.config.get("carbon_report_module_ids")
    stats = emissions_recalculate(
        data_entry_type_id=det,
        year=year,
        carbon_report_module_ids=list(scope) if isinstance(scope, list) else None,
        progress=lambda done, total: ctx.progress(
            f"Recalculating emissions… {done}/{total}", processed=done, total=total
        ),
    )
    affected = stats.affected_module_ids | set(ctx.config.get("removed_module_ids") or [])
    message = "Emission recalculation completed"
    if stats.errors:
        message += f": {stats.errors} of {stats.recalculated} entries failed (see error_details)"
    return HandlerResult(
        result=JobResult.WARNING if stats.errors else JobResult.SUCCESS,
        message=message,
        meta={"recalculation": stats.as_meta()},
        fan_in={"affected_module_ids": sorted(affected)},
    )


@register(JobType.MODULE_EMISSION_RECALC)
def module_emission_recalc(ctx: JobContext) -> HandlerResult:
    """Recompute every listed data-entry type of a module in turn, then chain one aggregation.

    ``config.data_entry_type_ids`` narrows the types (default: all of the module's);
    ``config.only_stale`` keeps only those whose factors changed since their last recalculation.

    A type that fails is rolled back alone (savepoint) and recorded; the others go on. All
    failed → ERROR (nothing changed); some → WARNING.
    """
    job = ctx.job
    module = _require(job.module_type_id, "a module", JobType.MODULE_EMISSION_RECALC)
    year = _require(job.year, "a year", JobType.MODULE_EMISSION_RECALC)
    dets = ctx.config.get("data_entry_type_ids") or [int(d) for d in MODULE_DATA_ENTRY_TYPES[ModuleTypeId(module)]]
    if ctx.config.get("only_stale"):
        stale = {s.data_entry_type_id for s in recalculation_status(year=year) if s.needs_recalculation}
        dets = [det for det in dets if det in stale]
        if not dets:
            return HandlerResult(message="Nothing to recalculate: no data-entry type of the module is stale")
    lock_module_year(module_type_id=module, year=year)
    per_det: dict[str, Any] = {}
    affected: set[int] = set()
    failed = 0
    for index, det in enumerate(dets, start=1):
        ctx.progress(f"Recalculating {DataEntryTypeId(det).label} ({index}/{len(dets)})…")
        try:
            with transaction.atomic():
                stats = emissions_recalculate(data_entry_type_id=det, year=year)
        except DatabaseError:
            raise  # the connection is gone or poisoned: the whole job fails
        except Exception as exc:
            failed += 1
            per_det[str(det)] = {"fatal": True, "error": f"{exc.__class__.__name__}: {exc}"}
            continue
        affected |= stats.affected_module_ids
        per_det[str(det)] = stats.as_meta()
    if failed == len(dets):
        return HandlerResult(result=JobResult.ERROR, message="Every data-entry type failed", meta={"per_det": per_det})
    ctx.chain(JobType.AGGREGATION, config={"affected_module_ids": sorted(affected)})
    errors = failed or any(v.get("errors") for v in per_det.values())
    return HandlerResult(
        result=JobResult.WARNING if errors else JobResult.SUCCESS,
        message="Module emission recalculation completed" + (" with errors" if errors else ""),
        meta={"per_det": per_det},
    )


@register(JobType.AGGREGATION)
def aggregation(ctx: JobContext) -> HandlerResult:
    """Recompute the stats of (module, year): only the listed report modules when the job
    carries ``affected_module_ids`` (an empty list recomputes nothing), else all of them."""
    job = ctx.job
    module = _require(job.module_type_id, "a module", JobType.AGGREGATION)
    year = _require(job.year, "a year", JobType.AGGREGATION)
    # Year lock: aggregations and unit syncs rewrite the same report rollups.
    lock_year(year=year)
    scope = ctx.config.get("affected_module_ids")
    refreshed = module_stats_recompute(
        module_type_id=module, year=year, carbon_report_module_ids=list(scope) if isinstance(scope, list) else None
    )
    return HandlerResult(
        message=f"Aggregation completed: {refreshed} modules refreshed", meta={"modules_refreshed": refreshed}
    )
