"""Year configuration over the REST API: create (→ unit_sync), read with injected job fields, patch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from carbon.models import YearConfiguration
from carbon.selectors import INJECTED_MODULE_FIELDS, INJECTED_SUBMODULE_FIELDS
from carbon.services import year_configuration_default_config
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobState, JobType, TargetType
from pipelines.models import IngestionJob
from tests.factories import IngestionJobFactory, PipelineFactory
from tests.roles import Roles

pytestmark = pytest.mark.django_db

LIST = "/api/v1/year-configuration/"


def one(year: int) -> str:
    return f"/api/v1/year-configuration/{year}"


TARGETS: dict[str, tuple[str, str]] = {
    JobType.CSV_INGEST: (TargetType.DATA_ENTRIES, IngestionMethod.CSV),
    JobType.API_INGEST: (TargetType.DATA_ENTRIES, IngestionMethod.API),
    JobType.FACTOR_INGEST: (TargetType.FACTORS, IngestionMethod.CSV),
    JobType.REFERENCE_INGEST: (TargetType.REFERENCE_DATA, IngestionMethod.CSV),
}


def job_at(
    job_type: str,
    *,
    module: int | None,
    det: int | None,
    year: int | None = 2025,
    state: str = JobState.FINISHED,
    result: str | None = JobResult.SUCCESS,
    entity: str = EntityType.MODULE_PER_YEAR,
) -> IngestionJob:
    target, method = TARGETS[job_type]
    finished = state == JobState.FINISHED
    now = timezone.now()
    pipeline = PipelineFactory.create(
        kind=job_type, module_type_id=module, year=year, entity_type=entity, target_type=target, ingestion_method=method
    )
    return IngestionJobFactory.create(
        pipeline=pipeline,
        data_entry_type_id=det,
        state=state,
        result=result if finished else None,
        finished_at=now if finished else None,
        lease_owner="worker:test:1" if state == JobState.RUNNING else None,
        lease_expires_at=now + timedelta(minutes=5) if state == JobState.RUNNING else None,
    )


def summary(job: IngestionJob) -> dict[str, Any]:
    return {
        "job_id": job.pk,
        "pipeline_id": str(job.pipeline_id),
        "state": job.state,
        "result": job.result,
        "finished_at": job.finished_at.isoformat().replace("+00:00", "Z") if job.finished_at else None,
    }


def stored(year: int, **fields: Any) -> YearConfiguration:
    return YearConfiguration.objects.create(year=year, config=year_configuration_default_config(), **fields)


# --- POST -------------------------------------------------------------------------------------------


def test_superadmin_creates_a_year_and_gets_its_unit_sync_pipeline(roles: Roles) -> None:
    response = roles.client("superadmin").post(one(2026), {"is_started": True}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    job = IngestionJob.objects.get(pipeline_id=body["pipeline_id"])
    assert (job.job_type, job.year, job.meta["config"]) == (JobType.UNIT_SYNC, 2026, {"target_year": 2026})
    assert {k: body[k] for k in ("year", "is_started", "configuration_completed", "unit_source")} == {
        "year": 2026,
        "is_started": True,
        "configuration_completed": None,
        "unit_source": str(settings.UNIT_SOURCE_URL),
    }
    assert body["created_at"]
    assert body["updated_at"]
    headcount = body["config"]["modules"]["1"]
    assert headcount["enabled"] is True
    assert headcount["submodules"]["1"] == {
        "enabled": True,
        "threshold": None,
        "latest_data_job": None,
        "latest_api_data_job": None,
        "latest_factor_job": None,
        "latest_reference_job": None,
        "incomplete": True,
        "incomplete_reasons": ["missing_factor"],
    }
    assert YearConfiguration.objects.get(year=2026).config == year_configuration_default_config()


def test_create_without_a_body_uses_the_default_config(roles: Roles) -> None:
    response = roles.client("superadmin").post(one(2026))
    assert response.status_code == 201, response.json()
    assert response.json()["is_started"] is False
    assert YearConfiguration.objects.get(year=2026).config == year_configuration_default_config()


def test_create_merges_the_given_config_without_storing_injected_fields(roles: Roles) -> None:
    sent_back = {"threshold": 10, "incomplete": False, "latest_factor_job": {"job_id": 1}}
    config = {"modules": {"2": {"incomplete": False, "submodules": {"20": sent_back}}}}
    response = roles.client("superadmin").post(one(2026), {"config": config}, format="json")
    assert response.status_code == 201, response.json()
    travel = YearConfiguration.objects.get(year=2026).config["modules"]["2"]
    assert travel["submodules"]["20"] == {"enabled": True, "threshold": 10}
    assert "incomplete" not in travel


def test_creating_an_existing_year_is_409(roles: Roles) -> None:
    stored(2026)
    response = roles.client("superadmin").post(one(2026))
    assert (response.status_code, response.json()["detail"]) == (409, "Year 2026 is already configured")
    assert not IngestionJob.objects.exists()


@pytest.mark.parametrize(
    ("year", "body", "detail"),
    [
        (1999, {}, "year: Ensure this value is greater than or equal to 2000."),
        (2101, {}, "year: Ensure this value is less than or equal to 2100."),
        (
            2026,
            {"config": {"modules": {"1": {"submodules": {"1": {"threshold": 5}}}}}},
            "config.modules.1.submodules.1.threshold: headcount takes no threshold",
        ),
        (2026, {"config": {"modules": {"9": {}}}}, "config.modules.9: is not a module id (1–8)"),
        (2026, {"config": "nope"}, 'config: Expected a dictionary of items but got type "str".'),
        (2026, {"is_started": "perhaps"}, "is_started: Must be a valid boolean."),
    ],
)
def test_create_rejects_bad_input_naming_the_field(roles: Roles, year: int, body: dict[str, Any], detail: str) -> None:
    response = roles.client("superadmin").post(one(year), body, format="json")
    assert (response.status_code, response.json()["detail"]) == (400, detail)
    assert not YearConfiguration.objects.exists()


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("standard", 403), ("principal_a", 403),
                                            ("backoffice", 403)])  # fmt: skip
def test_only_the_superadmin_creates_and_patches_years(roles: Roles, role: str, code: int) -> None:
    assert roles.client(role).post(one(2026)).status_code == code
    stored(2025)
    response = roles.client(role).patch(one(2025), {"is_started": True}, format="json")
    assert response.status_code == code
    assert "detail" in response.json()
    assert not YearConfiguration.objects.filter(year=2026).exists()
    assert YearConfiguration.objects.get(year=2025).is_started is False


# --- GET ----------------------------------------------------------------------------------------------


def test_list_hides_years_not_started_from_users_without_configuration_view(roles: Roles) -> None:
    stored(2024, is_started=True)
    stored(2025)
    callers = ("standard", "principal_a", "backoffice", "superadmin")
    years = {role: [c["year"] for c in roles.client(role).get(LIST).json()] for role in callers}
    assert years == {"standard": [2024], "principal_a": [2024], "backoffice": [2025, 2024], "superadmin": [2025, 2024]}
    assert roles.client("anonymous").get(LIST).status_code == 401


def test_get_one_year_404s_when_unknown_or_not_visible(roles: Roles) -> None:
    stored(2025)
    assert roles.client("backoffice").get(one(2025)).json()["year"] == 2025
    for role in ("standard", "principal_a"):
        response = roles.client(role).get(one(2025))
        assert (response.status_code, response.json()["detail"]) == (404, "Year 2025 is not configured")
    response = roles.client("superadmin").get(one(2030))
    assert (response.status_code, response.json()["detail"]) == (404, "Year 2030 is not configured")
    YearConfiguration.objects.filter(year=2025).update(is_started=True)
    assert roles.client("standard").get(one(2025)).status_code == 200
    assert roles.client("anonymous").get(one(2025)).status_code == 401


def test_read_injects_latest_jobs_and_incomplete_flags(roles: Roles) -> None:
    stored(2025, configuration_completed=timezone.now())
    job_at(JobType.FACTOR_INGEST, module=2, det=20, result=JobResult.ERROR)
    plane_factors = job_at(JobType.FACTOR_INGEST, module=2, det=20)
    failed_retry = job_at(JobType.FACTOR_INGEST, module=2, det=20, result=JobResult.ERROR)
    plane_csv = job_at(JobType.CSV_INGEST, module=2, det=20, state=JobState.RUNNING)
    job_at(JobType.CSV_INGEST, module=2, det=20, entity=EntityType.MODULE_UNIT_SPECIFIC)  # a principal's upload
    plane_api = job_at(JobType.API_INGEST, module=2, det=20)
    airports = job_at(JobType.REFERENCE_INGEST, module=2, det=20, year=None)  # reference data is global
    job_at(JobType.FACTOR_INGEST, module=2, det=21, year=2024)  # another year's factors
    equipment_common = job_at(JobType.FACTOR_INGEST, module=4, det=None)
    equipment_data = job_at(JobType.CSV_INGEST, module=4, det=None)
    body = roles.client("backoffice").get(one(2025)).json()
    travel = body["config"]["modules"]["2"]
    assert travel["submodules"]["20"] == {
        "enabled": True,
        "threshold": None,
        "latest_data_job": summary(plane_csv),
        "latest_api_data_job": summary(plane_api),
        "latest_factor_job": summary(failed_retry),  # the latest, even failed: a success exists
        "latest_reference_job": summary(airports),
        "incomplete": False,
        "incomplete_reasons": [],
    }
    assert plane_factors.pk < failed_retry.pk
    assert travel["submodules"]["21"]["incomplete_reasons"] == ["missing_factor", "missing_reference"]
    assert (travel["latest_common_data_job"], travel["latest_common_factor_job"], travel["incomplete"]) == (
        None,
        None,
        True,
    )
    equipment = body["config"]["modules"]["4"]
    assert equipment["latest_common_factor_job"] == summary(equipment_common)
    assert equipment["latest_common_data_job"] == summary(equipment_data)
    # the common file covers its routed types: no type and not the module is incomplete
    assert [equipment["submodules"][d]["incomplete"] for d in ("10", "11", "12")] == [False, False, False]
    assert equipment["incomplete"] is False
    purchases = body["config"]["modules"]["5"]
    assert purchases["incomplete"] is True
    assert purchases["submodules"]["60"]["incomplete_reasons"] == ["missing_factor"]


def test_a_disabled_module_or_submodule_is_never_incomplete(roles: Roles) -> None:
    stored(2025)
    client = roles.client("superadmin")
    change = {"modules": {"8": {"enabled": False}, "7": {"submodules": {"41": {"enabled": False}}}}}
    assert client.patch(one(2025), {"config": change}, format="json").status_code == 200
    modules = client.get(one(2025)).json()["config"]["modules"]
    assert modules["8"]["incomplete"] is False
    assert modules["8"]["submodules"]["50"]["incomplete"] is False
    assert modules["7"]["submodules"]["41"] == {**modules["7"]["submodules"]["41"], "incomplete": False,
                                                "incomplete_reasons": []}  # fmt: skip
    assert modules["7"]["submodules"]["40"]["incomplete"] is True
    assert modules["7"]["incomplete"] is True


@pytest.mark.parametrize("years", [5, 50])
def test_list_query_count_is_fixed(roles: Roles, years: int, django_assert_num_queries: Any) -> None:
    for year in range(2000, 2000 + years):
        stored(year, is_started=True)
        job_at(JobType.FACTOR_INGEST, module=2, det=20, year=year)
        job_at(JobType.CSV_INGEST, module=4, det=None, year=year)
    job_at(JobType.REFERENCE_INGEST, module=3, det=30, year=None)
    client = roles.client("principal_a")
    # token, scope, configurations, grouped latest jobs, job summaries
    with django_assert_num_queries(5):
        response = client.get(LIST)
    assert len(response.json()) == years
    assert response.json()[0]["config"]["modules"]["3"]["submodules"]["30"]["latest_reference_job"] is not None


# --- PATCH ----------------------------------------------------------------------------------------------


def test_patch_deep_merges_opens_the_year_and_strips_injected_fields(roles: Roles) -> None:
    stored(2025)
    client = roles.client("superadmin")
    read = client.get(one(2025)).json()["config"]
    read["modules"]["2"]["submodules"]["20"]["threshold"] = 1500.5  # sent back as read, injected fields included
    response = client.patch(one(2025), {"is_started": True, "config": read}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["is_started"] is True
    assert response.json()["config"]["modules"]["2"]["submodules"]["20"]["threshold"] == 1500.5
    assert "incomplete" in response.json()["config"]["modules"]["2"]
    config = YearConfiguration.objects.get(year=2025).config
    assert config["modules"]["2"]["submodules"]["20"] == {"enabled": True, "threshold": 1500.5}
    assert config["modules"]["2"]["submodules"]["21"] == {"enabled": True, "threshold": None}
    for module in config["modules"].values():
        assert not set(module) & set(INJECTED_MODULE_FIELDS)
        for sub in module["submodules"].values():
            assert not set(sub) & set(INJECTED_SUBMODULE_FIELDS)


def test_patch_rejects_a_bad_config_naming_the_dotted_field(roles: Roles) -> None:
    stored(2025)
    change = {"config": {"modules": {"2": {"submodules": {"20": {"threshold": -1}}}}}}
    response = roles.client("superadmin").patch(one(2025), change, format="json")
    assert response.status_code == 400
    assert (
        response.json()["detail"] == "config.modules.2.submodules.20.threshold: must be a number ≥ 0 (kg CO2eq) or null"
    )
    assert YearConfiguration.objects.get(year=2025).config == year_configuration_default_config()


def test_patch_of_an_unknown_year_is_404(roles: Roles) -> None:
    response = roles.client("superadmin").patch(one(2030), {"is_started": True}, format="json")
    assert (response.status_code, response.json()["detail"]) == (404, "Year 2030 is not configured")
