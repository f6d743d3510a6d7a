"""Property-based tests of the status rules (``pipelines.rules.pipeline_verdict``, SPEC §5.2).

Hypothesis draws pipelines as the engine builds them, but with every outcome left to chance:
a root job (any root type, a manual recalculation included), 0–4 ``emission_recalc`` children,
optionally a job outside any fan-in (``module_emission_recalc``), and optionally the
``aggregation``, hung off one of the recalcs. Each job gets a random state (NOT_STARTED,
RUNNING, FINISHED), a random result when FINISHED (SUCCESS, WARNING, ERROR, CANCELLED), a random
``closed_fan_in`` when it is a finished recalc, and random start/finish times; a NOT_STARTED job
may keep a ``started_at`` (requeued after a stale lease). The properties hold for every draw,
including combinations the engine never produces (a root ERROR beside a cancelled child), so
the rules cannot depend on the engine's other invariants.

The expected answers are computed here from the spec's words (``_oracle_*``), not from the
helpers of ``pipelines.rules``. The properties, one test each:

P1  Counts: ``job_count`` is the number of jobs; ``error_count`` the number FINISHED with ERROR;
    ``has_errors`` is true iff any job FINISHED with ERROR, whatever the status (so a
    running pipeline already shows "running, with errors").
P2  NOT_STARTED iff no job was ever claimed (every job NOT_STARTED and never started; also the
    empty pipeline).
P3  Terminal (SUCCESS, PARTIAL, FAILED, CANCELLED) iff a job was claimed, every job is FINISHED,
    and no fan-in is due and left open. A fan-in group is the ``emission_recalc`` siblings of one
    parent; it is due once all of them finished and at least one produced data (SUCCESS or
    WARNING); it is open while none of them recorded that it settled the group
    (``closed_fan_in``). Otherwise RUNNING.
P4  When terminal, exactly one of: FAILED iff the root ended in ERROR (its data did not land);
    else CANCELLED iff an abort ended a job (a CANCELLED result); else PARTIAL iff the root
    ended SUCCESS/WARNING and a descendant ended in ERROR; else SUCCESS.
P5  WARNING never makes a pipeline PARTIAL: turning every WARNING into SUCCESS leaves the
    verdict's status unchanged, and a pipeline without any ERROR is never PARTIAL or FAILED.
P6  Times: ``started_at`` is the earliest start; ``finished_at`` is the latest finish when
    terminal and None otherwise.
P7  The verdict depends on the jobs, not on the order they are listed in (the root is the
    smallest id).
P8  ``last_error`` is the message of an errored job (the first informative one by id, where
    there is one) when ``has_errors``, and empty otherwise.

``RULES_MAX_EXAMPLES`` (default 300) sets the examples per property.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.choices import JobResult, JobState, JobType, PipelineStatus
from pipelines.rules import JobView, PipelineVerdict, pipeline_verdict

MAX_EXAMPLES = int(os.environ.get("RULES_MAX_EXAMPLES", "300"))
PROPERTY = settings(max_examples=MAX_EXAMPLES, deadline=None)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TERMINAL = {PipelineStatus.SUCCESS, PipelineStatus.PARTIAL, PipelineStatus.FAILED, PipelineStatus.CANCELLED}
ROOT_TYPES = [
    JobType.CSV_INGEST,
    JobType.API_INGEST,
    JobType.FACTOR_INGEST,
    JobType.REFERENCE_INGEST,
    JobType.UNIT_SYNC,
    JobType.EMISSION_RECALC,  # a manual recalculation: the root fans in itself
]
# FINISHED weighs more, so that most draws reach a terminal verdict and its precedence rules.
STATES = [JobState.NOT_STARTED, JobState.RUNNING, *[JobState.FINISHED] * 4]
MESSAGES = ["", "Success", " success ", "boom", "ERROR: 0 inserted, 3 skipped", "Aborted by root"]


@st.composite
def job_views(draw: st.DrawFn, *, id: int, job_type: str, parent: int | None, settled: bool = False) -> JobView:
    state = JobState.FINISHED if settled else draw(st.sampled_from(STATES))
    finished = state == JobState.FINISHED
    result = draw(st.sampled_from(JobResult.values)) if finished else None
    # A requeued job (stale lease) is NOT_STARTED again but keeps its first start.
    started = state != JobState.NOT_STARTED or draw(st.booleans())
    start = draw(st.integers(min_value=0, max_value=1000))
    return JobView(
        id=id,
        parent_id=parent,
        job_type=job_type,
        state=state,
        result=result,
        status_message=draw(st.sampled_from(MESSAGES)),
        started_at=T0 + timedelta(seconds=start) if started else None,
        finished_at=T0 + timedelta(seconds=start + draw(st.integers(0, 1000))) if finished else None,
        closed_fan_in=finished and job_type == JobType.EMISSION_RECALC and draw(st.booleans()),
    )


@st.composite
def pipelines(draw: st.DrawFn) -> list[JobView]:
    """Root + recalc children + optional other child + optional aggregation, ids increasing."""
    ids = iter(range(1, 100))
    # Half the draws have every job FINISHED, so the terminal rules get their share of examples.
    settled = draw(st.booleans())
    root = draw(job_views(id=next(ids), job_type=draw(st.sampled_from(ROOT_TYPES)), parent=None, settled=settled))
    jobs = [root]
    recalcs = [
        draw(job_views(id=next(ids), job_type=JobType.EMISSION_RECALC, parent=root.id, settled=settled))
        for _ in range(draw(st.integers(0, 4)))
    ]
    jobs += recalcs
    if draw(st.booleans()):
        other = job_views(id=next(ids), job_type=JobType.MODULE_EMISSION_RECALC, parent=root.id, settled=settled)
        jobs.append(draw(other))
    closers = [j for j in [root, *recalcs] if j.job_type == JobType.EMISSION_RECALC]
    aggregated: bool = draw(st.booleans())
    if closers and aggregated:
        fanned = draw(st.sampled_from(closers))
        jobs.append(draw(job_views(id=next(ids), job_type=JobType.AGGREGATION, parent=fanned.id, settled=settled)))
    return jobs


# --- The spec, restated -------------------------------------------------------------------------


def _finished(job: JobView, *results: str) -> bool:
    return job.state == JobState.FINISHED and (not results or job.result in results)


def _oracle_claimed(jobs: list[JobView]) -> bool:
    return any(j.state != JobState.NOT_STARTED or j.started_at is not None for j in jobs)


def _oracle_open_fan_in(jobs: list[JobView]) -> bool:
    groups: dict[int | None, list[JobView]] = {}
    for job in jobs:
        if job.job_type == JobType.EMISSION_RECALC:
            groups.setdefault(job.parent_id, []).append(job)
    for group in groups.values():
        due = all(_finished(j) for j in group) and any(
            _finished(j, JobResult.SUCCESS, JobResult.WARNING) for j in group
        )
        if due and not any(j.closed_fan_in for j in group):
            return True
    return False


def _oracle_terminal(jobs: list[JobView]) -> bool:
    return _oracle_claimed(jobs) and all(_finished(j) for j in jobs) and not _oracle_open_fan_in(jobs)


def _oracle_terminal_status(jobs: list[JobView]) -> str:
    root = min(jobs, key=lambda j: j.id)
    descendants = [j for j in jobs if j is not root]
    if root.result == JobResult.ERROR:
        return PipelineStatus.FAILED
    if any(j.result == JobResult.CANCELLED for j in jobs):
        return PipelineStatus.CANCELLED
    if root.result in (JobResult.SUCCESS, JobResult.WARNING) and any(
        _finished(j, JobResult.ERROR) for j in descendants
    ):
        return PipelineStatus.PARTIAL
    return PipelineStatus.SUCCESS


def _shuffled(jobs: list[JobView], seed: int) -> list[JobView]:
    copy = list(jobs)
    random.Random(seed).shuffle(copy)
    return copy


# --- Properties ---------------------------------------------------------------------------------


@PROPERTY
@given(pipelines())
def test_p1_counts_and_has_errors(jobs: list[JobView]) -> None:
    """P1: job_count, error_count and has_errors count the jobs, whatever the status."""
    verdict = pipeline_verdict(jobs)
    errors = [j for j in jobs if _finished(j, JobResult.ERROR)]
    assert verdict.job_count == len(jobs)
    assert verdict.error_count == len(errors)
    assert verdict.has_errors is bool(errors)


@PROPERTY
@given(pipelines())
def test_p2_not_started_iff_nothing_was_claimed(jobs: list[JobView]) -> None:
    """P2: NOT_STARTED exactly when no job was ever claimed."""
    assert (pipeline_verdict(jobs).status == PipelineStatus.NOT_STARTED) is not _oracle_claimed(jobs)
    assert pipeline_verdict([]).status == PipelineStatus.NOT_STARTED


@PROPERTY
@given(pipelines())
def test_p3_terminal_only_when_every_job_finished_and_no_fan_in_is_left_open(jobs: list[JobView]) -> None:
    """P3: terminal iff claimed, all FINISHED, no due fan-in open; RUNNING otherwise (once claimed)."""
    verdict = pipeline_verdict(jobs)
    assert verdict.is_terminal is _oracle_terminal(jobs)
    assert (verdict.status in TERMINAL) is verdict.is_terminal
    if _oracle_claimed(jobs) and not verdict.is_terminal:
        assert verdict.status == PipelineStatus.RUNNING


@PROPERTY
@given(pipelines())
def test_p4_terminal_status_failed_cancelled_partial_success(jobs: list[JobView]) -> None:
    """P4: FAILED iff root ERROR; else CANCELLED iff a job was cancelled; else PARTIAL iff a
    descendant ERROR under a SUCCESS/WARNING root; else SUCCESS."""
    verdict = pipeline_verdict(jobs)
    if not verdict.is_terminal:
        return
    assert verdict.status == _oracle_terminal_status(jobs)
    root = jobs[0]
    assert (verdict.status == PipelineStatus.FAILED) is (root.result == JobResult.ERROR)
    if verdict.status == PipelineStatus.PARTIAL:
        assert root.result in (JobResult.SUCCESS, JobResult.WARNING)
        assert not any(j.result == JobResult.CANCELLED for j in jobs)
        assert any(_finished(j, JobResult.ERROR) for j in jobs[1:])


@PROPERTY
@given(pipelines())
def test_p5_warning_never_makes_partial(jobs: list[JobView]) -> None:
    """P5: WARNING counts as SUCCESS for the status; without an ERROR, never PARTIAL or FAILED."""
    verdict = pipeline_verdict(jobs)
    as_success = [replace(j, result=JobResult.SUCCESS) if j.result == JobResult.WARNING else j for j in jobs]
    assert pipeline_verdict(as_success).status == verdict.status
    if not any(_finished(j, JobResult.ERROR) for j in jobs):
        assert verdict.status not in (PipelineStatus.PARTIAL, PipelineStatus.FAILED)


@PROPERTY
@given(pipelines())
def test_p6_started_and_finished_times(jobs: list[JobView]) -> None:
    """P6: started_at = earliest start; finished_at = latest finish when terminal, else None."""
    verdict = pipeline_verdict(jobs)
    starts = [j.started_at for j in jobs if j.started_at is not None]
    finishes = [j.finished_at for j in jobs if j.finished_at is not None]
    assert verdict.started_at == (min(starts) if starts else None)
    if verdict.is_terminal:
        assert verdict.finished_at == max(finishes)
    else:
        assert verdict.finished_at is None


@PROPERTY
@given(pipelines(), st.integers(min_value=0, max_value=2**32))
def test_p7_the_order_of_the_jobs_does_not_matter(jobs: list[JobView], seed: int) -> None:
    """P7: the same jobs listed in any order give the same verdict."""
    expected: PipelineVerdict = pipeline_verdict(jobs)
    assert pipeline_verdict(_shuffled(jobs, seed)) == expected


@PROPERTY
@given(pipelines())
def test_p8_last_error_is_an_errored_jobs_message(jobs: list[JobView]) -> None:
    """P8: last_error comes from the errored jobs (first informative one by id), else is empty."""
    verdict = pipeline_verdict(jobs)
    errored = [j for j in jobs if _finished(j, JobResult.ERROR)]
    if not errored:
        assert verdict.last_error == ""
        return
    informative = [j.status_message for j in errored if j.status_message.strip().lower() not in ("", "success")]
    assert verdict.last_error == (informative[0] if informative else errored[0].status_message)
