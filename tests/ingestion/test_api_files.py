"""POST /api/v1/files/temp-upload and GET /api/v1/files/{path}: who may store and read files,
and paths that can never leave FILES_ROOT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import LazySettings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from carbon.models import Unit
from pipelines.choices import EntityType, IngestionMethod, JobType, TargetType
from pipelines.models import IngestionJob
from pipelines.services import Scope, pipeline_create
from tests.roles import Roles

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("files_area")]

UPLOAD = "/api/v1/files/temp-upload"


def csv_file(name: str = "data.csv", content: bytes = b"a,b\n1,2\n", content_type: str = "text/csv") -> Any:
    return SimpleUploadedFile(name, content, content_type=content_type)


def temp_upload(client: APIClient, *files: Any) -> Any:
    return client.post(UPLOAD, {"files": list(files)}, format="multipart")


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def download(client: APIClient, path: str, **extra: Any) -> tuple[int, bytes, Any]:
    """(status, body, response) of a download. Reading a streamed body to its end closes the file
    (the test client's wrapper does, without closing the test's database connection)."""
    response = client.get(f"/api/v1/files/{path}", **extra)
    body = response.getvalue()
    return response.status_code, body, response


def job_with_file(
    unit: Unit | None, root: Path, *, folder: str = "processed", content: bytes = b"x,y\n", name: str = "members.csv"
) -> str:
    """A csv_ingest job (pinned to UNIT when given) with a file in FOLDER/<job>/; returns its path."""
    scope = Scope(
        entity_type=EntityType.MODULE_UNIT_SPECIFIC if unit else EntityType.MODULE_PER_YEAR,
        ingestion_method=IngestionMethod.CSV,
        target_type=TargetType.DATA_ENTRIES,
        module_type_id=1,
        year=2025,
        unit_id=unit.pk if unit else None,
    )
    _, job = pipeline_create(job_type=JobType.CSV_INGEST, scope=scope)
    target = root / folder / str(job.pk) / name
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    return f"{folder}/{job.pk}/{name}"


# --- temp-upload ---------------------------------------------------------------------------------


def test_a_superadmin_stores_several_files_under_tmp(roles: Roles, files_area: Path) -> None:
    response = temp_upload(roles.client("superadmin"), csv_file("one.csv", b"a\n1\n"), csv_file("two.csv", b"b\n22\n"))
    assert response.status_code == 200
    files = response.json()["files"]
    assert [(f["name"], f["size"]) for f in files] == [("one.csv", 4), ("two.csv", 5)]
    for entry, content in zip(files, (b"a\n1\n", b"b\n22\n"), strict=True):
        assert entry["path"].startswith("tmp/")
        assert entry["path"].endswith(entry["name"])
        assert (files_area / entry["path"]).read_bytes() == content


@pytest.mark.parametrize("content_type", ["text/csv", "application/vnd.ms-excel", "text/plain", "application/csv"])
def test_a_principal_may_upload_csv_labelled_any_usual_way(roles: Roles, content_type: str) -> None:
    response = temp_upload(roles.client("principal_a"), csv_file(content_type=content_type))
    assert response.status_code == 200
    assert response.json()["files"][0]["path"].startswith("tmp/")


@pytest.mark.parametrize(("role", "status"), [("anonymous", 401), ("standard", 403), ("backoffice", 403)])
def test_only_uploaders_may_upload(roles: Roles, files_area: Path, role: str, status: int) -> None:
    response = temp_upload(roles.client(role), csv_file())
    assert response.status_code == status
    assert "detail" in response.json()
    assert stored_files(files_area) == []


def test_no_file_is_a_400_naming_the_field(roles: Roles) -> None:
    response = roles.client("superadmin").post(UPLOAD, {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"] == "files: at least one file is required"


@pytest.mark.parametrize(
    ("name", "content_type", "message"),
    [
        ("report.xlsx", "text/csv", "report.xlsx: only .csv files can be uploaded"),
        ("data.csv", "application/pdf", "data.csv: content type application/pdf is not accepted for a CSV file"),
    ],
)
def test_a_file_that_is_not_csv_is_415_and_nothing_is_stored(
    roles: Roles, files_area: Path, name: str, content_type: str, message: str
) -> None:
    response = temp_upload(roles.client("superadmin"), csv_file(), csv_file(name, content_type=content_type))
    assert response.status_code == 415
    assert response.json() == {"detail": message}
    assert stored_files(files_area) == []


def test_a_file_over_the_limit_is_413_naming_it_and_leaves_no_file(
    roles: Roles, files_area: Path, settings: LazySettings
) -> None:
    settings.FILES_MAX_SIZE_MB = 1
    big = csv_file("big.csv", b"x" * (1024 * 1024 + 1))
    response = temp_upload(roles.client("superadmin"), csv_file("small.csv"), big)
    assert response.status_code == 413
    assert response.json() == {"detail": "big.csv: larger than the 1 MB upload limit"}
    # the small file stored before it is removed too: a request stores all its files or none
    assert stored_files(files_area) == []
    assert temp_upload(roles.client("superadmin"), csv_file("exact.csv", b"x" * (1024 * 1024))).status_code == 200


# --- download ------------------------------------------------------------------------------------


def test_a_superadmin_downloads_an_upload_inline_or_as_attachment(roles: Roles) -> None:
    client = roles.client("superadmin")
    path = temp_upload(client, csv_file("rows.csv", b"a,b\n1,2\n")).json()["files"][0]["path"]
    status, body, response = download(client, path)
    assert (status, body) == (200, b"a,b\n1,2\n")
    assert response["Content-Disposition"] == 'inline; filename="rows.csv"'
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    status, body, response = download(client, f"{path}?d=true")
    assert (status, body) == (200, b"a,b\n1,2\n")
    assert response["Content-Disposition"] == 'attachment; filename="rows.csv"'


def test_uploads_in_tmp_are_for_configurers_only(roles: Roles) -> None:
    path = temp_upload(roles.client("principal_a"), csv_file()).json()["files"][0]["path"]
    for role in ("principal_a", "backoffice", "standard"):
        status, body, _ = download(roles.client(role), path)
        assert status == 404, role
        assert body == b'{"detail":"File not found"}'
    assert download(roles.client("anonymous"), path)[0] == 401


def test_processed_files_of_a_unit_job_are_for_those_who_see_its_pipeline(roles: Roles, files_area: Path) -> None:
    path = job_with_file(roles.unit_a, files_area, content=b"name\nA\n")
    expected = {"superadmin": 200, "backoffice": 200, "principal_a": 200, "principal_b": 404, "standard": 404}
    for role, status in expected.items():
        got, body, _ = download(roles.client(role), path)
        assert got == status, role
        assert body == (b"name\nA\n" if status == 200 else b'{"detail":"File not found"}')
    assert download(roles.client("anonymous"), path)[0] == 401


def test_a_per_year_jobs_files_are_for_those_who_see_every_unit(roles: Roles, files_area: Path) -> None:
    # A per-year file holds every unit's rows: a principal sees the pipeline, not the file.
    path = job_with_file(None, files_area, folder="processing")
    expected = {"superadmin": 200, "backoffice": 200, "principal_a": 404, "principal_b": 404, "standard": 404}
    assert {role: download(roles.client(role), path)[0] for role in expected} == expected


def test_missing_files_and_unknown_jobs_are_404(roles: Roles, files_area: Path) -> None:
    client = roles.client("superadmin")
    path = job_with_file(None, files_area)
    job_folder = path.rsplit("/", 1)[0]
    missing = [
        f"{job_folder}/other.csv",
        job_folder,
        "processed/987654/members.csv",
        "processed/abc/x.csv",
        "processed/99999999999999999999999999/x.csv",
        "tmp/1/none.csv",
        "tmp",
        "elsewhere/x.csv",
    ]
    for path in missing:
        assert download(client, path)[0] == 404, path
    (files_area / "elsewhere").mkdir()
    (files_area / "elsewhere" / "x.csv").write_text("secret")
    assert download(client, "elsewhere/x.csv")[0] == 404  # only tmp/, processing/ and processed/ are served


@pytest.mark.parametrize(
    "trick",
    [
        "../secret.csv",
        "tmp/../../secret.csv",
        "%2e%2e/secret.csv",
        "tmp/%2e%2e/%2E%2E/secret.csv",
        "..%2fsecret.csv",
        "/SECRET_ABSOLUTE",
        "%2FSECRET_ABSOLUTE",
        "tmp/..%5c..%5csecret.csv",
        "tmp/%00secret.csv",
    ],
)
def test_path_tricks_never_leave_files_root(roles: Roles, tmp_path: Path, trick: str) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("secret")
    path = trick.replace("SECRET_ABSOLUTE", str(secret).lstrip("/"))
    status, body, _ = download(roles.client("superadmin"), path)
    assert status == 404
    assert b"secret" not in body.replace(b"secret.csv", b"")


def test_a_symlink_out_of_files_root_is_404(roles: Roles, files_area: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("secret")
    (files_area / "tmp" / "1").mkdir(parents=True)
    (files_area / "tmp" / "1" / "link.csv").symlink_to(secret)
    (files_area / "tmp" / "outside").symlink_to(tmp_path, target_is_directory=True)
    client = roles.client("superadmin")
    assert download(client, "tmp/1/link.csv")[0] == 404
    assert download(client, "tmp/outside/secret.csv")[0] == 404


def test_a_symlink_cannot_borrow_a_visible_jobs_folder(roles: Roles, files_area: Path) -> None:
    # processed/<A's job>/ is visible to principal A; a link from there into tmp/ is judged as tmp/.
    path = job_with_file(roles.unit_a, files_area)
    upload = temp_upload(roles.client("superadmin"), csv_file()).json()["files"][0]["path"]
    link = files_area / path.rsplit("/", 1)[0] / "link.csv"
    link.symlink_to(files_area / upload)
    assert download(roles.client("principal_a"), path)[0] == 200
    assert download(roles.client("principal_a"), path.rsplit("/", 1)[0] + "/link.csv")[0] == 404
    assert download(roles.client("superadmin"), path.rsplit("/", 1)[0] + "/link.csv")[0] == 200


def test_a_client_asking_for_csv_gets_the_file_and_json_errors(roles: Roles, files_area: Path) -> None:
    path = job_with_file(None, files_area)
    client = roles.client("superadmin")
    assert download(client, path, HTTP_ACCEPT="text/csv")[:2] == (200, b"x,y\n")
    status, body, response = download(client, "processed/1/none.csv", HTTP_ACCEPT="text/csv")
    assert (status, body) == (404, b'{"detail":"File not found"}')
    assert response["Content-Type"] == "application/json"


def test_a_stored_file_is_never_served_as_a_page(roles: Roles, files_area: Path) -> None:
    path = job_with_file(None, files_area, content=b"<script>alert(1)</script>", name="page.html")
    status, body, response = download(roles.client("superadmin"), path)
    assert (status, body) == (200, b"<script>alert(1)</script>")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_job_row_is_needed_for_its_folder(roles: Roles, files_area: Path) -> None:
    path = job_with_file(roles.unit_a, files_area)
    job_id = int(path.split("/")[1])
    assert IngestionJob.objects.filter(pk=job_id, unit_id=roles.unit_a.pk).exists()
    # a folder named like a job that does not exist is nobody's
    orphan = files_area / "processed" / str(job_id + 1000) / "x.csv"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("x")
    assert download(roles.client("superadmin"), f"processed/{job_id + 1000}/x.csv")[0] == 404
