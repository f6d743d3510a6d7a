"""The access matrix of the REST API (SPEC §6.3): every endpoint × every kind of caller.

``ENDPOINTS`` is the matrix, read top to bottom like documentation: one row per endpoint (and
per variant where the answer depends on whose object it is: unit A's, unit B's, per-year), the
HTTP status each of the six callers of ``tests.roles`` gets. Each (row, caller) pair runs on its
own fresh ``World``, with a request that is valid for the callers that are allowed, so that the
matrix says who may, never whether the request was well formed:

- allowed callers get the success code (200, or 201 for a creation);
- anonymous callers get 401 everywhere but health, schema and docs;
- authenticated callers without the role get 403 from the permission class;
- an object outside the caller's scope (another unit's pipeline, job, file or report) is a 404,
  exactly like a missing one.

Two more tests: a principal never sees another unit's unit-specific pipelines (lists and their
counters, detail, stream, jobs, active pipelines), and the matrix covers every route of the
URLconf under ``/api/`` — a new endpoint without a row fails ``test_the_matrix_covers_every_api_route``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import LazySettings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from carbon.models import CarbonReport, CarbonReportModule, Unit, YearConfiguration
from carbon.services import year_configuration_default_config
from ingestion.demo_seed import DEMO
from ingestion.files import upload_store
from ingestion.services_data import reports_ensure
from pipelines.choices import JobState, JobType, PipelineStatus, WorkerKind
from pipelines.models import IngestionJob, Pipeline, Worker
from tests.carbon.conftest import make_factor
from tests.pipelines.api_helpers import DONE_OK, FAILED, Outcome, pipeline_build
from tests.roles import ROLES, Roles

pytestmark = pytest.mark.django_db

MEMBERS = b"name,sius_code,user_institutional_id,fte\nAda,53,1,1\n"
# A CSV ingest a worker claimed and then lost: RUNNING, its lease expired (abortable, recoverable).
STALE_RUNNING: list[Outcome] = [(JobType.CSV_INGEST, JobState.RUNNING, None)]


# --- The world every case runs in -----------------------------------------------------------------


@dataclass
class World:
    """2025 provisioned and open, 2026 configured but not started, labs A and B with reports.

    Pipelines: one pinned to A and one to B (each a stale RUNNING csv_ingest of headcount, with a
    processed file), a successful per-year one (with a processed file), a failed per-year one.
    Also: an upload in ``tmp/``, a factor, a live worker and reconciler (health is 200).
    """

    roles: Roles
    pipe_a: Pipeline
    pipe_b: Pipeline
    pipe_year: Pipeline
    pipe_failed: Pipeline
    crm_a: int
    crm_b: int
    # The placeholders of ``Endpoint.path``.
    ids: dict[str, Any]


def _root_job(pipeline: Pipeline) -> int:
    return IngestionJob.objects.filter(pipeline=pipeline).order_by("id").values_list("pk", flat=True)[0]


def _processed(root: Path, pipeline: Pipeline, name: str, content: bytes) -> str:
    """A file in the processed/ folder of PIPELINE's root job; returns its path under FILES_ROOT."""
    relative = f"processed/{_root_job(pipeline)}/{name}"
    (root / relative).parent.mkdir(parents=True)
    (root / relative).write_bytes(content)
    return relative


def _stale_running(unit: Unit) -> Pipeline:
    pipeline = pipeline_build(STALE_RUNNING, unit=unit, module_type_id=1)
    expired = timezone.now() - timedelta(minutes=1)
    IngestionJob.objects.filter(pipeline=pipeline, state=JobState.RUNNING).update(lease_expires_at=expired)
    return pipeline


def _crm(unit: Unit) -> int:
    return CarbonReportModule.objects.get(report__unit=unit, report__year=2025, module_type_id=1).pk


