"""The runner: claim a job, run its handler, settle the outcome (SPEC §5.4).

Connections. The handler's domain writes run in ONE transaction on the default connection.
Job-state writes made meanwhile (progress, history) go through ``state_alias()``: on
PostgreSQL a second connection in autocommit, so a data rollback never loses them; the lease
heartbeat runs in its own thread, on its own connection.

Settling. A successful job is marked FINISHED *inside* its data transaction, by a
compare-and-set on (id, lease owner, RUNNING, not cancelled) under a row lock: the data and
the terminal state commit together or not at all. So a crash can never leave committed data
under a job that will run again, and an abort or a takeover that wins the row lock makes the
CAS fail and the data roll back. A failed, cancelled or released job is settled after the
rollback, in a transaction of its own, with the same CAS on (id, lease owner, RUNNING).

Fan-in. When an emission_recalc settles, it takes the year lock (1236) and the pipeline row
lock, then looks at its siblings' committed states: the one that finds them all FINISHED
chains the single aggregation (or requeues the group's earlier one). Siblings serialise on
the pipeline row, so exactly one of them sees the full set.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    Error,
    IntegrityError,
    InterfaceError,
    close_old_connections,
    connections,
    transaction,
)
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from pipelines import cancel_marks, locks, registry, rules
from pipelines.choices import JobResult, JobState, JobType
from pipelines.db import DATA_ALIAS, is_postgres, jobs_notify, state_alias
from pipelines.events import pipeline_event_emit
from pipelines.models import IngestionJob, Pipeline
from pipelines.registry import HandlerResult, JobCancelled, LeaseLost, ReleaseRequested
from pipelines.services import (
    DEDUP_CONSTRAINTS,
    dedup_violation,
    history_entry,
    job_chain,
    pipeline_lock,
    pipeline_status_refresh,
    worker_heartbeat,
)

logger = logging.getLogger(__name__)

PROGRESS_EVENT_INTERVAL = 0.25  # seconds between live pushes of one job's progress
SETTLE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # backoff when the database is away at settle time


def _lease_delta() -> timedelta:
    return timedelta(seconds=settings.JOB_LEASE_SECONDS)


# --- Claim ---------------------------------------------------------------------------------------


def job_claim(*, worker_id: str, now: datetime | None = None) -> IngestionJob | None:
    """Claim the oldest claimable job for WORKER_ID, or return None.

    1. PostgreSQL: SELECT the lowest-id NOT_STARTED job FOR UPDATE SKIP LOCKED (concurrent
       workers never wait on, nor take, the same row); SQLite: the same SELECT under the
       single write lock.
    2. Conditional UPDATE (… WHERE state = NOT_STARTED) to RUNNING with this worker's lease,
       attempts + 1, started_at kept from the first claim; the row count arbitrates.
    3. After commit, move the pipeline to RUNNING and publish it.
    Jobs of an aborted pipeline and jobs whose ``run_after`` is in the future are skipped.
    """
    now = now or timezone.now()
    with transaction.atomic():
        candidate = (
            IngestionJob.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=JobState.NOT_STARTED, cancel_requested_at__isnull=True)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .filter(pipeline__cancel_requested_at__isnull=True)
            .order_by("id")
            .only("id", "status_history", "attempts", "max_attempts")
            .first()
        )
        if candidate is None:
            return None
        attempt = candidate.attempts + 1
        message = f"Claimed by {worker_id} (attempt {attempt} of {candidate.max_attempts})"
        claimed = IngestionJob.objects.filter(pk=candidate.pk, state=JobState.NOT_STARTED).update(
            state=JobState.RUNNING,
            lease_owner=worker_id,
            lease_expires_at=now + _lease_delta(),
            attempts=attempt,
            started_at=Coalesce("started_at", now),
            status_message=message,
            status_history=rules.history_append(
                candidate.status_history, history_entry(message, kind="claim", now=now, state=JobState.RUNNING)
            ),
            updated_at=now,
        )
        if not claimed:
            return None
    job = IngestionJob.objects.get(pk=candidate.pk)
    cancel_marks.clear_mark(job.pk)
    _refresh_quietly(job)
    return job


# --- Running -------------------------------------------------------------------------------------


@dataclass
class StopSignal:
    """Set by the worker's signal handler: finish if possible within the lease, else release."""

    requested_at: float | None = None

    def request(self) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def release_due(self) -> bool:
        return self.requested_at is not None and time.monotonic() - self.requested_at >= settings.JOB_LEASE_SECONDS


