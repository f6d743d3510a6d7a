"""Crash matrix: real workers SIGKILLed at random points of real jobs (SPEC §5.4, reference-pipeline-core §3.9).

One test per job type — ``csv_ingest``, ``emission_recalc``, ``aggregation``, ``unit_sync`` — with
the real handlers (``manage.py run_worker``), two workers and the reconciler (lease 3 s, heartbeat
1 s, sweep every 1 s), on SQLite and PostgreSQL. Each test runs rounds; a round dispatches one
pipeline and SIGKILLs the worker running its target job 1 to JOB_MAX_ATTEMPTS times: after a
random delay once the job is RUNNING (a fraction of that job's duration, measured on an
unkilled baseline run), or — on PostgreSQL, where progress is visible live — once it reaches a
random progress step. A replacement worker starts after every kill. Then:

- the pipeline ends terminal (never stuck) and no job anywhere is left RUNNING or NOT_STARTED;
- a target job that eventually succeeded landed exactly once: entries equal the file's valid
  rows (nothing duplicated, nothing lost), emissions equal a from-scratch recalculation, a new
  year has one report per unit;
- a target job killed JOB_MAX_ATTEMPTS times ended ERROR saying why, nothing of it landed and the
  previous data is intact; "retry failed" then runs it to success (the same checks as above);
- the figures equal a from-scratch recomputation (``tests.faults.stats_drift``).

A kill counts when the victim still held the target job RUNNING as it died (its attempt was
lost) — read once its PostgreSQL backends have exited too, since a COMMIT sent just before the
SIGKILL still lands (and must then count as a success, which it does). Rounds go on until each
type has its share of ``CRASH_KILLS`` (default 20: 5 per type; ``CRASH_KILLS=4`` for a quick
local run) and, when the share allows, until one job was killed on every attempt.
``CRASH_SEED`` replays a run: the seed is printed and named in every assertion message.
``CRASH_UNITS`` / ``CRASH_ROWS`` size the data.
"""

from __future__ import annotations

import functools
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.models import Count

from carbon.models import (
    CarbonReport,
    CarbonReportModule,
    DataEntry,
    DataEntryEmission,
    Factor,
    Unit,
    YearConfiguration,
)
from carbon.services import emission_recalculation_start, emissions_recalculate
from pipelines import services
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobState, JobType, PipelineStatus, TargetType
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import Scope, pipeline_create
from tests.faults import (
    Cluster,
    LocalDirectory,
    bulk_rows_wipe,
    equipment_file,
    equipment_year,
    figures_read,
    local_directory,
    log_tail,
    nothing_active,
    pipeline_report,
    stats_drift,
    upload_pipeline,
    wait_terminal,
)
from tests.pipelines.conftest import wait_for, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, databases="__all__")]

CRASH_KILLS = int(os.environ.get("CRASH_KILLS", "20"))
SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 31))
UNITS = int(os.environ.get("CRASH_UNITS", "800"))
ROWS = int(os.environ.get("CRASH_ROWS", "20000"))
MAX_ATTEMPTS = 3
LEASE_SECONDS = 3
YEAR = 2025
TYPES = (JobType.CSV_INGEST, JobType.EMISSION_RECALC, JobType.AGGREGATION, JobType.UNIT_SYNC)
GIVE_UP = "giving up"


def quota() -> int:
    """Kills per job type: an equal share of CRASH_KILLS."""
    return max(1, math.ceil(CRASH_KILLS / len(TYPES)))


def kill_plan(rng: random.Random, kills: int) -> list[int]:
    """Kills per round: one round of MAX_ATTEMPTS (the give-up case) when the share allows,
    the rest in rounds of 1 or 2 (the job then succeeds on a later attempt); random order."""
    plan = []
    if kills >= MAX_ATTEMPTS:
        plan.append(MAX_ATTEMPTS)
        kills -= MAX_ATTEMPTS
    while kills > 0:
        plan.append(min(kills, rng.choice((1, 2))))
        kills -= plan[-1]
    rng.shuffle(plan)
    return plan


@dataclass
class Kill:
    job_type: str
    round: int
    attempt: int
    mode: str
    at: str  # the delay or the progress step
    victim: str
    hit: bool

    def line(self) -> str:
        outcome = "lost its attempt" if self.hit else "missed (the job had committed)"
        return (
            f"{self.job_type} round {self.round} attempt {self.attempt}: SIGKILL {self.victim} "
            f"[{self.mode} {self.at}] {outcome}"
        )


