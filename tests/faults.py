"""Shared machinery of the fault suites (crash matrix, concurrency matrix, database faults).

- ``Cluster``: named ``manage.py run_worker`` processes (real handlers) and a reconciler, with
  SIGKILL and replacement; each process names itself in ``pg_stat_activity``
  (``CARBON_PROCESS_NAME``), so a test can terminate exactly its connections.
- ``local_directory``: an Accred-compatible unit directory on 127.0.0.1 (the fake of
  ``tests/ingestion/test_unit_sync.py``).
- ``stats_drift``: stored figures against a from-scratch recomputation (SQL sums through the
  domain's rollup functions; nothing is written).
- File generators and the polls every suite needs (terminal pipelines, nothing left running).
"""

from __future__ import annotations

import math
import random
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from carbon.models import (
    CarbonProject,
    CarbonReport,
    CarbonReportModule,
    DataEntry,
    DataEntryEmission,
    RoleAssignment,
    YearConfiguration,
)
from carbon.stats import ModuleFigures, RawSum, it_kg, module_stats, report_stats
from ingestion.files import upload_store
from ingestion.services import upload_dispatch
from pipelines.choices import JobState, TargetType
from pipelines.models import IngestionJob, Pipeline, Worker
from tests.ingestion.test_unit_sync import PASSWORD, USER, FakeDirectory, _DirectoryHandler, directory_units
from tests.pipelines.conftest import REAL_HANDLERS_ENTRY, Processes, wait_for

# --- Processes ----------------------------------------------------------------------------------


