"""The engine's figures: job pickup latency, the reconciler's sweep, crash recovery.

Pickup latency. Two idle real workers (``manage.py run_worker``, default poll: LISTEN/NOTIFY
with a 1 s fallback) and N trivial pipelines dispatched one by one, each waited for: a manual
``emission_recalc`` of a year without entries, which chains an aggregation. Latency = the root
job's ``started_at`` − the pipeline's ``created_at`` (both written by ``timezone.now()`` on this
machine's clock: the dispatcher's and the claiming worker's). Also shown: the chained child's
pickup (its ``started_at`` − its parent's ``finished_at``). Floor: the raw wake-up alone — a
psycopg connection LISTENing, another one NOTIFYing, time to the listener's return — which is
the part of a pickup no worker code can remove.

Reconciler sweep. ``pipelines_reconcile()`` in this process, median of ≥ 10 sweeps after one
warm-up, with 100 active pipelines (RUNNING, one job each holding a live lease: looked at,
nothing healed) and first 1k, then 100k finished pipelines (10 jobs each) in the tables. The
small history is the fair comparison: the sweep should cost what the active work costs.

Crash recovery. A real worker with the engine's test handler (``tests.pipelines.worker_main``)
claims a job that holds until a file exists; a second worker and ``manage.py
reconcile_pipelines`` run beside it. The first worker is SIGKILLed mid-job (after at least one
heartbeat) and the hold file is created, so the job's rerun is instant and the figure is the
recovery alone: kill → pipeline ``finished_at``, against JOB_LEASE_SECONDS + the reconciler's
interval + 5 s.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench.context import Context
from bench.core import Figure, Services, log, median, ms, percentile, wait_for
from bench.data import active_insert, history_insert, vacuum_analyze

PICKUP_TARGET_MS = 100.0
SWEEP_TARGET_MS = 50.0
SWEEP_GROWTH = 1.5
RECOVERY_SLACK_S = 5.0


def _notify_floor(database_url: str, samples: int) -> list[float]:
    """Seconds from NOTIFY (committed) to a LISTENing connection's wake-up, SAMPLES times."""
    import psycopg

    received = threading.Event()
    stamps: list[float] = []
    listener = psycopg.connect(database_url, autocommit=True)
    sender = psycopg.connect(database_url, autocommit=True)
    listener.execute("LISTEN bench_floor")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            for _ in listener.notifies(timeout=0.5, stop_after=1):
                stamps.append(time.perf_counter())
                received.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    latencies = []
    try:
        for _ in range(samples):
            received.clear()
            started = time.perf_counter()
            sender.execute("NOTIFY bench_floor")
            if received.wait(5):
                latencies.append(stamps[-1] - started)
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        sender.close()
    return latencies


def _finished(pipeline_id: Any) -> bool:
    from pipelines.models import Pipeline

    return Pipeline.objects.filter(pk=pipeline_id, finished_at__isnull=False).exists()


def pickup_figures(ctx: Context) -> None:
    from carbon.services import emission_recalculation_start
    from pipelines.models import IngestionJob, Worker

    services = Services(ctx.env, "pickup")
    roots: list[float] = []
    children: list[float] = []
    try:
        ids = ["worker:bench-pickup:1", "worker:bench-pickup:2"]
        for worker_id in ids:
            services.worker(worker_id)
        wait_for(lambda: Worker.objects.filter(pk__in=ids).count() == len(ids), timeout=60, what="workers")
        time.sleep(2.0)  # both past their first idle poll: LISTEN is open
        for i in range(ctx.sizes.pickups):
            started = emission_recalculation_start(module_type_id=4, year=2024, data_entry_type_id=10 + i % 3)
            wait_for(
                functools.partial(_finished, started.pipeline.pk),
                timeout=30,
                interval=0.01,
                what="a trivial pipeline",
            )
            jobs = list(IngestionJob.objects.filter(pipeline_id=started.pipeline.pk).order_by("id"))
            root = jobs[0]
            assert root.started_at is not None
            roots.append((root.started_at - started.pipeline.created_at).total_seconds())
            for parent, child in zip(jobs, jobs[1:], strict=False):
                if parent.finished_at and child.started_at:
                    children.append((child.started_at - parent.finished_at).total_seconds())
            time.sleep(0.05 + (i % 5) * 0.03)  # not in step with the workers' poll
    finally:
        services.stop_all()
    floor = _notify_floor(ctx.env.database_url, max(30, ctx.sizes.pickups))
    p95 = percentile(roots, 95) * 1000
    ctx.add(
        Figure(
            key="pickup_latency",
            label=f"job pickup after dispatch (idle workers), N={len(roots)}",
            value=round(p95, 1),
            unit="ms p95",
            ceiling=round(percentile(floor, 95) * 1000, 2),
            ceiling_label="NOTIFY→LISTEN wake-up p95",
            target=f"p95 ≤ {PICKUP_TARGET_MS:g} ms",
            passed=p95 <= PICKUP_TARGET_MS,
            note=(
                f"root job started_at − pipeline created_at, 2 idle manage.py run_worker, default poll: "
                f"p50 {ms(median(roots))} ms, p95 {p95:.1f} ms, max {ms(max(roots))} ms; chained child "
                f"(aggregation) started_at − parent finished_at: p50 {ms(median(children))} ms, "
                f"p95 {ms(percentile(children, 95))} ms. Floor: raw psycopg NOTIFY → LISTEN wake-up, "
                f"p50 {ms(median(floor))} ms."
            ),
            details={
                "p50_ms": ms(median(roots)),
                "p95_ms": round(p95, 2),
                "max_ms": ms(max(roots)),
                "child_p50_ms": ms(median(children)),
                "child_p95_ms": ms(percentile(children, 95)),
                "floor_p50_ms": ms(median(floor)),
            },
        )
    )


