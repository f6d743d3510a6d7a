"""The ``api_ingest`` handler: professional travel from the travel-booking API."""

from __future__ import annotations

from django.conf import settings

from carbon.choices import DataEntryTypeId, ModuleTypeId
from ingestion.services_travel import TravelApiError, travel_api_fetch, travel_rows_ingest
from pipelines.choices import JobResult, JobType
from pipelines.locks import lock_module_year
from pipelines.registry import HandlerResult, JobContext, register


@register(JobType.API_INGEST)
def api_ingest(ctx: JobContext) -> HandlerResult:
    """Fetch the year's flights, replace the year's API plane entries, chain their recalculation.

    No valid row → ERROR, so the previous rows stay (the engine rolls the replace back).
    """
    job = ctx.job
    if job.year is None:
        raise TravelApiError("year is required for a travel API import")
    if not settings.TRAVEL_API_URL:
        raise TravelApiError("TRAVEL_API_URL is not set: there is no travel API to read")
    module = job.module_type_id or ModuleTypeId.PROFESSIONAL_TRAVEL
    lock_module_year(module_type_id=module, year=job.year)
    ctx.progress(f"Fetching {job.year} travel from the travel API")
    rows = travel_api_fetch(url=settings.TRAVEL_API_URL, token=settings.TRAVEL_API_TOKEN, year=job.year)
    ctx.progress(f"Loading {len(rows)} travel rows")
    outcome = travel_rows_ingest(rows=rows, year=job.year, job_id=job.pk, max_row_errors=settings.MAX_ROW_ERRORS)
    meta = {"stats": outcome.stats(), "inserted": outcome.rows_processed, "skipped": len(outcome.row_errors.rows)}
    if outcome.rows_processed == 0:
        return HandlerResult(result=JobResult.ERROR, message="", meta=meta)
    ctx.chain(JobType.EMISSION_RECALC, data_entry_type_id=DataEntryTypeId.PLANE, module_type_id=module)
    message = (
        f"Imported {outcome.rows_processed} flights (replacing {outcome.rows_deleted}); "
        f"{outcome.rows_dropped_other_year} of another year and {outcome.rows_dropped_incomplete} incomplete "
        f"dropped, {len(outcome.row_errors.rows)} rejected"
    )
    return HandlerResult(
        result=JobResult.WARNING if outcome.row_errors.count else JobResult.SUCCESS, message=message, meta=meta
    )
