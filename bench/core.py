"""What every figure of the harness shares: sizes, results, the database, processes, statistics.

Nothing here measures anything. ``Sizes`` says how big each data set is (full or quick);
``Figure`` is one row of the printed table; ``BenchDatabase`` creates and drops the harness's
own PostgreSQL database; ``Services`` starts and stops the real subprocesses (workers,
reconciler, daphne) a figure needs; ``psql_copy`` runs ``psql \\copy`` (the raw ceiling) and
times it; ``percentile`` and ``median`` are the only statistics used.

The harness's Django settings come from the environment like any deployment's
(``config.settings``): ``BenchEnv.apply()`` sets ``DATABASE_URL`` (the bench database),
``FILES_ROOT`` and ``UNIT_SOURCE_URL`` (a scratch directory) before ``django.setup()``, and
every subprocess gets the same environment, so web, workers and the harness share one database
and one session store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DJANGO_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnop"
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432"
REDIS_DB = 11


@dataclass(frozen=True)
class Sizes:
    """How big each data set is; quick mode runs the same code paths on smaller ones."""

    quick: bool
    units: int = 2231
    rows_big: int = 1_000_000  # the per-year equipment file of the ingest figures
    rows_small: int = 100_000
    history_small: int = 1_000  # finished pipelines of the reconciler's small sweep
    history: int = 100_000  # finished pipelines behind the list endpoint and the big sweep
    jobs_per_pipeline: int = 10
    active: int = 100
    list_requests: int = 30
    deep_offset: int = 50_000
    sweeps: int = 11
    pickups: int = 50
    live_events: int = 50
    repeats: int = 2  # runs of the in-process aggregation (median)
    # Crash recovery: None = the settings' defaults (JOB_LEASE_SECONDS 30, reconciler 15 s).
    lease_seconds: int | None = None
    reconciler_seconds: int | None = None
    heartbeat_seconds: int | None = None

    @classmethod
    def for_mode(cls, *, quick: bool) -> Sizes:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            rows_big=30_000,
            rows_small=10_000,
            history_small=500,
            history=3_000,
            deep_offset=1_500,
            list_requests=10,
            sweeps=10,
            pickups=10,
            live_events=10,
            repeats=1,
            lease_seconds=3,
            reconciler_seconds=2,
            heartbeat_seconds=1,
        )


@dataclass
class Figure:
    """One row of the table: our value, the ceiling of the same run, the ratio, the verdict.

    ``ratio`` is ours ÷ ceiling, both in ``unit``; ``passed`` is None for rows that only
    inform (no target). ``note`` becomes a numbered footnote saying what was measured.
    """

    key: str
    label: str
    value: float | None
    unit: str
    ceiling: float | None = None
    ceiling_label: str = ""
    target: str = ""
    passed: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.ceiling:
            return None
        return self.value / self.ceiling

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "ceiling": self.ceiling,
            "ceiling_label": self.ceiling_label,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "target": self.target,
            "result": verdict(self.passed),
            "note": self.note,
            "details": self.details,
        }


def verdict(passed: bool | None) -> str:
    return "info" if passed is None else ("PASS" if passed else "FAIL")


def failed_figure(key: str, label: str, target: str, exc: BaseException) -> Figure:
    """The row of a measurement that crashed: FAIL, with the error as its note."""
    return Figure(key=key, label=label, value=None, unit="", target=target, passed=False, note=f"error: {exc!r}")


# --- Statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The Q-th percentile (0–100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of nothing")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as elapsed: ...`` then ``elapsed[0]`` is the wall time in seconds."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


@contextlib.contextmanager
def profiled(directory: Path | None, name: str) -> Iterator[None]:
    """Profile the block with pyinstrument into DIRECTORY/NAME.txt (no-op when DIRECTORY is None).

    Diagnostics only (``--profile``): pyinstrument is not a project dependency, and the
    figures of a profiled run carry its overhead.
    """
    if directory is None:
        yield
        return
    import importlib

    # Imported by name: pyinstrument is installed for diagnostics only (``pip install pyinstrument``).
    profiler = importlib.import_module("pyinstrument").Profiler(interval=0.001)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=True), encoding="utf-8"
        )


class CollectorWatch:
    """The garbage collector's full (generation 2) collections while it is on, and their pauses.

    ``with CollectorWatch() as watch:`` … ``watch.pauses_ms``: a request slower than its
    neighbours is told apart from one that waited for a collection.
    """

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append(round((time.perf_counter() - self._started) * 1000, 2))

    def __enter__(self) -> CollectorWatch:
        import gc

        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self._callback)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- The database ---------------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    """The harness's own database on SERVER_URL (``carbon_bench_<pid>``), dropped at the end."""

    server_url: str = DEFAULT_SERVER_URL
    name: str = field(default_factory=lambda: f"carbon_bench_{os.getpid()}")

    @property
    def url(self) -> str:
        return f"{self.server_url.rstrip('/')}/{self.name}"

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(f"{self.server_url.rstrip('/')}/postgres", autocommit=True)

    def create(self) -> None:
        from psycopg import sql

        with self._admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def drop(self) -> None:
        from psycopg import sql

        with self._admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


