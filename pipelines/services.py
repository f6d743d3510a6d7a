"""Writes of the pipelines engine. Keyword-only ``<noun>_<verb>`` functions.

Lock order, everywhere: advisory locks (see ``pipelines.locks``) → the pipeline row → job rows.
Every write that changes what an operator sees ends with ``pipeline_event_emit`` after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from pipelines import cancel_marks, locks, rules
from pipelines.choices import (
    ACTIVE_JOB_STATES,
    ACTIVE_PIPELINE_STATUSES,
    TERMINAL_PIPELINE_STATUSES,
    EntityType,
    IngestionMethod,
    JobResult,
    JobState,
    JobType,
    TargetType,
    WorkerKind,
)
from pipelines.db import DATA_ALIAS, is_postgres, jobs_notify
from pipelines.events import pipeline_event_emit
from pipelines.models import IngestionJob, Pipeline, Worker
from pipelines.selectors import job_views

logger = logging.getLogger(__name__)

# Scope columns of the partial unique indexes that deduplicate active jobs.
DEDUP_SCOPES: dict[str, tuple[str, ...]] = {
    JobType.AGGREGATION: ("module_type_id", "year"),
    JobType.EMISSION_RECALC: ("module_type_id", "data_entry_type_id", "year"),
}
DEDUP_CONSTRAINTS: dict[str, str] = {
    JobType.AGGREGATION: "job_one_active_aggregation",
    JobType.EMISSION_RECALC: "job_one_active_emission_recalc",
}


class ActiveJobConflict(Exception):
    """An active job already covers this scope (answered 409 by the API)."""

    def __init__(self, message: str, *, job: IngestionJob | None = None) -> None:
        super().__init__(message)
        self.job = job


class InvalidTransition(Exception):
    """The job or pipeline is not in a state that allows the requested operation (409)."""


def history_entry(message: str, *, kind: str, now: datetime | None = None, **extra: Any) -> dict[str, Any]:
    return {"ts": (now or timezone.now()).isoformat(), "message": message, "kind": kind, **extra}


def _actor(user: Any) -> str:
    if user is None:
        return "system"
    return str(getattr(user, "email", "") or getattr(user, "username", "") or f"user {user.pk}")


def pipeline_lock(pipeline_id: UUID, *, using: str = DATA_ALIAS) -> Pipeline:
    """Row-lock the pipeline (FOR NO KEY UPDATE: child inserts holding KEY SHARE are not blocked)."""
    return Pipeline.objects.using(using).select_for_update(no_key=True).get(pk=pipeline_id)


# --- Creating pipelines and chaining jobs -------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    entity_type: str = EntityType.MODULE_PER_YEAR
    ingestion_method: str = IngestionMethod.COMPUTED
    target_type: str | None = TargetType.DATA_ENTRIES
    module_type_id: int | None = None
    data_entry_type_id: int | None = None
    year: int | None = None
    unit_id: int | None = None
    unit_code: str = ""

    def columns(self) -> dict[str, Any]:
        """The ScopedModel columns of a pipeline or job."""
        return {
            "entity_type": self.entity_type,
            "target_type": self.target_type,
            "ingestion_method": self.ingestion_method,
            "module_type_id": self.module_type_id,
            "data_entry_type_id": self.data_entry_type_id,
            "year": self.year,
            "unit_id": self.unit_id,
        }


def pipeline_create(
    *,
    job_type: str,
    scope: Scope,
    config: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    created_by: Any = None,
) -> tuple[Pipeline, IngestionJob]:
    """Create a pipeline and its root job.

    1. Refuse (ActiveJobConflict) when the root type is deduplicated and an active job covers
       the same scope — a manual recalc while one runs is a 409, not a unique violation.
    2. Insert the pipeline row, then the job (the FK makes any other order fail).
    3. Wake the workers and publish the pipeline, both at commit.
    """
    now = timezone.now()
    with transaction.atomic():
        if job_type in DEDUP_SCOPES:
            _require_complete_scope(job_type, scope)
            existing = _active_duplicate(job_type, scope)
            if existing is not None:
                raise ActiveJobConflict(
                    f"A {job_type} for this scope is already active "
                    f"(job {existing.pk}, pipeline {existing.pipeline_id})",
                    job=existing,
                )
        pipeline = Pipeline.objects.create(
            kind=job_type,
            job_types=rules.job_types_mask([job_type]),
            **scope.columns(),
            unit_code=scope.unit_code,
            created_by=created_by if getattr(created_by, "pk", None) else None,
            created_at=now,
        )
        job_meta = {**(meta or {}), "config": config or {}}
        if created_by is not None and getattr(created_by, "pk", None):
            job_meta["created_by"] = {"user_id": created_by.pk, "name": _actor(created_by)}
        try:
            with transaction.atomic():
                job = _job_insert(
                    pipeline_id=pipeline.pk,
                    parent=None,
                    job_type=job_type,
                    scope=scope,
                    meta=job_meta,
                    created_note=f"Created by {_actor(created_by)}",
                    now=now,
                )
        except IntegrityError as exc:
            if job_type in DEDUP_CONSTRAINTS and dedup_violation(exc, job_type):
                raise ActiveJobConflict(f"A {job_type} for this scope is already active") from exc
            raise
        jobs_notify()
        pipeline_event_emit(pipeline.pk)
    return pipeline, job


def _job_insert(
    *,
    pipeline_id: UUID,
    parent: IngestionJob | None,
    job_type: str,
    scope: Scope,
    meta: dict[str, Any],
    created_note: str,
    now: datetime,
) -> IngestionJob:
    return IngestionJob.objects.create(
        pipeline_id=pipeline_id,
        parent=parent,
        job_type=job_type,
        **scope.columns(),
        meta=meta,
        max_attempts=settings.JOB_MAX_ATTEMPTS,
        status_message="Waiting for a worker",
        status_history=[history_entry(created_note, kind="created", now=now)],
        created_at=now,
    )


def _require_complete_scope(job_type: str, scope: Any) -> None:
    missing = [name for name in DEDUP_SCOPES[job_type] if getattr(scope, name) is None]
    if missing:
        # NULLs are distinct in a unique index: without a full scope the rule would not hold.
        raise ValueError(f"{job_type} needs {', '.join(missing)} to be set")


def _active_duplicate(job_type: str, scope: Any) -> IngestionJob | None:
    lookup = {name: getattr(scope, name) for name in DEDUP_SCOPES[job_type]}
    return IngestionJob.objects.filter(job_type=job_type, state__in=ACTIVE_JOB_STATES, **lookup).order_by("id").first()


def dedup_violation(exc: IntegrityError, job_type: str) -> bool:
    """True when EXC is the dedup index of JOB_TYPE (any other integrity error is a real bug)."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return bool(diag.constraint_name == DEDUP_CONSTRAINTS[job_type])
    text = str(exc)
    columns = ", ".join(f"pipelines_ingestionjob.{name}" for name in DEDUP_SCOPES[job_type])
    return "UNIQUE constraint failed" in text and text.rstrip().endswith(columns)


