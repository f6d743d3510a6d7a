"""Database faults on PostgreSQL: connections terminated under real workers, the reconciler and
the web server; the database refusing connections for a while; the server itself restarted.

Every subprocess names itself (``CARBON_PROCESS_NAME`` → ``application_name``), so the test
terminates exactly its connections with ``pg_terminate_backend`` in this test database, and
nothing of the other sessions sharing the server. Workers run with a 3 s lease, a 1 s
heartbeat and a reconciler sweeping every second.

The restart of PostgreSQL itself restarts the whole cluster: it only runs with
``PG_RESTART_TESTS=1`` (``.ci/run`` sets it, where nothing else shares the server).
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import OperationalError, connection, connections
from django.test import Client
from django.utils import timezone

from carbon.models import DataEntry, User
from pipelines.choices import JobResult, JobState, JobType, PipelineStatus
from pipelines.db import DATA_ALIAS, state_alias
from pipelines.models import IngestionJob, Pipeline, Worker
from pipelines.registry import HandlerResult, handlers_replaced
from pipelines.services import Scope, pipeline_create
from tests.faults import (
    Cluster,
    backends,
    equipment_file,
    equipment_year,
    log_tail,
    nothing_active,
    pipeline_report,
    stats_drift,
    terminate,
    upload_pipeline,
    wait_terminal,
)
from tests.pipelines.conftest import TEST_HANDLERS_ENTRY, Processes, run_until_idle, wait_for, worker_env
from tests.test_api_end_to_end import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True, databases="__all__")]

YEAR = 2025
MAX_ATTEMPTS = 3
ROWS = 60_000
RETRY_LINE = re.compile(r"database unavailable \(.*\); retry (\d+) in (\d+\.\d+)s")


def faults_env(**extra: str) -> dict[str, str]:
    return worker_env(
        JOB_LEASE_SECONDS="3",
        WORKER_HEARTBEAT_SECONDS="1",
        PIPELINE_RECONCILER_INTERVAL_SECONDS="1",
        JOB_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        LOG_LEVEL="INFO",
        **extra,
    )


@pytest.fixture
def cluster(files_area: Path, tmp_path: Path) -> Iterator[Cluster]:
    """Workers with the real handlers and a reconciler (started by the test)."""
    procs = Cluster(faults_env(), tmp_path / "logs", prefix="faults")
    try:
        yield procs
    finally:
        procs.stop()
        sys.stdout.write(procs.logs())  # shown by pytest when the test fails


def progressed(job_id: int, rows: int) -> bool:
    row = IngestionJob.objects.filter(pk=job_id).values("state", "meta").first()
    assert row is not None
    assert row["state"] != JobState.FINISHED, "the job finished before the fault could be injected"
    processed = ((row["meta"] or {}).get("progress") or {}).get("processed") or 0
    return row["state"] == JobState.RUNNING and int(processed) >= rows


def history_messages(job: IngestionJob, kind: str | None = None) -> list[str]:
    return [str(e.get("message")) for e in job.status_history or [] if kind is None or e.get("kind") == kind]


def recovered(cluster: Cluster, worker: str) -> bool:
    """The worker's log says it got the database back (or, mid-job, that it requeued its job)."""
    log = cluster.log_of(worker)
    return "database reachable again" in log or "database connection was lost" in log


def retried(cluster: Cluster, worker: str, times: int) -> bool:
    return len(retry_delays(cluster.log_of(worker))) >= times


def retry_delays(log: str) -> list[tuple[int, float]]:
    return [(int(m.group(1)), float(m.group(2))) for m in RETRY_LINE.finditer(log)]


