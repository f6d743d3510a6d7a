"""manage.py sync_units — provision a year from the unit directory.

Algorithm:
1. A year not configured yet is created (default configuration) — which starts its
   ``unit_sync`` pipeline; a configured year gets a new ``unit_sync`` pipeline.
2. Follow the pipeline (``--run-here`` runs it in this process); exit 0 on SUCCESS, 1 otherwise.
The unit directory is UNIT_SOURCE_URL (an Accred-compatible API, or a JSON file).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from carbon.services import year_units_sync
from pipelines.choices import PipelineStatus
from pipelines.follow import pipeline_follow


class Command(BaseCommand):
    help = "Sync the organisational units for a year (creating the year if needed) and follow the pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--year", type=int, required=True)
        parser.add_argument("--run-here", action="store_true", help="run the job in this process")
        parser.add_argument("--json", action="store_true", help="print the final pipeline snapshot as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        pipeline = year_units_sync(year=options["year"])
        snapshot = pipeline_follow(pipeline_id=pipeline.pk, out=self.stderr if options["json"] else self.stdout,
                                   run_here=options["run_here"])  # fmt: skip
        if options["json"]:
            self.stdout.write(json.dumps(snapshot, indent=2))
        else:
            self.stdout.write(f"pipeline {pipeline.pk}: {snapshot['status']} — {snapshot['jobs'][0]['status_message']}")
        if snapshot["status"] != PipelineStatus.SUCCESS:
            raise CommandError(f"unit sync for {options['year']} ended {snapshot['status']}", returncode=1)