def job_chain(
    *,
    parent: IngestionJob,
    job_type: str,
    module_type_id: int | None,
    data_entry_type_id: int | None,
    year: int | None,
    config: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> IngestionJob | None:
    """Insert a child of PARENT inside the caller's (the parent's data) transaction.

    The child becomes visible, and claimable, only when the parent's data commits; a parent
    that fails or is cancelled therefore leaves no child. Deduplicated types (aggregation,
    emission_recalc) return None when an active job already covers the scope: that job reads
    after this transaction commits (the 1237/1236 locks see to it), so it covers our data.
    """
    if not connections[DATA_ALIAS].in_atomic_block:
        raise RuntimeError("job_chain must run inside the parent's data transaction")
    now = now or timezone.now()
    if job_type in rules.FAN_IN_TARGETS:
        # An active aggregation of the year either has not read yet or waits for this lock:
        # holding it, the dedup below may coalesce into it (and widen its scope) safely.
        locks.lock_year(year=year)
    scope = Scope(
        entity_type=EntityType.MODULE_PER_YEAR,
        ingestion_method=IngestionMethod.COMPUTED,
        target_type=TargetType.DATA_ENTRIES,
        module_type_id=module_type_id,
        data_entry_type_id=data_entry_type_id,
        year=year,
        unit_id=parent.unit_id,
    )
    if job_type in DEDUP_SCOPES:
        _require_complete_scope(job_type, scope)
        active = _active_duplicate(job_type, scope)
        if active is not None and _covered_by(active, config, parent=parent, now=now):
            return None
    try:
        with transaction.atomic():  # savepoint: a lost race must not poison the parent's transaction
            child = _job_insert(
                pipeline_id=parent.pipeline_id,
                parent=parent,
                job_type=job_type,
                scope=scope,
                meta={"config": config or {}},
                created_note=f"Chained by {parent.job_type} #{parent.pk}",
                now=now,
            )
    except IntegrityError as exc:
        if job_type in DEDUP_CONSTRAINTS and dedup_violation(exc, job_type):
            active = _active_duplicate(job_type, scope)
            if active is not None:
                _covered_by(active, config, parent=parent, now=now)
            return None
        raise
    jobs_notify()
    return child


def _covered_by(active: IngestionJob, config: dict[str, Any] | None, *, parent: IngestionJob, now: datetime) -> bool:
    """May PARENT's child coalesce into ACTIVE (same scope, maybe another pipeline's)?

    Deduplicated recalculations: yes (it reads after the caller commits, under lock 1237).
    Fan-in targets (aggregation): widen ACTIVE's config so that it also covers what PARENT
    changed — safe because a fan-in target reads its config under the year lock, which the
    caller holds (see ``job_chain``) — unless ACTIVE ended meanwhile (a failed run, say):
    then no (the caller chains its own).
    """
    if active.job_type not in rules.FAN_IN_TARGETS:
        return True
    row = IngestionJob.objects.select_for_update().filter(pk=active.pk, state__in=ACTIVE_JOB_STATES).first()
    if row is None:
        return False
    meta = dict(row.meta or {})
    current = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    widened = rules.fan_in_widen(current or {}, config or {})
    if widened == current:
        return True
    note = f"Scope widened: {parent.job_type} #{parent.pk} of pipeline {parent.pipeline_id} coalesced into this job"
    IngestionJob.objects.filter(pk=row.pk).update(
        meta={**meta, "config": widened},
        status_history=rules.history_append(row.status_history, history_entry(note, kind="coalesce", now=now)),
        updated_at=now,
    )
    return True


# --- Status --------------------------------------------------------------------------------------


def pipeline_status_refresh(*, pipeline_id: UUID, using: str = DATA_ALIAS) -> rules.PipelineVerdict | None:
    """Recompute a pipeline's status from its jobs and store it (never incremented).

    1. Lock the pipeline row, so concurrent refreshers serialise and the last write reflects
       the latest committed jobs.
    2. Read every job, apply ``rules.pipeline_verdict``, write the columns that changed.
    3. Publish the snapshot at commit when anything changed.
    """
    with transaction.atomic(using=using):
        try:
            pipeline = pipeline_lock(pipeline_id, using=using)
        except Pipeline.DoesNotExist:
            return None
        verdict = rules.pipeline_verdict(
            job_views(IngestionJob.objects.using(using).filter(pipeline_id=pipeline_id)),
            expected_recalc=pipeline.expected_recalc,
        )
        changes = {
            "status": verdict.status,
            "has_errors": verdict.has_errors,
            "job_count": verdict.job_count,
            "error_count": verdict.error_count,
            "started_at": verdict.started_at,
            "finished_at": verdict.finished_at,
            "last_error": verdict.last_error,
            "job_types": verdict.job_types,
            "search_text": verdict.search_text,
        }
        dirty = {k: v for k, v in changes.items() if getattr(pipeline, k) != v}
        if dirty:
            Pipeline.objects.using(using).filter(pk=pipeline_id).update(**dirty, updated_at=timezone.now())
            pipeline_event_emit(pipeline_id, using=using)
    return verdict


# --- Abort ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbortOutcome:
    applied: bool
    cancelled: int = 0  # jobs ended CANCELLED at once (not started yet)
    signalled: int = 0  # running jobs asked to stop


def pipeline_abort(*, pipeline_id: UUID, user: Any = None) -> AbortOutcome:
    """Abort a pipeline: nothing of it runs or lands afterwards.

    1. On SQLite, first raise a cancel mark for its running jobs: their open data transaction
       holds the only write lock, so the database flag could not be written until they end.
    2. Lock the pipeline row; refuse if it is terminal; stamp ``cancel_requested_at``.
    3. Running jobs get ``cancel_requested_at``: the handler stops at its next progress write
       and rolls back; its finish step re-checks the flags under lock, so it cannot commit.
    4. Jobs not started end CANCELLED now. Children committed by a parent that finished in the
       meantime are caught because step 4 runs after step 3 waited for that parent's row lock,
       and the claim query skips jobs of cancelled pipelines.
    """
    marked: list[int] = []
    if not is_postgres():
        running = IngestionJob.objects.filter(pipeline_id=pipeline_id, state=JobState.RUNNING)
        marked = list(running.values_list("id", flat=True))
        for job_id in marked:
            cancel_marks.raise_mark(job_id)
    now = timezone.now()
    reason = f"Aborted by {_actor(user)}"
    with transaction.atomic():
        pipeline = pipeline_lock(pipeline_id)
        if pipeline.is_terminal:
            # On SQLite a marked job may have stopped, and ended the pipeline, while we waited.
            return AbortOutcome(applied=bool(marked), signalled=len(marked))
        Pipeline.objects.filter(pk=pipeline_id).update(cancel_requested_at=now, updated_at=now)
        signalled = _jobs_signal_cancel(IngestionJob.objects.filter(pipeline_id=pipeline_id), reason, now)
        cancelled = _jobs_cancel_unstarted(IngestionJob.objects.filter(pipeline_id=pipeline_id), reason, now)
        transaction.on_commit(lambda: pipeline_status_refresh(pipeline_id=pipeline_id))
    return AbortOutcome(applied=True, cancelled=cancelled, signalled=signalled)


def job_abort(*, job_id: int, user: Any = None) -> AbortOutcome:
    """Abort one job (same rules as a pipeline abort, for that job only)."""
    job = IngestionJob.objects.get(pk=job_id)
    if job.state == JobState.RUNNING and not is_postgres():
        cancel_marks.raise_mark(job.pk)
    now = timezone.now()
    reason = f"Aborted by {_actor(user)}"
    with transaction.atomic():
        pipeline_lock(job.pipeline_id)
        one = IngestionJob.objects.filter(pk=job_id)
        signalled = _jobs_signal_cancel(one, reason, now)
        cancelled = _jobs_cancel_unstarted(one, reason, now)
        transaction.on_commit(lambda: pipeline_status_refresh(pipeline_id=job.pipeline_id))
    return AbortOutcome(applied=bool(signalled or cancelled), cancelled=cancelled, signalled=signalled)


def _jobs_signal_cancel(jobs: QuerySet[IngestionJob], reason: str, now: datetime) -> int:
    count = 0
    for job in jobs.select_for_update().filter(state=JobState.RUNNING, cancel_requested_at__isnull=True):
        history = rules.history_append(
            job.status_history, history_entry(f"{reason}; asking the worker to stop", kind="operator", now=now)
        )
        count += IngestionJob.objects.filter(pk=job.pk, state=JobState.RUNNING).update(
            cancel_requested_at=now, status_history=history, updated_at=now
        )
    return count


def _jobs_cancel_unstarted(jobs: QuerySet[IngestionJob], reason: str, now: datetime) -> int:
    count = 0
    for job in jobs.select_for_update().filter(state=JobState.NOT_STARTED):
        message = f"{reason} before it started"
        history = rules.history_append(
            job.status_history,
            history_entry(message, kind="terminal", now=now, state=JobState.FINISHED, result=JobResult.CANCELLED),
        )
        count += IngestionJob.objects.filter(pk=job.pk, state=JobState.NOT_STARTED).update(
            state=JobState.FINISHED,
            result=JobResult.CANCELLED,
            status_message=message,
            status_history=history,
            cancel_requested_at=now,
            finished_at=now,
            updated_at=now,
        )
    return count


# --- Retry and recover --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryOutcome:
    retried: list[int]
    skipped: dict[int, str]


def pipeline_retry_failed(*, pipeline_id: UUID, user: Any = None) -> RetryOutcome:
    """Re-run the failed (ERROR) and cancelled jobs of a terminal pipeline, and nothing else."""
    with transaction.atomic():
        pipeline = pipeline_lock(pipeline_id)
        if not pipeline.is_terminal:
            raise InvalidTransition(
                f"pipeline {pipeline_id} is {pipeline.status}: only a finished pipeline can be retried"
            )
        failed = list(
            IngestionJob.objects.select_for_update()
            .filter(pipeline_id=pipeline_id, state=JobState.FINISHED, result__in=(JobResult.ERROR, JobResult.CANCELLED))
            .order_by("id")
        )
        outcome = _jobs_requeue(failed, reason=f"Retry requested by {_actor(user)}")
        if outcome.retried:
            Pipeline.objects.filter(pk=pipeline_id).update(cancel_requested_at=None, updated_at=timezone.now())
            transaction.on_commit(lambda: pipeline_status_refresh(pipeline_id=pipeline_id))
    return outcome


def job_retry(*, job_id: int, user: Any = None) -> RetryOutcome:
    """Re-run one job that ended in ERROR or CANCELLED (a new attempt in the same pipeline)."""
    job = IngestionJob.objects.get(pk=job_id)
    with transaction.atomic():
        pipeline_lock(job.pipeline_id)
        job = IngestionJob.objects.select_for_update().get(pk=job_id)
        if job.state != JobState.FINISHED or job.result not in (JobResult.ERROR, JobResult.CANCELLED):
            raise InvalidTransition(
                f"job {job_id} is {job.state}/{job.result or '-'}: only a failed or cancelled job can be retried"
            )
        outcome = _jobs_requeue([job], reason=f"Retry requested by {_actor(user)}")
        if outcome.retried:
            Pipeline.objects.filter(pk=job.pipeline_id).update(cancel_requested_at=None, updated_at=timezone.now())
            transaction.on_commit(lambda: pipeline_status_refresh(pipeline_id=job.pipeline_id))
    return outcome


def _jobs_requeue(jobs: list[IngestionJob], *, reason: str) -> RetryOutcome:
    now = timezone.now()
    retried: list[int] = []
    skipped: dict[int, str] = {}
    for job in jobs:
        history = rules.history_append(job.status_history, history_entry(reason, kind="operator", now=now))
        try:
            with transaction.atomic():
                IngestionJob.objects.filter(pk=job.pk).update(
                    state=JobState.NOT_STARTED,
                    result=None,
                    finished_at=None,
                    attempts=0,
                    cancel_requested_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    closed_fan_in=False,
                    status_message=reason,
                    status_history=history,
                    updated_at=now,
                )
                if job.job_type in rules.FAN_IN:
                    # The group must fan in again once this member finishes.
                    IngestionJob.objects.filter(
                        pipeline_id=job.pipeline_id, parent_id=job.parent_id, job_type=job.job_type
                    ).update(closed_fan_in=False)
        except IntegrityError as exc:
            if job.job_type in DEDUP_CONSTRAINTS and dedup_violation(exc, job.job_type):
                skipped[job.pk] = "an active job of the same scope exists"
                continue
            raise
        cancel_marks.clear_mark(job.pk)
        retried.append(job.pk)
    if retried:
        jobs_notify()
    return RetryOutcome(retried=retried, skipped=skipped)


def job_recover(*, job_id: int, user: Any = None, now: datetime | None = None) -> IngestionJob:
    """Give a stale RUNNING job back to the queue with a fresh attempt budget.

    Only a job whose lease has expired qualifies: a live worker's job is never taken from it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        job = IngestionJob.objects.get(pk=job_id)
        pipeline_lock(job.pipeline_id)
        job = IngestionJob.objects.select_for_update().get(pk=job_id)
        if job.state != JobState.RUNNING or job.lease_expires_at is None or job.lease_expires_at >= now:
            raise InvalidTransition(
                f"job {job_id} is not a stale running job (state {job.state}, lease {job.lease_expires_at})"
            )
        message = (
            f"Recovered by {_actor(user)}: lease of {job.lease_owner} expired at {job.lease_expires_at.isoformat()}"
        )
        IngestionJob.objects.filter(pk=job_id, state=JobState.RUNNING).update(
            state=JobState.NOT_STARTED,
            lease_owner=None,
            lease_expires_at=None,
            attempts=0,
            status_message=message,
            status_history=rules.history_append(job.status_history, history_entry(message, kind="operator", now=now)),
            updated_at=now,
        )
        jobs_notify()
        pipeline_event_emit(job.pipeline_id)
    job.refresh_from_db()
    return job


# --- Workers -------------------------------------------------------------------------------------


def worker_register(*, worker_id: str, hostname: str, pid: int, kind: str = WorkerKind.WORKER) -> Worker:
    now = timezone.now()
    worker, _ = Worker.objects.update_or_create(
        pk=worker_id,
        defaults={
            "kind": kind,
            "hostname": hostname,
            "pid": pid,
            "git_sha": settings.GIT_SHA or "",
            "version": settings.APP_VERSION or "",
            "started_at": now,
            "last_heartbeat_at": now,
            "current_job": None,
        },
    )
    return worker


def worker_heartbeat(*, worker_id: str, current_job_id: int | None, using: str = DATA_ALIAS) -> bool:
    """Stamp the worker's heartbeat; False when its row is gone (pruned) and must be re-registered."""
    workers = Worker.objects.using(using).filter(pk=worker_id)
    return bool(workers.update(last_heartbeat_at=timezone.now(), current_job_id=current_job_id))


def worker_unregister(*, worker_id: str) -> None:
    Worker.objects.filter(pk=worker_id).delete()


def workers_prune(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Forget workers that stopped heartbeating long ago (crashed without a clean exit)."""
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = Worker.objects.filter(last_heartbeat_at__lt=cutoff).delete()
    return deleted


# --- Bulk operations -----------------------------------------------------------------------------

BULK_ACTIONS = ("abort", "retry")
# A bulk call is one HTTP request: beyond this many pipelines, narrow the filter.
BULK_LIMIT = 5000


class BulkTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class BulkOutcome:
    matched: int
    applied: int
    skipped: int
    applied_ids: list[str]


def pipelines_bulk_apply(*, action: str, pipelines: QuerySet[Pipeline], user: Any = None) -> BulkOutcome:
    """Abort or retry every pipeline of PIPELINES (already filtered and scoped by the caller).

    1. Count the matches; refuse more than BULK_LIMIT (BulkTooLarge) before changing anything.
    2. Keep the ones the action can apply to — active pipelines for abort, terminal ones with
       a failed or cancelled job for retry — and apply it to each in its own transaction, so
       one pipeline that changed meanwhile (InvalidTransition) only counts as skipped.
    """
    if action not in BULK_ACTIONS:
        raise ValueError(f"action: must be one of {', '.join(BULK_ACTIONS)}")
    matched = pipelines.count()
    if matched > BULK_LIMIT:
        raise BulkTooLarge(f"filters match {matched} pipelines; at most {BULK_LIMIT} per bulk call")
    if action == "abort":
        eligible = pipelines.filter(status__in=ACTIVE_PIPELINE_STATUSES)
    else:
        failed = IngestionJob.objects.filter(
            pipeline_id=OuterRef("pk"), state=JobState.FINISHED, result__in=(JobResult.ERROR, JobResult.CANCELLED)
        )
        eligible = pipelines.filter(status__in=sorted(TERMINAL_PIPELINE_STATUSES)).filter(Exists(failed))
    applied: list[str] = []
    for pipeline_id in eligible.order_by("created_at").values_list("pk", flat=True):
        try:
            if action == "abort":
                done = pipeline_abort(pipeline_id=pipeline_id, user=user).applied
            else:
                done = bool(pipeline_retry_failed(pipeline_id=pipeline_id, user=user).retried)
        except InvalidTransition:
            done = False
        if done:
            applied.append(str(pipeline_id))
    return BulkOutcome(matched=matched, applied=len(applied), skipped=matched - len(applied), applied_ids=applied)
