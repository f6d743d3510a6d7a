"""unit_sync: the directory mapping, its HTTP and file sources, and provisioning a year
through the engine (units, principals and their role, reports, modules, the year stamp).

The HTTP directory is a real server on 127.0.0.1 speaking the Accred-compatible API: 2,231
units (EPFL's volume) over 23 pages of 100, basic auth required.
"""

from __future__ import annotations

import base64
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings

from carbon.choices import RoleName
from carbon.models import CarbonProject, CarbonReport, CarbonReportModule, RoleAssignment, Unit, User, YearConfiguration
from ingestion.services_units import units_sync
from ingestion.unit_directory import (
    DirectoryError,
    UnitRecord,
    directory_fetch,
    principal_record_from_raw,
    unit_record_from_raw,
)
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobType, PipelineStatus, TargetType
from pipelines.models import IngestionJob, Pipeline, Worker
from pipelines.services import Scope, pipeline_create
from tests.pipelines.conftest import REAL_HANDLERS_ENTRY, Processes, run_until_idle, wait_for, worker_env

ROOT = Path(__file__).resolve().parents[2]
ENGINE = pytest.mark.django_db(transaction=True, databases="__all__")
ACTIVE = "0001-01-01T00:00:00Z"
TOTAL_UNITS = 2231
USER = "carbon-sync"
PASSWORD = "directory-Secret-42"


# --- A fake Accred-compatible directory ---------------------------------------------------------


def _unit(
    *,
    code: int,
    cf: str,
    name: str,
    level: int,
    parent: dict[str, Any] | None,
    responsible: dict[str, str] | None,
    enddate: str = ACTIVE,
) -> dict[str, Any]:
    ancestors = [*parent["ancestors"], str(parent["id"])] if parent else []
    cfs = [*parent["pathcf"].split(), cf] if parent else [cf]
    unit: dict[str, Any] = {
        "id": code,
        "cf": cf,
        "name": name,
        "labelfr": f"Unité {name}",
        "labelen": f"Unit {name}",
        "level": level,
        "parentid": parent["id"] if parent else 0,
        "ancestors": ancestors,
        "pathcf": " ".join(cfs),
        "path": f"{parent['path']} {name}" if parent else name,
        "unittypeid": level,
        "unittype": {"id": level, "label": ["Ecole", "Faculté", "Institut", "Laboratoire"][level - 1]},
        "responsibleid": responsible["id"] if responsible else "",
        "responsible": responsible,
        "enddate": enddate,
    }
    for depth in range(1, 5):
        unit[f"level{depth}cf"] = cfs[depth - 1] if depth <= len(cfs) else ""
    return unit


def _person(sciper: int) -> dict[str, str]:
    return {
        "id": str(sciper),
        "email": f"person{sciper}@example.org",
        "firstname": f"First{sciper}",
        "lastname": f"Last{sciper}",
    }


def directory_units(total: int = TOTAL_UNITS) -> list[dict[str, Any]]:
    """EPFL-shaped: 1 school, 10 faculties, 100 institutes, the rest labs, in shuffled order
    (children often arrive on an earlier page than their parent). Some labs share a head,
    some have none, some have no cf ("0") and some are closed."""
    root = _unit(code=10000, cf="1000", name="EPFL", level=1, parent=None, responsible=_person(100000))
    units = [root]
    faculties = []
    for f in range(10):
        faculty = _unit(
            code=11000 + f, cf=str(2000 + f), name=f"FAC{f}", level=2, parent=root, responsible=_person(110000 + f)
        )
        faculties.append(faculty)
    institutes = []
    for i in range(100):
        institute = _unit(
            code=12000 + i,
            cf=str(3000 + i),
            name=f"INST{i}",
            level=3,
            parent=faculties[i % 10],
            responsible=_person(120000 + i),
        )
        institutes.append(institute)
    units += faculties + institutes
    for lab in range(total - len(units)):
        responsible: dict[str, str] | None = _person(130000 + lab)
        if lab % 40 == 39:
            responsible = _person(130000 + lab - 1)  # heads two labs
        if lab % 50 == 49:
            responsible = None
        units.append(
            _unit(
                code=20000 + lab,
                cf="0" if lab % 97 == 96 else str(40000 + lab),
                name=f"LAB{lab}",
                level=4,
                parent=institutes[lab % 100],
                responsible=responsible,
                enddate="2023-12-31T00:00:00Z" if lab % 33 == 32 else ACTIVE,
            )
        )
    random.Random(2231).shuffle(units)
    return units


