"""Manual recalculations, recalculation status and stale-stats health over the REST API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from carbon.models import CarbonReportModule
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobState, JobType, TargetType
from pipelines.models import IngestionJob
from pipelines.services import Scope, pipeline_create
from tests.carbon.conftest import make_year
from tests.factories import IngestionJobFactory, PipelineFactory
from tests.roles import Roles

pytestmark = pytest.mark.django_db

RECALC = "/api/v1/sync/recalculate-emissions"
STATUS = "/api/v1/sync/recalculation-status"
STALE = "/api/v1/sync/health/stale-stats"


def job_at(
    job_type: str,
    *,
    module: int | None,
    det: int | None = None,
    year: int | None = 2025,
    state: str = JobState.FINISHED,
    result: str | None = JobResult.SUCCESS,
    ago: timedelta = timedelta(0),
    meta: dict[str, Any] | None = None,
) -> IngestionJob:
    """A job (and its pipeline) in STATE, created — and finished, when FINISHED — AGO ago."""
    at = timezone.now() - ago
    running, finished = state == JobState.RUNNING, state == JobState.FINISHED
    pipeline = PipelineFactory.create(
        kind=job_type,
        module_type_id=module,
        year=year,
        entity_type=EntityType.MODULE_PER_YEAR,
        target_type=TargetType.FACTORS if job_type == JobType.FACTOR_INGEST else TargetType.DATA_ENTRIES,
        ingestion_method=IngestionMethod.COMPUTED,
        created_at=at,
    )
    return IngestionJobFactory.create(
        pipeline=pipeline,
        data_entry_type_id=det,
        state=state,
        result=result if finished else None,
        created_at=at,
        started_at=None if state == JobState.NOT_STARTED else at,
        finished_at=at if finished else None,
        lease_owner="worker:test:1" if running else None,
        lease_expires_at=at + timedelta(minutes=5) if running else None,
        meta=meta or {},
    )


# --- POST sync/recalculate-emissions/{module}/{det} ---------------------------------------------


def test_superadmin_schedules_a_data_entry_type_recalculation(roles: Roles) -> None:
    response = roles.client("superadmin").post(f"{RECALC}/2/20?year=2025")
    assert response.status_code == 200, response.json()
    body = response.json()
    job = IngestionJob.objects.get(pk=body["job_id"])
    assert body == {
        "job_id": job.pk,
        "pipeline_id": str(job.pipeline_id),
        "state": "NOT_STARTED",
        "message": "Emission recalculation scheduled",
    }
    assert (job.job_type, job.module_type_id, job.data_entry_type_id, job.year) == (
        JobType.EMISSION_RECALC,
        2,
        20,
        2025,
    )
    assert job.pipeline.created_by == roles.users["superadmin"]


def test_a_recalculation_while_one_is_active_for_the_scope_is_409(roles: Roles) -> None:
    _, active = pipeline_create(
        job_type=JobType.EMISSION_RECALC, scope=Scope(module_type_id=2, data_entry_type_id=20, year=2025)
    )
    response = roles.client("superadmin").post(f"{RECALC}/2/20?year=2025")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("A emission_recalc for this scope is already active")
    assert f"job {active.pk}" in response.json()["detail"]
    assert IngestionJob.objects.filter(job_type=JobType.EMISSION_RECALC).count() == 1
    # another year is another scope
    assert roles.client("superadmin").post(f"{RECALC}/2/20?year=2024").status_code == 200


@pytest.mark.parametrize(
    ("path", "code", "detail"),
    [
        (f"{RECALC}/2/20", 400, "year: This field is required."),
        (f"{RECALC}/2/20?year=abc", 400, "year: A valid integer is required."),
        (f"{RECALC}/4/20?year=2025", 400, "data_entry_type_id: 20 is not a data entry type of module 4"),
        (f"{RECALC}/9/20?year=2025", 404, "Module type 9 not found"),
        (f"{RECALC}/2/99?year=2025", 404, "Data entry type 99 not found"),
    ],
)
def test_bad_recalculation_requests_name_the_culprit(roles: Roles, path: str, code: int, detail: str) -> None:
    response = roles.client("superadmin").post(path)
    assert (response.status_code, response.json()["detail"]) == (code, detail)
    assert not IngestionJob.objects.exists()


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("standard", 403), ("principal_a", 403),
                                            ("backoffice", 403)])  # fmt: skip
def test_only_the_superadmin_may_recalculate(roles: Roles, role: str, code: int) -> None:
    for path in (f"{RECALC}/2/20?year=2025", f"{RECALC}/2?year=2025"):
        response = roles.client(role).post(path)
        assert response.status_code == code
        assert "detail" in response.json()
    assert not IngestionJob.objects.exists()


# --- POST sync/recalculate-emissions/{module} ---------------------------------------------------


def test_module_recalculation_covers_every_type_of_the_module(roles: Roles) -> None:
    response = roles.client("superadmin").post(f"{RECALC}/4?year=2025")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["message"] == "Module emission recalculation scheduled for 3 data entry types"
    assert body["state"] == "NOT_STARTED"
    job = IngestionJob.objects.get(pk=body["job_id"])
    assert (job.job_type, job.module_type_id, job.data_entry_type_id, job.year) == (
        JobType.MODULE_EMISSION_RECALC,
        4,
        None,
        2025,
    )
    assert str(job.pipeline_id) == body["pipeline_id"]


def test_only_stale_schedules_the_stale_types_and_refuses_when_there_are_none(roles: Roles) -> None:
    client = roles.client("superadmin")
    response = client.post(f"{RECALC}/2?year=2025&only_stale=true")
    assert response.status_code == 400
    assert response.json()["detail"] == "No data entry types require recalculation for this module"
    job_at(JobType.FACTOR_INGEST, module=2, det=21)  # train factors changed, never recalculated
    response = client.post(f"{RECALC}/2?year=2025&only_stale=true")
    assert response.status_code == 200, response.json()
    assert response.json()["message"] == "Module emission recalculation scheduled for 1 data entry types"
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    assert job.meta["config"] == {"only_stale": True, "data_entry_type_ids": [21]}


def test_a_module_recalculation_while_one_is_active_is_409(roles: Roles) -> None:
    pipeline_create(job_type=JobType.MODULE_EMISSION_RECALC, scope=Scope(module_type_id=4, year=2025))
    response = roles.client("superadmin").post(f"{RECALC}/4?year=2025")
    assert response.status_code == 409
    assert "already active" in response.json()["detail"]
    assert IngestionJob.objects.filter(job_type=JobType.MODULE_EMISSION_RECALC).count() == 1


def test_module_recalculation_validates_its_inputs(roles: Roles) -> None:
    client = roles.client("superadmin")
    assert client.post(f"{RECALC}/4").json()["detail"] == "year: This field is required."
    response = client.post(f"{RECALC}/4?year=2025&only_stale=maybe")
    assert (response.status_code, response.json()["detail"]) == (400, "only_stale: Must be a valid boolean.")
    response = client.post(f"{RECALC}/0?year=2025")
    assert (response.status_code, response.json()["detail"]) == (404, "Module type 0 not found")


# --- GET sync/recalculation-status --------------------------------------------------------------


def test_recalculation_status_per_module_and_type(roles: Roles) -> None:
    factor = job_at(JobType.FACTOR_INGEST, module=2, det=20, result=JobResult.WARNING)
    recalc = job_at(JobType.EMISSION_RECALC, module=2, det=21, result=JobResult.ERROR)
    job_at(JobType.FACTOR_INGEST, module=2, det=21, year=2024)  # another year
    response = roles.client("principal_a").get(STATUS, {"year": 2025})
    assert response.status_code == 200
    body = response.json()
    assert [m["module_type_id"] for m in body] == [1, 2, 3, 4, 5, 6, 7, 8]
    travel = body[1]
    assert travel == {
        "module_type_id": 2,
        "year": 2025,
        "needs_recalculation": True,
        "data_entry_types": [
            {
                "module_type_id": 2,
                "data_entry_type_id": 20,
                "year": 2025,
                "needs_recalculation": True,
                "last_factor_job_id": factor.pk,
                "last_factor_job_result": "WARNING",
                "last_recalculation_job_id": None,
                "last_recalculation_job_result": None,
            },
            {
                "module_type_id": 2,
                "data_entry_type_id": 21,
                "year": 2025,
                "needs_recalculation": False,  # no factors for 2025: nothing to recompute with
                "last_factor_job_id": None,
                "last_factor_job_result": None,
                "last_recalculation_job_id": recalc.pk,
                "last_recalculation_job_result": "ERROR",
            },
        ],
    }
    assert body[0]["needs_recalculation"] is False
    assert [d["data_entry_type_id"] for d in body[4]["data_entry_types"]] == [60, 61, 62, 63, 64, 65, 66, 67]


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("standard", 403)])
def test_recalculation_status_needs_pipeline_view(roles: Roles, role: str, code: int) -> None:
    assert roles.client(role).get(STATUS, {"year": 2025}).status_code == code


def test_recalculation_status_needs_a_year(roles: Roles) -> None:
    response = roles.client("backoffice").get(STATUS)
    assert (response.status_code, response.json()["detail"]) == (400, "year: This field is required.")


@pytest.mark.parametrize("jobs", [5, 50])
def test_recalculation_status_query_count_is_fixed(roles: Roles, jobs: int, django_assert_num_queries: Any) -> None:
    for index in range(jobs):
        job_at(JobType.FACTOR_INGEST, module=2, det=20 + index % 2)
        job_at(JobType.EMISSION_RECALC, module=4, det=10 + index % 3)
    client = roles.client("backoffice")
    # token, scope, factor uploads, recalculations, factor results
    with django_assert_num_queries(5):
        assert client.get(STATUS, {"year": 2025}).status_code == 200


# --- GET sync/health/stale-stats ----------------------------------------------------------------


def test_stale_stats_reports_every_reason_and_omits_fresh_successes(roles: Roles) -> None:
    make_year(units=1)  # report modules 1–8 of 2025
    hours = timedelta(hours=2)
    job_at(JobType.AGGREGATION, module=1, state=JobState.FINISHED, ago=timedelta(minutes=5))  # fresh
    stuck = job_at(JobType.AGGREGATION, module=2, state=JobState.NOT_STARTED, ago=hours)
    ok = job_at(JobType.AGGREGATION, module=3, ago=timedelta(minutes=30))
    failed = job_at(JobType.AGGREGATION, module=3, result=JobResult.ERROR, ago=timedelta(minutes=10))
    old = job_at(JobType.AGGREGATION, module=4, ago=hours)
    recent_pending = job_at(JobType.AGGREGATION, module=5, state=JobState.RUNNING, ago=timedelta(minutes=1))
    job_at(JobType.AGGREGATION, module=6, year=2024)  # no report modules in 2024: not listed
    response = roles.client("backoffice").get(STALE, {"older_than_minutes": 60})
    assert response.status_code == 200
    rows = {row["module_type_id"]: row for row in response.json()}
    assert set(rows) == {2, 3, 4, 5, 6, 7, 8}
    assert {m: rows[m]["why_stale"] for m in rows} == {
        2: "pending_aggregation_stuck",
        3: "last_aggregation_failed",
        4: "last_aggregation_too_old",
        5: "no_aggregation_ever",  # the first one is still running
        6: "no_aggregation_ever",
        7: "no_aggregation_ever",
        8: "no_aggregation_ever",
    }
    assert rows[2] == {
        "module_type_id": 2,
        "year": 2025,
        "last_finished_aggregation_at": None,
        "why_stale": "pending_aggregation_stuck",
        "last_aggregation_job_id": stuck.pk,
    }
    assert rows[3]["last_aggregation_job_id"] == failed.pk
    assert rows[3]["last_finished_aggregation_at"] is not None
    assert ok.pk < failed.pk
    assert rows[4]["last_aggregation_job_id"] == old.pk
    assert rows[5]["last_aggregation_job_id"] == recent_pending.pk
    assert rows[6] == {
        "module_type_id": 6,
        "year": 2025,
        "last_finished_aggregation_at": None,
        "why_stale": "no_aggregation_ever",
        "last_aggregation_job_id": None,
    }
    # a wider window makes the old success fresh, and the pending one merely the first, not stuck
    response = roles.client("backoffice").get(STALE, {"older_than_minutes": 600})
    wide = {row["module_type_id"]: row["why_stale"] for row in response.json()}
    assert 4 not in wide
    assert (wide[2], wide[3]) == ("no_aggregation_ever", "last_aggregation_failed")


def test_stale_stats_is_empty_without_reports(roles: Roles) -> None:
    assert roles.client("principal_b").get(STALE).json() == []


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("0", "older_than_minutes: Ensure this value is greater than or equal to 1."),
        ("x", "older_than_minutes: A valid integer is required."),
    ],
)
def test_stale_stats_rejects_a_bad_window(roles: Roles, value: str, detail: str) -> None:
    response = roles.client("backoffice").get(STALE, {"older_than_minutes": value})
    assert (response.status_code, response.json()["detail"]) == (400, detail)


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("standard", 403)])
def test_stale_stats_needs_pipeline_view(roles: Roles, role: str, code: int) -> None:
    assert roles.client(role).get(STALE).status_code == code


@pytest.mark.parametrize("rows", [5, 50])
def test_stale_stats_query_count_is_fixed(roles: Roles, rows: int, django_assert_num_queries: Any) -> None:
    for year in range(2000, 2000 + rows):
        make_year(units=2, year=year)
        job_at(JobType.AGGREGATION, module=1, year=year, ago=timedelta(days=1))
        job_at(JobType.AGGREGATION, module=2, year=year, result=JobResult.ERROR)
    assert CarbonReportModule.objects.count() == rows * 16
    client = roles.client("backoffice")
    # token, scope, report-module pairs, grouped aggregations
    with django_assert_num_queries(4):
        response = client.get(STALE)
    assert len(response.json()) == rows * 8