class Cluster:
    """Worker processes with stable ids (``<prefix>:<n>``) and one reconciler, all real handlers.

    Every process gets its own ``CARBON_PROCESS_NAME`` (``carbon-<prefix>-<n>`` for workers,
    ``carbon-<prefix>-reconciler``), its PostgreSQL ``application_name``.
    """

    def __init__(
        self, env: dict[str, str], log_dir: Path, *, prefix: str = "crash", entry: tuple[str, ...] = REAL_HANDLERS_ENTRY
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        self.procs = Processes(env, log_dir, entry=entry)
        self.prefix = prefix
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.log_files: dict[str, Path] = {}
        self.killed: list[str] = []
        self.serial = 0

    @staticmethod
    def process_name(worker_id: str) -> str:
        return "carbon-" + worker_id.replace("worker:", "").replace(":", "-")

    def add_worker(self) -> str:
        self.serial += 1
        worker_id = f"worker:{self.prefix}:{self.serial}"
        self.log_files[worker_id] = self.log_dir / f"proc-{len(self.procs.started)}.log"  # as Processes names it
        self.workers[worker_id] = self.procs.worker(
            worker_id=worker_id, env={"CARBON_PROCESS_NAME": self.process_name(worker_id)}
        )
        return worker_id

    def alive(self) -> list[str]:
        return [wid for wid, proc in self.workers.items() if proc.poll() is None]

    def keep(self, count: int) -> None:
        """Start workers until COUNT are alive (replacing killed ones)."""
        while len(self.alive()) < count:
            self.add_worker()

    def wait_registered(self, count: int, timeout: float = 60.0) -> None:
        wait_for(
            lambda: Worker.objects.filter(pk__in=self.alive(), kind="worker").count() >= count,
            timeout=timeout,
            what=f"{count} workers to register",
        )

    def kill(self, worker_id: str) -> None:
        """SIGKILL: no signal handler, no cleanup, no last write.

        Returns once nothing of the process can still change the database: on PostgreSQL its
        server backends are gone too (a COMMIT the client sent just before dying still lands:
        the backend finishes the statement it has, then sees the closed socket and exits).
        """
        proc = self.workers[worker_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.killed.append(worker_id)
        if connection.vendor == "postgresql":
            name = self.process_name(worker_id)
            wait_for(lambda: not backends(name), timeout=30, interval=0.02, what=f"the backends of {worker_id} to exit")

    def reconciler(self) -> subprocess.Popen[bytes]:
        self.log_files["reconciler"] = self.log_dir / f"proc-{len(self.procs.started)}.log"
        return self.procs.start("reconcile_pipelines", env={"CARBON_PROCESS_NAME": f"carbon-{self.prefix}-reconciler"})

    def logs(self) -> str:
        return self.procs.logs()

    def log_of(self, worker_id: str) -> str:
        return self.log_files[worker_id].read_text(errors="replace")

    def stop(self) -> None:
        self.procs.stop_all()


def backends(application_name: str) -> list[int]:
    """PostgreSQL: the server pids of this database's connections named APPLICATION_NAME."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [application_name],
        )
        return [row[0] for row in cursor.fetchall()]


def terminate(application_name: str) -> list[int]:
    """PostgreSQL: ``pg_terminate_backend`` every connection of this database named APPLICATION_NAME.

    Two statements on purpose: in one, PostgreSQL may evaluate ``pg_terminate_backend(pid)``
    before the other conditions of the WHERE clause, on rows they would have excluded.
    """
    victims = [pid for pid in backends(application_name) if pid != connection.connection.info.backend_pid]
    with connection.cursor() as cursor:
        for pid in victims:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    return victims


def log_tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- Unit directory -----------------------------------------------------------------------------


@dataclass
class LocalDirectory:
    directory: FakeDirectory

    @property
    def url(self) -> str:
        return self.directory.url

    def env(self) -> dict[str, str]:
        return {"UNIT_SOURCE_URL": self.url, "UNIT_SOURCE_USER": USER, "UNIT_SOURCE_PASSWORD": PASSWORD}


@contextmanager
def local_directory(units: int = 2231) -> Iterator[LocalDirectory]:
    """An Accred-compatible directory of UNITS units on 127.0.0.1 (basic auth, pages of 100)."""
    fake = FakeDirectory(units=directory_units(units))
    handler = type("LocalDirectoryHandler", (_DirectoryHandler,), {"directory": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="local-directory", daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield LocalDirectory(directory=fake)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- Files and dispatch -------------------------------------------------------------------------

# Equipment classes of the generated files: (class, data-entry type, emission type).
EQUIPMENT_CLASSES = (
    ("Monitors", 11, 80200),
    ("Laptops", 11, 80200),
    ("Printers", 11, 80200),
    ("Spectrometers", 10, 80100),
    ("Centrifuges", 10, 80100),
)
EQUIPMENT_HEADER = (
    "unit_institutional_id,equipment_id,name,equipment_class,active_usage_hours_per_week,standby_usage_hours_per_week\n"
)


@dataclass(frozen=True)
class GeneratedFile:
    text: str
    valid_ids: list[str]  # equipment ids of the valid rows, in file order
    invalid: int

    @property
    def valid(self) -> int:
        return len(self.valid_ids)


def equipment_file(*, cfs: list[str], rows: int, invalid: int, rng: random.Random, tag: str) -> GeneratedFile:
    """A per-year equipment file (as ``bench/ingest_memory.py`` writes them) of ROWS rows spread
    over the units CFS; INVALID of them, at random places, break a range (a row error each)."""
    broken = set(rng.sample(range(rows), invalid))
    lines = [EQUIPMENT_HEADER]
    valid_ids: list[str] = []
    for i in range(rows):
        name = EQUIPMENT_CLASSES[i % len(EQUIPMENT_CLASSES)][0]
        active = 400 if i in broken else rng.randint(0, 60)
        equipment_id = f"{tag}-{i}"
        lines.append(f"{cfs[i % len(cfs)]},{equipment_id},Device {i},{name},{active},{rng.randint(0, 100)}\n")
        if i not in broken:
            valid_ids.append(equipment_id)
    return GeneratedFile(text="".join(lines), valid_ids=valid_ids, invalid=invalid)


def upload_pipeline(*, text: str, name: str, year: int, module_type_id: int, target: str = TargetType.DATA_ENTRIES,
                    data_entry_type_id: int | None = None) -> Pipeline:  # fmt: skip
    relative = upload_store(name=name, chunks=[text.encode()])
    pipeline, _ = upload_dispatch(
        target_type=target,
        year=year,
        module_type_id=module_type_id,
        data_entry_type_id=data_entry_type_id,
        file_path=relative,
    )
    return pipeline


def year_provision(year: int) -> None:
    YearConfiguration.objects.update_or_create(year=year, defaults={"configuration_completed": timezone.now()})


def equipment_year(*, units: int, year: int) -> list[str]:
    """UNITS units with their reports for YEAR, one equipment factor per class, the year
    provisioned; returns the units' cfs (what a file's unit column holds)."""
    from tests.carbon.conftest import make_factor, make_year

    made = make_year(units=units, year=year)
    for index, (name, det, emission_type) in enumerate(EQUIPMENT_CLASSES):
        make_factor(det, emission_type, {"equipment_class": name}, year=year, active_power_w=50 + index,
                    standby_power_w=1, active_usage_hours_per_week=40, standby_usage_hours_per_week=100,
                    ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    year_provision(year)
    return [u.institutional_id for u in made.units if u.institutional_id]


# --- Polls --------------------------------------------------------------------------------------


def pipelines_terminal(ids: list[Any]) -> bool:
    """Terminal in the SPEC's sense: the status says so and every job is FINISHED."""
    if Pipeline.objects.filter(pk__in=ids, finished_at__isnull=True).exists():
        return False
    if Pipeline.objects.filter(pk__in=ids, status__in=("NOT_STARTED", "RUNNING")).exists():
        return False
    return not IngestionJob.objects.filter(pipeline_id__in=ids).exclude(state=JobState.FINISHED).exists()


def wait_terminal(ids: list[Any], *, timeout: float, what: str) -> None:
    wait_for(lambda: pipelines_terminal(ids), timeout=timeout, interval=0.1, what=what)


def nothing_active() -> list[str]:
    """Jobs anywhere that are not FINISHED, as readable lines (empty when all are)."""
    return [
        f"job {j['id']} {j['job_type']} {j['state']} owner={j['lease_owner']} attempts={j['attempts']}"
        for j in IngestionJob.objects.exclude(state=JobState.FINISHED).values(
            "id", "job_type", "state", "lease_owner", "attempts"
        )
    ]


def job_history(job: IngestionJob) -> str:
    return "\n".join(f"  {e.get('ts')} [{e.get('kind')}] {e.get('message')}" for e in job.status_history or [])


def pipeline_report(pipeline_id: Any) -> str:
    """Every job of a pipeline with its history (for assertion messages)."""
    return "\n".join(
        f"#{job.pk} {job.job_type} {job.state}/{job.result} attempts={job.attempts}: {job.status_message}\n"
        + job_history(job)
        for job in IngestionJob.objects.filter(pipeline_id=pipeline_id).order_by("id")
    )


# --- Figures ------------------------------------------------------------------------------------


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = (set(a) | set(b)) - {"computed_at"}
        return all(_close(a.get(k, 0.0), b.get(k, 0.0)) for k in keys)
    return bool(a == b)


def _empty(figures: Mapping[str, Any]) -> bool:
    return not figures.get("entry_count") and _close(figures.get("total", 0.0), 0.0)


def _brief(figures: Mapping[str, Any] | None) -> str:
    if figures is None:
        return "None"
    return f"total={figures.get('total')} entries={figures.get('entry_count')}"


def figures_read(year: int) -> tuple[dict[int, Any], dict[int, Any]]:
    modules = dict(CarbonReportModule.objects.filter(report__year=year).values_list("pk", "stats"))
    reports = dict(CarbonReport.objects.filter(year=year).values_list("pk", "stats"))
    return modules, reports


def figures_recompute(year: int) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """YEAR's module and report figures from scratch: SQL sums over the non-rollup emission
    rows and entry counts, through the domain's own rollup functions (``carbon.stats``), the
    way ``module_stats_recompute`` and ``reports_recompute`` derive them — without writing."""
    raw: dict[int, dict[int, RawSum]] = {}
    for row in (
        DataEntryEmission.objects.filter(carbon_report_module__report__year=year, is_rollup=False)
        .values("carbon_report_module_id", "emission_type_id")
        .annotate(kg=Sum("kg_co2eq"), quantity=Sum("additional_value"))
    ):
        raw.setdefault(row["carbon_report_module_id"], {})[row["emission_type_id"]] = RawSum(
            row["kg"] or 0.0, row["quantity"]
        )
    counts = dict(
        DataEntry.objects.filter(carbon_report_module__report__year=year)
        .values("carbon_report_module_id")
        .annotate(n=Count("id"))
        .values_list("carbon_report_module_id", "n")
    )
    modules: dict[int, dict[str, Any]] = {}
    by_report: dict[int, list[ModuleFigures]] = {}
    rows = CarbonReportModule.objects.filter(report__year=year).values_list(
        "pk", "report_id", "module_type_id", "status"
    )
    empty: dict[int, dict[str, Any]] = {}  # a module without data: the same figures for every one of a type
    for pk, report_id, module_type_id, status in rows:
        sums, entries = raw.get(pk, {}), counts.get(pk, 0)
        if sums or entries or module_type_id not in empty:
            figures = module_stats(module_type_id=module_type_id, raw=sums, entry_count=entries, computed_at="")
            figures["it_kg"] = it_kg(sums)
            if not sums and not entries:
                empty[module_type_id] = figures
        else:
            figures = empty[module_type_id]
        modules[pk] = figures
        by_report.setdefault(report_id, []).append(
            ModuleFigures(module_type_id=module_type_id, status=status, stats=figures, it_kg=figures["it_kg"])
        )
    reports = {pk: report_stats(modules=members, computed_at="")[0] for pk, members in by_report.items()}
    return modules, reports


def stats_drift(*, year: int, limit: int = 10) -> list[str]:
    """Where the stored module and report figures of YEAR differ from ``figures_recompute``.
    A module or report never aggregated (figures None) must recompute to nothing."""
    stored_modules, stored_reports = figures_read(year)
    fresh_modules, fresh_reports = figures_recompute(year)
    problems: list[str] = []
    for kind, stored, fresh in (("module", stored_modules, fresh_modules), ("report", stored_reports, fresh_reports)):
        for pk, figures in fresh.items():
            old = stored.get(pk)
            ok = _empty(figures) if old is None else _close(old, figures)
            if not ok:
                problems.append(f"{kind} {pk}: stored {_brief(old)}, recomputed {_brief(figures)}")
    return problems[:limit] + ([f"… {len(problems) - limit} more"] if len(problems) > limit else [])


def database_label() -> str:
    return connection.vendor


def bulk_rows_wipe() -> None:
    """Delete the big tables children first, before the test database is flushed: SQLite checks
    each deleted parent row against its children (some without an index of their own), which
    turns the flush of thousands of reports into minutes when the children are still there."""
    for model in (DataEntryEmission, DataEntry, CarbonReportModule, CarbonReport, CarbonProject, RoleAssignment):
        model.objects.all()._raw_delete(using="default")