@pytest.fixture
def world(roles: Roles, settings: LazySettings, tmp_path: Path) -> World:
    root = tmp_path / "files"
    root.mkdir()
    settings.FILES_ROOT = root
    config = year_configuration_default_config()
    YearConfiguration.objects.create(year=2025, is_started=True, configuration_completed=timezone.now(), config=config)
    YearConfiguration.objects.create(year=2026, config=config)
    reports_ensure(unit_ids=[roles.unit_a.pk, roles.unit_b.pk], year=2025)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=30, ef_kg_co2eq_per_kwh=0.1)
    now = timezone.now()
    Worker.objects.create(id="worker:matrix:1", hostname="h", pid=1, version="0.1.0", last_heartbeat_at=now)
    Worker.objects.create(id="reconciler:matrix:2", kind=WorkerKind.RECONCILER, hostname="h", pid=2)
    pipe_a = _stale_running(roles.unit_a)
    pipe_b = _stale_running(roles.unit_b)
    pipe_year = pipeline_build(DONE_OK, module_type_id=4)
    pipe_failed = pipeline_build(FAILED, module_type_id=5)
    ids = {
        "pipe_a": pipe_a.pk,
        "pipe_b": pipe_b.pk,
        "pipe_year": pipe_year.pk,
        "pipe_failed": pipe_failed.pk,
        "job_a": _root_job(pipe_a),
        "job_b": _root_job(pipe_b),
        "job_year": _root_job(pipe_year),
        "file_tmp": upload_store(name="upload.csv", chunks=[MEMBERS]),
        "file_a": _processed(root, pipe_a, "members.csv", MEMBERS),
        "file_b": _processed(root, pipe_b, "members.csv", MEMBERS),
        "file_year": _processed(root, pipe_year, "equipments.csv", b"unit_institutional_id,equipment_id\n"),
        "report_a": CarbonReport.objects.get(unit=roles.unit_a, year=2025).pk,
        "report_b": CarbonReport.objects.get(unit=roles.unit_b, year=2025).pk,
    }
    return World(
        roles=roles,
        pipe_a=pipe_a,
        pipe_b=pipe_b,
        pipe_year=pipe_year,
        pipe_failed=pipe_failed,
        crm_a=_crm(roles.unit_a),
        crm_b=_crm(roles.unit_b),
        ids=ids,
    )


# --- Request bodies (valid for the callers who are allowed) ---------------------------------------

Body = Callable[["World"], dict[str, Any]]


def _csv(name: str = "members.csv", content: bytes = MEMBERS) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def _unit_upload(crm: int) -> dict[str, Any]:
    config = {"module_type_id": 1, "data_entry_type_id": 1, "carbon_report_module_id": crm}
    file_path = upload_store(name="members.csv", chunks=[MEMBERS])
    return {"ingestion_method": 1, "target_type": 0, "year": 2025, "file_path": file_path, "config": config}


def csv_files(w: World) -> dict[str, Any]:
    return {"files": [_csv()]}


def upload_a(w: World) -> dict[str, Any]:
    """Headcount members of lab A (unit-specific)."""
    return _unit_upload(w.crm_a)


def upload_b(w: World) -> dict[str, Any]:
    return _unit_upload(w.crm_b)


def upload_year(w: World) -> dict[str, Any]:
    """Equipment of every unit (per-year)."""
    file_path = upload_store(name="equipments.csv", chunks=[b"unit_institutional_id,equipment_id,name\n"])
    config = {"module_type_id": 4}
    return {"ingestion_method": 1, "target_type": 0, "year": 2025, "file_path": file_path, "config": config}


def factors(w: World) -> dict[str, Any]:
    content = (DEMO / "factors" / "equipments.csv").read_bytes()
    return {"year": 2025, "file_path": upload_store(name="equipments.csv", chunks=[content])}


def year_2025(w: World) -> dict[str, Any]:
    return {"target_year": 2025}


def footprint(w: World) -> dict[str, Any]:
    return {"file": _csv("objectives.csv", b"year,category,co2\n2019,energy,12345.5\n"), "category": "footprint"}


def abort_2025(w: World) -> dict[str, Any]:
    return {"action": "abort", "filters": {"year": 2025}}


def closed(w: World) -> dict[str, Any]:
    return {"is_started": False}


def opened(w: World) -> dict[str, Any]:
    return {"is_started": True}


# --- The matrix -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    # Under /api/v1/ unless absolute; {placeholders} are ``World.ids``.
    path: str
    body: Body | None
    expected: dict[str, int]
    # Content-Type (prefix) of a successful answer.
    media: str = "application/json"

    def url(self, world: World) -> str:
        path = self.path.format(**world.ids)
        return path if path.startswith("/") else f"/api/v1/{path}"


