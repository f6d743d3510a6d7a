"""manage.py recalculate — recompute emissions after factor or reference-data changes.

Algorithm:
1. ``--det`` given: one ``emission_recalc`` for (module, det, year); else one
   ``module_emission_recalc`` over the module's types (``--only-stale``: those whose factors
   changed since their last recalculation).
2. Refuse while one is already active for the same scope (exit 2); else follow the pipeline
   (``--run-here`` runs it in this process). Exit 0 on SUCCESS, 1 otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.choices import JobType, PipelineStatus
from pipelines.follow import pipeline_follow
from pipelines.services import ActiveJobConflict, Scope, pipeline_create


class Command(BaseCommand):
    help = "Recalculate the emissions of a module (or one data-entry type) for a year, then aggregate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--module", type=int, required=True, help="module type id (1–8)")
        parser.add_argument("--year", type=int, required=True)
        parser.add_argument("--det", type=int, help="one data-entry type of the module")
        parser.add_argument("--only-stale", action="store_true", help="only types whose factors changed")
        parser.add_argument("--run-here", action="store_true", help="run the jobs in this process")
        parser.add_argument("--json", action="store_true", help="print the final pipeline snapshot as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        scope = Scope(module_type_id=options["module"], data_entry_type_id=options["det"], year=options["year"])
        job_type = JobType.EMISSION_RECALC if options["det"] is not None else JobType.MODULE_EMISSION_RECALC
        try:
            pipeline, _ = pipeline_create(
                job_type=job_type, scope=scope, config={"only_stale": True} if options["only_stale"] else {}
            )
        except ActiveJobConflict as exc:
            raise CommandError(str(exc), returncode=2) from None
        snapshot = pipeline_follow(pipeline_id=pipeline.pk, out=self.stderr if options["json"] else self.stdout,
                                   run_here=options["run_here"])  # fmt: skip
        if options["json"]:
            self.stdout.write(json.dumps(snapshot, indent=2))
        if snapshot["status"] != PipelineStatus.SUCCESS:
            raise CommandError(f"recalculation ended {snapshot['status']}", returncode=1)