def _sweeps(count: int) -> tuple[list[float], int, list[int]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pipelines.reconciler import pipelines_reconcile

    pipelines_reconcile()  # warm-up
    times: list[float] = []
    healed: list[int] = []
    queries = 0
    for _ in range(count):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            report = pipelines_reconcile()
            times.append(time.perf_counter() - started)
        queries = len(captured.captured_queries)
        healed.append(report.healed)
    return times, queries, healed


def reconciler_figures(ctx: Context) -> None:
    sizes = ctx.sizes
    history_insert(first=1, last=sizes.history_small, jobs_per_pipeline=sizes.jobs_per_pipeline)
    active_insert(count=sizes.active, jobs_per_pipeline=sizes.jobs_per_pipeline)
    vacuum_analyze("pipelines_pipeline", "pipelines_ingestionjob")
    small, small_queries, small_healed = _sweeps(sizes.sweeps)
    log(f"reconciler: {sizes.history_small} finished, median {ms(median(small))} ms")
    history_insert(first=sizes.history_small + 1, last=sizes.history, jobs_per_pipeline=sizes.jobs_per_pipeline)
    vacuum_analyze("pipelines_pipeline", "pipelines_ingestionjob")
    big, big_queries, big_healed = _sweeps(sizes.sweeps)
    log(f"reconciler: {sizes.history} finished, median {ms(median(big))} ms")
    big_ms, small_ms = median(big) * 1000, median(small) * 1000
    ctx.add(
        Figure(
            key="reconciler_sweep",
            label=f"reconciler sweep, {sizes.history:,} finished + {sizes.active} active",
            value=round(big_ms, 2),
            unit="ms median",
            ceiling=round(small_ms, 2),
            ceiling_label=f"same sweep, {sizes.history_small:,} finished",
            target=f"≤ {SWEEP_TARGET_MS:g} ms and ≤ {SWEEP_GROWTH} × small",
            passed=big_ms <= SWEEP_TARGET_MS and big_ms <= SWEEP_GROWTH * small_ms,
            note=(
                f"pipelines_reconcile() in-process, median of {len(big)} sweeps after a warm-up; "
                f"{sizes.jobs_per_pipeline} jobs per finished pipeline; the active ones each hold a live lease "
                f"(nothing to heal: healed {max(big_healed + small_healed)}). Queries per sweep: "
                f"{small_queries} (small) / {big_queries} (big). p95: {ms(percentile(small, 95))} ms / "
                f"{ms(percentile(big, 95))} ms."
            ),
            details={
                "small_ms": [ms(t) for t in small],
                "big_ms": [ms(t) for t in big],
                "queries": [small_queries, big_queries],
            },
        )
    )


def _history_stamp(job: Any, kind: str) -> datetime | None:
    stamps = [e.get("ts") for e in job.status_history or [] if e.get("kind") == kind]
    return datetime.fromisoformat(stamps[-1]) if stamps else None


def crash_figures(ctx: Context) -> None:
    from django.conf import settings

    from pipelines.choices import JobType
    from pipelines.models import Pipeline, Worker
    from pipelines.services import Scope, pipeline_create

    sizes = ctx.sizes
    overrides: dict[str, str] = {}
    if sizes.lease_seconds is not None:
        overrides["JOB_LEASE_SECONDS"] = str(sizes.lease_seconds)
    if sizes.reconciler_seconds is not None:
        overrides["PIPELINE_RECONCILER_INTERVAL_SECONDS"] = str(sizes.reconciler_seconds)
    if sizes.heartbeat_seconds is not None:
        overrides["WORKER_HEARTBEAT_SECONDS"] = str(sizes.heartbeat_seconds)
    lease = sizes.lease_seconds or settings.JOB_LEASE_SECONDS
    interval = sizes.reconciler_seconds or settings.PIPELINE_RECONCILER_INTERVAL_SECONDS
    heartbeat = sizes.heartbeat_seconds or settings.WORKER_HEARTBEAT_SECONDS
    bound = lease + interval + RECOVERY_SLACK_S
    hold = ctx.scratch / "crash-hold"
    started_file = ctx.scratch / "crash-started"
    services = Services(ctx.env, "crash")
    try:
        victim = services.worker("worker:bench-crash:1", test_handlers=True, **overrides)
        wait_for(lambda: Worker.objects.filter(pk="worker:bench-crash:1").exists(), timeout=60, what="worker 1")
        time.sleep(1.5)
        pipeline, job = pipeline_create(
            job_type=JobType.CSV_INGEST,
            scope=Scope(module_type_id=4, year=2026),
            config={"hold_file": str(hold), "started_file": str(started_file)},
        )
        wait_for(started_file.exists, timeout=30, what="the held job to start")
        services.worker("worker:bench-crash:2", test_handlers=True, **overrides)
        services.reconciler(**overrides)
        wait_for(lambda: Worker.objects.filter(pk="worker:bench-crash:2").exists(), timeout=60, what="worker 2")
        time.sleep(heartbeat + 0.5)  # mid-job: at least one lease renewal has happened
        job.refresh_from_db()
        lease_at_kill = job.lease_expires_at
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = datetime.now(tz=UTC)
        victim.wait()
        hold.touch()  # the rerun finishes at once: the figure is the recovery
        wait_for(
            lambda: Pipeline.objects.filter(pk=pipeline.pk, finished_at__isnull=False).exists(),
            timeout=bound * 3,
            interval=0.05,
            what="the pipeline to end after the kill",
        )
    finally:
        services.stop_all()
    pipeline.refresh_from_db()
    job.refresh_from_db()
    assert pipeline.finished_at is not None
    recovery = (pipeline.finished_at - killed_at).total_seconds()
    requeued = _history_stamp(job, "heal")
    reclaimed = _history_stamp(job, "claim")
    timeline = {
        "lease_expired_after_s": round((lease_at_kill - killed_at).total_seconds(), 2) if lease_at_kill else None,
        "requeued_after_s": round((requeued - killed_at).total_seconds(), 2) if requeued else None,
        "reclaimed_after_s": round((reclaimed - killed_at).total_seconds(), 2) if reclaimed else None,
        "terminal_after_s": round(recovery, 2),
    }
    defaults = "defaults" if sizes.lease_seconds is None else "quick values"
    ctx.add(
        Figure(
            key="crash_recovery",
            label="SIGKILL of a worker mid-job → pipeline terminal",
            value=round(recovery, 2),
            unit="s",
            ceiling=float(bound),
            ceiling_label=f"bound: lease {lease} + interval {interval} + 5",
            target=f"≤ {bound:g} s",
            passed=recovery <= bound and pipeline.status == "SUCCESS",
            note=(
                f"JOB_LEASE_SECONDS={lease}, PIPELINE_RECONCILER_INTERVAL_SECONDS={interval}, "
                f"WORKER_HEARTBEAT_SECONDS={heartbeat} ({defaults}); engine test handler holding the job; "
                f"after the kill: lease expired at +{timeline['lease_expired_after_s']} s, requeued by the "
                f"reconciler at +{timeline['requeued_after_s']} s, claimed by worker 2 at "
                f"+{timeline['reclaimed_after_s']} s, pipeline {pipeline.status} at +{recovery:.2f} s "
                f"(attempts {job.attempts})."
            ),
            details=timeline,
        )
    )