def E(method: str, path: str, body: Body | None, codes: str, *, media: str = "application/json") -> Endpoint:
    """A row of the matrix. CODES: the statuses of anonymous, standard, principal_a, principal_b,
    backoffice and superadmin (``ROLES``), space-separated."""
    statuses = [int(code) for code in codes.split()]
    name = f"{method} {path}" + (f" {body.__name__}" if body else "")
    return Endpoint(name, method, path, body, dict(zip(ROLES, statuses, strict=True)), media)


SSE = "text/event-stream"
CSV = "text/csv"
HTML = "text/html"
OPENAPI = "application/vnd.oai.openapi"

# Placeholders: pipe_a / pipe_b are pinned to lab A / lab B (stale RUNNING), pipe_year is per-year (done),
# pipe_failed per-year (failed); job_* their root jobs; file_* files of tmp/ and of those jobs' processed/.
# fmt: off
ENDPOINTS: list[Endpoint] = [
    #  method  path                                             body          anon std pA  pB  bo  sa
    # engine (pipelines): reads for pipeline viewers, operations for the superadmin, others' pins 404
    E("GET",   "health",                                        None,         "200 200 200 200 200 200"),
    E("GET",   "sync/pipelines",                                None,         "401 403 200 200 200 200"),
    E("GET",   "sync/pipelines/{pipe_a}",                       None,         "401 403 200 404 200 200"),
    E("GET",   "sync/pipelines/{pipe_b}",                       None,         "401 403 404 200 200 200"),
    E("GET",   "sync/pipelines/{pipe_year}",                    None,         "401 403 200 200 200 200"),
    E("GET",   "sync/pipelines/{pipe_a}/stream",                None,         "401 403 200 404 200 200", media=SSE),
    E("GET",   "sync/pipelines/{pipe_b}/stream",                None,         "401 403 404 200 200 200", media=SSE),
    E("GET",   "sync/pipelines/{pipe_year}/stream",             None,         "401 403 200 200 200 200", media=SSE),
    E("POST",  "sync/pipelines/{pipe_a}/abort",                 None,         "401 403 403 403 403 200"),
    E("POST",  "sync/pipelines/{pipe_b}/abort",                 None,         "401 403 403 403 403 200"),
    E("POST",  "sync/pipelines/{pipe_failed}/retry",            None,         "401 403 403 403 403 200"),
    E("POST",  "sync/pipelines/bulk",                           abort_2025,   "401 403 403 403 403 200"),
    E("GET",   "sync/jobs/{job_a}",                             None,         "401 403 200 404 200 200"),
    E("GET",   "sync/jobs/{job_b}",                             None,         "401 403 404 200 200 200"),
    E("GET",   "sync/jobs/{job_year}",                          None,         "401 403 200 200 200 200"),
    E("POST",  "sync/jobs/{job_a}/recover",                     None,         "401 403 403 403 403 200"),
    E("POST",  "sync/jobs/{job_b}/recover",                     None,         "401 403 403 403 403 200"),
    E("GET",   "sync/workers",                                  None,         "401 403 200 200 200 200"),
    E("GET",   "sync/active-pipelines?year=2025&modules=1,4,5", None,         "401 403 200 200 200 200"),
    E("GET",   "sync/active-pipelines/year/2025",               None,         "401 403 200 200 200 200"),
    # ingestion: uploads for the superadmin and principals (their units only), files for who sees the job
    E("POST",  "files/temp-upload",                             csv_files,    "401 403 200 200 403 200"),
    E("GET",   "files/{file_tmp}",                              None,         "401 404 404 404 404 200", media=CSV),
    E("GET",   "files/{file_a}",                                None,         "401 404 200 404 200 200", media=CSV),
    E("GET",   "files/{file_b}",                                None,         "401 404 404 200 200 200", media=CSV),
    E("GET",   "files/{file_year}",                             None,         "401 404 404 404 200 200", media=CSV),
    E("POST",  "sync/dispatch",                                 upload_a,     "401 403 200 403 403 200"),
    E("POST",  "sync/dispatch",                                 upload_b,     "401 403 403 200 403 200"),
    E("POST",  "sync/dispatch",                                 upload_year,  "401 403 403 403 403 200"),
    E("POST",  "sync/factors/4/0",                              factors,      "401 403 403 403 403 200"),
    E("POST",  "sync/units",                                    year_2025,    "401 403 403 403 403 200"),
    E("POST",  "year-configuration/2025/upload",                footprint,    "401 403 403 403 403 200"),
    # domain (carbon): configuration for the superadmin, status for pipeline viewers, reports per unit
    E("POST",  "sync/recalculate-emissions/2/20?year=2025",     None,         "401 403 403 403 403 200"),
    E("POST",  "sync/recalculate-emissions/2?year=2025",        None,         "401 403 403 403 403 200"),
    E("GET",   "sync/recalculation-status?year=2025",           None,         "401 403 200 200 200 200"),
    E("GET",   "sync/health/stale-stats",                       None,         "401 403 200 200 200 200"),
    E("GET",   "year-configuration/",                           None,         "401 200 200 200 200 200"),
    E("GET",   "year-configuration/2025",                       None,         "401 200 200 200 200 200"),
    E("GET",   "year-configuration/2026",                       None,         "401 404 404 404 200 200"),
    E("POST",  "year-configuration/2027",                       closed,       "401 403 403 403 403 201"),
    E("PATCH", "year-configuration/2025",                       opened,       "401 403 403 403 403 200"),
    E("GET",   "units",                                         None,         "401 200 200 200 200 200"),
    E("GET",   "factors?year=2025",                             None,         "401 200 200 200 200 200"),
    E("GET",   "factors/stale?year=2025",                       None,         "401 403 403 403 200 200"),
    E("GET",   "carbon-reports?year=2025",                      None,         "401 403 200 200 200 200"),
    E("GET",   "carbon-reports/{report_a}",                     None,         "401 403 200 404 200 200"),
    E("GET",   "carbon-reports/{report_b}",                     None,         "401 403 404 200 200 200"),
    # schema and docs: public
    E("GET",   "/api/schema/",                                  None,         "200 200 200 200 200 200", media=OPENAPI),
    E("GET",   "/api/docs/",                                    None,         "200 200 200 200 200 200", media=HTML),
]
# fmt: on


