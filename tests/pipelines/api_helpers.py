"""Pipelines in any state, built row by row, for API and console tests (no worker needed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from carbon.models import Unit
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobState, JobType, TargetType
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import pipeline_status_refresh

# (job_type, state, result) of each job; the first is the root, the others its children.
Outcome = tuple[str, str, str | None]
DONE_OK: list[Outcome] = [
    (JobType.CSV_INGEST, JobState.FINISHED, JobResult.SUCCESS),
    (JobType.EMISSION_RECALC, JobState.FINISHED, JobResult.SUCCESS),
    (JobType.AGGREGATION, JobState.FINISHED, JobResult.SUCCESS),
]
RUNNING: list[Outcome] = [
    (JobType.CSV_INGEST, JobState.FINISHED, JobResult.SUCCESS),
    (JobType.EMISSION_RECALC, JobState.RUNNING, None),
]
FAILED: list[Outcome] = [(JobType.CSV_INGEST, JobState.FINISHED, JobResult.ERROR)]


def pipeline_build(
    outcomes: list[Outcome] | None = None,
    *,
    unit: Unit | None = None,
    module_type_id: int | None = 4,
    year: int = 2025,
    message: str = "",
    created_ago: timedelta = timedelta(0),
    **fields: Any,
) -> Pipeline:
    """A pipeline whose jobs are in OUTCOMES, its status recomputed as the engine would."""
    outcomes = outcomes if outcomes is not None else DONE_OK
    now = timezone.now()
    scope: dict[str, Any] = {"module_type_id": module_type_id, "year": year}
    if unit is not None:
        scope.update(entity_type=EntityType.MODULE_UNIT_SPECIFIC, unit_id=unit.pk, unit_code=unit.institutional_id)
    pipeline = Pipeline.objects.create(
        kind=outcomes[0][0],
        target_type=TargetType.DATA_ENTRIES,
        ingestion_method=IngestionMethod.CSV,
        created_at=now - created_ago,
        **{"entity_type": EntityType.MODULE_PER_YEAR, **scope},
        **fields,
    )
    root: IngestionJob | None = None
    last_recalc: IngestionJob | None = None
    aggregated = any(job_type == JobType.AGGREGATION for job_type, _, _ in outcomes)
    for index, (job_type, state, result) in enumerate(outcomes):
        running = state == JobState.RUNNING
        finished = state == JobState.FINISHED
        job = IngestionJob.objects.create(
            pipeline=pipeline,
            target_type=pipeline.target_type,
            ingestion_method=pipeline.ingestion_method,
            module_type_id=pipeline.module_type_id,
            year=pipeline.year,
            # the aggregation hangs off the recalc that fanned in
            parent=(last_recalc if job_type == JobType.AGGREGATION else root) if index else None,
            job_type=job_type,
            unit_id=pipeline.unit_id,
            entity_type=pipeline.entity_type,
            data_entry_type_id=10 if job_type == JobType.EMISSION_RECALC else None,
            state=state,
            result=result,
            status_message=message or (f"{result}: done" if result else "Running"),
            started_at=now if state != JobState.NOT_STARTED else None,
            finished_at=now if finished else None,
            lease_owner="worker:test:1" if running else None,
            lease_expires_at=now + timedelta(minutes=5) if running else None,
            attempts=0 if state == JobState.NOT_STARTED else 1,
            closed_fan_in=job_type == JobType.EMISSION_RECALC and finished and aggregated,
        )
        root = root or job
        if job_type == JobType.EMISSION_RECALC:
            last_recalc = job
    pipeline_status_refresh(pipeline_id=pipeline.pk)
    pipeline.refresh_from_db()
    return pipeline