@dataclass
class JobRun:
    """The handler's view of its job (implements ``registry.JobContext``)."""

    job: IngestionJob
    worker_id: str
    meta: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    chained: list[int] = field(default_factory=list)
    _last_push: float = 0.0

    def __post_init__(self) -> None:
        self.meta = dict(self.job.meta or {})
        self.history = [dict(e) for e in (self.job.status_history or [])]

    @property
    def config(self) -> dict[str, Any]:
        config = self.meta.get("config")
        return dict(config) if isinstance(config, dict) else {}

    def check(self) -> None:
        """Raise if the job must stop: abort requested, lease lost, or worker shutting down."""
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job.pk}: lease lost")
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job.pk}: cancellation requested")
        if self.release.is_set():
            raise ReleaseRequested(f"job {self.job.pk}: worker shutting down")

    def progress(
        self,
        message: str,
        *,
        processed: int | None = None,
        total: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Record progress (compare-and-set on the job's lease) and honour cancellation."""
        self.check()
        now = timezone.now()
        if meta:
            self.meta.update(meta)
        if processed is not None:
            self.meta["progress"] = {"processed": processed, "total": total}
        self.history = rules.history_append(self.history, history_entry(message, kind="progress", now=now))
        alias = state_alias()
        written = (
            IngestionJob.objects.using(alias)
            .filter(
                pk=self.job.pk, lease_owner=self.worker_id, state=JobState.RUNNING, cancel_requested_at__isnull=True
            )
            .update(status_message=message, status_history=self.history, meta=self.meta, updated_at=now)
        )
        if not written:
            row = IngestionJob.objects.using(alias).filter(pk=self.job.pk).values("state", "lease_owner").first()
            if row and row["state"] == JobState.RUNNING and row["lease_owner"] == self.worker_id:
                self.cancelled.set()
            else:
                self.lost.set()
            self.check()
        if alias != DATA_ALIAS and time.monotonic() - self._last_push >= PROGRESS_EVENT_INTERVAL:
            self._last_push = time.monotonic()
            pipeline_event_emit(self.job.pipeline_id, using=alias)

    def chain(
        self,
        job_type: str,
        *,
        data_entry_type_id: int | None = None,
        module_type_id: int | None = None,
        year: int | None = None,
        config: dict[str, Any] | None = None,
    ) -> IngestionJob | None:
        """Chain a child in this job's data transaction; module and year default to the job's."""
        child = job_chain(
            parent=self.job,
            job_type=job_type,
            module_type_id=self.job.module_type_id if module_type_id is None else module_type_id,
            data_entry_type_id=data_entry_type_id,
            year=self.job.year if year is None else year,
            config=config,
        )
        if child is not None:
            self.chained.append(child.pk)
        return child


class Heartbeat(threading.Thread):
    """Renews the lease every WORKER_HEARTBEAT_SECONDS and watches for cancel / takeover / stop.

    A renewal that matches no row means the lease is gone (reconciler or another worker took
    the job): the handler is told at its next progress write. On PostgreSQL, failing to renew
    for a whole lease means another worker may take over, so the job is treated as lost too.
    On SQLite the running job holds the only write lock, so nobody can take it; the thread
    only watches cancel marks and the shutdown deadline there.
    """

    def __init__(self, run: JobRun, stop: StopSignal | None) -> None:
        super().__init__(name=f"heartbeat-{run.job.pk}", daemon=True)
        self.run_ = run
        self.stop_signal = stop
        self.finished = threading.Event()
        self.postgres = is_postgres()

    def run(self) -> None:
        failures = 0
        interval = settings.WORKER_HEARTBEAT_SECONDS
        tick = min(interval, 1.0)
        next_renewal = time.monotonic() + interval
        try:
            while not self.finished.wait(tick):
                job_id = self.run_.job.pk
                if cancel_marks.is_raised(job_id):
                    self.run_.cancelled.set()
                if self.stop_signal is not None and self.stop_signal.release_due():
                    self.run_.release.set()
                if not self.postgres or time.monotonic() < next_renewal:
                    continue
                next_renewal = time.monotonic() + interval
                try:
                    self._renew()
                    failures = 0
                except (DatabaseError, InterfaceError):
                    failures += 1
                    logger.warning("heartbeat of job %s failed (%s in a row)", job_id, failures, exc_info=True)
                    connections[DATA_ALIAS].close()
                    if failures * interval >= settings.JOB_LEASE_SECONDS:
                        self.run_.lost.set()
        finally:
            connections.close_all()

    def _renew(self) -> None:
        run = self.run_
        now = timezone.now()
        renewed = IngestionJob.objects.filter(pk=run.job.pk, lease_owner=run.worker_id, state=JobState.RUNNING).update(
            lease_expires_at=now + _lease_delta()
        )
        if not renewed:
            run.lost.set()
            return
        if IngestionJob.objects.filter(pk=run.job.pk, cancel_requested_at__isnull=False).exists():
            run.cancelled.set()
        worker_heartbeat(worker_id=run.worker_id, current_job_id=run.job.pk)

    def stop(self) -> None:
        self.finished.set()
        self.join(timeout=10)


def job_run(*, job: IngestionJob, worker_id: str, stop: StopSignal | None = None) -> str | None:
    """Run a claimed job to its end. Returns the result written, or None when nothing was.

    1. Look up the handler (an unknown type ends the job FINISHED/ERROR, saying so).
    2. Start the heartbeat; open the data transaction; run the handler; settle it as FINISHED
       inside that transaction (CAS), fanning in if it is the last recalc sibling.
    3. On cancellation: roll back, settle CANCELLED. On a lost lease: roll back, write nothing.
       On shutdown: roll back, give the job back to the queue. On a lost database connection
       (PostgreSQL terminated or restarted): the server rolled the data back; give the job
       back to the queue, or end it ERROR saying so after its last attempt. On any other
       exception: roll back, settle ERROR with the exception's text (the fan-in still happens
       for siblings).
    4. Refresh the pipeline's status in its own transaction; a failure there is left to the
       reconciler, because the job's own state is already committed.
    """
    run = JobRun(job=job, worker_id=worker_id)
    result: str | None = None
    try:
        handler = registry.handler_for(job.job_type)
    except registry.UnknownJobType as exc:
        result = _settle_after_rollback(run, JobResult.ERROR, str(exc), error=exc)
        _refresh_quietly(job)
        return result
    heartbeat = Heartbeat(run, stop)
    heartbeat.start()
    try:
        try:
            with transaction.atomic(using=DATA_ALIAS, durable=True):
                run.check()
                if job.job_type in rules.FAN_IN_TARGETS:
                    _fan_in_target_config(run)
                outcome = handler(run) or HandlerResult()
                run.check()
                if outcome.result == JobResult.ERROR:
                    # A job that ends in ERROR changes nothing: no data, no children.
                    raise _ReportedError(outcome)
                _settle_success(run, outcome)
            result = outcome.result
        except _ReportedError as reported:
            run.meta.update(reported.outcome.meta)
            result = _settle_after_rollback(run, JobResult.ERROR, reported.outcome.message)
        except JobCancelled:
            result = _settle_after_rollback(run, JobResult.CANCELLED, _cancel_message(job.pk))
        except LeaseLost:
            logger.warning("job %s: lease lost; another worker or the reconciler owns it now", job.pk)
        except ReleaseRequested:
            _release(run)
        except Exception as exc:
            if connection_lost(exc):
                # Not the job's fault: the attempt is lost and the job goes back to the queue.
                logger.warning("job %s (%s): the database connection was lost", job.pk, job.job_type, exc_info=True)
                result = _requeue_after_connection_loss(run, exc)
            else:
                logger.exception("job %s (%s) failed", job.pk, job.job_type)
                result = _settle_after_rollback(run, JobResult.ERROR, _error_message(exc), error=exc)
    finally:
        heartbeat.stop()
    _refresh_quietly(job)
    return result


def _fan_in_target_config(run: JobRun) -> None:
    """A fan-in target (aggregation) takes the year lock, then reads its config as it is now:
    a group that coalesced into it while it was queued (or waiting for this lock) may have
    widened it since the claim read the row (``services.job_chain``)."""
    locks.lock_year(year=run.job.year)
    meta = IngestionJob.objects.filter(pk=run.job.pk).values_list("meta", flat=True).first() or {}
    if isinstance(meta.get("config"), dict):
        run.meta["config"] = meta["config"]


class _ReportedError(Exception):
    """The handler returned an ERROR result: roll its transaction back like a raise."""

    def __init__(self, outcome: HandlerResult) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _refresh_quietly(job: IngestionJob) -> None:
    try:
        close_old_connections()
        pipeline_status_refresh(pipeline_id=job.pipeline_id)
    except DatabaseError:
        logger.warning(
            "status refresh of pipeline %s failed; the reconciler will heal it", job.pipeline_id, exc_info=True
        )


def _error_message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, DatabaseError):
        return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text or exc.__class__.__name__


def _cancel_message(job_id: int) -> str:
    last = IngestionJob.objects.filter(pk=job_id).values_list("status_history", flat=True).first() or []
    for entry in reversed(last):
        if entry.get("kind") == "operator" and str(entry.get("message", "")).startswith("Aborted"):
            return str(entry["message"]).split(";")[0]
    return "Cancelled"


# --- Settling ------------------------------------------------------------------------------------


def _merge_history(stored: list[dict[str, Any]], kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Union of the stored history and the runner's in-memory copy (a rollback may have lost
    the stored progress entries on SQLite; an abort note may exist only in the stored one)."""
    seen = {(e.get("ts"), e.get("message")) for e in kept}
    merged = list(kept) + [e for e in stored if (e.get("ts"), e.get("message")) not in seen]
    merged.sort(key=lambda e: str(e.get("ts", "")))
    return merged[-rules.HISTORY_LIMIT :]


def _settle_success(run: JobRun, outcome: HandlerResult) -> None:
    """Inside the data transaction: CAS the job to FINISHED with the handler's result."""
    meta = {**run.meta, **outcome.meta}
    if outcome.fan_in is not None:
        meta["fan_in"] = outcome.fan_in
    result = outcome.result if outcome.result in JobResult.values else JobResult.ERROR
    settled = job_settle(
        job_id=run.job.pk,
        owner=run.worker_id,
        result=result,
        message=rules.final_message(result, outcome.message, meta),
        meta=meta,
        history=run.history,
        refuse_if_cancelled=True,
    )
    if not settled:
        raise LeaseLost(f"job {run.job.pk}: preempted before it could finish")


def _settle_after_rollback(run: JobRun, result: str, message: str, *, error: BaseException | None = None) -> str | None:
    """After the data rollback: settle RESULT in a transaction of its own, retrying while the
    database is unreachable (then give up: the lease expires and the reconciler takes over)."""
    meta = dict(run.meta)
    if error is not None:
        meta["error"] = {
            "type": error.__class__.__name__,
            "message": str(error)[:2000],
            "traceback": "".join(traceback.format_exception(error)[-12:])[-4000:],
        }
    for delay in (0.0, *SETTLE_RETRY_DELAYS):
        if delay:
            time.sleep(delay)
        try:
            connections[DATA_ALIAS].close_if_unusable_or_obsolete()
            with transaction.atomic(using=DATA_ALIAS):
                settled = job_settle(
                    job_id=run.job.pk,
                    owner=run.worker_id,
                    result=result,
                    message=rules.final_message(result, message, meta),
                    meta=meta,
                    history=run.history,
                    refuse_if_cancelled=False,
                )
            return result if settled else None
        except DatabaseError:
            logger.warning("job %s: could not write %s yet", run.job.pk, result, exc_info=True)
            connections[DATA_ALIAS].close()
    logger.error("job %s: giving up writing %s; the reconciler will settle it after the lease", run.job.pk, result)
    return None


def _release(run: JobRun, message: str | None = None) -> bool:
    """Give the job back to the queue (worker shutting down, job not done within the lease;
    or its database connection lost). Compare-and-set on (id, lease owner, RUNNING): a job
    that finished or was taken over meanwhile is left alone. A job whose abort is pending
    ends CANCELLED instead (queued again it could never be claimed). Returns True if settled."""
    now = timezone.now()
    message = message or f"Released by {run.worker_id}: worker shutting down before the job could finish"
    mine = IngestionJob.objects.filter(pk=run.job.pk, lease_owner=run.worker_id, state=JobState.RUNNING)
    if mine.filter(Q(cancel_requested_at__isnull=False) | Q(pipeline__cancel_requested_at__isnull=False)).exists():
        return _settle_after_rollback(run, JobResult.CANCELLED, _cancel_message(run.job.pk)) is not None
    with transaction.atomic():
        released = mine.filter(cancel_requested_at__isnull=True).update(
            state=JobState.NOT_STARTED,
            lease_owner=None,
            lease_expires_at=None,
            status_message=message,
            status_history=rules.history_append(run.history, history_entry(message, kind="release", now=now)),
            updated_at=now,
        )
        if released:
            jobs_notify()
            pipeline_event_emit(run.job.pipeline_id)
    return bool(released)


# SQLSTATE classes of a connection that is gone: 08 connection exception, 57P operator
# intervention (admin shutdown, terminated backend, crash shutdown, cannot connect now).
_CONNECTION_LOST_SQLSTATES = ("08", "57P")


def connection_lost(exc: BaseException) -> bool:
    """True when EXC means the PostgreSQL connection went away, not that the job's SQL failed.

    PostgreSQL only (on SQLite an OperationalError such as "database is locked" is the job's
    own failure). EXC is Django's wrapper (the psycopg error is its cause) or, from code that
    drives psycopg directly (COPY), psycopg's own. psycopg raises OperationalError with no
    SQLSTATE for client-side connection failures (socket closed, "the connection is closed",
    connection refused), and SQLSTATE 57P01 for a backend terminated by
    ``pg_terminate_backend`` or a server shutdown. Deadlocks, lock and statement timeouts
    carry their own SQLSTATE: they stay job errors.
    """
    if not is_postgres():
        return False
    import psycopg

    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, InterfaceError | psycopg.InterfaceError):
            return True
        if isinstance(candidate, psycopg.OperationalError):
            sqlstate = candidate.sqlstate
            return sqlstate is None or sqlstate.startswith(_CONNECTION_LOST_SQLSTATES)
    return False


