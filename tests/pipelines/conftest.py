"""Fixtures of the engine tests: in-process runs and real worker subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from pipelines.registry import handlers_replaced
from pipelines.services import worker_unregister
from pipelines.worker import WorkerLoop
from tests.pipelines.engine_handlers import ALL_HANDLERS

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll PREDICATE until it returns something truthy, or fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def engine() -> Iterator[None]:
    """The generic test handler registered for every job type, in this process."""
    with handlers_replaced(dict(ALL_HANDLERS)):
        yield


def run_until_idle(*, worker_id: str = "worker:test:1", limit: int = 1000) -> int:
    """Run claimable jobs in this process until none is left; returns how many ran."""
    loop = WorkerLoop(worker_id=worker_id, once=True)
    loop.register()
    ran = 0
    try:
        while ran < limit and loop.step():
            ran += 1
    finally:
        loop.waker.close()
        worker_unregister(worker_id=worker_id)
    return ran


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def worker_env(**overrides: str) -> dict[str, str]:
    """Environment of a worker subprocess: this test's database, short leases, OVERRIDES."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
    env.update(
        {
            "DATABASE_URL": _database_url(),
            "SECRET_KEY": settings.SECRET_KEY,
            "FILES_ROOT": str(settings.FILES_ROOT),
            "JOB_LEASE_SECONDS": "3",
            "WORKER_HEARTBEAT_SECONDS": "1",
            "WORKER_POLL_SECONDS": "1",
            "JOB_MAX_ATTEMPTS": "3",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **overrides,
        }
    )
    return env


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    return worker_env()


# The engine's own tests run workers with the test handlers; others run ``manage.py`` itself.
TEST_HANDLERS_ENTRY = ("-m", "tests.pipelines.worker_main")
REAL_HANDLERS_ENTRY = ("manage.py",)


class Processes:
    def __init__(self, env: dict[str, str], log_dir: Path, entry: tuple[str, ...] = TEST_HANDLERS_ENTRY) -> None:
        self.env = env
        self.log_dir = log_dir
        self.entry = entry
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"proc-{len(self.started)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *self.entry, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(proc)
        return proc

    def worker(self, *, worker_id: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.start("run_worker", *(["--worker-id", worker_id] if worker_id else []), env=env)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("proc-*.log")))

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def processes(subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(subprocess_env, tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
        # Shown by pytest only when the test fails.
        sys.stdout.write(procs.logs())
