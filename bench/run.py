"""The benchmark harness: every figure of SPEC §9, measured with its ceiling in one run.

    make bench                      # full run (10.5 min on the 2-core box, load ≤ 3; 18 min at load 5)
    make bench BENCH_ARGS=--quick   # same code paths on smaller data (< 2 min), labelled quick
    python -m bench [--quick] [--only ingest,engine,api,live,crash] [--keep-db] [--profile] [--split-ceilings]

One run:
1. creates its own PostgreSQL database ``carbon_bench_<pid>`` on ``--server-url`` (default
   postgres://postgres@127.0.0.1:5432), migrates it, provisions 2,231 units through a real
   ``unit_sync`` pipeline and adds the equipment factors;
2. generates the per-year equipment files (1M and 100k rows; quick: 30k and 10k);
3. measures, in this order: full pipeline / ingest / recalc / aggregation / peak RSS with
   their ``\\copy`` ceilings (``bench.fig_ingest``); the reconciler sweep while it builds the
   100k-pipeline / 1M-job history in SQL, then the list endpoint over it (``bench.fig_engine``,
   ``bench.fig_api``); job pickup latency, live-event latency (Redis and relay), crash
   recovery (``bench.fig_engine``, ``bench.fig_live``);
4. prints one table (ours, the ceiling measured in this run, the ratio, the target,
   PASS/FAIL, footnotes saying what exactly was measured), writes it with the environment
   (CPU, PostgreSQL version and settings, git sha) to ``bench/results/latest.json`` (and
   ``bench/results/<mode>.json``), drops the database and its scratch directory.

Exit status: 0 when every target passed, 1 otherwise (2 when the harness itself failed).
A measurement that crashes becomes a FAIL row with the error; the others still run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.context import Context
from bench.core import DEFAULT_SERVER_URL, ROOT, BenchDatabase, BenchEnv, Figure, Sizes, failed_figure, log, verdict

RESULTS = ROOT / "bench" / "results"
GROUPS = ("ingest", "engine", "api", "live", "crash")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, same code paths (< 2 min)")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated subset of {','.join(GROUPS)}")
    parser.add_argument("--server-url", default=os.environ.get("BENCH_SERVER_URL", DEFAULT_SERVER_URL))
    parser.add_argument("--keep-db", action="store_true", help="do not drop the bench database at the end")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--split-ceilings",
        action="store_true",
        help="also \\copy into a copy of each table with its indexes but no foreign keys (≈ +45 s full)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also write pyinstrument profiles and EXPLAIN (ANALYZE, BUFFERS) to bench/results/profiles/",
    )
    args = parser.parse_args(argv)
    args.groups = [g for g in args.only.split(",") if g]
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    return args


def _git(*args: str) -> str:
    """The command's output as it printed it (porcelain lines start with a meaningful space)."""
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(database_url: str, load_at_start: list[float]) -> dict[str, Any]:
    import django
    import psycopg
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
        settings = {}
        for name in ("shared_buffers", "max_wal_size", "fsync", "synchronous_commit", "work_mem", "wal_level"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    dirty = [line[3:] for line in _git("status", "--porcelain").splitlines() if line.strip()]
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "load_average_start": load_at_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "postgresql": version,
        "postgresql_settings": settings,
        "database": database_url.rsplit("/", 1)[-1],
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "git_sha": _git("rev-parse", "HEAD").strip(),
        "git_dirty_files": dirty,
        "hostname": platform.node(),
    }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.4g}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def render(figures: list[Figure], env: dict[str, Any], mode: str, seconds: float) -> str:
    rows = [("#", "figure", "ours", "ceiling (same run)", "ratio", "target", "result")]
    notes: list[str] = []
    for index, figure in enumerate(figures, start=1):
        ceiling = _fmt(figure.ceiling, figure.unit.replace(" p95", "").replace(" median", ""))
        if figure.ceiling is not None and figure.ceiling_label:
            ceiling = f"{ceiling} ({figure.ceiling_label})"
        ratio = "—" if figure.ratio is None else f"{figure.ratio:.2f}"
        rows.append(
            (
                str(index),
                figure.label,
                _fmt(figure.value, figure.unit),
                ceiling,
                ratio,
                figure.target,
                verdict(figure.passed),
            )
        )
        if figure.note:
            notes.append(f"[{index}] {figure.note}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"carbon-pipeline benchmarks — {mode} run, {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s",
        f"{env['cpu']} × {env['cores']} cores, {env['memory_gb']} GB; {env['postgresql'].split(' on ')[0]} "
        f"({', '.join(f'{k}={v}' for k, v in env['postgresql_settings'].items())}); Python {env['python']}, "
        f"Django {env['django']}, psycopg {env['psycopg']}; git {env['git_sha'][:10]}"
        + (f" + {len(env['git_dirty_files'])} uncommitted files" if env["git_dirty_files"] else "")
        + f"; load average {env['load_average_start'][0]} at start, {env['load_average_end'][0]} at end",
        "",
    ]
    for position, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if position == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    for note in notes:
        lines.extend(textwrap.wrap(note, width=118, subsequent_indent="    "))
    return "\n".join(lines)


def _measure(ctx: Context, name: str, key: str, target: str, action: Callable[[], None]) -> None:
    load = [round(x, 2) for x in os.getloadavg()]
    log(f"--- {name} (load average {load[0]})")
    ctx.facts.setdefault("load_average_before", {})[name] = load
    started = time.perf_counter()
    try:
        action()
    except Exception as exc:
        log(f"{name} failed: {exc!r}")
        ctx.add(failed_figure(key, name, target, exc))
    ctx.facts.setdefault("group_seconds", {})[name] = round(time.perf_counter() - started, 1)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        log("interrupted; the bench database and scratch directory were removed")
        return 2
    except Exception:
        traceback.print_exc()
        log("the harness failed; the bench database and scratch directory were removed")
        return 2


def _run(args: argparse.Namespace) -> int:
    sizes = Sizes.for_mode(quick=args.quick)
    mode = ("quick" if args.quick else "full") + ("-profiled" if args.profile else "")
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="carbon-bench-"))
    database = BenchDatabase(server_url=args.server_url)
    log(f"{mode} run: database {database.name}, scratch {scratch}")
    database.create()
    try:
        env = BenchEnv(database_url=database.url, scratch=scratch)
        env.apply()
        import django

        django.setup()
        from bench import fig_api, fig_engine, fig_ingest
        from bench.data import factors_create, superuser_create, year_provision

        ctx = Context(
            env=env,
            sizes=sizes,
            profile_dir=RESULTS / "profiles" if args.profile else None,
            split_ceilings=args.split_ceilings,
        )
        ctx.facts["mode"] = mode
        ctx.facts["setup"] = year_provision(env, sizes.units)
        factors_create()
        superuser = superuser_create()
        log(f"setup: {ctx.facts['setup']}")
        if "ingest" in args.groups:
            fig_ingest.files_generate(ctx)
            _measure(ctx, "ingest", "ingest", "", lambda: fig_ingest.ingest_figures(ctx))
        if "engine" in args.groups or "api" in args.groups:
            _measure(ctx, "reconciler", "reconciler_sweep", "≤ 50 ms", lambda: fig_engine.reconciler_figures(ctx))
        if "api" in args.groups:
            _measure(ctx, "list endpoint", "list", "p95 ≤ 50 ms", lambda: fig_api.list_figures(ctx, superuser))
        if "engine" in args.groups:
            _measure(ctx, "pickup", "pickup_latency", "p95 ≤ 100 ms", lambda: fig_engine.pickup_figures(ctx))
        if "live" in args.groups:
            from bench import fig_live

            _measure(ctx, "live events", "live_latency", "p95 ≤ 250 ms", lambda: fig_live.live_figures(ctx, superuser))
        if "crash" in args.groups:
            _measure(ctx, "crash recovery", "crash_recovery", "≤ bound", lambda: fig_engine.crash_figures(ctx))
        env_info = environment(database.url, load_at_start)
        elapsed = time.perf_counter() - started
        table = render(ctx.figures, env_info, mode, elapsed)
        print(table)
        document = {
            "mode": mode,
            "finished_at": datetime.now(tz=UTC).isoformat(),
            "seconds": round(elapsed, 1),
            "environment": env_info,
            "sizes": dataclasses.asdict(sizes),
            "facts": ctx.facts,
            "figures": [f.as_json() for f in ctx.figures],
            "table": table,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, indent=2, default=str)
        args.output.write_text(text + "\n", encoding="utf-8")
        (args.output.parent / f"{mode}.json").write_text(text + "\n", encoding="utf-8")
        log(f"written {args.output}")
        return 0 if all(f.passed is not False for f in ctx.figures) else 1
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            database.drop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