@dataclass
class Matrix:
    job_type: str
    seed: int
    cluster: Cluster
    kills: list[Kill] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    gave_up: bool = False

    @property
    def replay(self) -> str:
        return f"[replay: CRASH_SEED={self.seed} pytest {__file__}::test_crash_matrix[{self.job_type}]]"

    def hits(self) -> int:
        return sum(k.hit for k in self.kills)

    def fail(self, message: str) -> str:
        return (
            f"{self.replay} on {connection.vendor}: {message}\nkills:\n"
            + "\n".join("  " + k.line() for k in self.kills)
            + "\nworker logs (tail):\n"
            + log_tail(self.cluster.logs())
        )


# --- Scenarios: what is dispatched, which job is killed, what must hold afterwards ---------------


class Scenario:
    """One job type's experiment. ``dispatch`` snapshots what must survive a give-up."""

    job_type: str = ""
    check_figures = True

    def setup(self) -> float:
        """Provision the data and run one unkilled baseline; return the target job's duration."""
        raise NotImplementedError

    def dispatch(self, rng: random.Random, round_no: int) -> Pipeline:
        raise NotImplementedError

    def target(self, pipeline: Pipeline) -> IngestionJob | None:
        return IngestionJob.objects.filter(pipeline=pipeline, job_type=self.job_type).order_by("id").first()

    def progress_steps(self) -> list[int]:
        """Progress values the job reports (PostgreSQL kills at one of them); none → delays only."""
        return []

    def succeeded(self, pipeline: Pipeline) -> list[str]:
        raise NotImplementedError

    def gave_up(self, pipeline: Pipeline) -> list[str]:
        raise NotImplementedError


def duration(job: IngestionJob | None) -> float:
    assert job is not None
    assert job.started_at is not None
    assert job.finished_at is not None
    return (job.finished_at - job.started_at).total_seconds()


def last_attempt_seconds(job: IngestionJob | None) -> float | None:
    """How long the job's last attempt ran: from its last claim to its end."""
    if job is None or job.finished_at is None:
        return None
    claims = [e["ts"] for e in job.status_history or [] if e.get("kind") == "claim"]
    if not claims:
        return None
    return (job.finished_at - datetime.fromisoformat(claims[-1])).total_seconds()


def run_baseline(pipeline: Pipeline, what: str) -> None:
    wait_terminal([pipeline.pk], timeout=300, what=what)
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.SUCCESS, pipeline_report(pipeline.pk)


def status_problems(pipeline: Pipeline, expected: str, *, aggregations: int | None = None) -> list[str]:
    """What is wrong with how PIPELINE ended: not EXPECTED, or not exactly AGGREGATIONS aggregations."""
    problems = [] if pipeline.status == expected else [f"pipeline {pipeline.status}, expected {expected}"]
    if aggregations is not None:
        chained = IngestionJob.objects.filter(pipeline=pipeline, job_type=JobType.AGGREGATION).count()
        if chained != aggregations:
            problems.append(f"{chained} aggregations, expected {aggregations}")
    return problems


