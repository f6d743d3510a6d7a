"""Concurrency matrix on PostgreSQL: the pipelines an operator starts at once, on 4 real workers.

Each repetition starts, in a random order and all at once:
- three per-year data uploads of one year for different modules — headcount (module 1),
  equipment (4) and process emissions (8): the bundled sample files of ``ingestion/demo/data``
  spread over a random subset of the units, so re-uploads empty some report modules;
- a factor upload for one of them — the equipment factors of ``ingestion/demo/factors``, their
  emission factors scaled at random;
- a ``unit_sync`` of the next year from a local Accred-compatible directory (the first
  repetition provisions it, the later ones re-sync it).

Four ``manage.py run_worker`` processes (real handlers) and the reconciler run them. After each
repetition: every pipeline SUCCESS; no job ended in a deadlock, a lock timeout or a unique
violation (messages, histories and worker logs); exactly one aggregation in each pipeline whose
recalculations produced data — or none, when it coalesced into another pipeline's aggregation of
the same (module, year) that ran after its recalculations had committed; the figures equal a
from-scratch recomputation. At the end, ``pg_stat_database.deadlocks`` of the test database has
not moved.

``CONCURRENCY_REPETITIONS`` (default 10), ``CONCURRENCY_SEED`` (printed), ``CONCURRENCY_UNITS``
(default 2,231, EPFL's volume).

Two interleavings the matrix hits only now and then are pinned down on their own: an
aggregation that another pipeline coalesces into must refresh that pipeline's modules too (both
databases), and a unit re-sync must not need a lock that conflicts with an upload's foreign-key
checks on the units (the deadlock the matrix found; PostgreSQL).
"""

from __future__ import annotations

import csv
import functools
import io
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from carbon.models import CarbonReport, CarbonReportModule, Unit
from carbon.services import emission_recalculation_start
from ingestion.demo_seed import DEMO, spread_over_units
from pipelines import rules
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobType, PipelineStatus, TargetType
from pipelines.models import IngestionJob, Pipeline
from pipelines.selectors import job_views
from pipelines.services import Scope, pipeline_create
from pipelines.worker import WorkerLoop
from tests.faults import (
    Cluster,
    LocalDirectory,
    backends,
    equipment_file,
    equipment_year,
    local_directory,
    log_tail,
    nothing_active,
    pipeline_report,
    stats_drift,
    upload_pipeline,
    wait_terminal,
)
from tests.ingestion.test_unit_sync import flat_units, sync_raw
from tests.pipelines.conftest import run_until_idle, wait_for, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, databases="__all__")]

REPETITIONS = int(os.environ.get("CONCURRENCY_REPETITIONS", "10"))
SEED = int(os.environ.get("CONCURRENCY_SEED") or random.SystemRandom().randrange(1 << 31))
UNITS = int(os.environ.get("CONCURRENCY_UNITS", "2231"))
WORKERS = 4
YEAR = 2025
NEXT_YEAR = YEAR + 1
# (module, data-entry type or None, sample file of ingestion/demo/data, factor file of ingestion/demo/factors)
UPLOADS = ((1, 1, "headcount_member.csv", "headcount_member.csv"), (4, None, "equipments.csv", "equipments.csv"),
           (8, 50, "processemissions.csv", "processemissions.csv"))  # fmt: skip
FACTOR_MODULE = 4
LOCK_TROUBLE = re.compile(r"deadlock|lock timeout|could not obtain lock|lock_timeout", re.IGNORECASE)
UNIQUE_TROUBLE = re.compile(r"duplicate key|unique constraint|UniqueViolation|IntegrityError", re.IGNORECASE)


def spread(name: str, cfs: list[str], tag: str) -> str:
    """The sample's rows repeated for every unit of CFS (distinct people and equipment ids)."""
    return spread_over_units(DEMO / "data" / name, cfs, tag=tag, digits=4)


def scaled_factors(name: str, scale: float) -> str:
    """A factor file of ingestion/demo/factors with its emission factors multiplied by SCALE."""
    with (DEMO / "factors" / name).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{float(v) * scale:.6g}" if k.startswith("ef_") and v else v) for k, v in row.items()})
    return out.getvalue()


