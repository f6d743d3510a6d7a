"""Run the next claimable jobs in a fresh process, as a worker would, and report them as JSON.

    python -m bench.stage COUNT

Used by the ingest figures to time one stage of a pipeline on its own (its children are left
NOT_STARTED for the next call) and to read the peak RSS of that stage alone: the process does
nothing but ``django.setup()`` and then claim-and-run COUNT times — the claim,
heartbeat, handler, settle and fan-in code a ``manage.py run_worker`` process runs (its
``WorkerLoop.step`` unrolled, to know which job was run). It prints
one JSON object: per job its id, type, result, message, wall seconds and the database's
started_at → finished_at; the peak RSS before the first job and at the end.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.db import close_old_connections

    from bench.core import profiled
    from pipelines.models import IngestionJob
    from pipelines.runner import job_claim, job_run
    from pipelines.services import worker_heartbeat, worker_register, worker_unregister

    count = int(argv[0]) if argv else 1
    profile_dir = Path(os.environ["BENCH_PROFILE_DIR"]) if os.environ.get("BENCH_PROFILE_DIR") else None
    worker_id = f"worker:bench-stage:{os.getpid()}"
    worker_register(worker_id=worker_id, hostname="bench", pid=os.getpid())
    rss_before = _rss_mb()
    jobs: list[dict[str, Any]] = []
    try:
        for _ in range(count):
            # WorkerLoop.step(), unrolled to know which job it ran.
            close_old_connections()
            started = time.perf_counter()
            claimed = job_claim(worker_id=worker_id)
            if claimed is None:
                break
            worker_heartbeat(worker_id=worker_id, current_job_id=claimed.pk)
            with profiled(profile_dir, f"stage-{claimed.job_type}-{claimed.pk}"):
                job_run(job=claimed, worker_id=worker_id)
            wall = time.perf_counter() - started
            job = IngestionJob.objects.get(pk=claimed.pk)
            assert job.started_at is not None
            finished = job.finished_at or job.started_at
            jobs.append(
                {
                    "id": job.pk,
                    "job_type": job.job_type,
                    "result": job.result,
                    "message": job.status_message,
                    "wall_seconds": round(wall, 3),
                    "db_seconds": round((finished - job.started_at).total_seconds(), 3),
                    "meta": {k: job.meta.get(k) for k in ("stats", "recalculation", "modules_refreshed")},
                }
            )
    finally:
        worker_unregister(worker_id=worker_id)
    print(json.dumps({"jobs": jobs, "rss_before_mb": rss_before, "rss_peak_mb": _rss_mb()}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