def test_terminated_worker_connections_are_reopened_and_the_interrupted_job_is_retried(
    cluster: Cluster, tmp_path: Path
) -> None:
    # given: one worker (so it must be the one claiming again) loading a 60,000-row file
    cfs = equipment_year(units=300, year=YEAR)
    data = equipment_file(cfs=cfs, rows=ROWS, invalid=3, rng=random.Random(7), tag="a")
    worker = cluster.add_worker()
    cluster.reconciler()
    cluster.wait_registered(1)
    pipeline = upload_pipeline(text=data.text, name="equipment.csv", year=YEAR, module_type_id=4)
    root = IngestionJob.objects.get(pipeline=pipeline)
    wait_for(lambda: progressed(root.pk, 10_000), timeout=60, interval=0.02, what="the ingest to be mid-file")
    # when: every connection of the worker is terminated (data, job state, heartbeat, LISTEN)
    killed = terminate(Cluster.process_name(worker))
    sys.stderr.write(f"\nterminated {len(killed)} connections of {worker} mid-job\n")
    # then
    assert len(killed) >= 3, f"expected the worker's data, job-state and LISTEN connections, got {killed}"
    wait_terminal([pipeline.pk], timeout=120, what="the pipeline to end after the fault")
    root.refresh_from_db()
    pipeline.refresh_from_db()
    report = pipeline_report(pipeline.pk) + "\n" + log_tail(cluster.log_of(worker))
    lost = [m for m in history_messages(root) if "database connection was lost" in m]
    assert len(lost) == 1, report
    assert lost[0].startswith(f"Requeued by {worker}: the database connection was lost during attempt 1 of 3"), report
    # the cause as the worker saw it: the server's notice, or the socket closing under a COPY
    assert re.search(r"terminating connection due to administrator command|server closed the connection", lost[0])
    assert history_messages(root, "claim") == [
        f"Claimed by {worker} (attempt 1 of 3)",
        f"Claimed by {worker} (attempt 2 of 3)",
    ], report
    assert (root.result, pipeline.status) == (JobResult.WARNING, PipelineStatus.SUCCESS), report
    # the retry landed once: the file's valid rows, from the job, nothing of the lost attempt
    ids = sorted(DataEntry.objects.filter(year=YEAR).values_list("data__equipment_id", flat=True))
    assert ids == sorted(data.valid_ids)
    assert stats_drift(year=YEAR) == []
    assert nothing_active() == []
    assert "heartbeat of job" in cluster.log_of(worker) or "database connection was lost" in cluster.log_of(worker)


def maintenance_sql(sql: str) -> None:
    """Run SQL from the server's maintenance database (a database cannot refuse connections
    to itself from a session it is serving)."""
    import psycopg

    params = connection.get_connection_params()
    conninfo = {k: params[k] for k in ("host", "port", "user", "password") if params.get(k)}
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as admin:
        admin.execute(sql.encode())


