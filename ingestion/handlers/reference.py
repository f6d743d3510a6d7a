"""The ``reference_ingest`` handler: airports, train stations and building rooms."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from carbon.choices import DataEntryTypeId, TransportMode
from carbon.models import DataEntry
from carbon.reference_data import DATA_ENTRY_TYPE_MODULE
from ingestion.files import job_file_claim, job_file_done
from ingestion.handlers.factors import config_int
from ingestion.services_reference import locations_ingest, rooms_ingest
from pipelines.choices import JobResult, JobType
from pipelines.registry import HandlerResult, JobContext, register

# The data-entry type a reference file feeds, and the transport mode of a location file.
REFERENCE_TYPES: dict[int, str | None] = {
    DataEntryTypeId.PLANE: TransportMode.PLANE,
    DataEntryTypeId.TRAIN: TransportMode.TRAIN,
    DataEntryTypeId.BUILDING: None,
}


@register(JobType.REFERENCE_INGEST)
def reference_ingest(ctx: JobContext) -> HandlerResult:
    """Upsert a reference file, then chain the recalculations of the entries it feeds.

    1. The type (``config.data_entry_type_id``, else the job's) must be 20 plane, 21 train or
       30 building rooms.
    2. Move the upload to processing/<job>/ and upsert it (locations on their natural key,
       rooms on (building, room); nothing absent from the file is deleted).
    3. No row written → ERROR (the engine rolls back).
    4. Reference data feeds emissions (airport and station coordinates, room surfaces), so
       one emission_recalc is chained per year that has entries of the type — the reference
       chained none and left emissions stale (reference-domain §11.10).

    No advisory lock: the data is global (no module and year to lock), every insert resolves
    a concurrent upload's same key with ON CONFLICT … DO UPDATE, and the recalculations it
    chains run after its commit, so they read the new data.
    """
    job = ctx.job
    config = ctx.config
    det = config_int(config, "data_entry_type_id") or job.data_entry_type_id
    if det not in REFERENCE_TYPES:
        raise ValueError(f"data_entry_type_id={det} is not a supported reference type")
    file_path = config.get("file_path")
    if not file_path:
        raise ValueError("config.file_path is required for a reference upload")
    path = job_file_claim(relative=str(file_path), job_id=job.pk)
    ctx.progress(f"Reading {path.name}")

    def progress(done: int) -> None:
        ctx.progress(f"Read {done} rows", processed=done, total=None)

    mode = REFERENCE_TYPES[det]
    if mode is None:
        outcome = rooms_ingest(path=path, max_row_errors=settings.MAX_ROW_ERRORS, progress=progress)
    else:
        outcome = locations_ingest(
            path=path, transport_mode=mode, max_row_errors=settings.MAX_ROW_ERRORS, progress=progress
        )
    processed = f"processed/{job.pk}/{path.name}"
    transaction.on_commit(lambda: job_file_done(job_id=job.pk, path=path))
    meta = {
        "stats": outcome.stats(),
        "inserted": outcome.written,
        "skipped": outcome.rows_skipped,
        "processed_file_path": processed,
    }
    what = "rooms" if mode is None else f"{mode} locations"
    if outcome.written == 0:
        if outcome.rows_skipped:
            message = ""  # the engine names the first row error
        elif outcome.rows_other_mode:
            message = f"No {mode} row in the file (rows of another transport mode: {outcome.rows_other_mode})"
        else:
            message = "The file has no data rows"
        return HandlerResult(result=JobResult.ERROR, message=message, meta=meta)
    module = int(DATA_ENTRY_TYPE_MODULE[DataEntryTypeId(det)])
    years = DataEntry.objects.filter(data_entry_type_id=det).values_list("year", flat=True).distinct().order_by("year")
    for year in years:
        ctx.chain(JobType.EMISSION_RECALC, data_entry_type_id=det, module_type_id=module, year=year)
    message = (
        f"Processed {outcome.rows_processed} rows: {outcome.created} {what} created, "
        f"{outcome.updated} updated, {outcome.rows_skipped} skipped"
    )
    if outcome.rows_other_mode:
        message += f", {outcome.rows_other_mode} of another transport mode ignored"
    return HandlerResult(
        result=JobResult.WARNING if outcome.rows_skipped else JobResult.SUCCESS, message=message, meta=meta
    )
