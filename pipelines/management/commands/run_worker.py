"""manage.py run_worker — process pipeline jobs.

Algorithm:
1. Register this process as a Worker (kind:host:pid, git sha, version) and heartbeat it.
2. Loop: claim the oldest claimable job (SKIP LOCKED on PostgreSQL), run its handler,
   settle it; when none is claimable, wait for a NOTIFY (PostgreSQL) or the poll period.
3. SIGTERM/SIGINT: finish the running job if it ends within the lease, else give it back;
   a second signal exits at once. Remove the Worker row on exit.
``--once`` runs every job claimable now, then exits. ``--concurrency N`` starts N such
processes and supervises them (signals are forwarded).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.worker import WorkerLoop


class Command(BaseCommand):
    help = "Run a pipeline worker (claims and runs jobs until stopped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run the jobs claimable now, then exit")
        parser.add_argument("--concurrency", type=int, default=1, help="number of worker processes (default 1)")
        parser.add_argument("--worker-id", default=None, help="identity shown in the console (default worker:host:pid)")

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options["concurrency"]
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if concurrency == 1:
            loop = WorkerLoop(worker_id=options["worker_id"], once=options["once"])
            loop.install_signal_handlers()
            code = loop.run()
        else:
            code = self._supervise(concurrency, once=options["once"])
        if code:
            raise CommandError(f"worker exited with code {code}", returncode=code)

    def _supervise(self, concurrency: int, *, once: bool) -> int:
        argv = [sys.executable, sys.argv[0], "run_worker"] + (["--once"] if once else [])
        children = [subprocess.Popen(argv) for _ in range(concurrency)]

        def forward(signum: int, frame: FrameType | None) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        codes = [child.wait() for child in children]
        return max(codes, default=0)