def distinct_principals(units: list[dict[str, Any]]) -> set[str]:
    return {u["responsible"]["id"] for u in units if u["responsible"]}


@dataclass
class FakeDirectory:
    units: list[dict[str, Any]]
    url: str = ""
    # page index → HTTP status to answer instead of the page
    fail_pages: dict[int, int] = field(default_factory=dict)
    # (page index, pagesize, authorised) of every request
    requests: list[tuple[int, int, bool]] = field(default_factory=list)
    # misbehaviours: announce another count; always send the first page
    count: int | None = None
    ignore_pageindex: bool = False


class _DirectoryHandler(BaseHTTPRequestHandler):
    directory: FakeDirectory

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/units":
            self._answer(404, {"error": "not found"})
            return
        query = parse_qs(parts.query)
        page = int(query.get("pageindex", ["1"])[0])
        size = int(query.get("pagesize", ["100"])[0])
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        authorised = self.headers.get("Authorization") == expected
        self.directory.requests.append((page, size, authorised))
        if not authorised:
            self._answer(401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Basic realm="accred"'})
            return
        if page in self.directory.fail_pages:
            self._answer(self.directory.fail_pages[page], {"error": "boom"})
            return
        units = self.directory.units
        start = 0 if self.directory.ignore_pageindex else (page - 1) * size
        count = len(units) if self.directory.count is None else self.directory.count
        self._answer(200, {"units": units[start : start + size], "count": count})

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the access log out of the test output."""


@pytest.fixture
def directory() -> Iterator[FakeDirectory]:
    fake = FakeDirectory(units=directory_units())
    handler = type("DirectoryHandler", (_DirectoryHandler,), {"directory": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-directory", daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def directory_settings(settings: Settings, directory: FakeDirectory) -> FakeDirectory:
    settings.UNIT_SOURCE_URL = directory.url
    settings.UNIT_SOURCE_USER = USER
    settings.UNIT_SOURCE_PASSWORD = PASSWORD
    return directory


def sync_pipeline(year: int = 2025) -> Pipeline:
    pipeline, _ = pipeline_create(
        job_type=JobType.UNIT_SYNC,
        scope=Scope(
            entity_type=EntityType.GLOBAL_PER_YEAR,
            target_type=TargetType.REFERENCE_DATA,
            ingestion_method=IngestionMethod.API,
            year=year,
        ),
        config={"target_year": year},
    )
    return pipeline


def root_job(pipeline: Pipeline) -> IngestionJob:
    return IngestionJob.objects.get(pipeline=pipeline)


def nothing_written() -> bool:
    return not (
        Unit.objects.exists()
        or User.objects.exists()
        or CarbonReport.objects.exists()
        or YearConfiguration.objects.filter(configuration_completed__isnull=False).exists()
    )


# --- Mapping ------------------------------------------------------------------------------------


def test_raw_unit_maps_to_a_record() -> None:
    raw = {
        "id": 13032,
        "cf": "1119",
        "name": "ENAC-IT4R",
        "labelfr": "Unité IT de la faculté ENAC",
        "labelen": "ENAC IT unit",
        "level": 4,
        "parentid": 11435,
        "ancestors": ["10582", "10583", "11435"],
        "level1cf": "0001",
        "level2cf": "1001",
        "level3cf": "1102",
        "level4cf": "1119",
        "pathcf": "0001 1001 1102 1119",
        "path": "EPFL ENAC ENAC-SG ENAC-IT4R",
        "unittypeid": 4,
        "unittype": {"id": 4, "label": "Unité"},
        "responsibleid": "123456",
        "responsible": {"id": "123456", "email": "ada@example.org", "firstname": "Ada", "lastname": "Lovelace"},
        "enddate": ACTIVE,
    }
    record = unit_record_from_raw(raw, index=0)
    assert record == UnitRecord(
        institutional_code="13032",
        institutional_id="1119",
        name="ENAC-IT4R",
        label_fr="Unité IT de la faculté ENAC",
        label_en="ENAC IT unit",
        level=4,
        parent_institutional_code="11435",
        # the parent's cf (one level up), not the unit's own level4cf
        parent_institutional_id="1102",
        path_institutional_code="10582 10583 11435 13032",
        path_institutional_id="0001 1001 1102 1119",
        path_name="EPFL ENAC ENAC-SG ENAC-IT4R",
        unit_type_id=4,
        unit_type_label="Unité",
        principal_user_institutional_id="123456",
        is_active=True,
    )
    principal = principal_record_from_raw(raw["responsible"])
    assert principal is not None
    assert (principal.institutional_id, principal.email, principal.display_name) == (
        "123456",
        "ada@example.org",
        "Ada Lovelace",
    )

    root = unit_record_from_raw(
        {**raw, "id": 10582, "cf": "0", "level": 1, "parentid": 0, "ancestors": [], "enddate": "2020-01-01T00:00:00Z"},
        index=1,
    )
    assert root.institutional_id is None  # "0" is the directory's "no cf"
    assert root.parent_institutional_id is None  # level 1 has no parent
    assert root.parent_institutional_code is None
    assert root.path_institutional_code == "10582"
    assert root.is_active is False
    assert unit_record_from_raw({**raw, "cf": ""}, index=2).institutional_id is None
    assert principal_record_from_raw(None) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "unit #3: missing 'id'"),
        ({"name": " "}, "unit #3 (id 7): missing 'name'"),
        ({"level": None}, "unit #3 (id 7): missing 'level'"),
        ({"level": "four"}, "unit #3 (id 7): 'level' must be an integer"),
        ({"level": 11}, "unit #3 (id 7): 'level' must be between 1 and 10"),
    ],
)
def test_invalid_unit_is_named_with_its_index_and_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DirectoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        unit_record_from_raw({"id": 7, "name": "X", "level": 2, **change}, index=2)


# --- Sources ------------------------------------------------------------------------------------


def test_http_source_reads_every_page_with_basic_auth(directory: FakeDirectory) -> None:
    pages: list[tuple[int, int, int | None]] = []
    records, principals = directory_fetch(
        source=directory.url, user=USER, password=PASSWORD, on_page=lambda *args: pages.append(args)
    )
    assert len(records) == TOTAL_UNITS
    assert len({r.institutional_code for r in records}) == TOTAL_UNITS
    assert {p.institutional_id for p in principals} == distinct_principals(directory.units)
    assert [(page, size) for page, size, _ in directory.requests] == [(n, 100) for n in range(1, 24)]
    assert all(authorised for _, _, authorised in directory.requests)
    assert pages[-1] == (23, TOTAL_UNITS, TOTAL_UNITS)


def test_http_source_stops_when_pages_run_out_or_repeat(directory: FakeDirectory) -> None:
    # given: a directory that announces 1,000 units but has 250
    directory.units = directory.units[:250]
    directory.count = 1000
    # when / then: the empty 4th page ends the read
    records, _ = directory_fetch(source=directory.url, user=USER, password=PASSWORD)
    assert len(records) == 250
    assert [page for page, _, _ in directory.requests] == [1, 2, 3, 4]
    # and a server that ignores pageindex is caught on the 2nd page instead of looping
    directory.ignore_pageindex = True
    with pytest.raises(DirectoryError, match="page 2: every unit on it was already read"):
        directory_fetch(source=directory.url, user=USER, password=PASSWORD)


def test_http_errors_name_the_page_and_status_never_the_password(directory: FakeDirectory) -> None:
    with pytest.raises(DirectoryError) as unauthorised:
        directory_fetch(source=directory.url, user=USER, password="wrong-password")
    assert "page 1" in str(unauthorised.value)
    assert "HTTP 401 Unauthorized" in str(unauthorised.value)
    assert "wrong-password" not in str(unauthorised.value)
    directory.fail_pages[5] = 503
    with pytest.raises(DirectoryError, match=r"page 5 \(.*pageindex=5.*\): HTTP 503 Service Unavailable"):
        directory_fetch(source=directory.url, user=USER, password=PASSWORD)
    with pytest.raises(DirectoryError, match="cannot connect"):
        directory_fetch(source="http://127.0.0.1:9/", user=USER, password=PASSWORD)


def test_file_source_reads_the_demo_directory_and_reports_bad_files(tmp_path: Path) -> None:
    records, principals = directory_fetch(source=str(django_settings.UNIT_SOURCE_URL))
    assert len(records) == 30
    assert sorted(r.level for r in records)[:4] == [1, 2, 2, 2]
    assert all(r.institutional_id and r.principal_user_institutional_id for r in records if r.level == 4)
    assert len(principals) == 29  # one head runs two labs
    missing = tmp_path / "missing.json"
    with pytest.raises(DirectoryError, match="does not exist"):
        directory_fetch(source=str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text('{"units": [{"id": 1, "name": "A", "level": 1}, {"id": 2, "level": 2}]}')
    with pytest.raises(DirectoryError, match=r"unit #2 \(id 2\): missing 'name'"):
        directory_fetch(source=str(bad))
    bom = tmp_path / "bom.json"
    bom.write_text('\ufeff{"units": [{"id": 1, "name": "A", "level": 1}]}', encoding="utf-8")
    assert len(directory_fetch(source=str(bom))[0]) == 1


# --- Provisioning through the engine ------------------------------------------------------------


def assert_provisioned(directory: FakeDirectory, year: int) -> None:
    units = directory.units
    principals = distinct_principals(units)
    assert Unit.objects.count() == TOTAL_UNITS
    assert User.objects.filter(institutional_id__isnull=False).count() == len(principals)
    assert RoleAssignment.objects.filter(role=RoleName.PRINCIPAL).count() == sum(1 for u in units if u["responsible"])
    assert CarbonProject.objects.count() == TOTAL_UNITS
    assert CarbonReport.objects.filter(year=year).count() == TOTAL_UNITS
    assert CarbonReportModule.objects.filter(report__year=year).count() == TOTAL_UNITS * 8
    configuration = YearConfiguration.objects.get(year=year)
    assert configuration.configuration_completed is not None
    assert configuration.unit_source == directory.url


@ENGINE
def test_unit_sync_provisions_a_year_from_the_http_directory(
    directory_settings: FakeDirectory, record_property: Callable[[str, object], None]
) -> None:
    directory = directory_settings
    pipeline = sync_pipeline(2025)
    # when
    started = time.monotonic()
    run_until_idle()
    elapsed = time.monotonic() - started
    # then
    pipeline.refresh_from_db()
    job = root_job(pipeline)
    assert (pipeline.status, job.result) == (PipelineStatus.SUCCESS, JobResult.SUCCESS), job.status_message
    principals = distinct_principals(directory.units)
    assert job.status_message == (
        f"Unit sync completed: {TOTAL_UNITS} units, {len(principals)} principals, {TOTAL_UNITS} reports created"
    )
    assert_provisioned(directory, 2025)
    assert [(p["name"], p["state"]) for p in job.meta["phases"]] == [
        ("fetch_units", "finished"),
        ("upsert_units_and_users", "finished"),
        ("create_carbon_reports", "finished"),
        ("ensure_modules", "finished"),
    ]
    assert all(p["started_at"] <= p["finished_at"] for p in job.meta["phases"])
    assert (job.meta["units_synced"], job.meta["modules_created"]) == (TOTAL_UNITS, TOTAL_UNITS * 8)
    # the hierarchy is resolved although children often came on earlier pages than parents
    lab = Unit.objects.select_related("parent__parent__parent", "principal").get(institutional_code="20007")
    assert lab.parent is not None
    assert lab.parent.parent is not None
    assert lab.parent.parent.parent is not None
    assert (lab.parent.institutional_code, lab.parent.parent.parent.institutional_code) == ("12007", "10000")
    assert lab.parent_institutional_id == lab.parent.institutional_id == "3007"
    assert lab.path_institutional_code == "10000 11007 12007 20007"
    assert lab.principal is not None
    assert lab.principal.username == "p130007"
    assert RoleAssignment.objects.filter(user=lab.principal, unit=lab, role=RoleName.PRINCIPAL).exists()
    assert Unit.objects.get(institutional_code="10000").parent is None
    assert Unit.objects.filter(institutional_id__isnull=True).count() == sum(
        1 for u in directory.units if u["cf"] == "0"
    )
    assert Unit.objects.filter(is_active=False).count() == sum(1 for u in directory.units if u["enddate"] != ACTIVE)
    record_property("unit_sync_seconds", round(elapsed, 2))
    sys.stderr.write(f"\nunit_sync of {TOTAL_UNITS} units on {connection.vendor}: {elapsed:.2f} s\n")

    # when: the same year is synced again
    again = sync_pipeline(2025)
    run_until_idle()
    # then: nothing is duplicated, nothing new is created
    again_job = root_job(again)
    assert again_job.result == JobResult.SUCCESS, again_job.status_message
    assert again_job.status_message.endswith("0 reports created")
    assert (again_job.meta["modules_created"], again_job.meta["principal_roles_granted"]) == (0, 0)
    assert_provisioned(directory, 2025)


@ENGINE
def test_wrong_password_fails_the_fetch_phase_and_writes_nothing(
    settings: Settings, directory_settings: FakeDirectory
) -> None:
    settings.UNIT_SOURCE_PASSWORD = "not-the-password"
    pipeline = sync_pipeline(2025)
    run_until_idle()
    pipeline.refresh_from_db()
    job = root_job(pipeline)
    assert (pipeline.status, job.result) == (PipelineStatus.FAILED, JobResult.ERROR)
    assert "page 1" in job.status_message
    assert "HTTP 401 Unauthorized" in job.status_message
    assert "not-the-password" not in json.dumps({"message": job.status_message, "meta": job.meta})
    (phase,) = job.meta["phases"]
    assert (phase["name"], phase["state"]) == ("fetch_units", "failed")
    assert "HTTP 401" in phase["error"]
    assert phase["finished_at"]
    assert nothing_written()


@ENGINE
def test_a_failing_page_names_that_page_and_writes_nothing(directory_settings: FakeDirectory) -> None:
    directory_settings.fail_pages[7] = 500
    pipeline = sync_pipeline(2025)
    run_until_idle()
    pipeline.refresh_from_db()
    job = root_job(pipeline)
    assert (pipeline.status, job.result) == (PipelineStatus.FAILED, JobResult.ERROR)
    assert "page 7" in job.status_message
    assert "HTTP 500 Internal Server Error" in job.status_message
    assert [(p["name"], p["state"]) for p in job.meta["phases"]] == [("fetch_units", "failed")]
    assert [page for page, _, _ in directory_settings.requests] == [1, 2, 3, 4, 5, 6, 7]
    assert nothing_written()


def _reports_on_fire(*args: Any, **kwargs: Any) -> int:
    raise RuntimeError("reports table is on fire")


def _reports_hit_a_constraint(*args: Any, **kwargs: Any) -> int:
    # A database error poisons the data transaction (PostgreSQL: aborted; SQLite: Django
    # refuses further queries in the atomic block): the phase must be recorded anyway.
    Unit.objects.create(institutional_code="10000", name="duplicate", level=1)
    return 0


@ENGINE
@pytest.mark.parametrize(
    ("broken", "error"),
    [(_reports_on_fire, "reports table is on fire"), (_reports_hit_a_constraint, "IntegrityError")],
)
def test_a_failure_while_writing_marks_that_phase_failed_and_rolls_back(
    directory_settings: FakeDirectory, monkeypatch: pytest.MonkeyPatch, broken: Callable[..., int], error: str
) -> None:
    # given: report creation breaks after units and users were written
    monkeypatch.setattr("ingestion.services_units._reports_ensure", broken)
    pipeline = sync_pipeline(2025)
    # when
    run_until_idle()
    # then
    pipeline.refresh_from_db()
    job = root_job(pipeline)
    assert (pipeline.status, job.result) == (PipelineStatus.FAILED, JobResult.ERROR)
    assert job.status_message.startswith(error)
    assert [(p["name"], p["state"]) for p in job.meta["phases"]] == [
        ("fetch_units", "finished"),
        ("upsert_units_and_users", "finished"),
        ("create_carbon_reports", "failed"),
    ]
    assert job.meta["phases"][-1]["error"].startswith(error)
    assert nothing_written()


@ENGINE
def test_unit_sync_reads_the_bundled_demo_file() -> None:
    # UNIT_SOURCE_URL defaults to ingestion/demo/units.json
    pipeline = sync_pipeline(2026)
    run_until_idle()
    pipeline.refresh_from_db()
    job = root_job(pipeline)
    assert pipeline.status == PipelineStatus.SUCCESS, job.status_message
    assert job.status_message == "Unit sync completed: 30 units, 29 principals, 30 reports created"
    assert Unit.objects.count() == 30
    assert sorted(Unit.objects.values_list("level", flat=True)).count(4) == 20
    assert CarbonReportModule.objects.filter(report__year=2026).count() == 240
    lab = Unit.objects.select_related("parent__parent__parent").get(name="EERL")
    assert lab.parent is not None
    assert lab.parent.name == "ENAC-IIE"
    assert lab.parent.parent is not None
    assert lab.parent.parent.parent is not None
    assert lab.parent.parent.parent.name == "EPFL"
    assert Unit.objects.get(name="LMO").is_active is False
    assert YearConfiguration.objects.get(year=2026).configuration_completed is not None


@ENGINE
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "unit_sync needs a target year (config.target_year or the job's year); it has none"),
        ({"target_year": "soon"}, "unit_sync: target_year must be a year, got 'soon'"),
        ({"target_year": 1999}, "unit_sync: target_year must be between 2000 and 2100, got 1999"),
    ],
)
def test_unit_sync_without_a_valid_target_year_fails_clearly(config: dict[str, Any], message: str) -> None:
    pipeline, job = pipeline_create(
        job_type=JobType.UNIT_SYNC, scope=Scope(entity_type=EntityType.GLOBAL_PER_YEAR), config=config
    )
    run_until_idle()
    job.refresh_from_db()
    assert (job.result, job.status_message) == (JobResult.ERROR, message)


@ENGINE
def test_an_empty_directory_is_an_error(settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "units.json"
    empty.write_text('{"units": []}')
    settings.UNIT_SOURCE_URL = str(empty)
    job = root_job(sync_pipeline(2025))
    run_until_idle()
    job.refresh_from_db()
    assert (job.result, job.status_message) == (JobResult.ERROR, f"unit directory {empty} returned no units")
    assert nothing_written()


# --- The service on its own --------------------------------------------------------------------


def flat_units(labs: int, *, first_sciper: int = 500000) -> list[dict[str, Any]]:
    root = _unit(code=1, cf="100", name="ROOT", level=1, parent=None, responsible=_person(first_sciper))
    return [root] + [
        _unit(
            code=10 + i, cf=str(200 + i), name=f"L{i}", level=2, parent=root, responsible=_person(first_sciper + 1 + i)
        )
        for i in range(labs)
    ]


def sync_raw(units: list[dict[str, Any]], year: int = 2025) -> dict[str, int]:
    mapped = [unit_record_from_raw(raw, index=i) for i, raw in enumerate(units)]
    principals = [p for p in (principal_record_from_raw(u["responsible"]) for u in units) if p is not None]
    return units_sync(year=year, records=mapped, principals=principals, source="test")


def wipe() -> None:
    CarbonReportModule.objects.all().delete()
    CarbonReport.objects.all().delete()
    CarbonProject.objects.all().delete()
    RoleAssignment.objects.all().delete()
    Unit.objects.all().delete()
    User.objects.all().delete()
    YearConfiguration.objects.all().delete()


@pytest.mark.django_db
def test_query_count_does_not_grow_with_the_number_of_units() -> None:
    # sizes within one insert batch even on SQLite (999 parameters per statement)
    counts = []
    for labs in (3, 20):
        with CaptureQueriesContext(connection) as queries:
            result = sync_raw(flat_units(labs))
        assert (result["units_synced"], result["modules_created"]) == (labs + 1, (labs + 1) * 8)
        counts.append(len(queries))
        wipe()
    assert counts[0] == counts[1], counts


@pytest.mark.django_db
def test_resync_moves_the_principal_role_and_a_cf_to_their_new_owners() -> None:
    units = flat_units(3)
    sync_raw(units)
    old_head = User.objects.get(institutional_id="500001")
    lab0 = Unit.objects.get(institutional_code="10")
    # given: a new head for lab 0; labs 1 and 2 swap cfs; an admin-made deputy on lab 0
    deputy = User.objects.create(username="deputy", institutional_id="999")
    RoleAssignment.objects.create(user=deputy, unit=lab0, role=RoleName.PRINCIPAL)
    units[1] = {**units[1], "responsibleid": "600000", "responsible": _person(600000)}
    units[2], units[3] = {**units[2], "cf": "202"}, {**units[3], "cf": "201"}
    # when
    result = sync_raw(units)
    # then
    lab0.refresh_from_db()
    assert lab0.principal is not None
    assert lab0.principal.institutional_id == "600000"
    on_lab0 = set(RoleAssignment.objects.filter(unit=lab0, role=RoleName.PRINCIPAL).values_list("user_id", flat=True))
    assert on_lab0 == {lab0.principal.pk, deputy.pk}
    assert old_head.role_assignments.count() == 0
    assert (result["principal_roles_revoked"], result["principal_roles_granted"]) == (1, 1)
    assert dict(
        Unit.objects.filter(institutional_code__in=["11", "12"]).values_list("institutional_code", "institutional_id")
    ) == {
        "11": "202",
        "12": "201",
    }
    assert result["cfs_released"] == 2
    assert Unit.objects.get(institutional_code="10").pk == lab0.pk  # ids are kept


@pytest.mark.django_db
def test_two_units_claiming_one_cf_keep_it_on_the_active_one() -> None:
    units = flat_units(2)
    units[1] = {**units[1], "cf": "999", "enddate": "2020-01-01T00:00:00Z"}
    units[2] = {**units[2], "cf": "999"}
    result = sync_raw(units)
    assert result["cf_conflicts"] == 1
    assert dict(Unit.objects.filter(level=2).values_list("institutional_code", "institutional_id")) == {
        "10": None,
        "11": "999",
    }


# --- PostgreSQL: two years synced at once by two worker processes --------------------------------


@pytest.fixture
def real_workers(directory: FakeDirectory, tmp_path: Path) -> Iterator[Processes]:
    """``manage.py run_worker`` processes with the real handlers (not the engine's test doubles)."""
    env = worker_env(
        UNIT_SOURCE_URL=directory.url,
        UNIT_SOURCE_USER=USER,
        UNIT_SOURCE_PASSWORD=PASSWORD,
        JOB_LEASE_SECONDS="10",
    )
    workers = Processes(env, tmp_path, entry=REAL_HANDLERS_ENTRY)
    try:
        yield workers
    finally:
        # Stopped before the test database is flushed (this fixture is torn down first).
        workers.stop_all()
        sys.stdout.write(workers.logs())


@pytest.mark.postgres
@ENGINE
def test_two_years_synced_concurrently_by_two_workers(directory: FakeDirectory, real_workers: Processes) -> None:
    # given: two idle workers
    real_workers.worker(worker_id="worker:unit-sync:1")
    real_workers.worker(worker_id="worker:unit-sync:2")
    wait_for(lambda: Worker.objects.count() == 2, timeout=60, what="both workers to register")
    # when: two years are provisioned at once
    pipelines = [sync_pipeline(2025), sync_pipeline(2026)]
    wait_for(
        lambda: not Pipeline.objects.filter(pk__in=[p.pk for p in pipelines], finished_at__isnull=True).exists(),
        timeout=120,
        what="both unit_sync pipelines to finish",
    )
    # then: both succeed, one on each worker, overlapping in time (the global lock orders
    # their writes; nothing collides on the units' unique code)
    jobs = [root_job(p) for p in pipelines]
    assert [j.result for j in jobs] == [JobResult.SUCCESS, JobResult.SUCCESS], [j.status_message for j in jobs]
    claimers = {e["message"].split()[2] for j in jobs for e in j.status_history if e.get("kind") == "claim"}
    assert claimers == {"worker:unit-sync:1", "worker:unit-sync:2"}, real_workers.logs()
    first, second = sorted(jobs, key=lambda j: j.started_at or 0)
    assert second.started_at is not None
    assert first.finished_at is not None
    assert second.started_at < first.finished_at
    assert Unit.objects.count() == TOTAL_UNITS
    assert CarbonReport.objects.count() == 2 * TOTAL_UNITS
    assert CarbonReportModule.objects.count() == 2 * TOTAL_UNITS * 8
    assert sorted(j.meta["carbon_reports_created"] for j in jobs) == [TOTAL_UNITS, TOTAL_UNITS]
    assert YearConfiguration.objects.filter(configuration_completed__isnull=False).count() == 2


@pytest.mark.django_db
def test_a_local_account_named_like_a_principal_is_adopted_not_duplicated() -> None:
    local = User.objects.create(username="p500001", email="old@example.org")
    sync_raw(flat_units(1))
    adopted = User.objects.get(username="p500001")
    assert adopted.pk == local.pk
    assert (adopted.institutional_id, adopted.email) == ("500001", "person500001@example.org")
    assert Unit.objects.get(institutional_code="10").principal_id == local.pk