def _requeue_after_connection_loss(run: JobRun, exc: BaseException) -> str | None:
    """The attempt died with its connection (the server rolled its data back): requeue the job
    while attempts remain, else settle ERROR naming the cause. Retried while the database is
    still away; if it stays away, the lease expires and the reconciler does the same."""
    text = _error_message(exc)
    attempt, limit = run.job.attempts, run.job.max_attempts
    lost = f"the database connection was lost during attempt {attempt} of {limit} ({text})"
    if attempt >= limit:
        message = f"Giving up: {lost}. Check the database, then retry the job."
        return _settle_after_rollback(run, JobResult.ERROR, message, error=exc)
    for delay in (0.0, *SETTLE_RETRY_DELAYS):
        if delay:
            time.sleep(delay)
        for conn in connections.all(initialized_only=True):
            with contextlib.suppress(Error):
                conn.close_if_unusable_or_obsolete()
        try:
            if _release(run, f"Requeued by {run.worker_id}: {lost}"):
                logger.warning("job %s: %s; requeued (or cancelled, if an abort was pending)", run.job.pk, lost)
            return None
        except (DatabaseError, InterfaceError):
            logger.warning("job %s: could not requeue it yet", run.job.pk, exc_info=True)
            connections[DATA_ALIAS].close()
    logger.error("job %s: giving up requeueing it; the reconciler will after the lease", run.job.pk)
    return None


