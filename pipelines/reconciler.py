"""The reconciler's sweep (``manage.py reconcile_pipelines``, SPEC §5.5).

Idempotent, safe to run in several processes at once. Every query starts from a partial
index over *active* rows (RUNNING jobs, NOT_STARTED jobs, non-terminal pipelines), so the
cost of a sweep follows the work in flight, not the history. Every healing is logged and
appended to the job's history with its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pipelines import locks, rules
from pipelines.choices import ACTIVE_PIPELINE_STATUSES, JobResult, JobState
from pipelines.db import jobs_notify
from pipelines.models import IngestionJob, Pipeline
from pipelines.runner import fan_in_settle, job_settle
from pipelines.selectors import JOB_VIEW_FIELDS, job_views
from pipelines.services import history_entry, pipeline_lock, pipeline_status_refresh, workers_prune

logger = logging.getLogger(__name__)

BATCH = 500
UNCLAIMED_AFTER = timedelta(seconds=30)
FORGET_WORKERS_AFTER = timedelta(hours=1)


@dataclass
class SweepReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    unclaimed: list[int] = field(default_factory=list)
    fan_ins: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    @property
    def healed(self) -> int:
        return sum(len(v) for v in (self.requeued, self.failed, self.cancelled, self.fan_ins, self.statuses))


def pipelines_reconcile(*, now: datetime | None = None) -> SweepReport:
    """One sweep.

    1. Stale leases (RUNNING, lease expired): requeue while attempts remain, else FINISHED/
       ERROR saying why; a stale job that was being aborted ends CANCELLED.
    2. Aborts not honoured within a lease: force FINISHED/CANCELLED (the handler's own
       settle then fails its compare-and-set and rolls back).
    3. NOT_STARTED jobs nobody claimed for a while: wake the workers, note it once.
    4. Non-terminal pipelines: chain a missing fan-in (aggregation) and rewrite any status
       that drifted from what the jobs say.
    """
    now = now or timezone.now()
    report = SweepReport()
    _heal_stale_leases(now, report)
    _heal_unhonoured_aborts(now, report)
    _note_unclaimed(now, report)
    _heal_active_pipelines(report)
    workers_prune(older_than=FORGET_WORKERS_AFTER, now=now)
    if report.healed:
        logger.info(
            "reconciler: requeued %s, failed %s, cancelled %s, fan-ins %s, statuses %s",
            report.requeued,
            report.failed,
            report.cancelled,
            report.fan_ins,
            report.statuses,
        )
    return report


def _heal_stale_leases(now: datetime, report: SweepReport) -> None:
    stale = list(
        IngestionJob.objects.filter(state=JobState.RUNNING, lease_expires_at__lt=now)
        .order_by("lease_expires_at")
        .values_list("id", "lease_owner", "lease_expires_at", "attempts", "max_attempts", "cancel_requested_at")[:BATCH]
    )
    for job_id, owner, expired_at, attempts, max_attempts, cancel_at in stale:
        assert expired_at is not None  # filtered on lease_expires_at < now
        when = expired_at.isoformat()
        if cancel_at is not None:
            message = f"Cancelled: {owner} stopped renewing its lease (expired {when}) while an abort was pending"
            if _settle_stale(job_id, owner, JobResult.CANCELLED, message, now):
                report.cancelled.append(job_id)
        elif attempts < max_attempts:
            if _requeue_stale(job_id, owner, now, attempt=attempts, max_attempts=max_attempts, expired_at=expired_at):
                report.requeued.append(job_id)
        else:
            message = (
                f"{owner} stopped renewing its lease (expired {when}) during attempt {attempts} of {max_attempts}; "
                "giving up. Fix the cause (see the worker's log), then retry the job."
            )
            if _settle_stale(job_id, owner, JobResult.ERROR, message, now):
                report.failed.append(job_id)


def _settle_stale(job_id: int, owner: str | None, result: str, message: str, now: datetime) -> bool:
    with transaction.atomic():
        return job_settle(
            job_id=job_id,
            owner=owner,
            result=result,
            message=message,
            refuse_if_cancelled=False,
            stale_before=now,
            history_kind="heal",
        )


def _requeue_stale(
    job_id: int, owner: str | None, now: datetime, *, attempt: int, max_attempts: int, expired_at: datetime
) -> bool:
    message = (
        f"Requeued by the reconciler: {owner} stopped renewing its lease (expired {expired_at.isoformat()}) "
        f"during attempt {attempt} of {max_attempts}"
    )
    with transaction.atomic():
        job = IngestionJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state != JobState.RUNNING or job.lease_owner != owner:
            return False
        if job.lease_expires_at is None or job.lease_expires_at >= now:
            return False
        IngestionJob.objects.filter(pk=job_id).update(
            state=JobState.NOT_STARTED,
            lease_owner=None,
            lease_expires_at=None,
            status_message=message,
            status_history=rules.history_append(job.status_history, history_entry(message, kind="heal", now=now)),
            updated_at=now,
        )
        jobs_notify()
    logger.warning("job %s requeued: %s", job_id, message)
    return True


def _heal_unhonoured_aborts(now: datetime, report: SweepReport) -> None:
    cutoff = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    overdue = list(
        IngestionJob.objects.filter(state=JobState.RUNNING, cancel_requested_at__lt=cutoff)
        .order_by("cancel_requested_at")
        .values_list("id", "lease_owner", "cancel_requested_at")[:BATCH]
    )
    for job_id, owner, requested_at in overdue:
        assert requested_at is not None  # filtered on cancel_requested_at < cutoff
        message = (
            f"Cancelled by the reconciler: {owner} did not stop within {settings.JOB_LEASE_SECONDS}s "
            f"of the abort requested at {requested_at.isoformat()}"
        )
        with transaction.atomic():
            if job_settle(
                job_id=job_id,
                owner=owner,
                result=JobResult.CANCELLED,
                message=message,
                refuse_if_cancelled=False,
                history_kind="heal",
            ):
                report.cancelled.append(job_id)


def _note_unclaimed(now: datetime, report: SweepReport) -> None:
    cutoff = now - max(UNCLAIMED_AFTER, timedelta(seconds=5 * settings.WORKER_POLL_SECONDS))
    waiting = list(
        IngestionJob.objects.filter(state=JobState.NOT_STARTED, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", "created_at", "status_history")[:BATCH]
    )
    if not waiting:
        return
    jobs_notify()  # a lost wake-up is the cheapest cause to rule out
    for job_id, created_at, history in waiting:
        if any(entry.get("kind") == "unclaimed" for entry in history or []):
            continue
        message = f"Still waiting for a worker since {created_at.isoformat()}: is any worker running?"
        # updated_at by hand (update() skips auto_now): the live-event relay tails it.
        IngestionJob.objects.filter(pk=job_id, state=JobState.NOT_STARTED).update(
            status_history=rules.history_append(history or [], history_entry(message, kind="unclaimed", now=now)),
            updated_at=now,
        )
        report.unclaimed.append(job_id)


def _heal_active_pipelines(report: SweepReport) -> None:
    active = list(
        Pipeline.objects.filter(status__in=ACTIVE_PIPELINE_STATUSES)
        .order_by("created_at")
        .values_list("id", "status")[:BATCH]
    )
    if not active:
        return
    ids = [pipeline_id for pipeline_id, _ in active]
    by_pipeline: dict[UUID, list[dict[str, Any]]] = {pipeline_id: [] for pipeline_id in ids}
    for row in IngestionJob.objects.filter(pipeline_id__in=ids).values("pipeline_id", *JOB_VIEW_FIELDS):
        by_pipeline[row["pipeline_id"]].append(row)
    for pipeline_id, status in active:
        views = job_views(by_pipeline[pipeline_id])
        if any(rules.fan_in_open(group) for group in rules.fan_in_groups(views).values()):
            report.fan_ins.extend(_close_fan_ins(pipeline_id))
        verdict = rules.pipeline_verdict(views)
        if verdict.status != status or report.fan_ins:
            refreshed = pipeline_status_refresh(pipeline_id=pipeline_id)
            if refreshed is not None and refreshed.status != status:
                report.statuses.append(f"{pipeline_id}: {status} → {refreshed.status}")


def _close_fan_ins(pipeline_id: UUID) -> list[int]:
    """Chain the aggregation of every group that finished without one (a crash between a
    sibling's data commit and its fan-in cannot happen, but a failed settle can)."""
    closed: list[int] = []
    year = Pipeline.objects.filter(pk=pipeline_id).values_list("year", flat=True).first()
    with transaction.atomic():
        locks.lock_year(year=year)  # lock order: year, then pipeline row, then jobs
        pipeline = pipeline_lock(pipeline_id)
        rows = list(IngestionJob.objects.filter(pipeline_id=pipeline.pk).select_for_update())
        for group in rules.fan_in_groups(job_views(IngestionJob.objects.filter(pipeline_id=pipeline.pk))).values():
            if not rules.fan_in_open(group):
                continue
            last = max((r for r in rows if r.pk in {j.id for j in group}), key=lambda r: r.finished_at or r.created_at)
            now = timezone.now()
            fan_in_settle(last, last.result or JobResult.ERROR, (last.meta or {}).get("fan_in") or {}, now)
            message = "Reconciler: every sibling had finished but none had chained the aggregation; chained it"
            IngestionJob.objects.filter(pk=last.pk).update(
                closed_fan_in=True,
                status_history=rules.history_append(last.status_history, history_entry(message, kind="heal", now=now)),
                updated_at=now,
            )
            closed.append(last.pk)
    return closed
