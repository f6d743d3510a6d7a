"""manage.py seed_demo — a demo year loaded end to end through real pipelines.

Algorithm:
1. Create the year (default 2025) and sync its units from UNIT_SOURCE_URL (the bundled demo
   directory by default); wait for it.
2. Upload the bundled reference data (airports, stations, rooms), the 15 factor files, then
   the 13 activity-data files spread over every lab; wait for each pipeline.
3. Print each pipeline's outcome. Exit 1 if any did not end SUCCESS.
Jobs run on the running workers, or in this process with ``--run-here``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from carbon.services import year_units_sync
from ingestion.demo_seed import demo_uploads
from pipelines.choices import PipelineStatus
from pipelines.follow import pipeline_follow
from pipelines.models import Pipeline


class Command(BaseCommand):
    help = "Load a demo year (units, reference data, factors, activity data) through real pipelines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--year", type=int, default=2025)
        parser.add_argument("--run-here", action="store_true", help="run the jobs in this process")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each pipeline")

    def handle(self, *args: Any, **options: Any) -> None:
        failures: list[str] = []

        def wait(pipeline: Pipeline) -> str:
            snapshot = pipeline_follow(
                pipeline_id=pipeline.pk, out=self.stdout, run_here=options["run_here"], timeout=options["timeout"]
            )
            if snapshot["status"] != PipelineStatus.SUCCESS:
                failures.append(f"{pipeline.kind} {pipeline.pk}: {snapshot['status']} {snapshot['last_error']}")
            return str(snapshot["status"])

        units = year_units_sync(year=options["year"])
        if wait(units) != PipelineStatus.SUCCESS:
            raise CommandError(f"unit sync failed: {failures[-1]}", returncode=1)
        pipelines = demo_uploads(year=options["year"], wait=wait)
        self.stdout.write(self.style.SUCCESS(f"demo year {options['year']}: {len(pipelines) + 1} pipelines"))
        if failures:
            raise CommandError("some demo pipelines did not succeed:\n" + "\n".join(failures), returncode=1)