def psql(database_url: str, command: str) -> float:
    """Run one psql command (``-c``) against DATABASE_URL; returns its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database_url, "-c", command],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def psql_copy(database_url: str, table: str, columns: Sequence[str], path: Path, *, direction: str = "FROM") -> float:
    """``psql \\copy TABLE (COLUMNS) FROM|TO PATH`` (text format); returns its wall time in seconds."""
    return psql(database_url, f"\\copy {table} ({', '.join(columns)}) {direction} '{path}'")


# --- Environment ------------------------------------------------------------------------------


@dataclass
class BenchEnv:
    """The environment of the harness and of every process it starts."""

    database_url: str
    scratch: Path

    @property
    def files_root(self) -> Path:
        return self.scratch / "files"

    @property
    def units_file(self) -> Path:
        return self.scratch / "units.json"

    def variables(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": DJANGO_KEY,
            "FILES_ROOT": str(self.files_root),
            "UNIT_SOURCE_URL": str(self.units_file),
            "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }

    def apply(self) -> None:
        """Make this process's Django use the bench database (call before ``django.setup()``)."""
        (self.files_root / "tmp").mkdir(parents=True, exist_ok=True)
        for name in (
            "REDIS_URL",
            "JOB_LEASE_SECONDS",
            "WORKER_HEARTBEAT_SECONDS",
            "PIPELINE_RECONCILER_INTERVAL_SECONDS",
        ):
            os.environ.pop(name, None)
        os.environ.update(self.variables())

    def child(self, **overrides: str) -> dict[str, str]:
        """A subprocess's environment: this one, the bench variables, OVERRIDES ('' removes one)."""
        env = {**os.environ, **self.variables(), **overrides}
        return {k: v for k, v in env.items() if v != ""}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Services:
    """Real subprocesses of one figure (``manage.py run_worker``, daphne, …), logs in SCRATCH.

    ``stop_all`` sends SIGTERM to each process it started (by pid), then SIGKILL after a grace
    period; it never touches a process it did not start.
    """

    def __init__(self, env: BenchEnv, name: str) -> None:
        self.env = env
        self.name = name
        self.started: list[subprocess.Popen[bytes]] = []
        (env.scratch / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, args: Sequence[str], **overrides: str) -> subprocess.Popen[bytes]:
        log_path = self.env.scratch / "logs" / f"{self.name}-{len(self.started)}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [PYTHON, *args], cwd=ROOT, env=self.env.child(**overrides), stdout=out, stderr=subprocess.STDOUT
            )
        self.started.append(proc)
        return proc

    def worker(self, worker_id: str, *, test_handlers: bool = False, **overrides: str) -> subprocess.Popen[bytes]:
        entry = ["-m", "tests.pipelines.worker_main"] if test_handlers else ["manage.py"]
        return self.start([*entry, "run_worker", "--worker-id", worker_id], CARBON_PROCESS_NAME=worker_id, **overrides)

    def reconciler(self, **overrides: str) -> subprocess.Popen[bytes]:
        return self.start(["manage.py", "reconcile_pipelines"], **overrides)

    def daphne(self, port: int, **overrides: str) -> subprocess.Popen[bytes]:
        return self.start(["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"], **overrides)

    def logs(self) -> str:
        paths = sorted((self.env.scratch / "logs").glob(f"{self.name}-*.log"))
        return "\n".join(p.read_text(errors="replace") for p in paths)

    def stop_all(self, grace: float = 15.0) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.started = []


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.02, what: str = "") -> Any:
    """Poll PREDICATE until it returns something truthy; TimeoutError after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def http_answering(port: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 (no reconciler) still means daphne serves
    except OSError:
        return False
