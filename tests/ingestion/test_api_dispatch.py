"""POST /api/v1/sync/dispatch: payloads as the reference (names or integers), the 409 gate,
principals limited to their own units, multipart uploads, copy from an earlier job, and one
upload → dispatch → pipeline → download round trip with the real handlers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import LazySettings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from carbon.models import CarbonReportModule, DataEntry, Unit, YearConfiguration
from carbon.services import year_configuration_default_config
from ingestion.demo_seed import DEMO
from ingestion.files import upload_store
from ingestion.services_data import reports_ensure
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobState, JobType, PipelineStatus, TargetType
from pipelines.models import IngestionJob, Pipeline
from tests.carbon.conftest import make_factor
from tests.pipelines.conftest import run_until_idle
from tests.roles import Roles

DISPATCH = "/api/v1/sync/dispatch"
MEMBERS = b"name,sius_code,user_institutional_id,fte\nAda,53,1,1\nBob,53,2,0.5\n"
NOT_PROVISIONED = (
    "Year 2026 is not yet provisioned — wait for the unit_sync pipeline to complete before uploading data."
)
FORBIDDEN = "Permission denied: requires backoffice.configuration.edit"


pytestmark = pytest.mark.usefixtures("files_area")  # every test gets its own FILES_ROOT


@pytest.fixture
def year(roles: Roles) -> None:
    """2025 provisioned, with reports and modules for labs A and B; 2026 created, not yet synced."""
    config = year_configuration_default_config()
    YearConfiguration.objects.create(year=2025, configuration_completed=timezone.now(), config=config)
    YearConfiguration.objects.create(year=2026, config=config)
    reports_ensure(unit_ids=[roles.unit_a.pk, roles.unit_b.pk], year=2025)


def crm(unit: Unit, module: int = 1, year: int = 2025) -> int:
    return CarbonReportModule.objects.get(report__unit=unit, report__year=year, module_type_id=module).pk


def stored(content: bytes = MEMBERS, name: str = "members.csv") -> str:
    return upload_store(name=name, chunks=[content])


def tmp_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "tmp").rglob("*") if p.is_file()) if (root / "tmp").exists() else []


def dispatch(client: APIClient, body: dict[str, Any]) -> Any:
    return client.post(DISPATCH, body, format="json")


def unit_body(module_id: int, file_path: str | None = None) -> dict[str, Any]:
    return {
        "ingestion_method": 1,
        "target_type": 0,
        "year": 2025,
        "file_path": file_path or stored(),
        "config": {"module_type_id": 1, "data_entry_type_id": 1, "carbon_report_module_id": module_id},
    }


# --- JSON dispatch --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_superadmin_dispatch_with_reference_integers(roles: Roles) -> None:
    path = stored(b"unit_institutional_id,equipment_id,name,equipment_class\n")
    body = {"ingestion_method": 1, "target_type": 0, "year": 2025, "file_path": path, "config": {"module_type_id": 4}}
    response = dispatch(roles.client("superadmin"), body)
    assert response.status_code == 200
    payload = response.json()
    job = IngestionJob.objects.get(pk=payload["job_id"])
    assert payload == {
        "job_id": job.pk,
        "pipeline_id": str(job.pipeline_id),
        "state": "NOT_STARTED",
        "message": "Sync initiated using csv",
        "progress": None,
    }
    assert (job.job_type, job.target_type, job.module_type_id, job.year, job.entity_type) == (
        JobType.CSV_INGEST, TargetType.DATA_ENTRIES, 4, 2025, EntityType.MODULE_PER_YEAR,
    )  # fmt: skip
    assert job.meta["config"]["file_path"] == path
    assert Pipeline.objects.get(pk=job.pipeline_id).created_by == roles.users["superadmin"]


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_enum_names_are_accepted_too(roles: Roles) -> None:
    body = {"ingestion_method": "CSV", "target_type": "reduction_objectives", "year": 2025,
            "file_path": stored(b"year,pop\n2030,1\n"), "config": {"reduction_objective_type_id": 1}}  # fmt: skip
    response = dispatch(roles.client("superadmin"), body)
    assert response.status_code == 200
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    assert (job.target_type, job.meta["config"]["reduction_objective_type_id"]) == ("REDUCTION_OBJECTIVES", 1)


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_the_travel_api_import_needs_no_file(roles: Roles) -> None:
    body = {"ingestion_method": 0, "target_type": 0, "year": 2025, "config": {"module_type_id": 2}}
    response = dispatch(roles.client("superadmin"), body)
    assert response.status_code == 200
    assert response.json()["message"] == "Sync initiated using api"
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    assert (job.job_type, job.module_type_id, job.meta["config"]["file_path"]) == (JobType.API_INGEST, 2, None)


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            {"target_type": 9},
            "target_type: must be one of DATA_ENTRIES, FACTORS, REDUCTION_OBJECTIVES, "
            "REFERENCE_DATA (or their reference integers 0, 1, 2, 3)",
        ),  # fmt: skip
        ({"target_type": None}, "target_type: This field may not be null."),
        ({"file_path": None}, "file_path: is required for a CSV upload"),
        (
            {"file_path": "/etc/passwd"},
            "file_path: file_path '/etc/passwd' must be relative to the files area, without '..'",
        ),  # fmt: skip
        ({"file_path": "tmp/1/missing.csv"}, "file_path: tmp/1/missing.csv does not exist (upload it first)"),
        ({"year": None}, "year: is required"),
        ({"year": 1999}, "year: Ensure this value is greater than or equal to 2000."),
        ({"config": {"module_type_id": 99}}, "config.module_type_id: 99 is not a module type (1–8)"),
        (
            {"config": {"module_type_id": 4, "data_entry_type_id": 20}},
            "config.data_entry_type_id: 20 does not belong to module Equipment",
        ),  # fmt: skip
        ({"config": {}}, "config.module_type_id: is required"),
        (
            {"config": {"module_type_id": 4, "carbon_report_module_id": 987654}},
            "config.carbon_report_module_id: 987654 does not exist",
        ),  # fmt: skip
        ({"ingestion_method": 2, "file_path": None}, "ingestion_method: DATA_ENTRIES is loaded by csv or api"),
        (
            {"ingestion_method": "api", "file_path": None},
            "ingestion_method: api ingestion exists for professional travel (module 2) only",
        ),  # fmt: skip
        ({"ingestion_method": "api", "config": {"module_type_id": 2}}, "file_path: api ingestion reads no file"),
        (
            {"target_type": 2},
            "config.reduction_objective_type_id: must be 0 (footprint), 1 (population) or 2 (scenarios)",
        ),  # fmt: skip
        ({"config": "nope"}, "config: Invalid data. Expected a dictionary, but got str."),
    ],
)
def test_invalid_input_is_400_naming_the_field(roles: Roles, change: dict[str, Any], detail: str) -> None:
    body = {"ingestion_method": 1, "target_type": 0, "year": 2025, "file_path": stored(),
            "config": {"module_type_id": 4}, **change}  # fmt: skip
    response = dispatch(roles.client("superadmin"), body)
    assert response.status_code == 400, response.json()
    assert response.json()["detail"] == detail
    assert not Pipeline.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_factors_without_a_year_are_400(roles: Roles) -> None:
    body = {"target_type": "FACTORS", "file_path": stored(), "config": {"module_type_id": 4}}
    response = dispatch(roles.client("superadmin"), body)
    assert (response.status_code, response.json()["detail"]) == (400, "year: is required")


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_year_whose_unit_sync_has_not_completed_is_409(roles: Roles) -> None:
    body = {"target_type": 0, "year": 2026, "file_path": stored(), "config": {"module_type_id": 4}}
    response = dispatch(roles.client("superadmin"), body)
    assert response.status_code == 409
    assert response.json() == {"detail": NOT_PROVISIONED}
    YearConfiguration.objects.filter(year=2026).update(configuration_completed=timezone.now())
    assert dispatch(roles.client("superadmin"), body).status_code == 200


# --- who may dispatch -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
@pytest.mark.parametrize(("role", "status"), [("anonymous", 401), ("standard", 403), ("backoffice", 403)])
def test_only_configurers_and_principals_may_dispatch(roles: Roles, role: str, status: int) -> None:
    response = dispatch(roles.client(role), unit_body(crm(roles.unit_a)))
    assert response.status_code == status
    if status == 403:
        assert response.json() == {"detail": FORBIDDEN}
    assert not Pipeline.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_principal_dispatches_a_unit_specific_upload_for_their_unit(roles: Roles) -> None:
    response = dispatch(roles.client("principal_a"), unit_body(crm(roles.unit_a)))
    assert response.status_code == 200
    pipeline = Pipeline.objects.get(pk=response.json()["pipeline_id"])
    assert (pipeline.entity_type, pipeline.unit_id, pipeline.module_type_id, pipeline.year) == (
        EntityType.MODULE_UNIT_SPECIFIC, roles.unit_a.pk, 1, 2025,
    )  # fmt: skip
    assert pipeline.unit_code == "9001"


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_principal_may_not_dispatch_for_another_unit_or_beyond_their_uploads(roles: Roles) -> None:
    client = roles.client("principal_a")
    assert dispatch(client, unit_body(crm(roles.unit_b))).json() == {"detail": FORBIDDEN}
    assert dispatch(client, unit_body(crm(roles.unit_b))).status_code == 403
    unknown = dispatch(client, unit_body(987654))
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"detail": "Unit for carbon_report_module_id 987654 not found"},
    )
    per_year = unit_body(crm(roles.unit_a))
    del per_year["config"]["carbon_report_module_id"]
    assert dispatch(client, per_year).status_code == 403
    factors = {**unit_body(crm(roles.unit_a)), "target_type": 1}
    assert dispatch(client, factors).status_code == 403
    api = {**unit_body(crm(roles.unit_a)), "ingestion_method": 0}
    assert dispatch(client, api).status_code == 403
    assert not Pipeline.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_report_module_of_another_year_is_400(roles: Roles) -> None:
    body = {**unit_body(crm(roles.unit_a)), "year": 2026}
    response = dispatch(roles.client("principal_a"), body)
    assert response.status_code == 400
    assert response.json()["detail"] == f"year: the report module {crm(roles.unit_a)} is of 2025"


# --- multipart --------------------------------------------------------------------------------------


def multipart(client: APIClient, fields: dict[str, Any], content: bytes = MEMBERS, *, name: str = "members.csv") -> Any:
    upload = SimpleUploadedFile(name, content, content_type="text/csv")
    return client.post(DISPATCH, {**fields, "file": upload}, format="multipart")


def multipart_fields(module_id: int, **change: Any) -> dict[str, Any]:
    config = {"module_type_id": 1, "data_entry_type_id": 1, "carbon_report_module_id": module_id}
    return {"ingestion_method": "1", "target_type": "0", "year": "2025", "config": json.dumps(config), **change}


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_multipart_stores_the_file_then_dispatches_it(roles: Roles, files_area: Path) -> None:
    response = multipart(roles.client("principal_a"), multipart_fields(crm(roles.unit_a)))
    assert response.status_code == 200, response.json()
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    path = job.meta["config"]["file_path"]
    assert path.startswith("tmp/")
    assert path.endswith("/members.csv")
    assert (files_area / path).read_bytes() == MEMBERS
    assert job.unit_id == roles.unit_a.pk


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_refused_multipart_dispatch_leaves_no_file(roles: Roles, files_area: Path, settings: LazySettings) -> None:
    client = roles.client("principal_a")
    mine, theirs = crm(roles.unit_a), crm(roles.unit_b)
    refusals: list[tuple[dict[str, Any], dict[str, Any], int, str]] = [
        (multipart_fields(theirs), {}, 403, FORBIDDEN),
        (multipart_fields(mine, year="2026"), {}, 400, f"year: the report module {mine} is of 2025"),
        (multipart_fields(mine, config="{not json"), {}, 400, "config: must be a JSON object"),
        (multipart_fields(mine), {"name": "members.pdf"}, 415, "members.pdf: only .csv files can be uploaded"),
        (multipart_fields(mine, file_path="tmp/1/x.csv"), {}, 400, "file: give one of file_path or file, not both"),
    ]
    for fields, kw, status, detail in refusals:
        response = multipart(client, fields, **kw)
        assert (response.status_code, response.json()["detail"]) == (status, detail)
    settings.FILES_MAX_SIZE_MB = 1
    too_big = multipart(client, multipart_fields(mine), content=b"x" * (1024 * 1024 + 1))
    assert (too_big.status_code, too_big.json()["detail"]) == (413, "members.csv: larger than the 1 MB upload limit")
    assert tmp_files(files_area) == []
    assert not Pipeline.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_a_refused_dispatch_after_storing_removes_the_file(roles: Roles, files_area: Path) -> None:
    # stored first, then refused by the 409 gate (a superadmin passes the permission check)
    fields = {"target_type": "DATA_ENTRIES", "year": "2026", "config": json.dumps({"module_type_id": 1})}
    response = multipart(roles.client("superadmin"), fields)
    assert (response.status_code, response.json()) == (409, {"detail": NOT_PROVISIONED})
    assert tmp_files(files_area) == []


# --- copy from an earlier job -----------------------------------------------------------------------


def finished_job(files_area: Path, *, unit: Unit | None = None, result: str = JobResult.SUCCESS) -> IngestionJob:
    """A finished unit-specific (or per-year) headcount upload of 2025 with its processed file."""
    from pipelines.services import Scope, pipeline_create

    scope = Scope(
        entity_type=EntityType.MODULE_UNIT_SPECIFIC if unit else EntityType.MODULE_PER_YEAR,
        ingestion_method=IngestionMethod.CSV, target_type=TargetType.DATA_ENTRIES, module_type_id=1,
        data_entry_type_id=1, year=2025, unit_id=unit.pk if unit else None,
    )  # fmt: skip
    _, job = pipeline_create(job_type=JobType.CSV_INGEST, scope=scope)
    processed = f"processed/{job.pk}/members.csv"
    (files_area / processed).parent.mkdir(parents=True)
    (files_area / processed).write_bytes(MEMBERS)
    IngestionJob.objects.filter(pk=job.pk).update(
        state=JobState.FINISHED, result=result, finished_at=timezone.now(),
        meta={**job.meta, "processed_file_path": processed},
    )  # fmt: skip
    job.refresh_from_db()
    return job


def copy_body(module_id: int, source: int) -> dict[str, Any]:
    config = {"module_type_id": 1, "data_entry_type_id": 1, "carbon_report_module_id": module_id,
              "source_job_id": source}  # fmt: skip
    return {"ingestion_method": 1, "target_type": 0, "year": 2025, "config": config}


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_copy_from_an_earlier_job_dispatches_a_copy_of_its_processed_file(roles: Roles, files_area: Path) -> None:
    source = finished_job(files_area, unit=roles.unit_a)
    response = dispatch(roles.client("principal_a"), copy_body(crm(roles.unit_a), source.pk))
    assert response.status_code == 200, response.json()
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    copy = job.meta["config"]["file_path"]
    assert copy.startswith("tmp/")
    assert (files_area / copy).read_bytes() == MEMBERS
    assert job.meta["config"]["copied_from_job_id"] == source.pk
    assert (files_area / source.meta["processed_file_path"]).is_file()  # the source keeps its file


@pytest.mark.django_db
@pytest.mark.usefixtures("year")
def test_copy_refusals(roles: Roles, files_area: Path) -> None:
    mine = crm(roles.unit_a)
    client = roles.client("principal_a")
    theirs = finished_job(files_area, unit=roles.unit_b)
    per_year = finished_job(files_area)
    failed = finished_job(files_area, unit=roles.unit_a, result=JobResult.ERROR)
    gone = finished_job(files_area, unit=roles.unit_a)
    (files_area / gone.meta["processed_file_path"]).unlink()
    cases = [
        (987654, 404, "Source job 987654 not found"),
        (theirs.pk, 404, f"Source job {theirs.pk} not found"),  # another unit's job is not there for A
        (per_year.pk, 404, f"Source job {per_year.pk} not found"),  # a per-year file holds every unit's rows
        (failed.pk, 422, f"Source job {failed.pk} did not finish successfully"),
        (gone.pk, 422, f"The processed file of source job {gone.pk} is gone"),
    ]
    for source, status, detail in cases:
        response = dispatch(client, copy_body(mine, source))
        assert (response.status_code, response.json()) == (status, {"detail": detail})
    other_module = {**copy_body(mine, per_year.pk), "config": {"module_type_id": 4, "source_job_id": per_year.pk}}
    response = dispatch(roles.client("superadmin"), other_module)
    assert (response.status_code, response.json()["detail"]) == (
        400, f"config.source_job_id: job {per_year.pk} is an upload of module 1",
    )  # fmt: skip
    both = {**copy_body(mine, per_year.pk), "file_path": stored()}
    assert dispatch(roles.client("superadmin"), both).json()["detail"] == (
        "config.source_job_id: give one of file_path or source_job_id, not both"
    )
    assert not Pipeline.objects.exclude(pk__in=[j.pipeline_id for j in (theirs, per_year, failed, gone)]).exists()
    assert tmp_files(files_area) == [files_area / both["file_path"]]


# --- end to end, with the real handlers ---------------------------------------------------------------

ENGINE = pytest.mark.django_db(transaction=True, databases="__all__")


@ENGINE
@pytest.mark.usefixtures("year")
def test_upload_dispatch_run_and_download_the_processed_file(roles: Roles, files_area: Path) -> None:
    Unit.objects.create(institutional_code="14270", institutional_id="7918", name="LAB", level=4)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=30, standby_power_w=0.5,
                active_usage_hours_per_week=40, standby_usage_hours_per_week=128, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    make_factor(10, 80100, {"equipment_class": "Spectrometers"}, active_power_w=250, standby_power_w=20,
                active_usage_hours_per_week=10, standby_usage_hours_per_week=158, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    sample = (DEMO / "data" / "equipments.csv").read_bytes()
    client = roles.client("superadmin")
    upload = SimpleUploadedFile("equipments.csv", sample, content_type="text/csv")
    stored_path = client.post("/api/v1/files/temp-upload", {"files": [upload]}, format="multipart").json()["files"][0]
    response = dispatch(client, {"ingestion_method": 1, "target_type": 0, "year": 2025,
                                 "file_path": stored_path["path"], "config": {"module_type_id": 4}})  # fmt: skip
    assert response.status_code == 200
    assert run_until_idle() >= 3  # csv_ingest, the recalculations, the aggregation
    pipeline = Pipeline.objects.get(pk=response.json()["pipeline_id"])
    assert pipeline.status == PipelineStatus.SUCCESS
    assert DataEntry.objects.filter(module_type_id=4, year=2025).count() == sample.count(b"\n") - 1
    job = IngestionJob.objects.get(pk=response.json()["job_id"])
    processed = job.meta["processed_file_path"]
    assert processed == f"processed/{job.pk}/equipments.csv"
    assert tmp_files(files_area) == []  # the upload moved to processed/
    download = client.get(f"/api/v1/files/{processed}?d=true")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="equipments.csv"'
    assert download.getvalue() == sample


@ENGINE
@pytest.mark.usefixtures("year")
def test_a_principals_unit_upload_is_downloadable_by_that_unit_only(roles: Roles) -> None:
    client = roles.client("principal_a")
    upload = SimpleUploadedFile("members.csv", MEMBERS, content_type="text/csv")
    path = client.post("/api/v1/files/temp-upload", {"files": [upload]}, format="multipart").json()["files"][0]["path"]
    response = dispatch(client, unit_body(crm(roles.unit_a), path))
    assert response.status_code == 200
    run_until_idle()
    pipeline = Pipeline.objects.get(pk=response.json()["pipeline_id"])
    assert pipeline.status == PipelineStatus.SUCCESS
    assert set(DataEntry.objects.values_list("unit_id", flat=True)) == {roles.unit_a.pk}
    processed = IngestionJob.objects.get(pk=response.json()["job_id"]).meta["processed_file_path"]
    mine = client.get(f"/api/v1/files/{processed}")
    assert mine.status_code == 200
    assert mine.getvalue() == MEMBERS
    theirs = roles.client("principal_b").get(f"/api/v1/files/{processed}")
    assert (theirs.status_code, theirs.json()) == (404, {"detail": "File not found"})