def duplicated_emissions(year: int) -> int:
    """Emission rows that repeat an (entry, emission type) pair: a double landing."""
    return (
        DataEntryEmission.objects.filter(data_entry__year=year)
        .values("data_entry_id", "emission_type_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )


class EquipmentData(Scenario):
    """UNITS units with their 2025 reports, the equipment factors, per-year equipment files."""

    def setup(self) -> float:
        self.cfs = equipment_year(units=UNITS, year=YEAR)
        self.file = equipment_file(cfs=self.cfs, rows=ROWS, invalid=7, rng=random.Random(1), tag="base")
        self.baseline = upload_pipeline(text=self.file.text, name="equipment.csv", year=YEAR, module_type_id=4)
        run_baseline(self.baseline, "the baseline upload")
        assert not self.entries_problems(self.baseline), self.entries_problems(self.baseline)
        return self.baseline_duration()

    def baseline_duration(self) -> float:
        return duration(IngestionJob.objects.filter(pipeline=self.baseline, job_type=self.job_type).first())

    def upload(self, rng: random.Random, round_no: int) -> Pipeline:
        rows = rng.randint(ROWS * 3 // 4, ROWS)
        self.file = equipment_file(cfs=self.cfs, rows=rows, invalid=rng.randint(1, 20), rng=rng, tag=f"r{round_no}")
        return upload_pipeline(text=self.file.text, name="equipment.csv", year=YEAR, module_type_id=4)

    def entry_ids(self) -> list[int]:
        return sorted(DataEntry.objects.filter(year=YEAR, module_type_id=4).values_list("id", flat=True))

    def entries_problems(self, pipeline: Pipeline) -> list[str]:
        """The file landed exactly once: its valid rows, once each, from this pipeline's job."""
        root = IngestionJob.objects.get(pipeline=pipeline, parent__isnull=True)
        entries = DataEntry.objects.filter(year=YEAR, module_type_id=4)
        problems = []
        ids = sorted(entries.values_list("data__equipment_id", flat=True))
        if ids != sorted(self.file.valid_ids):
            problems.append(f"{len(ids)} entries, the file has {self.file.valid} valid rows ({self.file.invalid} not)")
        if set(entries.values_list("source_job_id", flat=True)) != {root.pk}:
            problems.append(f"entries from jobs {set(entries.values_list('source_job_id', flat=True))}, not #{root.pk}")
        duplicated = duplicated_emissions(YEAR)
        if duplicated:
            problems.append(f"{duplicated} (entry, emission type) pairs have more than one emission row")
        without = entries.exclude(emissions__isnull=False).count()
        if without:
            problems.append(f"{without} entries have no emission (every class has a factor)")
        return problems


class IngestScenario(EquipmentData):
    job_type = JobType.CSV_INGEST

    def progress_steps(self) -> list[int]:
        return list(range(10_000, ROWS, 10_000))

    def dispatch(self, rng: random.Random, round_no: int) -> Pipeline:
        self.previous = self.entry_ids()
        return self.upload(rng, round_no)

    def succeeded(self, pipeline: Pipeline) -> list[str]:
        return self.entries_problems(pipeline) + status_problems(pipeline, PipelineStatus.SUCCESS, aggregations=1)

    def gave_up(self, pipeline: Pipeline) -> list[str]:
        problems = status_problems(pipeline, PipelineStatus.FAILED)
        if IngestionJob.objects.filter(pipeline=pipeline).count() != 1:
            problems.append("the failed ingest chained children")
        if self.entry_ids() != self.previous:
            problems.append("the previous entries changed although the upload never landed")
        return problems


class RecalcScenario(EquipmentData):
    """A manual recalculation of det 11 after its factors changed (the baseline upload provides
    the entries and their current emissions)."""

    job_type = JobType.EMISSION_RECALC

    def baseline_duration(self) -> float:
        return max(duration(j) for j in IngestionJob.objects.filter(pipeline=self.baseline, job_type=self.job_type))

    def progress_steps(self) -> list[int]:
        per_det = ROWS * 3 // 5
        return list(range(5000, per_det, 5000))

    def emissions(self) -> list[tuple[int, int, float]]:
        return sorted(
            (e, t, round(kg, 6))
            for e, t, kg in DataEntryEmission.objects.filter(
                data_entry__year=YEAR, data_entry__data_entry_type_id=11
            ).values_list("data_entry_id", "emission_type_id", "kg_co2eq")
        )

    def recomputed(self) -> list[tuple[int, int, float]]:
        with transaction.atomic():
            emissions_recalculate(data_entry_type_id=11, year=YEAR)
            fresh = self.emissions()
            transaction.set_rollback(True)
        return fresh

    def dispatch(self, rng: random.Random, round_no: int) -> Pipeline:
        for factor in Factor.objects.filter(data_entry_type_id=11, year=YEAR):
            factor.values = {**factor.values, "ef_kg_co2eq_per_kwh": round(rng.uniform(0.05, 0.5), 4)}
            factor.save(update_fields=["values"])
        self.previous = self.emissions()
        return emission_recalculation_start(module_type_id=4, year=YEAR, data_entry_type_id=11).pipeline

    def succeeded(self, pipeline: Pipeline) -> list[str]:
        problems = []
        stored, fresh = self.emissions(), self.recomputed()
        if stored != fresh:
            problems.append(f"{len(stored)} stored det-11 emissions differ from the {len(fresh)} recalculated")
        if duplicated_emissions(YEAR):
            problems.append("duplicated emission rows")
        return problems + status_problems(pipeline, PipelineStatus.SUCCESS, aggregations=1)

    def gave_up(self, pipeline: Pipeline) -> list[str]:
        # no aggregation: the recalculation that never landed changed nothing to aggregate
        problems = status_problems(pipeline, PipelineStatus.FAILED, aggregations=0)
        if self.emissions() != self.previous:
            problems.append("the previous emissions changed although the recalculation never landed")
        return problems


class AggregationScenario(EquipmentData):
    """A new upload whose aggregation is killed (ingest and recalcs run unharmed)."""

    job_type = JobType.AGGREGATION

    def dispatch(self, rng: random.Random, round_no: int) -> Pipeline:
        self.previous_figures = figures_read(YEAR)
        return self.upload(rng, round_no)

    def succeeded(self, pipeline: Pipeline) -> list[str]:
        return self.entries_problems(pipeline) + status_problems(pipeline, PipelineStatus.SUCCESS)

    def gave_up(self, pipeline: Pipeline) -> list[str]:
        # PARTIAL: the data landed, the aggregation failed
        problems = status_problems(pipeline, PipelineStatus.PARTIAL)
        if figures_read(YEAR) != self.previous_figures:
            problems.append("figures changed although the aggregation never landed")
        return problems


class UnitSyncScenario(Scenario):
    """Provisioning new years from a local directory of UNITS units (one year per round)."""

    job_type = JobType.UNIT_SYNC
    check_figures = False  # a new year has no figures yet

    def __init__(self, directory: LocalDirectory) -> None:
        self.directory = directory
        self.units = len(directory.directory.units)

    def sync(self, year: int) -> Pipeline:
        scope = Scope(entity_type=EntityType.GLOBAL_PER_YEAR, target_type=TargetType.REFERENCE_DATA,
                      ingestion_method=IngestionMethod.API, year=year)  # fmt: skip
        return pipeline_create(job_type=JobType.UNIT_SYNC, scope=scope, config={"target_year": year})[0]

    def setup(self) -> float:
        self.year = 2040
        baseline = self.sync(self.year)
        run_baseline(baseline, "the baseline unit sync")
        assert not self.year_problems(self.year)
        return duration(self.target(baseline))

    def progress_steps(self) -> list[int]:
        return list(range(100, self.units, 100))

    def reports_by_year(self) -> dict[int, int]:
        rows = CarbonReport.objects.values("year").annotate(n=Count("id")).values_list("year", "n")
        return dict(rows)

    def dispatch(self, rng: random.Random, round_no: int) -> Pipeline:
        self.year += 1
        self.previous = (Unit.objects.count(), self.reports_by_year())
        return self.sync(self.year)

    def year_problems(self, year: int) -> list[str]:
        problems = []
        if Unit.objects.count() != self.units:
            problems.append(f"{Unit.objects.count()} units, the directory has {self.units}")
        reports = CarbonReport.objects.filter(year=year).count()
        if reports != self.units:
            problems.append(f"{reports} reports for {year}, expected {self.units}")
        modules = CarbonReportModule.objects.filter(report__year=year).count()
        if modules != self.units * 8:
            problems.append(f"{modules} report modules for {year}, expected {self.units * 8}")
        if not YearConfiguration.objects.filter(year=year, configuration_completed__isnull=False).exists():
            problems.append(f"{year} not stamped configuration_completed")
        return problems

    def succeeded(self, pipeline: Pipeline) -> list[str]:
        problems = self.year_problems(self.year)
        before = {y: n for y, n in self.reports_by_year().items() if y != self.year}
        if before != self.previous[1]:
            problems.append(f"earlier years changed: {self.previous[1]} → {before}")
        return problems + status_problems(pipeline, PipelineStatus.SUCCESS)

    def gave_up(self, pipeline: Pipeline) -> list[str]:
        problems = status_problems(pipeline, PipelineStatus.FAILED)
        if (Unit.objects.count(), self.reports_by_year()) != self.previous:
            problems.append(
                f"units/reports changed: {self.previous} → {(Unit.objects.count(), self.reports_by_year())}"
            )
        if YearConfiguration.objects.filter(year=self.year, configuration_completed__isnull=False).exists():
            problems.append(f"{self.year} stamped configuration_completed by a sync that never landed")
        return problems


# --- The experiment -------------------------------------------------------------------------------


@pytest.fixture
def directory() -> Iterator[LocalDirectory]:
    with local_directory(UNITS) as local:
        yield local


def scenario_for(job_type: str, directory: LocalDirectory) -> Scenario:
    if job_type == JobType.UNIT_SYNC:
        return UnitSyncScenario(directory)
    scenarios: dict[str, type[EquipmentData]] = {
        JobType.CSV_INGEST: IngestScenario,
        JobType.EMISSION_RECALC: RecalcScenario,
        JobType.AGGREGATION: AggregationScenario,
    }
    return scenarios[job_type]()


def running_attempt(scenario: Scenario, pipeline: Pipeline, attempt: int) -> IngestionJob | None:
    """The target job once RUNNING in ATTEMPT (or FINISHED: then there is nothing left to kill)."""
    job = scenario.target(pipeline)
    if job is None:
        return None
    if job.state == JobState.FINISHED or (job.state == JobState.RUNNING and job.attempts >= attempt):
        return job
    return None


def strike(matrix: Matrix, scenario: Scenario, pipeline: Pipeline, rng: random.Random, round_no: int,
           kills: int, job_seconds: float) -> None:  # fmt: skip
    """Kill the target job's worker KILLS times, each after it is RUNNING again."""
    cluster = matrix.cluster
    for attempt in range(1, kills + 1):
        job = wait_for(
            functools.partial(running_attempt, scenario, pipeline, attempt),
            timeout=90,
            interval=0.02,
            what=f"{scenario.job_type} attempt {attempt} to run {matrix.replay}",
        )
        if job.state == JobState.FINISHED:
            return
        victim = job.lease_owner or ""
        steps = scenario.progress_steps() if connection.vendor == "postgresql" else []
        if steps and rng.random() < 0.5:
            step = rng.choice(steps)
            mode, at = "progress", f"≥ {step}"

            def reached(job_id: int = job.pk, owner: str = victim, target: int = step) -> bool:
                row = IngestionJob.objects.filter(pk=job_id).values("state", "lease_owner", "meta").first()
                if row is None or row["state"] != JobState.RUNNING or row["lease_owner"] != owner:
                    return True
                return int(((row["meta"] or {}).get("progress") or {}).get("processed") or 0) >= target

            wait_for(reached, timeout=120, interval=0.01, what=f"progress {step} {matrix.replay}")
        else:
            delay = rng.uniform(0.0, 0.8) * job_seconds
            mode, at = "delay", f"{delay:.2f}s"
            time.sleep(delay)  # the experiment's random point, not synchronisation
        if victim not in cluster.workers:
            return
        cluster.kill(victim)
        row = IngestionJob.objects.filter(pk=job.pk).values("state", "lease_owner").first()
        hit = row is not None and row["state"] == JobState.RUNNING and row["lease_owner"] == victim
        matrix.kills.append(Kill(scenario.job_type, round_no, attempt, mode, at, victim, hit))
        cluster.keep(2)
        if not hit:
            return


def settle_round(matrix: Matrix, scenario: Scenario, pipeline: Pipeline, round_no: int, started: float) -> None:
    wait_terminal([pipeline.pk], timeout=240, what=f"round {round_no} to end {matrix.replay}")
    ended = time.monotonic()
    pipeline.refresh_from_db()
    target = scenario.target(pipeline)
    assert target is not None, matrix.fail(pipeline_report(pipeline.pk))
    lost = [k for k in matrix.kills if k.round == round_no and k.hit]
    report = pipeline_report(pipeline.pk)
    if target.result == JobResult.ERROR:
        # Only the reconciler's give-up may fail it: the kills are the only fault injected.
        assert len(lost) == MAX_ATTEMPTS, matrix.fail(f"ERROR after {len(lost)} lost attempts:\n{report}")
        assert GIVE_UP in target.status_message, matrix.fail(report)
        assert f"during attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}" in target.status_message, matrix.fail(report)
        assert lost[-1].victim in target.status_message, matrix.fail(report)
        problems = scenario.gave_up(pipeline)
        assert not problems, matrix.fail(f"round {round_no} gave up: {problems}\n{report}")
        outcome = "gave up"
        matrix.gave_up = True
        # The operator's answer: retry the failed job; it must now land, once.
        retried = services.pipeline_retry_failed(pipeline_id=pipeline.pk)
        assert retried.retried == [target.pk], matrix.fail(f"retry: {retried}")
        wait_terminal([pipeline.pk], timeout=240, what=f"round {round_no}'s retry {matrix.replay}")
        pipeline.refresh_from_db()
        target.refresh_from_db()
        report = pipeline_report(pipeline.pk)
        outcome += ", retried"
    else:
        outcome = f"{target.result} on attempt {target.attempts}"
    assert target.result in (JobResult.SUCCESS, JobResult.WARNING), matrix.fail(report)
    problems = scenario.succeeded(pipeline)
    assert not problems, matrix.fail(f"round {round_no} landed wrong: {problems}\n{report}")
    if scenario.check_figures:
        drift = stats_drift(year=YEAR)
        assert not drift, matrix.fail(f"round {round_no}: figures differ from a recomputation: {drift}\n{report}")
    leftovers = nothing_active()
    assert not leftovers, matrix.fail(f"round {round_no}: jobs left active: {leftovers}")
    jobs = ", ".join(
        f"{j.job_type} {duration(j):.1f}s" for j in IngestionJob.objects.filter(pipeline=pipeline).order_by("id")
    )
    matrix.rounds.append(
        f"round {round_no}: {len(lost)} lost attempts → {outcome} "
        f"({ended - started:.1f}s to terminal, {time.monotonic() - ended:.1f}s of checks; last runs: {jobs})"
    )


@pytest.mark.parametrize("job_type", TYPES)
def test_crash_matrix(job_type: str, files_area: Path, directory: LocalDirectory, tmp_path: Path) -> None:
    seed = SEED + TYPES.index(job_type)
    rng = random.Random(seed)
    env = worker_env(
        JOB_LEASE_SECONDS=str(LEASE_SECONDS),
        WORKER_HEARTBEAT_SECONDS="1",
        PIPELINE_RECONCILER_INTERVAL_SECONDS="1",
        JOB_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        **directory.env(),
    )
    cluster = Cluster(env, tmp_path / "logs", prefix=f"crash-{job_type.replace('_', '-')}")
    matrix = Matrix(job_type=job_type, seed=seed, cluster=cluster)
    sys.stderr.write(f"\ncrash matrix {job_type} on {connection.vendor}: seed {seed} {matrix.replay}\n")
    started = time.monotonic()
    try:
        cluster.keep(2)
        cluster.reconciler()
        scenario = scenario_for(job_type, directory)
        job_seconds = scenario.setup()
        matrix.rounds.append(f"setup and baseline: {time.monotonic() - started:.1f}s")
        plan = kill_plan(rng, quota())
        wants_give_up = quota() >= MAX_ATTEMPTS
        round_no = 0
        # A kill that finds the job committed does not count: rounds go on until the share is met
        # (and, when the share allows, until one job was killed on every attempt).
        while (matrix.hits() < quota() or (wants_give_up and not matrix.gave_up)) and round_no < 3 * len(plan) + 3:
            if round_no < len(plan):
                kills = plan[round_no]
            elif wants_give_up and not matrix.gave_up:
                kills = MAX_ATTEMPTS
            else:
                kills = min(MAX_ATTEMPTS, quota() - matrix.hits())
            round_no += 1
            round_started = time.monotonic()
            pipeline = scenario.dispatch(rng, round_no)
            strike(matrix, scenario, pipeline, rng, round_no, kills, job_seconds)
            settle_round(matrix, scenario, pipeline, round_no, round_started)
            # Later attempts run warm: aim the delays at the shortest run seen.
            job_seconds = min(job_seconds, last_attempt_seconds(scenario.target(pipeline)) or job_seconds)
        assert matrix.hits() >= quota(), matrix.fail(f"only {matrix.hits()} of {quota()} kills landed mid-job")
        assert matrix.gave_up or not wants_give_up, matrix.fail("no job was killed on every attempt")
    finally:
        cluster.stop()
        if connection.vendor == "sqlite":
            bulk_rows_wipe()
    sys.stderr.write(
        f"crash matrix {job_type} on {connection.vendor}: seed {seed}, {matrix.hits()} kills mid-job "
        f"({len(matrix.kills)} sent), baseline job {job_seconds:.2f}s, {time.monotonic() - started:.0f}s\n"
        + "".join(f"  {k.line()}\n" for k in matrix.kills)
        + "".join(f"  {r}\n" for r in matrix.rounds)
    )