def test_workers_back_off_while_the_database_refuses_them_then_claim_again(cluster: Cluster) -> None:
    # given: two idle workers and the reconciler
    workers = [cluster.add_worker(), cluster.add_worker()]
    cluster.reconciler()
    cluster.wait_registered(2)
    quoted = connection.ops.quote_name(connection.settings_dict["NAME"])
    # when: the database refuses new connections and the workers' connections are terminated
    maintenance_sql(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false")
    try:
        for worker in workers:
            assert terminate(Cluster.process_name(worker)), f"{worker} had no connection to terminate"
        # each keeps retrying, further and further apart
        for worker in workers:
            wait_for(functools.partial(retried, cluster, worker, 3), timeout=60, what=f"{worker} to retry 3 times")
        outage_end = time.time()
    finally:
        maintenance_sql(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true")
    # then: they come back by themselves and claim new work
    pipeline, job = pipeline_create(job_type=JobType.UNIT_SYNC, scope=Scope(year=YEAR), config={"target_year": YEAR})
    wait_terminal([pipeline.pk], timeout=90, what="a pipeline dispatched after the outage")
    job.refresh_from_db()
    assert job.result == JobResult.SUCCESS, pipeline_report(pipeline.pk)
    claimed_by = history_messages(job, "claim")[0].split()[2]
    assert claimed_by in workers
    for worker in workers:
        wait_for(functools.partial(recovered, cluster, worker), timeout=60, what=f"{worker} to recover")
        delays = retry_delays(cluster.log_of(worker))
        numbers = [n for n, _ in delays]
        assert numbers[:3] == [1, 2, 3], delays
        seconds = [d for _, d in delays]
        # exponential with jitter: attempt n waits between half and all of min(30, 0.5·2^(n-1)) seconds
        for n, delay in delays:
            ceiling = min(30.0, 0.5 * 2 ** (n - 1))
            assert ceiling / 2 <= delay <= ceiling, delays
        assert seconds == sorted(seconds), delays
        beat = Worker.objects.get(pk=worker).last_heartbeat_at
        assert beat is not None
        assert beat.timestamp() > outage_end, f"{worker} did not heartbeat after the outage"
    assert nothing_active() == []


class RowLock(threading.Thread):
    """Holds ``SELECT … FOR UPDATE`` on one Worker row, on a connection of its own, until released."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(daemon=True)
        self.worker_id = worker_id
        self.held = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                list(Worker.objects.select_for_update().filter(pk=self.worker_id))
                self.held.set()
                self.done.wait(timeout=120)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections.close_all()

    def release(self) -> None:
        self.done.set()
        self.join(timeout=30)


def test_a_worker_whose_lease_could_not_be_renewed_cannot_finish_the_job(files_area: Path, tmp_path: Path) -> None:
    """The heartbeat of worker A blocks on a row lock, so its lease expires while its handler
    works on; the reconciler requeues the job and worker B takes it. When A's handler returns,
    its compare-and-set finds another owner: A writes nothing, B's run is the one that lands."""
    stale = Cluster(faults_env(), tmp_path / "logs", prefix="stale", entry=TEST_HANDLERS_ENTRY)
    lock: RowLock | None = None
    try:
        a = stale.add_worker()
        stale.reconciler()
        stale.wait_registered(1)
        # one progress write, then 10 s without touching the database, then finish
        started = tmp_path / "started-{job}"
        pipeline, job = pipeline_create(
            job_type=JobType.CSV_INGEST,
            scope=Scope(module_type_id=4, year=YEAR),
            config={"write": 3, "steps": 1, "step_seconds": 10, "started_file": str(started)},
        )
        wait_for(lambda: (tmp_path / f"started-{job.pk}").exists(), what="A's handler to start")
        assert IngestionJob.objects.filter(pk=job.pk, lease_owner=a).exists()
        # when: A's heartbeat cannot renew the lease (its worker-row write waits on our lock)
        lock = RowLock(a)
        lock.start()
        assert lock.held.wait(timeout=30), lock.error
        b = stale.add_worker()
        wait_for(
            lambda: IngestionJob.objects.filter(pk=job.pk, lease_owner=b, attempts=2).exists(),
            timeout=60,
            what="the reconciler to requeue the job and B to claim it",
        )
        wait_for(lambda: "lease lost" in stale.log_of(a), timeout=60, what="A's late finish to be refused")
        lock.release()
        wait_terminal([pipeline.pk], timeout=60, what="B to finish the job")
        # then: B's run landed, A's did not
        job.refresh_from_db()
        report = pipeline_report(pipeline.pk) + "\n" + log_tail(stale.log_of(a))
        assert (job.state, job.result, job.attempts) == (JobState.FINISHED, JobResult.SUCCESS, 2), report
        from carbon.models import Location

        assert sorted(Location.objects.values_list("natural_key", flat=True)) == [f"t:{job.pk}:2:{i}" for i in range(3)]
        terminal = [e for e in job.status_history if e.get("kind") == "terminal"]
        assert len(terminal) == 1, report
        assert any(f"{a} stopped renewing its lease" in m for m in history_messages(job, "heal")), report
        assert history_messages(job, "claim")[-1] == f"Claimed by {b} (attempt 2 of 3)", report
        # and A is still a working worker: with B gone, it claims the next job
        stale.workers[b].terminate()
        stale.workers[b].wait(timeout=30)
        again, again_job = pipeline_create(
            job_type=JobType.CSV_INGEST, scope=Scope(module_type_id=4, year=YEAR), config={"write": 1}
        )
        wait_terminal([again.pk], timeout=60, what="A to run the next job")
        again_job.refresh_from_db()
        assert history_messages(again_job, "claim") == [f"Claimed by {a} (attempt 1 of 3)"]
        assert again_job.result == JobResult.SUCCESS
    finally:
        if lock is not None and lock.is_alive():
            lock.release()
        stale.stop()
        sys.stdout.write(stale.logs())


# --- The runner's classification, in this process ------------------------------------------------


def connection_killer(*, on_attempts: set[int], cancel: bool = False) -> Any:
    """A handler that writes a row, then (on ON_ATTEMPTS) has the server terminate its own
    connection mid-transaction; with CANCEL an abort lands just before (as from the console)."""

    def handler(ctx: Any) -> HandlerResult:
        from carbon.models import Location

        job = ctx.job
        key = f"t:{job.pk}:{job.attempts}"
        Location.objects.create(natural_key=key, name=key, transport_mode="plane", latitude=0, longitude=0)
        if job.attempts in on_attempts:
            if cancel:
                IngestionJob.objects.using(state_alias()).filter(pk=job.pk).update(cancel_requested_at=timezone.now())
            with connections[DATA_ALIAS].cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return HandlerResult(message="done")

    return handler


def run_one(handler: Any, *, max_attempts: int = MAX_ATTEMPTS) -> IngestionJob:
    with handlers_replaced({JobType.CSV_INGEST: handler}):
        _, job = pipeline_create(job_type=JobType.CSV_INGEST, scope=Scope(module_type_id=4, year=YEAR))
        IngestionJob.objects.filter(pk=job.pk).update(max_attempts=max_attempts)
        run_until_idle(worker_id="worker:test:db")
    job.refresh_from_db()
    return job


def landed_keys() -> list[str]:
    from carbon.models import Location

    return sorted(Location.objects.values_list("natural_key", flat=True))


def test_a_job_whose_connection_is_terminated_is_requeued_and_lands_once() -> None:
    job = run_one(connection_killer(on_attempts={1}))
    assert (job.state, job.result, job.attempts) == (JobState.FINISHED, JobResult.SUCCESS, 2), job.status_history
    (requeued,) = [m for m in history_messages(job) if m.startswith("Requeued by worker:test:db")]
    assert "the database connection was lost during attempt 1 of 3" in requeued
    assert "terminating connection due to administrator command" in requeued
    assert landed_keys() == [f"t:{job.pk}:2"]  # the server rolled the lost attempt back


def test_a_connection_lost_on_the_last_attempt_fails_the_job_saying_why() -> None:
    job = run_one(connection_killer(on_attempts={1, 2, 3}))
    assert (job.state, job.result, job.attempts) == (JobState.FINISHED, JobResult.ERROR, 3)
    assert job.status_message.startswith(
        "Giving up: the database connection was lost during attempt 3 of 3 (OperationalError: terminating "
        "connection due to administrator command"
    ), job.status_message
    assert job.status_message.endswith("Check the database, then retry the job.")
    assert len([m for m in history_messages(job) if m.startswith("Requeued by")]) == 2
    assert landed_keys() == []
    pipeline = Pipeline.objects.get(pk=job.pipeline_id)
    assert pipeline.status == PipelineStatus.FAILED


def test_a_connection_lost_with_an_abort_pending_ends_cancelled_not_queued_forever() -> None:
    job = run_one(connection_killer(on_attempts={1}, cancel=True))
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.CANCELLED), job.status_history
    assert landed_keys() == []
    assert nothing_active() == []


def test_a_job_that_fails_on_its_own_sql_is_not_mistaken_for_a_lost_connection() -> None:
    def times_out(ctx: Any) -> HandlerResult:
        with connections[DATA_ALIAS].cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 50")
            cursor.execute("SELECT pg_sleep(2)")
        return HandlerResult()

    job = run_one(times_out)
    assert (job.result, job.attempts) == (JobResult.ERROR, 1)
    assert job.status_message == "OperationalError: canceling statement due to statement timeout", job.status_message


# --- The web server -------------------------------------------------------------------------------


class SseReader(threading.Thread):
    """GET …/stream with a token; collects the snapshots until the terminal one."""

    def __init__(self, base: str, pipeline_id: Any, token: str) -> None:
        super().__init__(daemon=True)
        self.response = requests.get(
            f"{base}/api/v1/sync/pipelines/{pipeline_id}/stream",
            headers={"Authorization": f"Token {token}"},
            stream=True,
            timeout=(5, 60),
        )
        self.snapshots: list[dict[str, Any]] = []
        self.first = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for raw in self.response.iter_lines():
                line = raw.decode() if isinstance(raw, bytes) else str(raw)
                if line.startswith("data: "):
                    self.snapshots.append(json.loads(line[len("data: ") :]))
                    self.first.set()
                    if self.snapshots[-1].get("stream_closed"):
                        return
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.first.set()
            self.response.close()


def websocket_hello(port: int, pipeline_id: Any, cookie: str) -> dict[str, Any]:
    from websockets.sync.client import connect
    from websockets.typing import Origin

    with connect(
        f"ws://127.0.0.1:{port}/ws/pipelines/{pipeline_id}/",
        origin=Origin(f"http://127.0.0.1:{port}"),
        additional_headers={"Cookie": cookie},
        proxy=None,
        open_timeout=10,
    ) as socket:
        hello: dict[str, Any] = json.loads(socket.recv(timeout=10))
        socket.send(json.dumps({"type": "ping"}))
        while True:
            message = json.loads(socket.recv(timeout=10))
            if message.get("type") == "pong":
                return hello


def test_the_web_server_answers_and_streams_again_after_its_connections_were_killed(
    files_area: Path, tmp_path: Path, superuser: User
) -> None:
    from rest_framework.authtoken.models import Token

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_name = "carbon-faults-web"
    (tmp_path / "web").mkdir()
    web = Processes(faults_env(CARBON_PROCESS_NAME=web_name), tmp_path / "web", ("-m", "daphne"))
    workers = Cluster(faults_env(), tmp_path / "workers", prefix="web", entry=TEST_HANDLERS_ENTRY)
    token = Token.objects.create(user=superuser).key
    client = Client()
    client.force_login(superuser)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    hold = tmp_path / "go"
    readers: list[SseReader] = []
    try:
        web.start("-b", "127.0.0.1", "-p", str(port), "config.asgi:application")
        workers.add_worker()
        workers.wait_registered(1)

        def answering() -> bool:
            try:
                return requests.get(f"{base}/api/v1/health", timeout=2).status_code in (200, 503)
            except requests.ConnectionError:
                return False

        wait_for(answering, timeout=60, what="daphne to answer")
        pipeline, job = pipeline_create(
            job_type=JobType.CSV_INGEST, scope=Scope(module_type_id=4, year=YEAR), config={"hold_file": str(hold)}
        )
        wait_for(lambda: IngestionJob.objects.filter(pk=job.pk, state=JobState.RUNNING).exists(), what="the job")
        headers = {"Authorization": f"Token {token}"}
        # given: the API, a stream and a websocket in use (the web process holds connections)
        assert requests.get(f"{base}/api/v1/sync/pipelines", headers=headers, timeout=10).status_code == 200
        before = SseReader(base, pipeline.pk, token)
        before.start()
        assert before.first.wait(timeout=20), before.error
        assert before.snapshots[0]["status"] == PipelineStatus.RUNNING
        assert websocket_hello(port, pipeline.pk, cookie)["type"] == "hello"
        readers.append(before)
        # when: every connection of the web server is terminated
        killed = terminate(web_name)
        assert killed, "the web server held no database connection"
        sys.stderr.write(f"\nterminated {len(killed)} connections of the web server\n")
        wait_for(lambda: not set(killed) & set(backends(web_name)), what="the terminated backends to exit")
        # then: the very next requests are answered
        listing = requests.get(f"{base}/api/v1/sync/pipelines", headers=headers, timeout=10)
        assert listing.status_code == 200, listing.text[:500]
        detail = requests.get(f"{base}/api/v1/sync/pipelines/{pipeline.pk}", headers=headers, timeout=10)
        assert detail.status_code == 200, detail.text[:500]
        assert detail.json()["status"] == PipelineStatus.RUNNING
        # a new stream connection works (the console's re-sync path) …
        after = SseReader(base, pipeline.pk, token)
        after.start()
        readers.append(after)
        assert after.first.wait(timeout=20), after.error
        assert after.snapshots, after.error
        assert after.snapshots[0]["status"] == PipelineStatus.RUNNING
        # … and so does a websocket (its handshake reads the session and the pipeline)
        assert websocket_hello(port, pipeline.pk, cookie)["type"] == "hello"
        # and both streams, the one from before the kill included, see the pipeline end
        hold.touch()
        for reader in readers:
            reader.join(timeout=60)
            assert reader.error is None, repr(reader.error)
            assert reader.snapshots[-1]["stream_closed"] is True, reader.snapshots[-1]
            assert reader.snapshots[-1]["status"] == PipelineStatus.SUCCESS
    finally:
        hold.touch()
        workers.stop()
        web.stop_all()
        sys.stdout.write(web.logs() + workers.logs())


# --- PostgreSQL restarted -------------------------------------------------------------------------


def server_major_version() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


def database_answers() -> bool:
    try:
        connections.close_all()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except OperationalError:
        return False


def test_workers_recover_from_a_postgresql_restart(cluster: Cluster) -> None:
    if os.environ.get("PG_RESTART_TESTS") != "1":
        pytest.skip(
            "!!! PG_RESTART_TESTS is not 1: the PostgreSQL RESTART test did NOT run (it restarts the whole "
            "cluster, which would cut every other session on this server; .ci/run sets PG_RESTART_TESTS=1) !!!"
        )
    # given: two workers and the reconciler, a 60,000-row ingest mid-file
    cfs = equipment_year(units=300, year=YEAR)
    data = equipment_file(cfs=cfs, rows=ROWS, invalid=3, rng=random.Random(11), tag="restart")
    workers = [cluster.add_worker(), cluster.add_worker()]
    cluster.reconciler()
    cluster.wait_registered(2)
    pipeline = upload_pipeline(text=data.text, name="equipment.csv", year=YEAR, module_type_id=4)
    root = IngestionJob.objects.get(pipeline=pipeline)
    wait_for(lambda: progressed(root.pk, 10_000), timeout=60, interval=0.02, what="the ingest to be mid-file")
    version = server_major_version()
    # when: the server restarts under them
    connections.close_all()
    restarted = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", str(version), "main", "restart"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_for(database_answers, timeout=120, interval=0.5, what="PostgreSQL to accept connections again")
    # then: the interrupted pipeline ends terminal, retried after the restart
    wait_terminal([pipeline.pk], timeout=180, what="the interrupted pipeline to end")
    root.refresh_from_db()
    report = pipeline_report(pipeline.pk) + "\n" + log_tail(cluster.logs())
    assert root.result in (JobResult.SUCCESS, JobResult.WARNING), report
    assert root.attempts >= 2, report
    ids = sorted(DataEntry.objects.filter(year=YEAR).values_list("data__equipment_id", flat=True))
    assert ids == sorted(data.valid_ids), report
    # the workers are back: they heartbeat and claim new work
    for worker in workers:
        wait_for(functools.partial(recovered, cluster, worker), timeout=60, what=f"{worker} to log its recovery")
    after, after_job = pipeline_create(job_type=JobType.UNIT_SYNC, scope=Scope(year=YEAR + 1),
                                       config={"target_year": YEAR + 1})  # fmt: skip
    wait_terminal([after.pk], timeout=90, what="a pipeline dispatched after the restart")
    after_job.refresh_from_db()
    assert after_job.result == JobResult.SUCCESS, pipeline_report(after.pk)
    assert history_messages(after_job, "claim")[0].split()[2] in workers
    assert Pipeline.objects.filter(status__in=("NOT_STARTED", "RUNNING")).count() == 0
    assert stats_drift(year=YEAR) == []
    assert nothing_active() == []