def unit_sync(year: int) -> Pipeline:
    scope = Scope(entity_type=EntityType.GLOBAL_PER_YEAR, target_type=TargetType.REFERENCE_DATA,
                  ingestion_method=IngestionMethod.API, year=year)  # fmt: skip
    return pipeline_create(job_type=JobType.UNIT_SYNC, scope=scope, config={"target_year": year})[0]


def deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def gone(application_name: str) -> bool:
    return not backends(application_name)


def aggregation_problems(pipelines: list[Pipeline]) -> tuple[list[str], int]:
    """Exactly one aggregation per pipeline that needs one (see the module docstring); returns
    the problems and how many pipelines coalesced into another's aggregation."""
    problems, coalesced = [], 0
    for pipeline in pipelines:
        jobs = list(IngestionJob.objects.filter(pipeline=pipeline))
        aggregations = [j for j in jobs if j.job_type == JobType.AGGREGATION]
        views = job_views(IngestionJob.objects.filter(pipeline=pipeline))
        due = [g for g in rules.fan_in_groups(views).values() if rules.fan_in_due(g)]
        if len(aggregations) > 1:
            problems.append(f"pipeline {pipeline.pk} ({pipeline.kind}) has {len(aggregations)} aggregations")
        if not due:
            if aggregations:
                problems.append(f"pipeline {pipeline.pk} ({pipeline.kind}) aggregated without recalculated data")
            continue
        if aggregations:
            continue
        recalcs = [j for j in jobs if j.job_type == JobType.EMISSION_RECALC and j.finished_at is not None]
        last = max(j.finished_at for j in recalcs if j.finished_at is not None)
        cover = IngestionJob.objects.filter(
            job_type=JobType.AGGREGATION,
            module_type_id=pipeline.module_type_id,
            year=pipeline.year,
            result=JobResult.SUCCESS,
            finished_at__gt=last,
        ).exclude(pipeline=pipeline)
        if not cover.exists():
            problems.append(
                f"pipeline {pipeline.pk} ({pipeline.kind}, module {pipeline.module_type_id}) recalculated data but "
                "has no aggregation, and no aggregation of its scope ran after its recalculations"
            )
        else:
            coalesced += 1
    return problems, coalesced


def trouble(pipelines: list[Pipeline]) -> list[str]:
    """Jobs whose message or history mentions a deadlock, a lock timeout or a unique violation."""
    found = []
    for job in IngestionJob.objects.filter(pipeline__in=pipelines):
        texts = [job.status_message, *(str(e.get("message", "")) for e in job.status_history or [])]
        texts.append(str((job.meta or {}).get("error", "")))
        found += [
            f"job {job.pk} {job.job_type}: {text[:300]}"
            for text in texts
            if LOCK_TROUBLE.search(text) or UNIQUE_TROUBLE.search(text)
        ]
    return found


@pytest.fixture
def directory() -> Iterator[LocalDirectory]:
    with local_directory(UNITS) as local:
        yield local


