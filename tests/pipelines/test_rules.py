"""Status rules as pure functions (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipelines.choices import JobResult, JobState, JobType, PipelineStatus
from pipelines.rules import (
    HISTORY_LIMIT,
    JOB_TYPE_BITS,
    SEARCH_SEPARATOR,
    JobView,
    cap_reason,
    fan_in_config,
    final_message,
    first_row_error,
    history_append,
    job_types_mask,
    pipeline_search_text,
    pipeline_verdict,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(
    id: int,
    job_type: str = JobType.CSV_INGEST,
    *,
    parent: int | None = None,
    state: str = JobState.FINISHED,
    result: str | None = JobResult.SUCCESS,
    message: str = "Success",
    closed: bool = False,
) -> JobView:
    finished = state == JobState.FINISHED
    return JobView(
        id=id,
        parent_id=parent,
        job_type=job_type,
        state=state,
        result=result if finished else None,
        status_message=message,
        started_at=None if state == JobState.NOT_STARTED else T0 + timedelta(seconds=id),
        finished_at=T0 + timedelta(seconds=10 + id) if finished else None,
        closed_fan_in=closed,
    )


def recalc(id: int, **kw: Any) -> JobView:
    return job(id, JobType.EMISSION_RECALC, parent=1, **kw)


def agg(id: int, parent: int, **kw: Any) -> JobView:
    return job(id, JobType.AGGREGATION, parent=parent, **kw)


def test_no_jobs_or_nothing_claimed_is_not_started() -> None:
    assert pipeline_verdict([]).status == PipelineStatus.NOT_STARTED
    assert pipeline_verdict([job(1, state=JobState.NOT_STARTED)]).status == PipelineStatus.NOT_STARTED


def test_example_a_in_flight_then_success() -> None:
    # root done, recalcs chained but not run: RUNNING, phase 2
    verdict = pipeline_verdict([job(1), recalc(2, state=JobState.NOT_STARTED), recalc(3, state=JobState.NOT_STARTED)])
    assert (verdict.status, verdict.phase, verdict.has_errors) == (PipelineStatus.RUNNING, 2, False)
    # one recalc done: still RUNNING
    assert pipeline_verdict([job(1), recalc(2), recalc(3, state=JobState.RUNNING)]).status == PipelineStatus.RUNNING
    # both done, the last one closed the fan-in with an aggregation pending: RUNNING, phase 3
    pending = [job(1), recalc(2), recalc(3, closed=True), agg(4, 3, state=JobState.NOT_STARTED)]
    assert (pipeline_verdict(pending).status, pipeline_verdict(pending).phase) == (PipelineStatus.RUNNING, 3)
    done = pipeline_verdict([job(1), recalc(2), recalc(3, closed=True), agg(4, 3)])
    assert done.status == PipelineStatus.SUCCESS
    assert (done.job_count, done.error_count) == (4, 0)
    assert done.started_at == T0 + timedelta(seconds=1)
    assert done.finished_at == T0 + timedelta(seconds=14)


def test_example_b_failed_recalc_is_partial_only_when_everything_finished() -> None:
    running = pipeline_verdict(
        [job(1), recalc(2, result=JobResult.ERROR, message="boom"), recalc(3, state=JobState.RUNNING)]
    )
    # this spec: no PARTIAL while a sibling still runs, but has_errors turns on early
    assert running.status == PipelineStatus.RUNNING
    assert running.has_errors is True
    finished = pipeline_verdict(
        [job(1), recalc(2, result=JobResult.ERROR, message="boom"), recalc(3, closed=True), agg(4, 3)]
    )
    assert finished.status == PipelineStatus.PARTIAL
    assert finished.last_error == "boom"
    assert finished.error_count == 1


def test_example_c_root_error_is_failed() -> None:
    verdict = pipeline_verdict([job(1, result=JobResult.ERROR, message="ERROR: 0 inserted, 3 skipped")])
    assert verdict.status == PipelineStatus.FAILED
    assert verdict.last_error == "ERROR: 0 inserted, 3 skipped"


def test_example_d_no_owned_children_is_success_when_root_finishes() -> None:
    assert pipeline_verdict([job(1)]).status == PipelineStatus.SUCCESS


def test_example_e_single_job() -> None:
    assert pipeline_verdict([job(1, JobType.UNIT_SYNC)]).status == PipelineStatus.SUCCESS
    assert pipeline_verdict([job(1, JobType.UNIT_SYNC, result=JobResult.ERROR)]).status == PipelineStatus.FAILED


def test_example_f_abort_is_cancelled() -> None:
    verdict = pipeline_verdict(
        [job(1), recalc(2, result=JobResult.CANCELLED, message="Aborted by x"), recalc(3, result=JobResult.CANCELLED)]
    )
    assert verdict.status == PipelineStatus.CANCELLED
    assert pipeline_verdict([job(1, result=JobResult.CANCELLED)]).status == PipelineStatus.CANCELLED


def test_warning_never_makes_partial() -> None:
    verdict = pipeline_verdict(
        [job(1, result=JobResult.WARNING), recalc(2, result=JobResult.WARNING, closed=True), agg(3, 2)]
    )
    assert verdict.status == PipelineStatus.SUCCESS


def test_finished_recalcs_without_their_aggregation_are_not_terminal() -> None:
    # every job FINISHED, but the group fanned in to nothing: the reconciler must heal it
    assert pipeline_verdict([job(1), recalc(2), recalc(3)]).status == PipelineStatus.RUNNING


def test_group_where_every_member_failed_needs_no_aggregation() -> None:
    verdict = pipeline_verdict([job(1), recalc(2, result=JobResult.ERROR), recalc(3, result=JobResult.ERROR)])
    assert verdict.status == PipelineStatus.PARTIAL


def test_last_error_skips_uninformative_messages() -> None:
    verdict = pipeline_verdict(
        [
            job(1),
            recalc(2, result=JobResult.ERROR, message=" success "),
            recalc(3, result=JobResult.ERROR, message="real"),
        ]
    )
    assert verdict.last_error == "real"


def test_final_message_never_says_success_on_failure() -> None:
    meta = {
        "stats": {
            "rows_processed": 0,
            "rows_skipped": 3,
            "row_errors": [{"row": 2, "column": "fte", "reason": "not a number"}],
        }
    }
    assert final_message(JobResult.ERROR, "Success", meta) == (
        "ERROR: 0 inserted, 3 skipped — first error: row 2, column fte: not a number"
    )
    assert final_message(JobResult.WARNING, "", {"inserted": 5, "skipped": 1}) == "WARNING: 5 inserted, 1 skipped"
    assert final_message(JobResult.ERROR, "File is not UTF-8", meta) == "File is not UTF-8"
    assert final_message(JobResult.SUCCESS, "", {}) == "Success"


def test_first_row_error_found_at_top_level_too_and_capped() -> None:
    assert first_row_error({"row_errors": [{"row": 1, "reason": "x"}]}) == "row 1: x"
    assert first_row_error({"row_errors": [{"reason": ""}], "stats": {}}) == ""
    long = cap_reason("y" * 500)
    assert len(long) == 200
    assert long.endswith("…")


def test_history_is_capped_and_keeps_the_latest() -> None:
    history: list[dict[str, object]] = []
    for i in range(HISTORY_LIMIT + 7):
        history = history_append(history, {"message": str(i)})
    assert len(history) == HISTORY_LIMIT
    assert history[-1]["message"] == str(HISTORY_LIMIT + 6)
    assert history[0]["message"] == "7"


@pytest.mark.parametrize(
    ("payloads", "expected"),
    [
        ([{"affected_module_ids": [3, 1]}, {"affected_module_ids": [2, 3]}], {"affected_module_ids": [1, 2, 3]}),
        ([{}, {"affected_module_ids": []}], {"affected_module_ids": []}),
        ([], {}),
    ],
)
def test_fan_in_config_unions_lists(payloads: list[dict[str, object]], expected: dict[str, object]) -> None:
    assert fan_in_config(payloads) == expected


def test_every_job_type_has_its_own_bit_and_the_verdict_carries_the_pipelines_types() -> None:
    assert set(JOB_TYPE_BITS) == set(JobType.values)
    bits = list(JOB_TYPE_BITS.values())
    assert all(bit and bit & (bit - 1) == 0 for bit in bits)
    assert len(set(bits)) == len(bits)
    verdict = pipeline_verdict([job(1), recalc(2), recalc(3), agg(4, 2, closed=True)])
    assert verdict.job_types == job_types_mask([JobType.CSV_INGEST, JobType.EMISSION_RECALC, JobType.AGGREGATION])
    assert verdict.job_types & JOB_TYPE_BITS[JobType.UNIT_SYNC] == 0
    assert job_types_mask([]) == 0
    assert job_types_mask(["no_such_type"]) == 0


def test_search_text_holds_each_message_once_in_job_order() -> None:
    jobs = [
        recalc(3, message="Emission recalculation completed"),
        job(1, message="Processed 10 rows"),
        recalc(2, message="Emission recalculation completed"),
        agg(4, 2, message=""),
        agg(5, 3, message="row 2, column unit: unknown unit"),
    ]
    text = pipeline_search_text(jobs)
    assert text.split(SEARCH_SEPARATOR) == [
        "Processed 10 rows",
        "Emission recalculation completed",
        "row 2, column unit: unknown unit",
    ]
    assert pipeline_verdict(jobs).search_text == text
    assert pipeline_search_text([]) == ""
