"""The ``csv_ingest`` handler: activity-data files, per year or unit-specific."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from ingestion.files import job_file_claim, job_file_done
from ingestion.services_data import IngestRefused, data_csv_ingest
from ingestion.services_objectives import objectives_parse, objectives_store
from pipelines.choices import EntityType, JobResult, JobType, TargetType
from pipelines.locks import lock_module_year
from pipelines.registry import HandlerResult, JobContext, register


@register(JobType.CSV_INGEST)
def csv_ingest(ctx: JobContext) -> HandlerResult:
    """Load one data file, then chain one emission_recalc per data-entry type it changed.

    1. Check the scope (module and year required), take the (module, year) lock.
    2. Move the upload to processing/<job>/ and load it (replace + insert in this transaction).
    3. No valid row → ERROR (the engine rolls everything back: nothing replaced, nothing lost).
    4. Chain the recalculations (scoped to the unit's module for a unit-specific upload); move
       the file to processed/<job>/ once the transaction has committed.
    """
    job = ctx.job
    config = ctx.config
    if job.year is None:
        raise IngestRefused("year is required for a data upload")
    file_path = config.get("file_path")
    if not file_path:
        raise IngestRefused("file_path is required for a data upload")
    if job.target_type == TargetType.REDUCTION_OBJECTIVES:
        return _reduction_objectives(ctx, str(file_path))
    if job.module_type_id is None:
        raise IngestRefused("module_type_id is required for a data upload")
    crm_id = config.get("carbon_report_module_id") if job.entity_type == EntityType.MODULE_UNIT_SPECIFIC else None
    lock_module_year(module_type_id=job.module_type_id, year=job.year)
    path = job_file_claim(relative=str(file_path), job_id=job.pk)
    ctx.progress(f"Reading {path.name}")
    outcome = data_csv_ingest(
        path=path,
        module_type_id=job.module_type_id,
        year=job.year,
        data_entry_type_id=job.data_entry_type_id,
        carbon_report_module_id=crm_id,
        job_id=job.pk,
        max_row_errors=settings.MAX_ROW_ERRORS,
        batch_size=settings.INGEST_COPY_BATCH_SIZE,
        progress=lambda done: ctx.progress(f"Read {done} rows", processed=done),
    )
    processed = f"processed/{job.pk}/{path.name}"
    transaction.on_commit(lambda: job_file_done(job_id=job.pk, path=path))
    meta = {
        "stats": outcome.stats(),
        "inserted": outcome.rows_processed,
        "skipped": outcome.rows_skipped,
        "processed_file_path": processed,
    }
    summary = (
        f"Processed {outcome.rows_read} rows: {outcome.rows_processed} inserted "
        f"({outcome.rows_with_factors} with factors, {outcome.rows_without_factors} without), "
        f"{outcome.rows_skipped} skipped"
    )
    if outcome.rows_processed == 0:
        return HandlerResult(result=JobResult.ERROR, message="", meta=meta)
    recalc_config = {"carbon_report_module_ids": [crm_id]} if crm_id is not None else None
    for det in sorted(outcome.dets):
        ctx.chain(JobType.EMISSION_RECALC, data_entry_type_id=det, config=recalc_config)
    return HandlerResult(
        result=JobResult.WARNING if outcome.rows_skipped else JobResult.SUCCESS, message=summary, meta=meta
    )


def _reduction_objectives(ctx: JobContext, file_path: str) -> HandlerResult:
    """The asynchronous objectives upload: valid rows replace the kind's rows; none valid → ERROR."""
    job = ctx.job
    assert job.year is not None  # checked by the caller
    path = job_file_claim(relative=file_path, job_id=job.pk)
    rows, errors = objectives_parse(
        path=path,
        kind_id=int(ctx.config.get("reduction_objective_type_id", -1)),
        max_row_errors=settings.MAX_ROW_ERRORS,
    )
    meta = {
        "stats": {"rows_processed": len(rows), "row_errors": errors.items, "row_errors_count": errors.count},
        "inserted": len(rows),
        "skipped": len(errors.rows),
    }
    if not rows:
        return HandlerResult(result=JobResult.ERROR, message="", meta=meta)
    processed = f"processed/{job.pk}/{path.name}"
    objectives_store(
        year=job.year, kind_id=int(ctx.config["reduction_objective_type_id"]), rows=rows, file_path=processed,
        filename=path.name,
    )  # fmt: skip
    transaction.on_commit(lambda: job_file_done(job_id=job.pk, path=path))
    return HandlerResult(
        result=JobResult.WARNING if errors.count else JobResult.SUCCESS,
        message=f"Stored {len(rows)} reduction objectives, {len(errors.rows)} rows skipped",
        meta={**meta, "processed_file_path": processed},
    )
