"""Ingest, recalculation, aggregation, full pipeline and peak memory on the big equipment file.

One real pipeline gives the first four figures; then the ceilings are measured on the rows it
wrote. In order, from empty entry and emission tables (TRUNCATE + CHECKPOINT):

1. Full pipeline. Two real workers (``manage.py run_worker``, fresh processes) run; the big
   per-year equipment file (1M rows; quick 50k) is dispatched with ``upload_dispatch`` (the API's
   entry point). Figure: pipeline created_at → finished_at (SUCCESS), against the ``\\copy``
   time of its entries (step 4).
2. The stages of that same pipeline, from its jobs' timestamps (one clock, this machine):
   - ``csv_ingest``: root started_at → the first recalc's started_at. The recalcs are
     claimed when the root's transaction commits (NOTIFY at COMMIT, ~20 ms pickup), so this
     is the handler time *including* its COMMIT — where PostgreSQL runs the deferred foreign-key
     checks of every row (Django's FKs are DEFERRABLE INITIALLY DEFERRED), which psql's
     ``\\copy`` pays too. The root's own finished_at is stamped before that COMMIT; it is
     reported beside.
   - ``emission_recalc``: first recalc started_at → the aggregation's started_at (the three
     recalcs serialise on the module×year lock; the last one chains the aggregation in its
     transaction). Entries ÷ that span.
   - Peak RSS: the ``VmHWM`` (the kernel's high-water mark of resident memory) of the worker
     process that ran the root, read as soon as the root is FINISHED — a fresh process that
     had run nothing else; its idle ``VmHWM`` before the dispatch is shown beside.
3. Aggregation: ``module_stats_recompute`` of module 4 over every report module of the year
   (2,231 units) in this process, in one transaction, median of two runs (the pipeline's own
   aggregation job is reported beside). Floor: the statements it sent, re-run raw.
4. Ceilings. The rows the pipeline wrote are exported with ``COPY (SELECT <the columns our
   code writes>) TO``, the same JSON ``data``, foreign keys and timestamps; each table is
   emptied and ``psql \\copy … FROM file`` loads them again: into the real
   ``carbon_dataentryemission`` (its real indexes and constraints, the entries it points to
   present), then into a copy without indexes ``(LIKE … INCLUDING DEFAULTS INCLUDING IDENTITY)``
   for the index cost (``--split-ceilings`` adds a copy with the indexes but no foreign keys);
   then the same for ``carbon_dataentry``. A CHECKPOINT precedes every timed load. The
   ceilings are fair because they do the database's share of our work and nothing else: same
   rows, same table, same indexes and FK checks, one transaction, no parsing, no validation,
   no factor matching.

Also (information, full runs): the root job of the small file (100k) run alone in a fresh
process (``bench.stage``), for scaling.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.core import Figure, Services, log, median, profiled, psql, wait_for
from bench.data import (
    EMISSION_COLUMNS,
    ENTRY_COLUMNS,
    EQUIPMENT_MODULE,
    YEAR,
    data_tables_truncate,
    equipment_csv,
    unit_cfs,
    upload_prepare,
)

INGEST_TARGET = 0.5
PIPELINE_TARGET = 5.0
RECALC_TARGET = 0.3
AGGREGATION_TARGET_S = 2.0
RSS_TARGET_MB = 300.0


def files_generate(ctx: Context) -> None:
    cfs = unit_cfs()
    for name, rows in (("big", ctx.sizes.rows_big), ("small", ctx.sizes.rows_small)):
        started = time.perf_counter()
        path = equipment_csv(ctx.scratch / "data" / f"equipment-{rows}.csv", rows, cfs)
        ctx.files[name] = path
        ctx.facts[f"file_{name}"] = {
            "rows": rows,
            "mb": round(path.stat().st_size / 1e6, 1),
            "units_named": len(cfs),
            "generated_seconds": round(time.perf_counter() - started, 1),
        }


def _dispatch(ctx: Context, path: Path, name: str) -> Any:
    from ingestion.services import upload_dispatch
    from pipelines.choices import TargetType

    relative = upload_prepare(ctx.env, path, name)
    pipeline, _ = upload_dispatch(
        target_type=TargetType.DATA_ENTRIES, year=YEAR, module_type_id=EQUIPMENT_MODULE, file_path=relative
    )
    return pipeline


def _export(table: str, columns: tuple[str, ...], path: Path) -> int:
    """Write TABLE's COLUMNS, in id order, to PATH in COPY text format; returns the row count."""
    from django.db import connection
    from psycopg import sql

    query = sql.SQL("COPY (SELECT {} FROM {} ORDER BY id) TO STDOUT").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(table)
    )
    with connection.cursor() as cursor, path.open("wb") as out:
        raw = cursor.connection.cursor()
        with raw.copy(query) as copy:
            for block in copy:
                out.write(block)
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _timed_copy(ctx: Context, table: str, columns: tuple[str, ...], path: Path) -> float:
    psql(ctx.env.database_url, "CHECKPOINT")
    return psql(ctx.env.database_url, f"\\copy {table} ({', '.join(columns)}) FROM '{path}'")