def _multipart(data: dict[str, Any]) -> bool:
    return any(isinstance(v, SimpleUploadedFile) or (isinstance(v, list) and v and isinstance(v[0], SimpleUploadedFile))
               for v in data.values())  # fmt: skip


def _request(client: APIClient, endpoint: Endpoint, world: World) -> Any:
    url = endpoint.url(world)
    data = endpoint.body(world) if endpoint.body else None
    if endpoint.method == "GET":
        return client.get(url)
    send = {"POST": client.post, "PATCH": client.patch}[endpoint.method]
    return send(url, data, format="multipart" if data and _multipart(data) else "json")


def _cases() -> Iterator[Any]:
    for endpoint in ENDPOINTS:
        for role in ROLES:
            yield pytest.param(endpoint, role, id=f"{endpoint.name}-{role}")


@pytest.mark.parametrize(("endpoint", "role"), list(_cases()))
def test_access_matrix(world: World, endpoint: Endpoint, role: str) -> None:
    response = _request(world.roles.client(role), endpoint, world)
    body = response.getvalue()  # reads (and closes) a streamed file too
    expected = endpoint.expected[role]
    got = response.status_code
    assert got == expected, f"{endpoint.name} as {role}: got {got}, expected {expected}: {body[:300]!r}"
    if expected < 300:
        assert response["Content-Type"].startswith(endpoint.media), response["Content-Type"]
    else:
        assert "detail" in response.json()


# --- A principal never sees another unit's pipelines -------------------------------------------------


