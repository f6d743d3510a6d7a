"""Following a pipeline from a terminal: a progress line until it ends (used by commands)."""

from __future__ import annotations

import time
from typing import Any, Protocol
from uuid import UUID

from django.db import close_old_connections

from pipelines.runner import job_claim, job_run
from pipelines.selectors import pipeline_snapshot
from pipelines.services import worker_register, worker_unregister

BAR_WIDTH = 24


class Output(Protocol):
    def write(self, text: str, /) -> Any: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


def progress_line(snapshot: dict[str, Any]) -> str:
    jobs = snapshot["jobs"]
    done = sum(1 for j in jobs if j["state"] == "FINISHED")
    progress = snapshot["progress"]
    filled = int(BAR_WIDTH * (progress["phase"] - (0 if progress["done"] else 1)) / progress["phases_total"])
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    latest = max(jobs, key=lambda j: (j["state"] != "NOT_STARTED", j["job_id"]))["status_message"] if jobs else ""
    return f"[{bar}] {snapshot['status']:<11} {progress['phase_label']:<11} jobs {done}/{len(jobs)}  {latest[:80]}"


def pipeline_follow(
    *, pipeline_id: UUID, out: Output, run_here: bool = False, poll_seconds: float = 0.5, timeout: float | None = None
) -> dict[str, Any]:
    """Print a progress line for PIPELINE_ID until it is terminal; return the final snapshot.

    With RUN_HERE, this process runs the claimable jobs itself (no worker needed) — it may
    also pick up other pipelines' jobs, as any worker would.
    """
    worker_id = f"cli:{int(time.time())}"
    if run_here:
        worker_register(worker_id=worker_id, hostname="cli", pid=0)
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    interactive = out.isatty()
    try:
        while True:
            close_old_connections()
            snapshot = pipeline_snapshot(pipeline_id=pipeline_id)
            if snapshot is None:
                raise LookupError(f"pipeline {pipeline_id} does not exist")
            line = progress_line(snapshot)
            if line != last:
                out.write(("\r" + line) if interactive else line + "\n")
                out.flush()
                last = line
            if snapshot["progress"]["done"]:
                if interactive:
                    out.write("\n")
                return snapshot
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"pipeline {pipeline_id} still {snapshot['status']} after {timeout}s")
            job = job_claim(worker_id=worker_id) if run_here else None
            if job is not None:
                job_run(job=job, worker_id=worker_id)
            else:
                time.sleep(poll_seconds)
    finally:
        if run_here:
            worker_unregister(worker_id=worker_id)
