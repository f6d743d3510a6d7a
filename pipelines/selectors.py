"""Reads of the pipelines engine."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet

from pipelines import rules
from pipelines.db import DATA_ALIAS
from pipelines.models import IngestionJob, Pipeline

JOB_VIEW_FIELDS = (
    "id",
    "parent_id",
    "job_type",
    "state",
    "result",
    "status_message",
    "started_at",
    "finished_at",
    "closed_fan_in",
)


def job_views(jobs: QuerySet[IngestionJob] | list[dict[str, Any]]) -> list[rules.JobView]:
    """The rules' view of jobs, from a queryset (one query) or rows already read."""
    rows = jobs.values(*JOB_VIEW_FIELDS) if isinstance(jobs, QuerySet) else jobs
    return [rules.JobView(**{name: row[name] for name in JOB_VIEW_FIELDS}) for row in rows]


SNAPSHOT_JOB_FIELDS = (
    *JOB_VIEW_FIELDS,
    "attempts",
    "max_attempts",
    "lease_owner",
    "module_type_id",
    "data_entry_type_id",
    "year",
    "created_at",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def pipeline_snapshot(*, pipeline_id: UUID, using: str = DATA_ALIAS) -> dict[str, Any] | None:
    """A full snapshot of one pipeline (never a delta), as pushed live and served by the API.

    Two queries: the pipeline row and its jobs.
    """
    pipeline = Pipeline.objects.using(using).filter(pk=pipeline_id).first()
    if pipeline is None:
        return None
    jobs = list(
        IngestionJob.objects.using(using).filter(pipeline_id=pipeline_id).order_by("id").values(*SNAPSHOT_JOB_FIELDS)
    )
    verdict = rules.pipeline_verdict(job_views(jobs), expected_recalc=pipeline.expected_recalc)
    return {
        "id": str(pipeline.pk),
        "kind": pipeline.kind,
        "status": pipeline.status,
        "has_errors": pipeline.has_errors,
        "entity_type": pipeline.entity_type,
        "ingestion_method": pipeline.ingestion_method,
        "module_type_id": pipeline.module_type_id,
        "data_entry_type_id": pipeline.data_entry_type_id,
        "year": pipeline.year,
        "unit_id": pipeline.unit_id,
        "unit_code": pipeline.unit_code,
        "job_count": pipeline.job_count,
        "error_count": pipeline.error_count,
        "last_error": pipeline.last_error,
        "created_at": _iso(pipeline.created_at),
        "started_at": _iso(pipeline.started_at),
        "finished_at": _iso(pipeline.finished_at),
        "updated_at": _iso(pipeline.updated_at),
        "cancel_requested_at": _iso(pipeline.cancel_requested_at),
        "progress": {
            "phase": verdict.phase,
            "phases_total": verdict.phases_total,
            "phase_label": verdict.phase_label,
            "done": pipeline.is_terminal,
            "has_error": pipeline.has_errors,
            "status": pipeline.status,
        },
        "jobs": [{k: _iso(v) for k, v in job.items()} for job in jobs],
    }


def system_health(*, now: Any = None) -> dict[str, Any]:
    """Database reachable, live workers, last reconciler sweep (GET /api/v1/health).

    Healthy = the database answers and, among the registered processes, at least one worker
    and one reconciler heartbeated within three of their periods. Three queries at most.
    """
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from pipelines.choices import WorkerKind
    from pipelines.models import Worker

    now = now or timezone.now()
    worker_cutoff = now - timedelta(seconds=3 * max(settings.WORKER_HEARTBEAT_SECONDS, settings.WORKER_POLL_SECONDS))
    sweep_cutoff = now - timedelta(seconds=3 * settings.PIPELINE_RECONCILER_INTERVAL_SECONDS)
    rows = list(Worker.objects.values_list("kind", "last_heartbeat_at", "git_sha", "version"))
    live_workers = [r for r in rows if r[0] == WorkerKind.WORKER and r[1] >= worker_cutoff]
    sweeps = [r[1] for r in rows if r[0] == WorkerKind.RECONCILER]
    last_sweep = max(sweeps, default=None)
    versions = sorted({f"{r[3]}@{r[2]}" if r[2] else r[3] for r in live_workers})
    checks = {
        "database": True,
        "workers": len(live_workers) > 0,
        "reconciler": last_sweep is not None and last_sweep >= sweep_cutoff,
    }
    return {
        "healthy": all(checks.values()),
        "checks": checks,
        "live_workers": len(live_workers),
        "worker_versions": versions,
        "mixed_versions": len(versions) > 1,
        "last_reconciler_sweep": last_sweep.isoformat() if last_sweep else None,
        "checked_at": now.isoformat(),
    }
