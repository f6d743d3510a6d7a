"""The worker process loop (``manage.py run_worker``).

One job at a time per process; run several processes (``--concurrency``, or several hosts)
for parallelism — the claim query hands each job to exactly one of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import signal
import socket
from types import FrameType
from typing import Any

from django.conf import settings
from django.db import DatabaseError, Error, InterfaceError, close_old_connections, connections

from pipelines.db import DATA_ALIAS, JOBS_CHANNEL, is_postgres
from pipelines.runner import StopSignal, job_claim, job_run
from pipelines.services import worker_heartbeat, worker_register, worker_unregister

logger = logging.getLogger(__name__)

# What a lost or refused connection raises (psycopg reports a closed connection as either).
CONNECTION_ERRORS = (DatabaseError, InterfaceError)
_JITTER = random.SystemRandom()


def default_worker_id(kind: str = "worker") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


class Waker:
    """Sleeps until a job may be available: a NOTIFY on PostgreSQL, a signal, or the poll period.

    The LISTEN connection is a plain psycopg connection of its own (Django's connections are
    busy with claims and data). A self-pipe makes a signal end the wait at once.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._listen: Any = None

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            os.write(self._write_fd, b"x")

    def _ensure_listening(self) -> Any:
        if self._listen is not None or not is_postgres():
            return self._listen
        import psycopg

        params = connections[DATA_ALIAS].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        try:
            self._listen = psycopg.connect(**params, autocommit=True)
            self._listen.execute(f"LISTEN {JOBS_CHANNEL}")
        except psycopg.Error as exc:
            logger.warning("cannot LISTEN for job notifications (%s); polling instead", " ".join(str(exc).split()))
            self._listen = None
        return self._listen

    def wait(self, timeout: float) -> None:
        listen = self._ensure_listening()
        fds = [self._read_fd] + ([listen.fileno()] if listen is not None else [])
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            ready = []
        if self._read_fd in ready:
            try:
                while os.read(self._read_fd, 64):
                    pass
            except BlockingIOError:
                pass
        if listen is not None and listen.fileno() in ready:
            try:
                for _ in listen.notifies(timeout=0, stop_after=1000):
                    pass
            except Exception:
                logger.warning("LISTEN connection lost; reconnecting", exc_info=True)
                self.close_listen()

    def close_listen(self) -> None:
        if self._listen is not None:
            try:
                self._listen.close()
            finally:
                self._listen = None

    def close(self) -> None:
        self.close_listen()
        os.close(self._read_fd)
        os.close(self._write_fd)


class Backoff:
    """Delays between reconnection attempts: exponential, capped, jittered.

    Retry n waits between half and all of ``min(cap, base·2^(n-1))`` seconds, so a fleet of
    workers that lost the database together does not hammer it back in lock-step, and the
    waits never shrink from one retry to the next.
    """

    def __init__(self, *, base: float = 0.5, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        return ceiling / 2 + _JITTER.uniform(0, ceiling / 2)

    def reset(self) -> int:
        """Back to the first delay; returns how many failures there were."""
        failures, self.failures = self.failures, 0
        return failures


def connections_drop() -> None:
    """Close every database connection of this thread, broken ones included (the next query reconnects)."""
    for conn in connections.all(initialized_only=True):
        with contextlib.suppress(Error):
            conn.close()


class WorkerLoop:
    """Claim → run → repeat; wait for a wake-up when idle.

    Signals: the first SIGTERM/SIGINT stops taking new jobs and lets the running one finish if
    it can within the lease (else the runner gives it back); a second one exits at once.
    """

    def __init__(self, *, worker_id: str | None = None, once: bool = False) -> None:
        self.worker_id = worker_id or default_worker_id()
        self.once = once
        self.stop = StopSignal()
        self.waker = Waker()
        self.busy = False
        self.signals = 0

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            logger.warning("%s: second signal, exiting now", self.worker_id)
            raise SystemExit(1)
        logger.info("%s: signal %s, stopping after the current job", self.worker_id, signum)
        self.stop.request()
        self.waker.wake()

    def step(self) -> bool:
        """Claim and run one job. Returns True if a job was run."""
        close_old_connections()
        job = job_claim(worker_id=self.worker_id)
        if job is None:
            return False
        self.busy = True
        try:
            try:
                worker_heartbeat(worker_id=self.worker_id, current_job_id=job.pk)
            except CONNECTION_ERRORS:
                # Cosmetic (the console's "current job"): the job itself must still run.
                logger.warning("%s: worker heartbeat failed", self.worker_id, exc_info=True)
            job_run(job=job, worker_id=self.worker_id, stop=self.stop)
        finally:
            self.busy = False
        try:
            worker_heartbeat(worker_id=self.worker_id, current_job_id=None)
        except CONNECTION_ERRORS:
            logger.warning("worker heartbeat failed", exc_info=True)
        return True

    def register(self) -> None:
        worker_register(worker_id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid())

    def _idle(self) -> None:
        """Wait for a wake-up, then heartbeat (re-registering a pruned worker row)."""
        self.waker.wait(min(settings.WORKER_POLL_SECONDS, settings.WORKER_HEARTBEAT_SECONDS))
        if self.stop.requested:
            return
        close_old_connections()
        if not worker_heartbeat(worker_id=self.worker_id, current_job_id=None):
            self.register()

    def run(self) -> int:
        """The loop. The database may go away at any point (restart, failover, terminated
        connections): every database error of the loop itself closes this process's
        connections and retries after a backoff (``Backoff``), logging each retry, until the
        database answers again. A running job is not the loop's: the runner settles or gives
        it back, and the lease rules decide who may finish it."""
        backoff = Backoff()
        registered = False
        try:
            while not self.stop.requested:
                try:
                    if not registered:
                        self.register()
                        registered = True
                        logger.info("%s: started (poll %ss)", self.worker_id, settings.WORKER_POLL_SECONDS)
                    ran = self.step()
                    if not ran and not self.once:
                        self._idle()
                    failures = backoff.reset()
                    if failures:
                        logger.warning("%s: database reachable again after %s retries", self.worker_id, failures)
                except CONNECTION_ERRORS as exc:
                    delay = backoff.next_delay()
                    logger.warning(
                        "%s: database unavailable (%s: %s); retry %s in %.2fs",
                        self.worker_id,
                        exc.__class__.__name__,
                        " ".join(str(exc).split())[:300],
                        backoff.failures,
                        delay,
                    )
                    connections_drop()
                    self.waker.close_listen()
                    self.waker.wait(delay)  # a signal still ends the wait at once
                    continue
                if self.once and not ran:
                    break
        finally:
            try:
                if registered:
                    worker_unregister(worker_id=self.worker_id)
            except CONNECTION_ERRORS:
                logger.warning("%s: could not remove the worker row", self.worker_id, exc_info=True)
            self.waker.close()
            logger.info("%s: stopped", self.worker_id)
        return 0