def _copy_variants(ctx: Context, table: str, columns: tuple[str, ...], path: Path) -> tuple[float, float | None, float]:
    """Load times of PATH into (the real table, a copy with its indexes but no foreign keys —
    only with ``--split-ceilings`` —, a copy with neither); the real table is empty beforehand."""
    real = _timed_copy(ctx, table, columns, path)
    variants = [("idx", " INCLUDING INDEXES")] if ctx.split_ceilings else []
    times: list[float] = []
    for suffix, including in [*variants, ("noidx", "")]:
        scratch = f"bench_{table}_{suffix}"
        psql(
            ctx.env.database_url,
            f"DROP TABLE IF EXISTS {scratch}; "
            f"CREATE TABLE {scratch} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY{including})",
        )
        try:
            times.append(_timed_copy(ctx, scratch, columns, path))
        finally:
            psql(ctx.env.database_url, f"DROP TABLE IF EXISTS {scratch}")
    return real, (times[0] if ctx.split_ceilings else None), times[-1]


def _split(real: float, indexes_only: float | None, bare: float) -> str:
    if indexes_only is None:
        return ""
    return f" (FK checks {real - indexes_only:.2f} s, indexes {indexes_only - bare:.2f} s: --split-ceilings)"


def _aggregation(ctx: Context) -> dict[str, Any]:
    """``module_stats_recompute`` of module 4 over the whole year, timed; its SQL re-run alone.

    The first run's statements are captured; the floor runs them again raw, in a transaction
    that is rolled back (the UPDATEs rewrite the same values), median of three.
    """
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from carbon.services import module_stats_recompute

    runs: list[float] = []
    refreshed = 0
    statements: list[dict[str, str]] = []
    for attempt in range(ctx.sizes.repeats):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            with transaction.atomic():
                refreshed = module_stats_recompute(module_type_id=EQUIPMENT_MODULE, year=YEAR)
            runs.append(time.perf_counter() - started)
        if attempt == 0:
            statements = [q for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    with profiled(ctx.profile_dir, "aggregation-module_stats_recompute"), transaction.atomic():
        module_stats_recompute(module_type_id=EQUIPMENT_MODULE, year=YEAR)
    floors: list[float] = []
    per_statement: list[list[float]] = [[] for _ in statements]
    for _ in range(3):
        with transaction.atomic(), connection.cursor() as cursor:
            started = time.perf_counter()
            for index, statement in enumerate(statements):
                one = time.perf_counter()
                cursor.execute(statement["sql"])
                if cursor.description is not None:
                    cursor.fetchall()
                per_statement[index].append(time.perf_counter() - one)
            floors.append(time.perf_counter() - started)
            transaction.set_rollback(True)
    ctx.explain("aggregation", [s["sql"] for s in statements])
    return {
        "runs": runs,
        "refreshed": refreshed,
        "floor": median(floors),
        "statements": [
            {"sql": s["sql"][:160], "chars": len(s["sql"]), "seconds": round(median(t), 4)}
            for s, t in zip(statements, per_statement, strict=True)
        ],
    }


def _staged_small(ctx: Context) -> None:
    from pipelines.services import pipeline_abort

    data_tables_truncate()
    pipeline = _dispatch(ctx, ctx.files["small"], "small-staged")
    report = ctx.stage(1)
    job = report["jobs"][0]
    pipeline_abort(pipeline_id=pipeline.pk)  # its recalcs are not part of this figure
    rows = int((job["meta"]["stats"] or {}).get("rows_processed", 0))
    ctx.add(
        Figure(
            key="csv_ingest_small",
            label=f"csv_ingest stage, {rows:,}-row file",
            value=round(rows / job["wall_seconds"]),
            unit="rows/s",
            note=(
                f"Root job alone in a fresh process (bench.stage), claim → committed end {job['wall_seconds']:.2f} s, "
                f"empty tables; information (scaling), no ceiling. Peak RSS {report['rss_peak_mb']} MB."
            ),
            details={"job": job, "rss_peak_mb": report["rss_peak_mb"]},
        )
    )


def ingest_figures(ctx: Context) -> None:
    if not ctx.sizes.quick:
        log("ingest: small file, staged")
        _staged_small(ctx)

    log("full pipeline with two real workers")
    full = _full_pipeline(ctx)
    root, rows = full["root"], full["rows"]
    ingest_seconds, recalc_seconds, entries = full["ingest_seconds"], full["recalc_seconds"], full["entries"]
    log(f"full pipeline {full['seconds']:.1f}s; ingest {ingest_seconds:.1f}s, recalc {recalc_seconds:.1f}s")
    aggregation = _aggregation(ctx)

    log("ceilings: export and \\copy")
    entries_file = ctx.scratch / "data" / "entries.copy"
    emissions_file = ctx.scratch / "data" / "emissions.copy"
    entry_rows = _export("carbon_dataentry", ENTRY_COLUMNS, entries_file)
    emission_rows = _export("carbon_dataentryemission", EMISSION_COLUMNS, emissions_file)
    psql(ctx.env.database_url, "TRUNCATE carbon_dataentryemission")
    emission_copy, emission_copy_idx, emission_copy_bare = _copy_variants(
        ctx, "carbon_dataentryemission", EMISSION_COLUMNS, emissions_file
    )
    psql(ctx.env.database_url, "TRUNCATE carbon_dataentryemission, carbon_dataentry")
    entry_copy, entry_copy_idx, entry_copy_bare = _copy_variants(ctx, "carbon_dataentry", ENTRY_COLUMNS, entries_file)

    copy_rate = entry_rows / entry_copy
    ours_rate = rows / ingest_seconds
    ctx.add(
        Figure(
            key="csv_ingest",
            label=f"csv_ingest stage, {rows:,}-row file",
            value=round(ours_rate),
            unit="rows/s",
            ceiling=round(copy_rate),
            ceiling_label="\\copy → carbon_dataentry",
            target=f"≥ {INGEST_TARGET} × \\copy",
            passed=ours_rate >= INGEST_TARGET * copy_rate,
            note=(
                f"Root job of the full pipeline, empty tables: started_at → committed (first child claimed) "
                f"{ingest_seconds:.2f} s (its finished_at, stamped before the COMMIT and its deferred FK checks: "
                f"{root['seconds']:.2f} s). "
                f"Ceiling: psql \\copy of the {entry_rows:,} rows our ingest wrote (exported with \\copy (SELECT …)) "
                f"into the real table: {entry_copy:.2f} s; into a LIKE copy without indexes: {entry_copy_bare:.2f} s "
                f"({entry_rows / entry_copy_bare:,.0f} rows/s): indexes and FK checks cost "
                f"{entry_copy - entry_copy_bare:.2f} s{_split(entry_copy, entry_copy_idx, entry_copy_bare)}."
            ),
            details={
                "ingest_seconds": round(ingest_seconds, 3),
                "root": root,
                "copy_seconds": round(entry_copy, 3),
                "copy_indexes_no_fk_seconds": entry_copy_idx,
                "copy_noindex_seconds": round(entry_copy_bare, 3),
                "rows_exported": entry_rows,
            },
        )
    )
    full_seconds = full["seconds"]
    ctx.add(
        Figure(
            key="full_pipeline",
            label="full pipeline dispatch → SUCCESS",
            value=round(full_seconds, 2),
            unit="s",
            ceiling=round(entry_copy, 2),
            ceiling_label="\\copy time (entries)",
            target=f"≤ {PIPELINE_TARGET:g} × \\copy",
            passed=full["status"] == "SUCCESS" and full_seconds <= PIPELINE_TARGET * entry_copy,
            note=(
                f"Pipeline created_at→finished_at with 2 real workers (manage.py run_worker), empty tables, "
                f"{rows:,} rows ({rows / full_seconds:,.0f} rows/s end to end): csv_ingest {ingest_seconds:.1f} s, "
                f"{full['recalcs']} emission_recalc {recalc_seconds:.1f} s, aggregation "
                f"{full['aggregation_seconds']:.1f} s, the rest pickups and status refreshes."
            ),
            details=full,
        )
    )
    recalc_rate = entries / recalc_seconds if recalc_seconds else 0.0
    emission_copy_rate = emission_rows / emission_copy
    ctx.add(
        Figure(
            key="emission_recalc",
            label=f"emission_recalc, {entries:,} entries",
            value=round(recalc_rate),
            unit="entries/s",
            ceiling=round(emission_copy_rate),
            ceiling_label="\\copy → carbon_dataentryemission",
            target=f"≥ {RECALC_TARGET} × \\copy",
            passed=recalc_rate >= RECALC_TARGET * emission_copy_rate,
            note=(
                f"The {full['recalcs']} emission_recalc jobs of the full pipeline (serialised on the module×year "
                f"lock): first started_at → aggregation claimed, {recalc_seconds:.2f} s. Ceiling: psql \\copy of the "
                f"{emission_rows:,} "
                f"emission rows they wrote into the real table (entries present): {emission_copy:.2f} s; without "
                f"indexes: {emission_copy_bare:.2f} s{_split(emission_copy, emission_copy_idx, emission_copy_bare)}."
            ),
            details={
                "recalc_seconds": round(recalc_seconds, 3),
                "copy_seconds": round(emission_copy, 3),
                "copy_indexes_no_fk_seconds": emission_copy_idx,
                "copy_noindex_seconds": round(emission_copy_bare, 3),
            },
        )
    )
    aggregation_s = median(aggregation["runs"])
    slowest = sorted(aggregation["statements"], key=lambda q: -float(q["seconds"]))[:3]
    ctx.add(
        Figure(
            key="aggregation",
            label=f"aggregation, module 4 over {aggregation['refreshed']:,} report modules",
            value=round(aggregation_s, 3),
            unit="s",
            ceiling=round(aggregation["floor"], 3),
            ceiling_label="its SQL alone",
            target=f"≤ {AGGREGATION_TARGET_S:g} s",
            passed=aggregation_s <= AGGREGATION_TARGET_S,
            note=(
                f"module_stats_recompute(module 4, {YEAR}) over every report module of the year, "
                f"{emission_rows:,} emissions, in one transaction, median of {len(aggregation['runs'])}. "
                f"The pipeline's own aggregation job took {full['aggregation_seconds']:.2f} s "
                f"({full['aggregation_modules']:,} modules). Floor: its "
                f"{len(aggregation['statements'])} statements re-run raw (rolled back); slowest: "
                + "; ".join(f"{q['sql'][:48]}… {q['seconds']:.3f} s ({q['chars']:,} chars)" for q in slowest)
            ),
            details={"runs": [round(r, 3) for r in aggregation["runs"]], **aggregation},
        )
    )
    rss = float(full["rss_peak_mb"])
    ctx.add(
        Figure(
            key="peak_rss",
            label=f"peak RSS of the {rows:,}-row ingest",
            value=rss,
            unit="MB",
            ceiling=float(full["rss_idle_mb"]),
            ceiling_label="same worker, idle, before",
            target=f"≤ {RSS_TARGET_MB:g} MB",
            passed=rss <= RSS_TARGET_MB,
            note=(
                f"VmHWM of the worker ({root['worker']}) that ran the root job, read when the root was FINISHED: a "
                "fresh process that had run nothing else (its idle VmHWM, Django loaded, is the 'ceiling' column)."
            ),
        )
    )


def _vm_hwm_mb(pid: int) -> float:
    """The peak resident set size (VmHWM) of process PID so far, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _full_pipeline(ctx: Context) -> dict[str, Any]:
    """Dispatch the big file with two real workers running; the pipeline's and its stages' times."""
    from pipelines.models import IngestionJob, Pipeline, Worker

    data_tables_truncate()
    services = Services(ctx.env, "full-pipeline")
    try:
        ids = ["worker:bench-full:1", "worker:bench-full:2"]
        pids = {worker_id: services.worker(worker_id).pid for worker_id in ids}
        wait_for(lambda: Worker.objects.filter(pk__in=ids).count() == len(ids), timeout=60, what="workers")
        time.sleep(1.5)  # past their first poll: LISTEN is open
        idle = {worker_id: _vm_hwm_mb(pid) for worker_id, pid in pids.items()}
        pipeline = _dispatch(ctx, ctx.files["big"], "big-full")
        deadline = time.monotonic() + 120 + ctx.sizes.rows_big / 2000
        owner: str | None = None
        rss_peak: float | None = None
        while time.monotonic() < deadline:
            root_row = (
                IngestionJob.objects.filter(pipeline=pipeline, parent__isnull=True).values("state", "lease_owner").get()
            )
            if root_row["state"] == "RUNNING":
                owner = root_row["lease_owner"]
            elif root_row["state"] == "FINISHED" and rss_peak is None and owner in pids:
                rss_peak = _vm_hwm_mb(pids[owner])
            if Pipeline.objects.filter(pk=pipeline.pk, finished_at__isnull=False).exists():
                break
            time.sleep(0.02)
        else:
            raise TimeoutError("the full pipeline did not finish")
    finally:
        services.stop_all()
    pipeline = Pipeline.objects.get(pk=pipeline.pk)
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))
    assert pipeline.finished_at is not None
    root = jobs[0]
    recalcs = [j for j in jobs if j.job_type == "emission_recalc"]
    aggregation = next(j for j in jobs if j.job_type == "aggregation")
    if root.result not in ("SUCCESS", "WARNING") or root.started_at is None or root.finished_at is None:
        raise RuntimeError(f"the ingest did not succeed: {root.result} {root.status_message}")
    first_recalc = min(j.started_at for j in recalcs if j.started_at)
    assert aggregation.started_at is not None
    stats = (root.meta or {}).get("stats") or {}
    return {
        "status": pipeline.status,
        "seconds": (pipeline.finished_at - pipeline.created_at).total_seconds(),
        "rows": int(stats.get("rows_processed", 0)),
        "root": {
            "seconds": round((root.finished_at - root.started_at).total_seconds(), 3),
            "result": root.result,
            "message": root.status_message,
            "worker": owner,
        },
        "ingest_seconds": (first_recalc - root.started_at).total_seconds(),
        "recalcs": len(recalcs),
        "recalc_seconds": (aggregation.started_at - first_recalc).total_seconds(),
        "entries": sum(int(((j.meta or {}).get("recalculation") or {}).get("recalculated", 0)) for j in recalcs),
        "aggregation_seconds": (pipeline.finished_at - aggregation.started_at).total_seconds(),
        "aggregation_modules": int((aggregation.meta or {}).get("modules_refreshed") or 0),
        "rss_peak_mb": rss_peak,
        "rss_idle_mb": idle.get(owner or "", 0.0),
        "jobs": [
            {
                "job_type": j.job_type,
                "result": j.result,
                "started_at": j.started_at.isoformat() if j.started_at else None,
                "finished_at": j.finished_at.isoformat() if j.finished_at else None,
            }
            for j in jobs
        ],
    }