def job_settle(
    *,
    job_id: int,
    owner: str | None,
    result: str,
    message: str,
    meta: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    refuse_if_cancelled: bool,
    stale_before: datetime | None = None,
    history_kind: str = "terminal",
) -> bool:
    """Write a RUNNING job's terminal state; the caller holds a transaction on the data alias.

    1. Fan-in members take the year lock (1236) first — the global lock order.
    2. Lock the pipeline row, then the job row.
    3. Compare-and-set: the job must still be RUNNING under OWNER (and, for the reconciler,
       have a lease older than STALE_BEFORE). Otherwise return False: someone else owns it.
    4. REFUSE_IF_CANCELLED (the success path): an abort of the job or its pipeline wins —
       raise JobCancelled so the caller rolls the data back.
    5. Fan-in: if this was the last member of its group to finish, chain (or requeue) the
       group's aggregation in this same transaction.
    6. Write FINISHED, the result and message, merged history and meta; refresh the
       pipeline's expected_recalc; wake workers and publish at commit.
    """
    now = timezone.now()
    head = IngestionJob.objects.filter(pk=job_id).values("pipeline_id", "job_type", "year").first()
    if head is None:
        return False
    if head["job_type"] in rules.FAN_IN:
        locks.lock_year(year=head["year"])
    pipeline = pipeline_lock(head["pipeline_id"])
    row = IngestionJob.objects.select_for_update().filter(pk=job_id).first()
    if row is None or row.state != JobState.RUNNING:
        return False
    if owner is not None and row.lease_owner != owner:
        return False
    if stale_before is not None and (row.lease_expires_at is None or row.lease_expires_at >= stale_before):
        return False
    if refuse_if_cancelled and (row.cancel_requested_at is not None or pipeline.cancel_requested_at is not None):
        raise JobCancelled(f"job {job_id}: cancellation requested")
    merged_meta = {**(row.meta or {}), **(meta or {})}
    closed = fan_in_settle(row, result, merged_meta.get("fan_in") or {}, now) if row.job_type in rules.FAN_IN else False
    merged_history = _merge_history(row.status_history or [], history or [])
    merged_history = rules.history_append(
        merged_history, history_entry(message, kind=history_kind, now=now, state=JobState.FINISHED, result=result)
    )
    IngestionJob.objects.filter(pk=job_id).update(
        state=JobState.FINISHED,
        result=result,
        status_message=message,
        status_history=merged_history,
        meta=merged_meta,
        finished_at=now,
        lease_owner=None,
        lease_expires_at=None,
        closed_fan_in=closed,
        updated_at=now,
    )
    expected = IngestionJob.objects.filter(pipeline_id=row.pipeline_id, job_type=JobType.EMISSION_RECALC).count()
    if pipeline.expected_recalc != expected:
        Pipeline.objects.filter(pk=row.pipeline_id).update(expected_recalc=expected)
    pipeline_event_emit(row.pipeline_id)
    return True


