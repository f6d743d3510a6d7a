"""manage.py ingest — upload a file and follow its pipeline.

Algorithm:
1. Copy FILE into FILES_ROOT/tmp (streamed, size-limited like an API upload).
2. Start the pipeline (data, factors or reference data) for the module and year; ``--unit``
   (a unit's cf) makes it a unit-specific upload into that unit's module.
3. Follow it with a progress line (``--run-here`` runs its jobs in this process when no
   worker is running); print the outcome, or the snapshot as JSON with ``--json``.
Exit status: 0 when the pipeline ends SUCCESS, 1 otherwise (failed, partial, cancelled).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from carbon.models import CarbonReportModule
from ingestion.files import upload_store
from ingestion.services import DispatchInvalid, YearNotProvisioned, upload_dispatch
from pipelines.choices import PipelineStatus, TargetType
from pipelines.follow import pipeline_follow

TARGETS = {"data": TargetType.DATA_ENTRIES, "factors": TargetType.FACTORS, "reference": TargetType.REFERENCE_DATA}


class Command(BaseCommand):
    help = "Upload a CSV file (data, factors or reference data) and follow its pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--module", type=int, help="module type id (1–8)")
        parser.add_argument("--year", type=int)
        parser.add_argument("--det", type=int, help="data-entry type id (optional for shared module files)")
        parser.add_argument("--unit", help="a unit's cf: load into that unit's module only (unit-specific)")
        parser.add_argument("--target", choices=sorted(TARGETS), default="data")
        parser.add_argument("--run-here", action="store_true", help="run the jobs in this process")
        parser.add_argument("--json", action="store_true", help="print the final pipeline snapshot as JSON")
        parser.add_argument("--timeout", type=float, default=None, help="give up following after N seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        source: Path = options["file"]
        if not source.is_file():
            raise CommandError(f"{source}: no such file")
        crm_id = self._unit_module(options) if options["unit"] else None
        with source.open("rb") as handle:
            relative = upload_store(name=source.name, chunks=iter(lambda: handle.read(1 << 20), b""))
        try:
            pipeline, _ = upload_dispatch(
                target_type=TARGETS[options["target"]],
                year=options["year"],
                module_type_id=options["module"],
                data_entry_type_id=options["det"],
                carbon_report_module_id=crm_id,
                file_path=relative,
            )
        except (DispatchInvalid, YearNotProvisioned) as exc:
            raise CommandError(str(exc)) from None
        progress = sys.stderr if options["json"] else self.stdout
        snapshot = pipeline_follow(
            pipeline_id=pipeline.pk, out=progress, run_here=options["run_here"], timeout=options["timeout"]
        )
        if options["json"]:
            self.stdout.write(json.dumps(snapshot, indent=2))
        else:
            self._summary(snapshot)
        if snapshot["status"] != PipelineStatus.SUCCESS:
            raise CommandError(f"pipeline {pipeline.pk} ended {snapshot['status']}", returncode=1)

    def _unit_module(self, options: dict[str, Any]) -> int:
        if options["module"] is None or options["year"] is None:
            raise CommandError("--unit needs --module and --year")
        crm = CarbonReportModule.objects.filter(
            report__unit__institutional_id=options["unit"],
            report__year=options["year"],
            module_type_id=options["module"],
        ).first()
        if crm is None:
            raise CommandError(f"unit {options['unit']} has no module {options['module']} in {options['year']}")
        return crm.pk

    def _summary(self, snapshot: dict[str, Any]) -> None:
        self.stdout.write(f"pipeline {snapshot['pipeline_id']}: {snapshot['status']}")
        for job in snapshot["jobs"]:
            self.stdout.write(
                f"  #{job['job_id']} {job['job_type']:<24} {job['result'] or job['state']:<9} {job['status_message']}"
            )
