"""The ``factor_ingest`` handler: a factor file of one year, or computed research-facility sums."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from carbon.choices import DataEntryTypeId
from carbon.reference_data import DATA_ENTRY_TYPE_MODULE
from carbon.services import research_facility_factors_compute
from ingestion.files import job_file_claim, job_file_done
from ingestion.services_factors import factors_ingest
from pipelines.choices import IngestionMethod, JobResult, JobType
from pipelines.locks import lock_module_year
from pipelines.registry import HandlerResult, JobContext, register

COMPUTED_TYPES = (DataEntryTypeId.RESEARCH_FACILITIES, DataEntryTypeId.MICE_AND_FISH_ANIMAL_FACILITIES)


def config_int(config: dict[str, Any], name: str) -> int | None:
    """An optional integer of a job's config (ValueError naming it when it is not one)."""
    value = config.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"config.{name}={value!r} is not an integer") from None


@register(JobType.FACTOR_INGEST)
def factor_ingest(ctx: JobContext) -> HandlerResult:
    """Upsert one year's factors, then chain one emission_recalc per data-entry type touched.

    1. Scope: the year and the module are required (a pinned data-entry type names its
       module); the type comes from ``config.data_entry_type_id``, else the job's.
    2. Take the (module, year) lock before any write: no recalculation reads half-written
       factors, and no two uploads of the module interleave.
    3. Computed jobs fill the research-facility sums from the facilities' reports; the others
       move the upload to processing/<job>/ and upsert its rows.
    4. No factor written → ERROR (the engine rolls back: nothing changed, nothing chained).
    5. Chain the recalculations (the engine dedups them against active ones); move the file
       to processed/<job>/ once the transaction has committed.
    """
    job = ctx.job
    config = ctx.config
    det = config_int(config, "data_entry_type_id") or job.data_entry_type_id
    if job.data_entry_type_id is not None and det != job.data_entry_type_id:
        raise ValueError(
            f"config.data_entry_type_id={det} contradicts the job's data_entry_type_id={job.data_entry_type_id}"
        )
    if job.year is None:
        raise ValueError("year is required for a factor upload (factors are per year)")
    module = job.module_type_id
    if module is None and det is not None and det in DataEntryTypeId.values:
        module = int(DATA_ENTRY_TYPE_MODULE[DataEntryTypeId(det)])
    if module is None:
        raise ValueError("module_type_id is required for a factor upload")
    lock_module_year(module_type_id=module, year=job.year)
    if job.ingestion_method == IngestionMethod.COMPUTED:
        return _computed(ctx, det=det, module=module, year=job.year)
    file_path = config.get("file_path")
    if not file_path:
        raise ValueError("config.file_path is required for a factor upload")
    path = job_file_claim(relative=str(file_path), job_id=job.pk)
    ctx.progress(f"Reading {path.name}")
    outcome = factors_ingest(
        path=path,
        module_type_id=module,
        data_entry_type_id=det,
        year=job.year,
        job_id=job.pk,
        max_row_errors=settings.MAX_ROW_ERRORS,
        progress=lambda done: ctx.progress(f"Read {done} rows", processed=done, total=None),
    )
    processed = f"processed/{job.pk}/{path.name}"
    transaction.on_commit(lambda: job_file_done(job_id=job.pk, path=path))
    meta = {
        "stats": outcome.stats(),
        "inserted": outcome.factors_written,
        "skipped": outcome.rows_skipped,
        "processed_file_path": processed,
    }
    if outcome.factors_written == 0:
        # An empty message lets the engine name the first row error in the job's status.
        message = "" if outcome.rows_processed else "The file has no data rows"
        return HandlerResult(result=JobResult.ERROR, message=message, meta=meta)
    for touched in sorted(outcome.dets_touched):
        ctx.chain(JobType.EMISSION_RECALC, data_entry_type_id=touched, module_type_id=module)
    return HandlerResult(
        result=JobResult.WARNING if outcome.rows_skipped else JobResult.SUCCESS,
        message=(
            f"Processed {outcome.rows_processed} rows: {outcome.factors_created} factors created, "
            f"{outcome.factors_updated} updated, {outcome.rows_skipped} skipped"
        ),
        meta=meta,
    )


def _computed(ctx: JobContext, *, det: int | None, module: int, year: int) -> HandlerResult:
    """Research-facility sums computed from the facilities' own reports (reference-domain §4.5)."""
    if det not in COMPUTED_TYPES:
        raise ValueError(
            f"computed factors exist only for data_entry_type_id {', '.join(str(int(d)) for d in COMPUTED_TYPES)}"
            f" (got {det})"
        )
    ctx.progress("Computing research-facility factors…")
    stats = research_facility_factors_compute(data_entry_type_id=det, year=year)
    meta = {
        "stats": {
            "updated": stats.updated,
            "skipped": stats.skipped,
            "errors": stats.errors,
            "error_details": stats.error_details,
        },
        "inserted": stats.updated,
        "skipped": stats.skipped + stats.errors,
    }
    if stats.updated + stats.skipped + stats.errors == 0:
        return HandlerResult(
            result=JobResult.ERROR,
            message=f"No {DataEntryTypeId(det).label} factors for {year}: upload them before computing their sums",
            meta=meta,
        )
    if stats.updated:
        ctx.chain(JobType.EMISSION_RECALC, data_entry_type_id=det, module_type_id=module)
    return HandlerResult(
        result=JobResult.WARNING if stats.errors else JobResult.SUCCESS,
        message=(
            f"Computed {stats.updated} factors: {stats.skipped} already set, {stats.errors} without a facility report"
        ),
        meta=meta,
    )