def fan_in_settle(row: IngestionJob, own_result: str, own_payload: dict[str, Any], now: datetime) -> bool:
    """Settle ROW's fan-in group if ROW is its last member to finish. Returns True if settled.

    Runs under the year lock and the pipeline row lock, so siblings decide one at a time on
    committed states. With the year lock held no aggregation of this year is mid-read: an
    active one (this group's, or another pipeline's of the same scope) reads after we commit.
    """
    siblings = list(
        IngestionJob.objects.filter(pipeline_id=row.pipeline_id, parent_id=row.parent_id, job_type=row.job_type)
        .exclude(pk=row.pk)
        .values("id", "state", "result", "meta")
    )
    group = [
        rules.JobView(
            id=row.pk, parent_id=row.parent_id, job_type=row.job_type, state=JobState.FINISHED, result=own_result
        )
    ]
    group += [
        rules.JobView(id=s["id"], parent_id=row.parent_id, job_type=row.job_type, state=s["state"], result=s["result"])
        for s in siblings
    ]
    if not rules.fan_in_due(group):
        return False
    ok = (JobResult.SUCCESS, JobResult.WARNING)
    payloads = [own_payload] if own_result in ok else []
    payloads += [(s["meta"] or {}).get("fan_in") or {} for s in siblings if s["result"] in ok]
    config = rules.fan_in_config(payloads)
    target = rules.FAN_IN[row.job_type]
    group_ids = [row.pk, *(s["id"] for s in siblings)]
    existing = (
        IngestionJob.objects.filter(pipeline_id=row.pipeline_id, job_type=target, parent_id__in=group_ids)
        .order_by("-id")
        .first()
    )
    if existing is None:
        job_chain(
            parent=row,
            job_type=target,
            module_type_id=row.module_type_id,
            data_entry_type_id=None,
            year=row.year,
            config=config,
            now=now,
        )
        return True
    if existing.state == JobState.FINISHED:
        _requeue_fan_in_job(
            existing, config, reason=f"Requeued: {row.job_type} #{row.pk} finished after a retry", now=now
        )
    # An active one reads after this transaction commits: it covers this data as it is.
    return True


def _requeue_fan_in_job(job: IngestionJob, config: dict[str, Any], *, reason: str, now: datetime) -> None:
    meta = {**(job.meta or {}), "config": config}
    try:
        with transaction.atomic():
            IngestionJob.objects.filter(pk=job.pk, state=JobState.FINISHED).update(
                state=JobState.NOT_STARTED,
                result=None,
                finished_at=None,
                attempts=0,
                cancel_requested_at=None,
                status_message=reason,
                status_history=rules.history_append(job.status_history, history_entry(reason, kind="requeue", now=now)),
                meta=meta,
                updated_at=now,
            )
    except IntegrityError as exc:
        if job.job_type in DEDUP_CONSTRAINTS and dedup_violation(exc, job.job_type):
            return  # another pipeline's active job of this scope covers it
        raise
    jobs_notify()
