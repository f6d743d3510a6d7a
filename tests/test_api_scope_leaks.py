"""Ids of another unit's jobs never reach a principal through the status endpoints.

Found while building the access matrix: recalculation status and stale stats reported the
latest recalculation/aggregation whatever its unit, and the workers list named the job a
worker runs — ids that ``GET /sync/jobs/{id}`` rightly answers 404 for.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from carbon.models import CarbonReportModule
from ingestion.services_data import reports_ensure
from pipelines.choices import JobResult, JobState, JobType
from pipelines.models import IngestionJob, Worker
from tests.pipelines.api_helpers import RUNNING, Outcome, pipeline_build
from tests.roles import Roles

pytestmark = pytest.mark.django_db


def job_ids(value: Any) -> set[int]:
    """Every integer under a key ending in ``job_id`` anywhere in VALUE."""
    found: set[int] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("job_id") and isinstance(item, int):
                found.add(item)
            found |= job_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= job_ids(item)
    return found


def test_status_endpoints_never_name_another_units_jobs(roles: Roles) -> None:
    reports_ensure(unit_ids=[roles.unit_a.pk, roles.unit_b.pk], year=2025)
    assert CarbonReportModule.objects.filter(report__year=2025).exists()
    outcomes: list[Outcome] = [
        (JobType.CSV_INGEST, JobState.FINISHED, JobResult.SUCCESS),
        (JobType.EMISSION_RECALC, JobState.FINISHED, JobResult.SUCCESS),
        (JobType.AGGREGATION, JobState.FINISHED, JobResult.SUCCESS),
    ]
    theirs = pipeline_build(outcomes, unit=roles.unit_b)
    running = pipeline_build(RUNNING, unit=roles.unit_b, year=2024)
    hidden = set(IngestionJob.objects.filter(pipeline__in=[theirs, running]).values_list("id", flat=True))
    busy = IngestionJob.objects.get(pipeline=running, state=JobState.RUNNING)
    Worker.objects.create(id="worker:test:1", hostname="h", pid=1, current_job=busy, last_heartbeat_at=timezone.now())
    client = roles.client("principal_a")
    seen: set[int] = set()
    for url in (
        "/api/v1/sync/recalculation-status?year=2025",
        "/api/v1/sync/health/stale-stats",
        "/api/v1/sync/workers",
    ):
        response = client.get(url)
        assert response.status_code == 200
        seen |= job_ids(response.json())
    assert not seen & hidden
    # the superadmin still sees which job the worker runs
    workers = roles.client("superadmin").get("/api/v1/sync/workers").json()
    assert workers[0]["current_job_id"] == busy.pk