def _listed(client: APIClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/sync/pipelines", params)
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    # the total is the items' (one page holds them all here); the counters count the filtered set
    # before the state filter, so without one they describe exactly the items
    assert body["total"] == len(body["items"])
    if "state" in params:
        assert body["counts"][params["state"]] == body["total"]
    else:
        assert body["counts"] == {
            status: sum(1 for item in body["items"] if item["status"] == status) for status in PipelineStatus.values
        }
    return body


@pytest.mark.parametrize(("principal", "own", "other"), [("principal_a", "a", "b"), ("principal_b", "b", "a")])
def test_a_principal_never_sees_another_units_pipelines(world: World, principal: str, own: str, other: str) -> None:
    units = {"a": world.roles.unit_a, "b": world.roles.unit_b}
    running = {"a": world.pipe_a, "b": world.pipe_b}
    # a finished pipeline per unit too: its recalculation and aggregation jobs are pinned as well
    done = {key: pipeline_build(DONE_OK, unit=unit, module_type_id=4, created_ago=timedelta(hours=1))
            for key, unit in units.items()}  # fmt: skip
    mine = {running[own].pk, done[own].pk}
    theirs = {running[other].pk, done[other].pk}
    per_year = {world.pipe_year.pk, world.pipe_failed.pk}
    client = world.roles.client(principal)

    body = _listed(client)
    assert {item["pipeline_id"] for item in body["items"]} == {str(pk) for pk in mine | per_year}
    assert body["counts"][PipelineStatus.RUNNING] == 1
    assert sum(body["counts"].values()) == 4
    # no filter digs the other unit's pipelines out
    other_code = units[other].institutional_id
    assert _listed(client, q=other_code)["items"] == []
    assert [item["pipeline_id"] for item in _listed(client, state="RUNNING")["items"]] == [str(running[own].pk)]
    assert {item["pipeline_id"] for item in _listed(client, module_type_id=4, year=2025)["items"]} == {
        str(done[own].pk),
        str(world.pipe_year.pk),
    }
    # the whole set, as a superadmin sees it, for contrast
    everything = _listed(world.roles.client("superadmin"))
    assert {item["pipeline_id"] for item in everything["items"]} == {str(pk) for pk in mine | theirs | per_year}

    for pk in theirs:
        assert client.get(f"/api/v1/sync/pipelines/{pk}").status_code == 404
        assert client.get(f"/api/v1/sync/pipelines/{pk}/stream").status_code == 404
        for job in IngestionJob.objects.filter(pipeline_id=pk).values_list("pk", flat=True):
            assert client.get(f"/api/v1/sync/jobs/{job}").status_code == 404, job
    for pk in mine | per_year:
        assert client.get(f"/api/v1/sync/pipelines/{pk}").json()["pipeline_id"] == str(pk)
        stream = client.get(f"/api/v1/sync/pipelines/{pk}/stream")
        assert (stream.status_code, stream["Content-Type"].startswith("text/event-stream")) == (200, True)

    # active work: each module's most recent active pipeline the caller may see
    active = client.get("/api/v1/sync/active-pipelines?year=2025&modules=1,4,5")
    assert active.json() == {"1": str(running[own].pk)}
    seen_by_all = world.roles.client("superadmin").get("/api/v1/sync/active-pipelines?year=2025&modules=1")
    assert seen_by_all.json() == {"1": str(world.pipe_b.pk)}  # the newest of the two, hidden from principal A
    assert client.get("/api/v1/sync/active-pipelines/year/2025").json() == []


# --- The matrix covers the URLconf --------------------------------------------------------------------


def _api_routes() -> set[tuple[str, str]]:
    """(method, route) of every view under /api/ in the URLconf, from the views' own handlers."""
    found: set[tuple[str, str]] = set()

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/"):
                view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
                assert view is not None, f"{route}: not a class-based view"
                methods = [name for name in view.http_method_names if name != "options" and hasattr(view, name)]
                found.update((name.upper(), route) for name in methods)

    walk(get_resolver().url_patterns, "")
    return found


def test_the_matrix_covers_every_api_route(world: World) -> None:
    in_matrix = {(e.method, resolve(urlsplit(e.url(world)).path).route) for e in ENDPOINTS}
    routes = _api_routes()
    assert routes - in_matrix == set(), "endpoints without a row in ENDPOINTS"
    assert in_matrix - routes == set(), "rows of ENDPOINTS that are no route of the URLconf"
    assert len({e.name for e in ENDPOINTS}) == len(ENDPOINTS), "row names must be unique (they name the cases)"
    # the walk reaches into each app's URLconf (all three share the api/v1/ prefix)
    assert {
        ("GET", "api/v1/health"),
        ("POST", "api/v1/sync/dispatch"),
        ("PATCH", "api/v1/year-configuration/<int:year>"),
    } <= routes
    assert {(e.method, e.path) for e in ENDPOINTS if e.expected["superadmin"] == 201} == {
        ("POST", "year-configuration/2027")
    }