@pytest.mark.postgres
def test_concurrent_uploads_factors_and_unit_sync(files_area: Path, directory: LocalDirectory, tmp_path: Path) -> None:
    env = worker_env(
        JOB_LEASE_SECONDS="10",
        WORKER_HEARTBEAT_SECONDS="2",
        PIPELINE_RECONCILER_INTERVAL_SECONDS="1",
        **directory.env(),
    )
    cluster = Cluster(env, tmp_path / "logs", prefix="concurrency")
    replay = f"[replay: CONCURRENCY_SEED={SEED} pytest {__file__}]"
    sys.stderr.write(f"\nconcurrency matrix: seed {SEED}, {REPETITIONS} repetitions, {UNITS} units {replay}\n")

    def fail(message: str) -> str:
        return f"{replay}: {message}\nworker logs (tail):\n{log_tail(cluster.logs())}"

    started = time.monotonic()
    summary: list[str] = []
    try:
        for _ in range(WORKERS):
            cluster.add_worker()
        cluster.reconciler()
        cluster.wait_registered(WORKERS)
        # given: the year provisioned and the factors of the three modules
        first = unit_sync(YEAR)
        wait_terminal([first.pk], timeout=180, what="the year's unit sync")
        setup = [first]
        for module, det, _, factor_file in UPLOADS:
            text = (DEMO / "factors" / factor_file).read_text(encoding="utf-8")
            setup.append(upload_pipeline(text=text, name=factor_file, year=YEAR, module_type_id=module,
                                         target=TargetType.FACTORS, data_entry_type_id=det))  # fmt: skip
        wait_terminal([p.pk for p in setup], timeout=180, what="the setup pipelines")
        for pipeline in setup:
            pipeline.refresh_from_db()
            assert pipeline.status == PipelineStatus.SUCCESS, fail(pipeline_report(pipeline.pk))
        labs = sorted(cf for cf in Unit.objects.filter(level=4).values_list("institutional_id", flat=True) if cf)
        deadlocks_before = deadlocks()
        for repetition in range(1, REPETITIONS + 1):
            rng = random.Random(f"{SEED}:{repetition}")
            actions: list[tuple[str, Callable[[], Pipeline]]] = []
            for module, det, data_file, _ in UPLOADS:
                chosen = sorted(rng.sample(labs, rng.randint(max(1, len(labs) // 3), len(labs))))
                text = spread(data_file, chosen, f"r{repetition}")

                def data_upload(text: str = text, name: str = data_file, module: int = module,
                                det: int | None = det) -> Pipeline:  # fmt: skip
                    return upload_pipeline(text=text, name=name, year=YEAR, module_type_id=module,
                                           data_entry_type_id=det)  # fmt: skip

                actions.append((f"data {data_file} ({len(chosen)} units)", data_upload))
            scale = round(rng.uniform(0.5, 2.0), 3)
            factor_text = scaled_factors("equipments.csv", scale)

            def factor_upload(text: str = factor_text) -> Pipeline:
                return upload_pipeline(text=text, name="equipments.csv", year=YEAR, module_type_id=FACTOR_MODULE,
                                       target=TargetType.FACTORS)  # fmt: skip

            actions.append((f"factors equipments.csv ×{scale}", factor_upload))
            actions.append((f"unit_sync {NEXT_YEAR}", lambda: unit_sync(NEXT_YEAR)))
            rng.shuffle(actions)
            # when: all at once
            began = time.monotonic()
            pipelines = [start() for _, start in actions]
            wait_terminal([p.pk for p in pipelines], timeout=240, what=f"repetition {repetition} {replay}")
            elapsed = time.monotonic() - began
            # then
            reports = "\n".join(pipeline_report(p.pk) for p in pipelines)
            for pipeline, (label, _) in zip(pipelines, actions, strict=True):
                pipeline.refresh_from_db()
                assert pipeline.status == PipelineStatus.SUCCESS, fail(f"repetition {repetition}: {label}\n{reports}")
            found = trouble(pipelines)
            assert not found, fail(f"repetition {repetition}: {found}")
            problems, coalesced = aggregation_problems(pipelines)
            assert not problems, fail(f"repetition {repetition}: {problems}\n{reports}")
            drift = stats_drift(year=YEAR)
            assert not drift, fail(f"repetition {repetition}: figures differ from a recomputation: {drift}\n{reports}")
            assert stats_drift(year=NEXT_YEAR) == [], fail(f"repetition {repetition}: {NEXT_YEAR}")
            assert CarbonReport.objects.filter(year=NEXT_YEAR).count() == UNITS, fail("next year's reports")
            assert CarbonReportModule.objects.filter(report__year=NEXT_YEAR).count() == UNITS * 8
            assert Unit.objects.count() == UNITS, fail("units duplicated or lost")
            assert nothing_active() == [], fail(f"repetition {repetition}: jobs left active")
            jobs = IngestionJob.objects.filter(pipeline__in=pipelines).count()
            summary.append(
                f"repetition {repetition}: {', '.join(label for label, _ in actions)} → {jobs} jobs, "
                f"{coalesced} coalesced aggregations, {elapsed:.1f}s"
            )
    finally:
        cluster.stop()
    logs = cluster.logs()
    assert not LOCK_TROUBLE.search(logs), fail("a worker logged a deadlock or a lock timeout")
    assert not UNIQUE_TROUBLE.search(logs), fail("a worker logged a unique violation")
    # The workers' backends flush their statistics as they exit.
    for worker in cluster.workers:
        name = Cluster.process_name(worker)
        wait_for(functools.partial(gone, name), timeout=30, what=f"{worker}'s backends to exit")
    assert deadlocks() == deadlocks_before, fail(f"pg_stat_database.deadlocks went {deadlocks_before} → {deadlocks()}")
    sys.stderr.write(
        f"concurrency matrix: seed {SEED}, {REPETITIONS} repetitions in {time.monotonic() - started:.0f}s, "
        f"0 deadlocks\n" + "".join(f"  {line}\n" for line in summary)
    )


def test_an_aggregation_that_another_pipeline_coalesces_into_covers_its_modules_too(files_area: Path) -> None:
    """The interleaving behind the matrix's coalescing, pinned down in one process.

    Pipeline R (a manual recalculation) chains its aggregation, which waits in the queue (here:
    ``run_after`` in the future, as if behind other work). Meanwhile upload D replaces the rows
    of other units; its recalculations find R's aggregation active and coalesce into it instead
    of chaining their own. That aggregation must then refresh D's report modules as well.
    """
    cfs = equipment_year(units=4, year=YEAR)
    rng = random.Random(3)
    before = upload_pipeline(text=equipment_file(cfs=cfs[:2], rows=10, invalid=0, rng=rng, tag="a").text,
                             name="equipment.csv", year=YEAR, module_type_id=4)  # fmt: skip
    run_until_idle()
    before.refresh_from_db()
    assert before.status == PipelineStatus.SUCCESS
    recalc = emission_recalculation_start(module_type_id=4, year=YEAR, data_entry_type_id=11).pipeline
    loop = WorkerLoop(worker_id="worker:test:coalesce", once=True)
    loop.register()
    try:
        assert loop.step()  # R's recalculation only; it chains R's aggregation
    finally:
        loop.waker.close()
    (queued,) = IngestionJob.objects.filter(pipeline=recalc, job_type=JobType.AGGREGATION)
    IngestionJob.objects.filter(pk=queued.pk).update(run_after=timezone.now() + timedelta(days=1))
    upload = upload_pipeline(text=equipment_file(cfs=cfs[2:], rows=10, invalid=0, rng=rng, tag="b").text,
                             name="equipment.csv", year=YEAR, module_type_id=4)  # fmt: skip
    run_until_idle()
    assert not IngestionJob.objects.filter(pipeline=upload, job_type=JobType.AGGREGATION).exists()
    queued.refresh_from_db()
    assert any(e.get("kind") == "coalesce" and f"pipeline {upload.pk}" in e["message"] for e in queued.status_history)
    IngestionJob.objects.filter(pk=queued.pk).update(run_after=None)
    run_until_idle()
    for pipeline in (recalc, upload):
        pipeline.refresh_from_db()
        assert pipeline.status == PipelineStatus.SUCCESS, pipeline_report(pipeline.pk)
    assert stats_drift(year=YEAR) == []


class KeyShareHolder(threading.Thread):
    """Holds FOR KEY SHARE on one unit — what an upload's foreign-key checks take on every unit
    its entries reference — on a connection of its own, until released."""

    def __init__(self, unit_id: int) -> None:
        super().__init__(daemon=True)
        self.unit_id = unit_id
        self.held = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM carbon_unit WHERE id = %s FOR KEY SHARE", [self.unit_id])
                self.held.set()
                self.done.wait(timeout=60)
        finally:
            connections.close_all()


@pytest.mark.postgres
def test_a_unit_resync_does_not_wait_for_the_key_share_locks_of_an_upload() -> None:
    """The deadlock the matrix found, reduced to its cause: re-syncing units must not need a
    lock that conflicts with an upload's foreign-key checks (an ON CONFLICT DO UPDATE naming the
    unique cf column locks every row FOR UPDATE, even when no cf changes)."""
    units = flat_units(5)
    sync_raw(units, year=YEAR)
    holder = KeyShareHolder(Unit.objects.order_by("pk").values_list("pk", flat=True)[0])
    holder.start()
    try:
        assert holder.held.wait(timeout=30)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '3s'")
            result = sync_raw(units, year=NEXT_YEAR)  # raises "canceling statement due to lock timeout" if it waits
        assert result["units_synced"] == 6
    finally:
        holder.done.set()
        holder.join(timeout=30)
