"""Real worker processes against the test database: exactly-once, crashes, signals, abort.

Workers run with a 3 s lease and a 1 s heartbeat (see ``subprocess_env``). PostgreSQL runs
four workers where the test is about concurrency; SQLite (one writer) runs one.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from carbon.models import Location
from pipelines import services
from pipelines.choices import JobResult, JobState, JobType, PipelineStatus
from pipelines.models import IngestionJob, Pipeline, Worker
from pipelines.reconciler import pipelines_reconcile
from pipelines.registry import LeaseLost
from pipelines.runner import JobRun, job_settle
from pipelines.services import Scope, pipeline_create
from tests.pipelines.conftest import Processes, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

SCOPE = Scope(module_type_id=4, year=2025)


def workers_for_vendor() -> int:
    return 4 if connection.vendor == "postgresql" else 1


def dispatch(config: dict[str, Any]) -> Pipeline:
    return pipeline_create(job_type=JobType.CSV_INGEST, scope=SCOPE, config=config)[0]


def terminal(pipeline: Pipeline) -> bool:
    pipeline.refresh_from_db()
    return pipeline.is_terminal


def all_terminal(pipelines: list[Pipeline]) -> bool:
    return not Pipeline.objects.filter(pk__in=[p.pk for p in pipelines], finished_at__isnull=True).exists()


def test_each_job_runs_exactly_once_across_workers(processes: Processes) -> None:
    # given: 20 jobs, each writing one row keyed by (job, attempt)
    pipelines = [dispatch({"write": 1, "steps": 2, "step_seconds": 0.05}) for _ in range(20)]
    # when
    for _ in range(workers_for_vendor()):
        processes.worker()
    wait_for(lambda: all_terminal(pipelines), timeout=60, what="20 pipelines to finish")
    # then: one committed execution per job, on the first attempt
    jobs = list(IngestionJob.objects.filter(pipeline__in=pipelines))
    assert len(jobs) == 20
    assert all(j.result == JobResult.SUCCESS and j.attempts == 1 for j in jobs), processes.logs()
    keys = sorted(Location.objects.values_list("natural_key", flat=True))
    assert keys == sorted(f"t:{j.pk}:1:0" for j in jobs)
    claimers = {e["message"].split()[2] for j in jobs for e in j.status_history if e.get("kind") == "claim"}
    if workers_for_vendor() > 1:
        assert len(claimers) > 1, "the jobs were not shared between workers"


def _settle_at_barrier(job_id: int, owner: str, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        barrier.wait(timeout=30)
        with transaction.atomic():
            settled = job_settle(
                job_id=job_id,
                owner=owner,
                result=JobResult.SUCCESS,
                message="Success",
                meta={"fan_in": {"affected_module_ids": [job_id]}},
                refuse_if_cancelled=True,
            )
        assert settled
    except BaseException as exc:  # surfaced by the test
        errors.append(exc)
    finally:
        connections.close_all()


def test_concurrent_recalc_siblings_chain_exactly_one_aggregation_threads() -> None:
    """8 siblings settle at the same instant, 50 times: one aggregation per pipeline, every time."""
    siblings = 8
    for repetition in range(50):
        pipeline, root = pipeline_create(job_type=JobType.CSV_INGEST, scope=SCOPE, config={})
        now = timezone.now()
        IngestionJob.objects.filter(pk=root.pk).update(
            state=JobState.FINISHED, result=JobResult.SUCCESS, finished_at=now
        )
        owners = [f"worker:thread:{i}" for i in range(siblings)]
        recalcs = [
            IngestionJob.objects.create(
                pipeline=pipeline,
                parent=root,
                job_type=JobType.EMISSION_RECALC,
                entity_type=root.entity_type,
                ingestion_method=root.ingestion_method,
                module_type_id=4,
                data_entry_type_id=100 + repetition * siblings + i,
                year=2025,
                state=JobState.RUNNING,
                lease_owner=owners[i],
                lease_expires_at=now + timedelta(minutes=5),
                started_at=now,
            )
            for i in range(siblings)
        ]
        barrier = threading.Barrier(siblings)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_settle_at_barrier, args=(r.pk, r.lease_owner, barrier, errors)) for r in recalcs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        aggregations = list(IngestionJob.objects.filter(pipeline=pipeline, job_type=JobType.AGGREGATION))
        assert len(aggregations) == 1, f"repetition {repetition}: {len(aggregations)} aggregations"
        assert aggregations[0].meta["config"]["affected_module_ids"] == sorted(r.pk for r in recalcs)
        assert IngestionJob.objects.filter(pipeline=pipeline, closed_fan_in=True).count() == 1
        # free the (module, year) slot for the next repetition
        IngestionJob.objects.filter(pk=aggregations[0].pk).update(
            state=JobState.FINISHED, result=JobResult.SUCCESS, finished_at=timezone.now()
        )


def test_concurrent_recalc_siblings_chain_exactly_one_aggregation_workers(processes: Processes) -> None:
    chain = [
        {"job_type": JobType.EMISSION_RECALC, "det": d, "config": {"fan_in": {"affected_module_ids": [d]}}}
        for d in range(1, 9)
    ]
    pipelines = [
        pipeline_create(job_type=JobType.CSV_INGEST, scope=Scope(module_type_id=m, year=y), config={"chain": chain})[0]
        for m in range(1, 6)
        for y in (2024, 2025)
    ]
    for _ in range(workers_for_vendor()):
        processes.worker()
    wait_for(lambda: all_terminal(pipelines), timeout=90, what="10 pipelines to finish")
    for pipeline in pipelines:
        pipeline.refresh_from_db()
        assert pipeline.status == PipelineStatus.SUCCESS, processes.logs()
        assert IngestionJob.objects.filter(pipeline=pipeline, job_type=JobType.AGGREGATION).count() == 1


def test_sigkilled_worker_job_is_requeued_and_completed_elsewhere(processes: Processes, tmp_path: Path) -> None:
    hold = tmp_path / "go"
    started = tmp_path / "started-{job}"
    pipeline = dispatch({"write": 3, "started_file": str(started), "hold_file": str(hold)})
    job = IngestionJob.objects.get(pipeline=pipeline)
    victim = processes.worker(worker_id="worker:victim:1")
    wait_for(lambda: Path(str(started).replace("{job}", str(job.pk))).exists(), what="the handler to start")
    # when: the worker dies mid-job, without any chance to clean up
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    hold.touch()
    processes.worker(worker_id="worker:rescuer:1")
    wait_for(lambda: _requeued_or_failed(job.pk), timeout=30, what="the stale lease to be requeued")
    wait_for(lambda: terminal(pipeline), timeout=30, what="the pipeline to finish")
    # then
    job.refresh_from_db()
    assert pipeline.status == PipelineStatus.SUCCESS
    assert (job.result, job.attempts) == (JobResult.SUCCESS, 2)
    assert any("worker:victim:1 stopped renewing its lease" in e["message"] for e in job.status_history)
    assert sorted(Location.objects.values_list("natural_key", flat=True)) == [f"t:{job.pk}:2:{i}" for i in range(3)]


def _requeued_or_failed(job_id: int) -> bool:
    # Only these heals matter here: a status-drift heal (the claim's own status write may have
    # been cut short by the kill) must not count as the job's recovery.
    report = pipelines_reconcile()
    return job_id in report.requeued or job_id in report.failed


def test_job_killed_max_attempts_times_ends_in_error_saying_why(processes: Processes, tmp_path: Path) -> None:
    pipeline = dispatch({"write": 1, "hold_file": str(tmp_path / "never"), "started_file": str(tmp_path / "s-{job}")})
    job = IngestionJob.objects.get(pipeline=pipeline)
    for attempt in (1, 2, 3):
        worker = processes.worker(worker_id=f"worker:doomed:{attempt}")
        running = IngestionJob.objects.filter(pk=job.pk, state=JobState.RUNNING, attempts=attempt)
        wait_for(running.exists, what=f"attempt {attempt} to start")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        wait_for(lambda: _requeued_or_failed(job.pk), timeout=30, what="the stale attempt to be healed")
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.ERROR)
    assert "during attempt 3 of 3; giving up" in job.status_message
    assert Location.objects.count() == 0
    assert terminal(pipeline)
    assert pipeline.status == PipelineStatus.FAILED


def test_sigterm_to_an_idle_worker_exits_within_two_seconds(processes: Processes) -> None:
    worker = processes.worker(worker_id="worker:idle:1")
    wait_for(lambda: Worker.objects.filter(pk="worker:idle:1").exists(), what="the worker to register")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0
    assert time.monotonic() - started < 2.0
    assert not Worker.objects.filter(pk="worker:idle:1").exists()


def test_sigterm_to_a_busy_worker_lets_a_short_job_finish(processes: Processes, tmp_path: Path) -> None:
    pipeline = dispatch({"write": 1, "started_file": str(tmp_path / "s-{job}"), "steps": 10, "step_seconds": 0.1})
    job = IngestionJob.objects.get(pipeline=pipeline)
    worker = processes.worker()
    wait_for(lambda: (tmp_path / f"s-{job.pk}").exists(), what="the handler to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.SUCCESS)


def test_sigterm_to_a_busy_worker_releases_a_long_job(processes: Processes, tmp_path: Path) -> None:
    pipeline = dispatch({"write": 1, "started_file": str(tmp_path / "s-{job}"), "hold_file": str(tmp_path / "never")})
    job = IngestionJob.objects.get(pipeline=pipeline)
    worker = processes.worker(worker_id="worker:leaving:1")
    wait_for(lambda: (tmp_path / f"s-{job.pk}").exists(), what="the handler to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    job.refresh_from_db()
    # released after the 3 s lease: queued again, no lease, nothing committed
    assert (job.state, job.lease_owner, job.lease_expires_at) == (JobState.NOT_STARTED, None, None)
    assert job.status_message.startswith("Released by worker:leaving:1")
    assert Location.objects.count() == 0


def test_abort_stops_a_running_handler_and_rolls_back_its_data(processes: Processes, tmp_path: Path) -> None:
    pipeline = dispatch({"write": 5, "started_file": str(tmp_path / "s-{job}"), "hold_file": str(tmp_path / "never")})
    job = IngestionJob.objects.get(pipeline=pipeline)
    processes.worker(worker_id="worker:busy:1")
    wait_for(lambda: (tmp_path / f"s-{job.pk}").exists(), what="the handler to start")
    # when
    outcome = services.pipeline_abort(pipeline_id=pipeline.pk)
    wait_for(lambda: terminal(pipeline), timeout=30, what="the pipeline to be cancelled")
    # then
    job.refresh_from_db()
    assert outcome.applied
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.CANCELLED)
    assert pipeline.status == PipelineStatus.CANCELLED
    assert Location.objects.count() == 0
    # a late write from the aborted run changes nothing
    late = JobRun(job=job, worker_id="worker:busy:1")
    with pytest.raises(LeaseLost):
        late.progress("still here")
    with transaction.atomic():
        assert job_settle(job_id=job.pk, owner="worker:busy:1", result=JobResult.SUCCESS, message="done",
                          refuse_if_cancelled=True) is False  # fmt: skip
    job.refresh_from_db()
    assert (job.result, job.status_message) == (JobResult.CANCELLED, job.status_message)
    assert job.status_message != "still here"


@pytest.mark.postgres
def test_listen_notify_wakes_an_idle_worker_long_before_its_poll(processes: Processes) -> None:
    worker_id = "worker:listening:1"
    processes.worker(worker_id=worker_id, env={"WORKER_POLL_SECONDS": "60", "WORKER_HEARTBEAT_SECONDS": "30",
                                               "JOB_LEASE_SECONDS": "90"})  # fmt: skip
    wait_for(lambda: Worker.objects.filter(pk=worker_id).exists(), what="the worker to register")
    time.sleep(0.5)  # let it reach its idle wait (LISTEN)
    started = time.monotonic()
    pipeline = dispatch({})
    wait_for(lambda: terminal(pipeline), timeout=20, what="the job to be picked up")
    assert time.monotonic() - started < 5, "picked up by polling, not by NOTIFY"
