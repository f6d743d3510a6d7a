"""The engine end to end, in this process: create, claim, run, chain, fan in, settle, heal.

Transactional tests (committed data, the runner's second connection sees it), on SQLite and
PostgreSQL. Worker subprocesses are in test_worker_processes.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from carbon.models import Location
from pipelines import events, services
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobState, JobType, PipelineStatus
from pipelines.models import IngestionJob, Pipeline
from pipelines.reconciler import pipelines_reconcile
from pipelines.registry import handlers_replaced
from pipelines.services import ActiveJobConflict, Scope, pipeline_create
from tests.pipelines.conftest import run_until_idle

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.usefixtures("engine")]

CSV_SCOPE = Scope(
    entity_type=EntityType.MODULE_PER_YEAR, ingestion_method=IngestionMethod.CSV, module_type_id=1, year=2025
)


def recalc_child(det: int, **config: Any) -> dict[str, Any]:
    return {
        "job_type": JobType.EMISSION_RECALC,
        "det": det,
        "config": {"fan_in": {"affected_module_ids": [det]}, **config},
    }


def dispatch(config: dict[str, Any], *, job_type: str = JobType.CSV_INGEST, scope: Scope = CSV_SCOPE) -> Pipeline:
    pipeline, _ = pipeline_create(job_type=job_type, scope=scope, config=config)
    return pipeline


def jobs_of(pipeline: Pipeline) -> list[IngestionJob]:
    return list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))


def test_example_a_ingest_two_recalcs_one_aggregation() -> None:
    # given: a root that writes rows and chains one recalc per data-entry type
    pipeline = dispatch({"write": 2, "chain": [recalc_child(1, write=1), recalc_child(2, write=1)]})
    # when
    ran = run_until_idle()
    # then
    pipeline.refresh_from_db()
    jobs = jobs_of(pipeline)
    assert ran == 4
    assert [j.job_type for j in jobs] == ["csv_ingest", "emission_recalc", "emission_recalc", "aggregation"]
    assert all(j.state == JobState.FINISHED and j.result == JobResult.SUCCESS for j in jobs)
    root, first, second, aggregation = jobs
    assert first.parent_id == second.parent_id == root.pk
    assert aggregation.parent_id in {first.pk, second.pk}
    assert aggregation.meta["config"] == {"affected_module_ids": [1, 2]}
    assert (aggregation.module_type_id, aggregation.year) == (1, 2025)
    assert pipeline.status == PipelineStatus.SUCCESS
    assert (pipeline.job_count, pipeline.error_count, pipeline.expected_recalc) == (4, 0, 2)
    assert pipeline.started_at == root.started_at
    assert pipeline.finished_at == aggregation.finished_at
    assert Location.objects.count() == 4
    # the terminal message is the last history entry
    assert root.status_history[-1]["kind"] == "terminal"
    assert root.status_history[-1]["message"] == root.status_message


def test_example_b_failed_sibling_still_aggregates_and_pipeline_is_partial() -> None:
    pipeline = dispatch({"chain": [recalc_child(1, fail="factor table unreadable"), recalc_child(2)]})
    run_until_idle()
    pipeline.refresh_from_db()
    jobs = jobs_of(pipeline)
    assert [j.job_type for j in jobs][-1] == JobType.AGGREGATION
    assert jobs[-1].meta["config"] == {"affected_module_ids": [2]}  # only the sibling whose data landed
    assert pipeline.status == PipelineStatus.PARTIAL
    assert pipeline.has_errors is True
    assert pipeline.last_error == "factor table unreadable"


def test_example_c_root_error_result_is_failed_with_a_row_error_message() -> None:
    meta = {
        "stats": {"rows_processed": 0, "rows_skipped": 3, "row_errors": [{"row": 2, "column": "fte", "reason": "x"}]}
    }
    pipeline = dispatch({"result": JobResult.ERROR, "meta": meta, "write": 3, "chain": [recalc_child(1)]})
    run_until_idle()
    pipeline.refresh_from_db()
    (root,) = jobs_of(pipeline)  # a job that ends in ERROR leaves no child
    assert root.result == JobResult.ERROR
    assert root.status_message == "ERROR: 0 inserted, 3 skipped — first error: row 2, column fte: x"
    assert pipeline.status == PipelineStatus.FAILED
    assert pipeline.last_error == root.status_message
    assert Location.objects.count() == 0  # and changes nothing


def test_example_d_dedup_skipped_children_leave_a_successful_pipeline() -> None:
    # given: another pipeline holds the active recalc of (1, 1, 2025)
    other = dispatch(
        {}, job_type=JobType.EMISSION_RECALC, scope=Scope(module_type_id=1, data_entry_type_id=1, year=2025)
    )
    pipeline = dispatch({"chain": [recalc_child(1)]})
    # when: only the new root runs (the other pipeline's recalc stays queued)
    IngestionJob.objects.filter(pipeline=other).update(run_after=timezone.now() + timedelta(hours=1))
    run_until_idle()
    # then
    pipeline.refresh_from_db()
    assert len(jobs_of(pipeline)) == 1
    assert pipeline.expected_recalc == 0
    assert pipeline.status == PipelineStatus.SUCCESS


def test_example_e_single_job_pipeline() -> None:
    pipeline = dispatch({}, job_type=JobType.UNIT_SYNC, scope=Scope(entity_type=EntityType.GLOBAL_PER_YEAR, year=2025))
    run_until_idle()
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.SUCCESS


def test_manual_recalc_while_one_is_active_is_a_conflict() -> None:
    scope = Scope(module_type_id=4, data_entry_type_id=10, year=2025)
    dispatch({}, job_type=JobType.EMISSION_RECALC, scope=scope)
    with pytest.raises(ActiveJobConflict):
        dispatch({}, job_type=JobType.EMISSION_RECALC, scope=scope)
    assert Pipeline.objects.count() == 1  # nothing half-created


def test_unknown_job_type_ends_in_error_with_a_clear_message() -> None:
    pipeline = dispatch({})
    with handlers_replaced({}, exclusive=True):
        run_until_idle()
    (job,) = jobs_of(pipeline)
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.ERROR)
    assert job.status_message == "No handler registered for job type 'csv_ingest'"


def test_handler_that_raises_rolls_back_and_chains_nothing() -> None:
    pipeline = dispatch({"write": 5, "chain": [recalc_child(1)], "fail": "disk on fire"})
    run_until_idle()
    pipeline.refresh_from_db()
    (job,) = jobs_of(pipeline)
    assert (job.state, job.result, job.status_message) == (JobState.FINISHED, JobResult.ERROR, "disk on fire")
    assert job.meta["error"]["type"] == "RuntimeError"
    assert Location.objects.count() == 0
    assert pipeline.status == PipelineStatus.FAILED
    assert not IngestionJob.objects.filter(state=JobState.RUNNING).exists()


def test_poisoned_data_transaction_ends_in_error() -> None:
    pipeline = dispatch({"write": 1, "integrity": True, "chain": [recalc_child(1)]})
    run_until_idle()
    (job,) = jobs_of(pipeline)
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.ERROR)
    assert "IntegrityError" in job.status_message
    assert Location.objects.count() == 0
    assert not IngestionJob.objects.filter(state=JobState.RUNNING).exists()


def test_failed_status_write_after_finish_is_healed_by_the_reconciler(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = dispatch({})
    from pipelines import runner

    real = runner.pipeline_status_refresh
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the first is the claim's, the second the finish's
            raise DatabaseError("connection reset by peer")
        return real(**kwargs)

    monkeypatch.setattr(runner, "pipeline_status_refresh", flaky)
    run_until_idle()
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.RUNNING  # drifted: the job is FINISHED
    report = pipelines_reconcile()
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.SUCCESS
    assert report.statuses == [f"{pipeline.pk}: RUNNING → SUCCESS"]


def test_retry_of_a_partial_pipeline_reruns_only_failed_jobs(tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    pipeline = dispatch({"chain": [recalc_child(1, fail_if_file=str(flag)), recalc_child(2)]})
    run_until_idle()
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.PARTIAL
    before = {j.pk: (j.attempts, j.finished_at) for j in jobs_of(pipeline)}
    aggregation_id = jobs_of(pipeline)[-1].pk
    # when: the cause is fixed and the failed jobs are retried
    flag.unlink()
    outcome = services.pipeline_retry_failed(pipeline_id=pipeline.pk)
    run_until_idle()
    # then: only the failed recalc ran again, and the group's aggregation was requeued (same row)
    pipeline.refresh_from_db()
    jobs = jobs_of(pipeline)
    assert len(outcome.retried) == 1
    failed_id = outcome.retried[0]
    assert pipeline.status == PipelineStatus.SUCCESS
    assert [j.pk for j in jobs if j.job_type == JobType.AGGREGATION] == [aggregation_id]
    for j in jobs:
        if j.pk not in (failed_id, aggregation_id):
            assert (j.attempts, j.finished_at) == before[j.pk], j
    assert jobs[-1].meta["config"] == {"affected_module_ids": [1, 2]}


def test_retry_is_refused_while_running_and_for_successful_jobs() -> None:
    pipeline = dispatch({})
    with pytest.raises(services.InvalidTransition):
        services.pipeline_retry_failed(pipeline_id=pipeline.pk)
    run_until_idle()
    (job,) = jobs_of(pipeline)
    with pytest.raises(services.InvalidTransition):
        services.job_retry(job_id=job.pk)


def test_abort_before_start_cancels_everything() -> None:
    pipeline = dispatch({"write": 1})
    outcome = services.pipeline_abort(pipeline_id=pipeline.pk)
    assert (outcome.applied, outcome.cancelled) == (True, 1)
    assert run_until_idle() == 0
    pipeline.refresh_from_db()
    (job,) = jobs_of(pipeline)
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.CANCELLED)
    assert job.status_message == "Aborted by system before it started"
    assert pipeline.status == PipelineStatus.CANCELLED
    assert services.pipeline_abort(pipeline_id=pipeline.pk).applied is False  # terminal now


def _stale_running_job(attempts: int, max_attempts: int = 3) -> IngestionJob:
    pipeline = dispatch({})
    job = IngestionJob.objects.get(pipeline=pipeline)
    past = timezone.now() - timedelta(minutes=5)
    IngestionJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        lease_owner="worker:gone:1",
        lease_expires_at=past,
        attempts=attempts,
        max_attempts=max_attempts,
        started_at=past,
    )
    return job


def test_reconciler_requeues_a_stale_lease_and_records_why() -> None:
    job = _stale_running_job(attempts=1)
    report = pipelines_reconcile()
    job.refresh_from_db()
    assert report.requeued == [job.pk]
    assert (job.state, job.lease_owner, job.attempts) == (JobState.NOT_STARTED, None, 1)
    assert "worker:gone:1 stopped renewing its lease" in job.status_history[-1]["message"]
    assert job.status_history[-1]["kind"] == "heal"
    run_until_idle()
    job.refresh_from_db()
    assert (job.result, job.attempts) == (JobResult.SUCCESS, 2)


def test_reconciler_fails_a_job_out_of_attempts_saying_why() -> None:
    job = _stale_running_job(attempts=3)
    report = pipelines_reconcile()
    job.refresh_from_db()
    assert report.failed == [job.pk]
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.ERROR)
    assert "during attempt 3 of 3; giving up" in job.status_message
    job.pipeline.refresh_from_db()
    assert job.pipeline.status == PipelineStatus.FAILED


def test_reconciler_chains_a_missing_aggregation() -> None:
    # given: two finished recalc siblings whose fan-in never happened (forced)
    pipeline = dispatch({"chain": [recalc_child(1), recalc_child(2)]})
    run_until_idle()
    IngestionJob.objects.filter(pipeline=pipeline, job_type=JobType.AGGREGATION).delete()
    IngestionJob.objects.filter(pipeline=pipeline).update(closed_fan_in=False)
    Pipeline.objects.filter(pk=pipeline.pk).update(status=PipelineStatus.RUNNING, finished_at=None)
    # when
    report = pipelines_reconcile()
    run_until_idle()
    # then
    pipeline.refresh_from_db()
    assert len(report.fan_ins) == 1
    assert [j.job_type for j in jobs_of(pipeline)].count(JobType.AGGREGATION) == 1
    assert pipeline.status == PipelineStatus.SUCCESS


def test_reconciler_sweep_cost_does_not_grow_with_history() -> None:
    def seed(n: int) -> None:
        now = timezone.now()
        pipelines = [
            Pipeline(
                kind=JobType.CSV_INGEST,
                entity_type=EntityType.MODULE_PER_YEAR,
                ingestion_method=IngestionMethod.CSV,
                status=PipelineStatus.SUCCESS,
                finished_at=now,
                job_count=1,
            )  # fmt: skip
            for _ in range(n)
        ]
        Pipeline.objects.bulk_create(pipelines, batch_size=2000)
        IngestionJob.objects.bulk_create(
            [
                IngestionJob(
                    pipeline=p,
                    job_type=JobType.CSV_INGEST,
                    entity_type=EntityType.MODULE_PER_YEAR,
                    ingestion_method=IngestionMethod.CSV,
                    state=JobState.FINISHED,
                    result=JobResult.SUCCESS,
                    finished_at=now,
                )  # fmt: skip
                for p in pipelines
            ],
            batch_size=2000,
        )

    def sweep_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            pipelines_reconcile()
        return len(ctx.captured_queries)

    seed(10)
    small = sweep_queries()
    seed(9_990)
    assert Pipeline.objects.count() == 10_000
    assert sweep_queries() == small


def test_every_change_publishes_a_full_snapshot() -> None:
    seen: list[dict[str, Any]] = []
    events.listeners.append(seen.append)
    try:
        pipeline = dispatch({"chain": [recalc_child(1)]})
        run_until_idle()
    finally:
        events.listeners.remove(seen.append)
    mine = [s for s in seen if s["pipeline_id"] == str(pipeline.pk)]
    statuses = [s["status"] for s in mine]
    assert statuses[0] == PipelineStatus.NOT_STARTED
    assert PipelineStatus.RUNNING in statuses
    assert statuses[-1] == PipelineStatus.SUCCESS
    final = mine[-1]
    assert final["progress"]["done"] is True
    assert [j["job_type"] for j in final["jobs"]] == ["csv_ingest", "emission_recalc", "aggregation"]
    assert all(j["state"] == JobState.FINISHED for j in final["jobs"])


def test_run_worker_once_runs_what_is_claimable_and_exits() -> None:
    from django.core.management import call_command

    pipeline = dispatch({"chain": [recalc_child(1)]})
    call_command("run_worker", "--once", "--worker-id", "worker:cli:1")
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.SUCCESS
    assert not IngestionJob.objects.exclude(state=JobState.FINISHED).exists()


def test_reconcile_pipelines_once_reports_as_json() -> None:
    import json
    from io import StringIO

    from django.core.management import call_command

    job = _stale_running_job(attempts=1)
    out = StringIO()
    call_command("reconcile_pipelines", "--once", "--json", stdout=out)
    assert json.loads(out.getvalue())["requeued"] == [job.pk]


def test_job_abort_cancels_one_queued_job() -> None:
    pipeline = dispatch({})
    job = IngestionJob.objects.get(pipeline=pipeline)
    outcome = services.job_abort(job_id=job.pk)
    job.refresh_from_db()
    pipeline.refresh_from_db()
    assert (outcome.applied, outcome.cancelled) == (True, 1)
    assert (job.state, job.result) == (JobState.FINISHED, JobResult.CANCELLED)
    assert pipeline.status == PipelineStatus.CANCELLED
    # and it can be retried: a new attempt in the same pipeline
    services.job_retry(job_id=job.pk)
    run_until_idle()
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.SUCCESS


def test_recover_takes_back_only_a_stale_job() -> None:
    job = _stale_running_job(attempts=3)
    recovered = services.job_recover(job_id=job.pk)
    assert (recovered.state, recovered.attempts, recovered.lease_owner) == (JobState.NOT_STARTED, 0, None)
    assert recovered.status_message.startswith("Recovered by system: lease of worker:gone:1 expired at")
    # a job with a live lease is never taken from its worker
    live = _stale_running_job(attempts=1)
    IngestionJob.objects.filter(pk=live.pk).update(lease_expires_at=timezone.now() + timedelta(minutes=1))
    with pytest.raises(services.InvalidTransition):
        services.job_recover(job_id=live.pk)


def test_progress_is_recorded_in_a_capped_history_ending_with_the_terminal_message() -> None:
    pipeline = dispatch({"steps": 60})
    run_until_idle()
    (job,) = jobs_of(pipeline)
    history = job.status_history
    assert len(history) == 50
    assert history[-2]["message"] == "step 60 of 60"
    assert history[-1] == {**history[-1], "kind": "terminal", "message": "Success", "result": "SUCCESS"}
    assert job.meta["progress"] == {"processed": 60, "total": 60}
