"""The superadmin's endpoints: POST /sync/factors/{module}/{type}, POST /sync/units and
POST /year-configuration/{year}/upload (reduction objectives, synchronous)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from carbon.models import Factor, YearConfiguration
from carbon.services import year_configuration_default_config
from ingestion.demo_seed import DEMO
from ingestion.files import upload_store
from pipelines.choices import IngestionMethod, JobType, PipelineStatus, TargetType
from pipelines.models import IngestionJob, Pipeline
from tests.pipelines.conftest import run_until_idle
from tests.roles import Roles

pytestmark = pytest.mark.usefixtures("files_area")  # every test gets its own FILES_ROOT


@pytest.fixture
def year() -> None:
    config = year_configuration_default_config()
    YearConfiguration.objects.create(year=2025, configuration_completed=timezone.now(), config=config)
    YearConfiguration.objects.create(year=2026, config=config)


def tmp_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "tmp").rglob("*") if p.is_file()) if (root / "tmp").exists() else []


def factors_file() -> str:
    return upload_store(name="equipments.csv", chunks=[(DEMO / "factors" / "equipments.csv").read_bytes()])


# --- factors ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
@pytest.mark.parametrize(("det", "pinned"), [(0, None), (11, 11)])
def test_a_factor_upload_for_a_module_or_one_type(roles: Roles, det: int, pinned: int | None) -> None:
    path = factors_file()
    response = roles.client("superadmin").post(f"/api/v1/sync/factors/4/{det}", {"year": 2025, "file_path": path})
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["message"], body["progress"]) == ("NOT_STARTED", "Sync initiated using csv", None)
    job = IngestionJob.objects.get(pk=body["job_id"])
    assert str(job.pipeline_id) == body["pipeline_id"]
    assert (job.job_type, job.target_type, job.module_type_id, job.data_entry_type_id, job.year) == (
        JobType.FACTOR_INGEST, TargetType.FACTORS, 4, pinned, 2025,
    )  # fmt: skip


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_computed_research_facility_factors_need_no_file(roles: Roles) -> None:
    body = {"year": 2025, "ingestion_method": 3, "target_type": 1}
    response = roles.client("superadmin").post("/api/v1/sync/factors/6/70", body, format="json")
    assert response.status_code == 200
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    assert (job.ingestion_method, job.data_entry_type_id) == (IngestionMethod.COMPUTED, 70)


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
@pytest.mark.parametrize(
    ("url", "change", "detail"),
    [
        ("4/0", {"year": None}, "year: This field may not be null."),
        ("4/0", {"target_type": "DATA_ENTRIES"}, "target_type: must be FACTORS on this endpoint"),
        ("4/20", {}, "data_entry_type_id: data_entry_type_id=20 does not belong to module Equipment"),
        ("4/99", {}, "data_entry_type_id: data_entry_type_id=99 is not a data-entry type"),
        ("9/0", {}, "module_type_id: module_type_id=9 is not a module (1–8)"),
        (
            "1/0",
            {},
            "data_entry_type_id: module Headcount has no module-level factor file; set data_entry_type_id "
            "to one of 1 (Member), 2 (Student)",
        ),  # fmt: skip
        ("4/0", {"file_path": None}, "file_path: is required for a CSV upload"),
    ],
)
def test_invalid_factor_uploads_are_400_naming_the_field(
    roles: Roles, url: str, change: dict[str, Any], detail: str
) -> None:
    body = {"year": 2025, "file_path": factors_file(), **change}
    response = roles.client("superadmin").post(f"/api/v1/sync/factors/{url}", body, format="json")
    assert (response.status_code, response.json()["detail"]) == (400, detail)
    assert not Pipeline.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_factor_upload_without_a_year_is_400(roles: Roles) -> None:
    response = roles.client("superadmin").post("/api/v1/sync/factors/4/0", {"file_path": factors_file()})
    assert (response.status_code, response.json()["detail"]) == (400, "year: This field is required.")


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_factors_of_a_year_not_provisioned_are_409(roles: Roles) -> None:
    response = roles.client("superadmin").post("/api/v1/sync/factors/4/0", {"year": 2026, "file_path": factors_file()})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Year 2026 is not yet provisioned")


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
@pytest.mark.parametrize(("role", "status"), [("anonymous", 401), ("principal_a", 403), ("backoffice", 403)])
def test_factor_uploads_are_for_the_superadmin(roles: Roles, role: str, status: int) -> None:
    response = roles.client(role).post("/api/v1/sync/factors/4/0", {"year": 2025, "file_path": factors_file()})
    assert response.status_code == status
    assert "detail" in response.json()
    assert not Pipeline.objects.exists()


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.usefixtures("year")
def test_a_module_level_factor_file_routes_each_row_to_its_type(roles: Roles, files_area: Path) -> None:
    upload = SimpleUploadedFile("equipments.csv", (DEMO / "factors" / "equipments.csv").read_bytes())
    response = roles.client("superadmin").post(
        "/api/v1/sync/factors/4/0", {"year": "2025", "file": upload}, format="multipart"
    )
    assert response.status_code == 200, response.json()
    run_until_idle()
    assert Pipeline.objects.get(pk=response.json()["pipeline_id"]).status == PipelineStatus.SUCCESS
    assert set(Factor.objects.filter(year=2025).values_list("data_entry_type_id", flat=True)) == {10, 11, 12}
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    assert (files_area / job.meta["processed_file_path"]).is_file()


# --- unit sync -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unit_sync_of_a_new_year_creates_it_and_schedules_its_sync(roles: Roles) -> None:
    response = roles.client("superadmin").post("/api/v1/sync/units", {"target_year": 2031}, format="json")
    assert response.status_code == 200
    body = response.json()
    job = IngestionJob.objects.get(pk=body["job_id"])
    assert body == {
        "job_id": job.pk,
        "pipeline_id": str(job.pipeline_id),
        "state": "NOT_STARTED",
        "message": "Unit sync scheduled",
    }
    assert (job.job_type, job.year, job.meta["config"]) == (JobType.UNIT_SYNC, 2031, {"target_year": 2031})
    configuration = YearConfiguration.objects.get(year=2031)
    assert configuration.configuration_completed is None  # opened to uploads when the sync succeeds


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_unit_sync_of_an_existing_year_runs_it_again(roles: Roles) -> None:
    client = roles.client("superadmin")
    first = client.post("/api/v1/sync/units", {"target_year": 2025}, format="json").json()
    second = client.post("/api/v1/sync/units", {"target_year": 2025}, format="json").json()
    assert first["pipeline_id"] != second["pipeline_id"]
    assert Pipeline.objects.filter(kind=JobType.UNIT_SYNC, year=2025).count() == 2
    assert YearConfiguration.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "target_year: This field is required."),
        ({"target_year": 1999}, "target_year: Ensure this value is greater than or equal to 2000."),
        ({"target_year": 2101}, "target_year: Ensure this value is less than or equal to 2100."),
        ({"target_year": "soon"}, "target_year: A valid integer is required."),
    ],
)
def test_unit_sync_validates_the_target_year(roles: Roles, body: dict[str, Any], detail: str) -> None:
    response = roles.client("superadmin").post("/api/v1/sync/units", body, format="json")
    assert (response.status_code, response.json()["detail"]) == (400, detail)
    assert not Pipeline.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [("anonymous", 401), ("principal_a", 403), ("backoffice", 403)])
def test_unit_sync_is_for_the_superadmin(roles: Roles, role: str, status: int) -> None:
    response = roles.client(role).post("/api/v1/sync/units", {"target_year": 2031}, format="json")
    assert response.status_code == status
    assert not YearConfiguration.objects.exists()


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_completed_unit_sync_opens_the_year_to_dispatch(roles: Roles) -> None:
    client = roles.client("superadmin")
    assert client.post("/api/v1/sync/units", {"target_year": 2031}, format="json").status_code == 200
    body = {"target_type": "FACTORS", "year": 2031, "file_path": factors_file(), "config": {"module_type_id": 4}}
    assert client.post("/api/v1/sync/dispatch", body, format="json").status_code == 409
    run_until_idle()  # the bundled demo unit directory
    assert YearConfiguration.objects.get(year=2031).configuration_completed is not None
    assert client.post("/api/v1/sync/dispatch", body, format="json").status_code == 200


# --- reduction objectives ----------------------------------------------------------------------------

FOOTPRINT = b"year,category,co2\n2019,energy,12345.5\n2019,travel,8000\n"


def objectives(client: Any, year: int = 2025, content: bytes = FOOTPRINT, **fields: Any) -> Any:
    upload = SimpleUploadedFile(fields.pop("name", "objectives.csv"), content, content_type="text/csv")
    return client.post(f"/api/v1/year-configuration/{year}/upload", {"file": upload, **fields}, format="multipart")


def stored_objectives() -> dict[str, Any]:
    config: dict[str, Any] = YearConfiguration.objects.get(year=2025).config
    return config["reduction_objectives"]


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_objectives_upload_replaces_the_category(roles: Roles, files_area: Path) -> None:
    response = objectives(roles.client("superadmin"), category="footprint")
    assert response.status_code == 200
    body = response.json()
    assert body["file_path"].startswith("tmp/")
    assert {k: v for k, v in body.items() if k != "file_path"} == {
        "year": 2025, "category": "footprint", "reduction_objective_type_id": 0, "rows_processed": 2,
    }  # fmt: skip
    assert stored_objectives()["institutional_footprint"] == [
        {"year": 2019, "category": "energy", "co2": 12345.5},
        {"year": 2019, "category": "travel", "co2": 8000.0},
    ]
    assert stored_objectives()["files"]["institutional_footprint"]["path"] == body["file_path"]
    assert (files_area / body["file_path"]).read_bytes() == FOOTPRINT


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_objectives_kind_may_be_given_by_its_reference_id(roles: Roles) -> None:
    response = objectives(roles.client("superadmin"), content=b"year,pop\n2024,17500\n", reduction_objective_type_id=1)
    assert (response.status_code, response.json()["category"]) == (200, "population")
    assert stored_objectives()["population_projections"] == [{"year": 2024, "pop": 17500}]


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_objectives_are_all_or_nothing_with_every_row_error(roles: Roles, files_area: Path) -> None:
    content = b"scenario,year,reduction_percentage\nbase,2030,0.2\nwild,2030,1.5\nodd,20x0,0.1\n"
    response = objectives(roles.client("superadmin"), content=content, category="scenarios")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Row 3, field 'reduction_percentage': must be ≤ 1 (got 1.5)",
        "errors": [
            "Row 3, field 'reduction_percentage': must be ≤ 1 (got 1.5)",
            "Row 4, field 'year': must be a number (got '20x0')",
        ],
    }
    assert stored_objectives()["unit_scenarios"] == []
    assert tmp_files(files_area) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
@pytest.mark.parametrize(
    ("content", "fields", "status", "detail"),
    [
        (FOOTPRINT, {}, 400, "category: This field is required."),
        (FOOTPRINT, {"category": "goals"}, 400, "category: must be one of footprint, population, scenarios"),
        (
            FOOTPRINT,
            {"reduction_objective_type_id": 5},
            400,
            "reduction_objective_type_id: must be 0 (footprint), 1 (population) or 2 (scenarios)",
        ),  # fmt: skip
        (
            FOOTPRINT,
            {"category": "population", "reduction_objective_type_id": 0},
            400,
            "category: contradicts reduction_objective_type_id=0",
        ),  # fmt: skip
        (
            b"year;category;co2\n2019;energy;1\n",
            {"category": "footprint"},
            400,
            "file: The file uses ';' as its delimiter; save it with ',' between columns",
        ),  # fmt: skip
        (b"year,category,co2\n", {"category": "footprint"}, 400, "the file has no data rows"),
        (
            FOOTPRINT,
            {"category": "footprint", "name": "objectives.xlsx"},
            415,
            "objectives.xlsx: only .csv files can be uploaded",
        ),  # fmt: skip
    ],
)
def test_objectives_refusals(
    roles: Roles, files_area: Path, content: bytes, fields: dict[str, Any], status: int, detail: str
) -> None:
    response = objectives(roles.client("superadmin"), content=content, **fields)
    assert (response.status_code, response.json()["detail"]) == (status, detail)
    assert stored_objectives()["institutional_footprint"] == []
    assert tmp_files(files_area) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_objectives_of_an_unknown_year_are_404(roles: Roles, files_area: Path) -> None:
    response = objectives(roles.client("superadmin"), year=2040, category="footprint")
    assert (response.status_code, response.json()) == (404, {"detail": "Year 2040 is not configured"})
    assert tmp_files(files_area) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
@pytest.mark.parametrize(("role", "status"), [("anonymous", 401), ("principal_a", 403), ("backoffice", 403)])
def test_objectives_are_for_the_superadmin(roles: Roles, files_area: Path, role: str, status: int) -> None:
    response = objectives(roles.client(role), category="footprint")
    assert response.status_code == status
    assert stored_objectives()["institutional_footprint"] == []
    assert tmp_files(files_area) == []
