"""manage.py recalculate — recompute emissions after factor or reference-data changes.

Algorithm:
1. Start the pipeline with the service behind the API (``emission_recalculation_start``):
   ``--det`` given, one ``emission_recalc`` for (module, det, year); else one
   ``module_emission_recalc`` over the module's types (``--only-stale``: those whose factors
   changed since their last recalculation).
2. Refuse while one is already active for the same scope, or when nothing is stale, or for
   an unknown module/type (exit 2); else follow the pipeline (``--run-here`` runs it in this
   process). Exit 0 on SUCCESS, 1 otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from carbon.services import (
    NothingToRecalculate,
    RecalculationInvalid,
    RecalculationTargetUnknown,
    emission_recalculation_start,
)
from pipelines.choices import PipelineStatus
from pipelines.follow import pipeline_follow
from pipelines.services import ActiveJobConflict


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
        try:
            started = emission_recalculation_start(
                module_type_id=options["module"],
                year=options["year"],
                data_entry_type_id=options["det"],
                only_stale=options["only_stale"],
            )
        except (ActiveJobConflict, NothingToRecalculate, RecalculationInvalid, RecalculationTargetUnknown) as exc:
            raise CommandError(str(exc), returncode=2) from None
        pipeline = started.pipeline
        snapshot = pipeline_follow(pipeline_id=pipeline.pk, out=self.stderr if options["json"] else self.stdout,
                                   run_here=options["run_here"])  # fmt: skip
        if options["json"]:
            self.stdout.write(json.dumps(snapshot, indent=2))
        if snapshot["status"] != PipelineStatus.SUCCESS:
            raise CommandError(f"recalculation ended {snapshot['status']}", returncode=1)
