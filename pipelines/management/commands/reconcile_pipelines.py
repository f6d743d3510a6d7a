"""manage.py reconcile_pipelines — heal what workers could not.

Algorithm (each sweep, every PIPELINE_RECONCILER_INTERVAL_SECONDS, or once with ``--once``):
1. Requeue jobs whose lease expired (or fail them after JOB_MAX_ATTEMPTS claims).
2. Force-cancel running jobs that ignored an abort for a whole lease.
3. Wake workers for jobs nobody claimed, noting it once in the job's history.
4. Chain aggregations missing from finished recalc groups; rewrite drifted pipeline statuses.
Cost follows active work only. Safe to run in several processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, InterfaceError, close_old_connections, connections

from pipelines.choices import WorkerKind
from pipelines.reconciler import pipelines_reconcile
from pipelines.services import worker_heartbeat, worker_register, worker_unregister

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Reconcile pipelines: stale leases, missing aggregations, status drift (loop, or --once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="sweep once and exit")
        parser.add_argument("--json", action="store_true", help="print each sweep's report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            self._report(pipelines_reconcile(), as_json=options["json"])
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        me = f"{WorkerKind.RECONCILER}:{socket.gethostname()}:{os.getpid()}"
        worker_register(worker_id=me, hostname=socket.gethostname(), pid=os.getpid(), kind=WorkerKind.RECONCILER)
        try:
            while not stop.is_set():
                try:
                    close_old_connections()
                    report = pipelines_reconcile()
                    worker_heartbeat(worker_id=me, current_job_id=None)
                    if report.healed or options["json"]:
                        self._report(report, as_json=options["json"])
                except (DatabaseError, InterfaceError):
                    logger.warning("reconciler sweep failed; retrying next period", exc_info=True)
                    connections.close_all()
                stop.wait(settings.PIPELINE_RECONCILER_INTERVAL_SECONDS)
        finally:
            try:
                worker_unregister(worker_id=me)
            except DatabaseError:
                logger.warning("could not remove the reconciler row", exc_info=True)

    def _report(self, report: Any, *, as_json: bool) -> None:
        fields = ("requeued", "failed", "cancelled", "unclaimed", "fan_ins", "statuses")
        if as_json:
            self.stdout.write(json.dumps({name: getattr(report, name) for name in fields}))
        else:
            self.stdout.write(", ".join(f"{name}: {len(getattr(report, name))}" for name in fields))
