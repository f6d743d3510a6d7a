"""Access control beyond the REST matrix (SPEC §5.6, §6.3, §7): sockets, streams, console, CSRF,
cross-unit leaks and the production security settings.

``tests/test_api_matrix.py`` holds every REST endpoint × the six callers of ``tests.roles``
(token-authenticated). This file extends it to the other doors:

- the console's **websockets** ``/ws/pipelines/`` and ``/ws/pipelines/<uuid>/`` through
  ``config.asgi.application``, for each role with and without ``is_staff``, for Django-permission
  operators, and for foreign origins (``tests/pipelines/test_websockets.py`` has the protocol);
- the **SSE stream through the ASGI consumer** (not the WSGI view of the matrix), by token and by
  session, and ended by a token revocation while open (the REST side of revocation is
  ``tests/carbon/test_api_tokens.py``; not repeated here);
- the **console page** and its actions through the API with **session** authentication, and
  **CSRF** on every session-authenticated write;
- **no leak**: a principal walks every GET endpoint and finds no id, code or name of another
  unit's units, reports, modules, pipelines, jobs or files;
- **production settings**: ``manage.py check --deploy --fail-level WARNING`` is clean with a
  production environment, and those settings put the security headers on responses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import LazySettings, settings
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

import tests.test_api_matrix as matrix
from carbon.choices import DataEntrySource, RoleName
from carbon.models import CarbonProject, CarbonReport, CarbonReportModule, DataEntry, RoleAssignment, Unit, User
from config.asgi import application
from pipelines.choices import JobState
from pipelines.console import CONTENT_SECURITY_POLICY
from pipelines.models import IngestionJob, Pipeline
from tests.pipelines.api_helpers import DONE_OK, RUNNING, pipeline_build
from tests.pipelines.test_stream import Stream, event_data, stream_path, token_header
from tests.pipelines.test_websockets import detail_path, headers
from tests.roles import ROLES, Roles

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = "/admin/pipelines/console/"
LIST = "/ws/pipelines/"
HELLO = "hello"
# The matrix's world (2025 provisioned, labs A and B, their pipelines, jobs and files).
world = matrix.world


def _staff(user: User, value: bool = True) -> User:
    User.objects.filter(pk=user.pk).update(is_staff=value)
    user.is_staff = value
    return user


def _operator(username: str, *codenames: str) -> User:
    """A staff user with Django permissions on pipelines and no role."""
    user = User.objects.create_user(username=username, email=f"{username}@example.org", password=None, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="pipelines", codename__in=codenames))
    return user


def run(coroutine: Any) -> None:
    async_to_sync(coroutine)()


# --- Websockets: every kind of user × both paths -------------------------------------------------

# The user, and what each socket answers them as (list, A's pipeline, B's pipeline, the
# per-year pipeline): HELLO when accepted, else the close code. Without is_staff every
# authenticated user is 4403 (the console is a staff tool); with it, the pipelines view scope
# decides (the roles of SPEC §6.3, or Django's view/change permission on pipelines), and a
# pipeline pinned to a unit outside it is 4404 — the same as one that does not exist.
SOCKET_AS_STAFF: dict[str, tuple[str | int, ...]] = {
    "anonymous": (4401, 4401, 4401, 4401),
    "standard": (4403, 4403, 4403, 4403),
    "principal_a": (HELLO, HELLO, 4404, HELLO),
    "principal_b": (HELLO, 4404, HELLO, HELLO),
    "backoffice": (HELLO, HELLO, HELLO, HELLO),
    "superadmin": (HELLO, HELLO, HELLO, HELLO),
    "operator_view": (HELLO, HELLO, HELLO, HELLO),  # staff + pipelines.view_pipeline, no role
    "operator_change": (HELLO, HELLO, HELLO, HELLO),  # staff + pipelines.change_pipeline, no role
    "clerk": (4403, 4403, 4403, 4403),  # staff, no permission, no role
    "superuser": (HELLO, HELLO, HELLO, HELLO),
}


def _socket_user(roles: Roles, who: str) -> User | None:
    if who == "anonymous":
        return None
    if who in roles.users:
        return roles.users[who]
    if who == "superuser":
        return User.objects.create_superuser(username="root", email="root@example.org", password=None)
    return _operator(who, *{"operator_view": ["view_pipeline"], "operator_change": ["change_pipeline"]}.get(who, []))


async def _answer(path: str, handshake: list[tuple[bytes, bytes]]) -> str | int | None:
    """HELLO when the socket is accepted, the close code when refused after the handshake, None
    when refused at the handshake itself."""
    communicator = WebsocketCommunicator(application, path, headers=handshake)
    connected, _ = await communicator.connect(timeout=10)
    if not connected:
        return None
    message = await communicator.receive_output(timeout=10)
    if message["type"] == "websocket.close":
        return int(message["code"])
    assert message["type"] == "websocket.send", message
    assert json.loads(message["text"])["type"] == HELLO
    await communicator.disconnect(timeout=5)
    return HELLO


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", list(SOCKET_AS_STAFF))
def test_websockets_answer_each_kind_of_user_as_the_api_scope_says(roles: Roles, who: str) -> None:
    pipe_a = pipeline_build(RUNNING, unit=roles.unit_a)
    pipe_b = pipeline_build(RUNNING, unit=roles.unit_b, year=2024)  # one active recalc per scope
    pipe_year = pipeline_build(DONE_OK)
    paths = [LIST, detail_path(pipe_a), detail_path(pipe_b), detail_path(pipe_year)]
    user = _socket_user(roles, who)
    handshake = headers(user)  # the session stays valid while is_staff changes
    results: dict[bool, tuple[str | int | None, ...]] = {}

    async def scenario() -> None:
        for as_staff in (False, True):
            if user is not None:
                await database_sync_to_async(_staff)(user, as_staff)
            results[as_staff] = tuple([await _answer(path, handshake) for path in paths])

    run(scenario)
    assert results[False] == ((4401,) * 4 if user is None else (4403,) * 4), f"{who} without is_staff"
    assert results[True] == SOCKET_AS_STAFF[who], f"{who} as staff"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "origin",
    [b"http://evil.example.org", b"http://localhost.evil.example.org", b"null", b"file://", None],
    ids=["foreign", "look-alike", "null", "file", "missing"],
)
def test_a_foreign_origin_is_refused_at_the_handshake_on_every_path(
    roles: Roles, superuser: User, origin: bytes | None
) -> None:
    pipeline = pipeline_build(RUNNING, unit=roles.unit_a)
    refused = headers(superuser, origin=origin)
    allowed = headers(superuser)

    async def scenario() -> None:
        for path in (LIST, detail_path(pipeline), "/ws/pipelines/not-a-pipeline/"):
            assert await _answer(path, refused) is None, path
        assert await _answer(LIST, allowed) == HELLO  # the control: the same user, this site's origin

    run(scenario)


# --- The SSE stream through the ASGI consumer ------------------------------------------------------

# Status of GET …/stream for (A's running pipeline, B's running pipeline, the finished per-year
# one), as the REST matrix has it for the WSGI view.
STREAM_STATUS: dict[str, tuple[int, int, int]] = {
    "anonymous": (401, 401, 401),
    "standard": (403, 403, 403),
    "principal_a": (200, 404, 200),
    "principal_b": (404, 200, 200),
    "backoffice": (200, 200, 200),
    "superadmin": (200, 200, 200),
}


def _session_header(user: User) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())
    ]


async def _stream_status(path: str, auth: list[tuple[bytes, bytes]]) -> tuple[int, str]:
    """(status, pipeline id of the first snapshot or the error detail) of a stream request."""
    stream = Stream(application, path, auth)
    start = await stream.open()
    frame = await stream.frame()
    if start["status"] != 200:
        return start["status"], json.loads(frame)["detail"]
    snapshot = event_data(frame)
    if stream.more:
        await stream.close()
    return 200, snapshot["pipeline_id"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
def test_the_asgi_stream_answers_each_role_by_token_and_by_session(roles: Roles, role: str) -> None:
    pipelines = [
        pipeline_build(RUNNING, unit=roles.unit_a),
        pipeline_build(RUNNING, unit=roles.unit_b, year=2024),
        pipeline_build(DONE_OK),
    ]
    credentials = {"token": [], "session": []} if role == "anonymous" else {
        "token": token_header(roles, role),
        "session": _session_header(roles.users[role]),
    }  # fmt: skip
    got: dict[str, tuple[int, ...]] = {}

    async def scenario() -> None:
        for how, auth in credentials.items():
            answers = [await _stream_status(stream_path(p), auth) for p in pipelines]
            got[how] = tuple(status for status, _ in answers)
            for pipeline, (status, seen) in zip(pipelines, answers, strict=True):
                # a snapshot of the pipeline asked for, or an error that says why (JSON detail)
                assert seen == str(pipeline.pk) if status == 200 else seen.strip(), (how, status, seen)

    run(scenario)
    assert got == {"token": STREAM_STATUS[role], "session": STREAM_STATUS[role]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["revoked", "deactivated"])
def test_an_open_stream_ends_when_its_credentials_are_revoked(roles: Roles, how: str) -> None:
    """The REST side of revocation is in tests/carbon/test_api_tokens.py; this is the stream's."""
    pipeline = pipeline_build(RUNNING)
    auth = token_header(roles, "backoffice")

    def revoke() -> None:
        if how == "revoked":
            call_command("api_token", "backoffice", "--revoke", stdout=StringIO())
        else:
            User.objects.filter(pk=roles.users["backoffice"].pk).update(is_active=False)

    def touch() -> None:
        # A change, so that the stream re-reads (a push, and the next poll) right away.
        IngestionJob.objects.filter(pipeline=pipeline, state=JobState.RUNNING).update(
            status_message="progress", updated_at=timezone.now()
        )

    async def scenario() -> None:
        stream = Stream(application, stream_path(pipeline), auth)
        assert (await stream.open())["status"] == 200
        assert event_data(await stream.frame())["pipeline_id"] == str(pipeline.pk)
        await database_sync_to_async(revoke)()
        await database_sync_to_async(touch)()
        # Nothing more is sent but the end of the body (within a poll or two).
        last = await stream.frame(timeout=15)
        while last.startswith(": ping"):
            last = await stream.frame(timeout=15)
        assert (last, stream.more) == ("", False)
        again = Stream(application, stream_path(pipeline), auth)
        assert (await again.open())["status"] == 401

    run(scenario)


# --- The console page and its actions through the API, with session authentication -----------------

# Who opens the console (status of GET /admin/pipelines/console/) and, with that browser session,
# what the console's API calls answer: list, workers, abort, retry, bulk. Roles without is_staff
# never reach the page (the admin sends them to its login) but their session still works on the
# API exactly like their token does (the matrix's codes).
CONSOLE_CASES: dict[str, tuple[int, int, int, int, int, int]] = {
    #                       page list workers abort retry bulk
    "standard": (302, 403, 403, 403, 403, 403),
    "principal_a": (302, 200, 200, 403, 403, 403),
    "backoffice": (302, 200, 200, 403, 403, 403),
    "superadmin": (302, 200, 200, 200, 200, 200),
    "staff_standard": (403, 403, 403, 403, 403, 403),
    "staff_superadmin": (403, 200, 200, 200, 200, 200),  # the role is the API's; the page wants the permission
    "operator_view": (200, 200, 200, 403, 403, 403),
    "operator_change": (200, 200, 200, 200, 200, 200),
    "superuser": (200, 200, 200, 200, 200, 200),
}


def _console_user(roles: Roles, who: str) -> User:
    if who.startswith("staff_"):
        return _staff(roles.users[who.removeprefix("staff_")])
    if who == "superuser":
        return User.objects.create_superuser(username="root", email="root@example.org", password=None)
    if who.startswith("operator_"):
        return _operator(who, f"{who.removeprefix('operator_')}_pipeline")
    return roles.users[who]


def _csrf_client(user: User) -> tuple[Client, str]:
    """A browser session of USER that enforces CSRF like a real one, and its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")  # the login form sets the csrftoken cookie, as it does for a person
    client.force_login(user)
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


@pytest.mark.django_db
@pytest.mark.parametrize("who", list(CONSOLE_CASES))
def test_the_console_and_its_api_calls_with_a_browser_session(world: matrix.World, who: str) -> None:
    user = _console_user(world.roles, who)
    client, token = _csrf_client(user)
    page = client.get(CONSOLE)

    def post(url: str, body: dict[str, Any] | None = None) -> int:
        return client.post(url, body, content_type="application/json", HTTP_X_CSRFTOKEN=token).status_code

    answers = (
        page.status_code,
        client.get("/api/v1/sync/pipelines").status_code,
        client.get("/api/v1/sync/workers").status_code,
        post(f"/api/v1/sync/pipelines/{world.pipe_a.pk}/abort"),
        post(f"/api/v1/sync/pipelines/{world.pipe_failed.pk}/retry"),
        post("/api/v1/sync/pipelines/bulk", {"action": "abort", "filters": {"year": 2025}}),
    )
    assert answers == CONSOLE_CASES[who]
    if page.status_code == 302:
        assert page["Location"].startswith("/admin/login/")
    if page.status_code == 200:
        assert page["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


# --- CSRF on session-authenticated writes -------------------------------------------------------------


def _pipeline_state(pipeline: Pipeline) -> Any:
    row = Pipeline.objects.filter(pk=pipeline.pk).values().get()
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id").values())
    return row, jobs


@pytest.mark.django_db
def test_a_session_abort_needs_the_csrf_token_and_changes_nothing_without_it(world: matrix.World) -> None:
    operator = _operator("operator", "change_pipeline")
    client, token = _csrf_client(operator)
    url = f"/api/v1/sync/pipelines/{world.pipe_a.pk}/abort"
    before = _pipeline_state(world.pipe_a)
    for sent in (None, "x" * 32, token.swapcase()):
        refused = client.post(url, headers={"X-CSRFToken": sent} if sent else None)
        assert refused.status_code == 403, sent
        assert refused.json()["detail"].startswith("CSRF Failed"), refused.json()
    # The right token in the header but no cookie to match it (a forged cross-site request).
    cookie = client.cookies.pop(settings.CSRF_COOKIE_NAME)
    assert client.post(url, HTTP_X_CSRFTOKEN=token).json()["detail"] == "CSRF Failed: CSRF cookie not set."
    client.cookies[settings.CSRF_COOKIE_NAME] = cookie
    assert _pipeline_state(world.pipe_a) == before
    accepted = client.post(url, HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["aborted_by"]
    world.pipe_a.refresh_from_db()
    assert world.pipe_a.cancel_requested_at is not None
    # An API client authenticates with its token and sends no cookie: CSRF does not apply to it.
    assert world.roles.client("superadmin").post(f"/api/v1/sync/pipelines/{world.pipe_b.pk}/abort").status_code == 200


def _stored_state(root: Path) -> Any:
    return (
        list(Pipeline.objects.order_by("pk").values()),
        list(IngestionJob.objects.order_by("pk").values()),
        list(CarbonReport.objects.order_by("pk").values()),
        sorted(str(p.relative_to(root)) for p in root.rglob("*")),
    )


@pytest.mark.django_db
def test_every_session_write_of_the_api_is_refused_without_the_csrf_token(
    world: matrix.World, superuser: User, settings: LazySettings
) -> None:
    writes = [e for e in matrix.ENDPOINTS if e.method != "GET"]
    assert len(writes) >= 15
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(superuser)
    root = Path(settings.FILES_ROOT)
    for endpoint in writes:
        before = _stored_state(root)
        response = matrix._request(client, endpoint, world)
        assert response.status_code == 403, f"{endpoint.name}: {response.status_code} {response.content[:200]!r}"
        assert response.json()["detail"].startswith("CSRF Failed"), endpoint.name
        after = _stored_state(root)
        # The body builders store their own upload first (that is the request's input, not its effect).
        assert after[:3] == before[:3], endpoint.name
        assert set(after[3]) - set(before[3]) <= {p for p in after[3] if p.startswith("tmp/")}, endpoint.name


# --- No endpoint leaks another unit's data ----------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    """Distinctive ids and codes of a unit principal A must never see anything of."""

    unit_pk: int = 770_031
    code: str = "SECRET-CODE-4711"
    cf: str = "4711471"
    name: str = "SECRET-LAB-NAME"
    report_pk: int = 880_041
    module_pk_base: int = 660_050
    job_pk: int = 990_061
    file: str = "secret-members-4711.csv"
    note: str = "SECRET-NOTE-4711"


SECRET = Secret()


@pytest.fixture
def secret_unit(world: matrix.World) -> set[str]:
    """Unit B's twin with distinctive ids and codes: a report, its modules, an entry, a running and a
    finished pipeline with explicit job ids, and a processed file. Yields every token that must
    never reach principal A."""
    unit = Unit.objects.create(
        pk=SECRET.unit_pk, institutional_code=SECRET.code, institutional_id=SECRET.cf, name=SECRET.name,
        level=4, parent=world.roles.school, path_institutional_code=f"900 {SECRET.code}",
    )  # fmt: skip
    RoleAssignment.objects.create(user=world.roles.users["principal_b"], role=RoleName.PRINCIPAL, unit=unit)
    project = CarbonProject.objects.create(unit=unit)
    report = CarbonReport.objects.create(pk=SECRET.report_pk, project=project, unit=unit, year=2025)
    modules = [
        CarbonReportModule.objects.create(pk=SECRET.module_pk_base + m, report=report, module_type_id=m)
        for m in range(1, 9)
    ]
    DataEntry.objects.create(
        carbon_report_module=modules[0], data_entry_type_id=1, module_type_id=1, year=2025, unit=unit,
        data={"name": SECRET.name, "note": SECRET.note}, source=DataEntrySource.CSV_MODULE_UNIT_SPECIFIC,
    )  # fmt: skip
    running = pipeline_build(RUNNING, unit=unit, year=2024)
    done = pipeline_build(DONE_OK, unit=unit, module_type_id=1)
    tokens = {SECRET.code, SECRET.cf, SECRET.name, SECRET.note, SECRET.file}
    tokens |= {str(running.pk), str(done.pk)}
    tokens |= {str(SECRET.unit_pk), str(SECRET.report_pk)} | {str(m.pk) for m in modules}
    job_pks = _renumber_jobs([running, done], SECRET.job_pk)
    tokens |= {str(pk) for pk in job_pks}
    root_job = min(IngestionJob.objects.filter(pipeline=done).values_list("pk", flat=True))
    processed = Path(settings.FILES_ROOT) / "processed" / str(root_job) / SECRET.file
    processed.parent.mkdir(parents=True)
    processed.write_text(f"name\n{SECRET.name}\n")
    path = f"processed/{root_job}/{SECRET.file}"
    IngestionJob.objects.filter(pk=root_job).update(meta={"processed_file_path": path})
    return tokens


def _renumber_jobs(pipelines: list[Pipeline], first_pk: int) -> list[int]:
    """Give the jobs of PIPELINES consecutive ids from FIRST_PK (parent links follow; foreign keys
    are checked at commit), so that a leaked job id is recognisable in any response."""
    old = list(IngestionJob.objects.filter(pipeline__in=pipelines).order_by("id").values_list("pk", flat=True))
    mapping = {pk: first_pk + index for index, pk in enumerate(old)}
    for before, after in mapping.items():
        IngestionJob.objects.filter(pk=before).update(id=after)
        IngestionJob.objects.filter(parent_id=before).update(parent_id=after)
    return list(mapping.values())


# Beyond the matrix's GET rows: the lists with every filter that could dig rows out, and the
# year the secret unit's running pipeline is in.
EXTRA_READS = [
    "sync/pipelines?limit=200",
    f"sync/pipelines?q={SECRET.code}",
    f"sync/pipelines?q={SECRET.cf}",
    "sync/pipelines?year=2024",
    "sync/pipelines?state=RUNNING",
    "sync/pipelines?has_errors=false&module_type_id=1",
    "sync/active-pipelines?year=2024&modules=1,2,3,4,5,6,7,8",
    "sync/active-pipelines/year/2024",
    "sync/recalculation-status?year=2024",
    "sync/health/stale-stats?older_than_minutes=1",
    "units?limit=200",
    f"units?q={SECRET.name}",
    "units?parent=900",  # the school of labs A and B
    "carbon-reports?year=2025&limit=200",
    f"carbon-reports?year=2025&unit={SECRET.cf}",
    "year-configuration/",
]


@pytest.mark.django_db
def test_no_get_endpoint_shows_principal_a_anything_of_another_unit(world: matrix.World, secret_unit: set[str]) -> None:
    superadmin = world.roles.client("superadmin")
    principal = world.roles.client("principal_a")
    reads = [e.url(world) for e in matrix.ENDPOINTS if e.method == "GET" and e.expected["principal_a"] == 200]
    reads += [f"/api/v1/{path}" for path in EXTRA_READS]
    assert len(reads) >= 35
    seen_by_superadmin: set[str] = set()
    for url in reads:
        response = principal.get(url)
        assert response.status_code == 200, url
        body = response.getvalue().decode()
        leaked = sorted(token for token in secret_unit if token in body)
        assert leaked == [], f"{url} shows principal A {leaked}"
        seen_by_superadmin |= {t for t in secret_unit if t in superadmin.get(url).getvalue().decode()}
    # The control: the same walk as the superadmin finds the secret unit's ids, codes, name, report,
    # pipelines, jobs and file (no GET endpoint shows report-module ids or entry data).
    modules = {str(SECRET.module_pk_base + m) for m in range(1, 9)}
    assert secret_unit - seen_by_superadmin == modules | {SECRET.note}
    # And unit B's own data through the ids the matrix knows.
    for url in ("sync/pipelines?limit=200", "units?limit=200", "carbon-reports?year=2025"):
        body = principal.get(f"/api/v1/{url}").getvalue().decode()
        for token in (str(world.pipe_b.pk), world.roles.unit_b.name):
            assert token not in body, (url, token)


# --- Production mode: check --deploy, and the headers its settings produce ------------------------------

PRODUCTION_ENV = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/carbon_deploy_check",  # never connected to
    "SECRET_KEY": "prod-" + "k7Q2xV9mR4tL8wZ1pN6sB3yH5cJ0dF" * 2,  # 65 characters, many distinct
    "ALLOWED_HOSTS": "carbon.example.org",
    "BEHIND_TLS_PROXY": "true",
}
SECURITY_SETTINGS = [
    "DEBUG",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "SECURE_CROSS_ORIGIN_OPENER_POLICY",
    "X_FRAME_OPTIONS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]
PRINT_SECURITY_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    f"print(json.dumps({{n: getattr(s, n) for n in {SECURITY_SETTINGS!r}}}))"
)


def _production(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ARGV with the production environment only (DEBUG unset, nothing of this test run)."""
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **PRODUCTION_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("preload", ["", "true"], ids=["default", "hsts-preload"])
def test_check_deploy_is_clean_in_production_mode(preload: str) -> None:
    result = _production(
        "manage.py", "check", "--deploy", "--fail-level", "WARNING", env={"SECURE_HSTS_PRELOAD": preload}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.fixture(scope="module")
def production_settings() -> dict[str, Any]:
    """The security settings as a production environment makes them (read in a subprocess)."""
    result = _production("-c", PRINT_SECURITY_SETTINGS)
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = json.loads(result.stdout)
    values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return values


@pytest.mark.django_db
def test_production_responses_carry_the_security_headers(
    production_settings: dict[str, Any], settings: LazySettings, superuser: User
) -> None:
    assert production_settings["DEBUG"] is False
    assert production_settings["SECURE_HSTS_SECONDS"] >= 31_536_000
    for name, value in production_settings.items():
        setattr(settings, name, value)
    browser = Client(HTTP_HOST="carbon.example.org", HTTP_X_FORWARDED_PROTO="https")
    browser.force_login(superuser)
    for url in ("/admin/", CONSOLE, "/api/v1/health", "/api/v1/sync/pipelines"):
        response = browser.get(url)
        assert response.status_code in (200, 503), url  # health is 503 without workers
        assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains", url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["Referrer-Policy"] == "same-origin", url
        assert response["X-Frame-Options"] == "DENY", url
        assert response["Cross-Origin-Opener-Policy"] == "same-origin", url
    console = browser.get(CONSOLE)
    policy = dict(part.strip().split(" ", 1) for part in console["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in console["Content-Security-Policy"]
    assert console.cookies[settings.CSRF_COOKIE_NAME]["secure"] is True
    # Plain HTTP through the proxy is sent to HTTPS, except the health probe.
    plain = Client(HTTP_HOST="carbon.example.org", HTTP_X_FORWARDED_PROTO="http")
    redirect = plain.get("/admin/login/")
    assert (redirect.status_code, redirect["Location"]) == (301, "https://carbon.example.org/admin/login/")
    assert plain.get("/api/v1/health").status_code in (200, 503)
    # A host outside ALLOWED_HOSTS is refused.
    assert Client(HTTP_HOST="evil.example.org", HTTP_X_FORWARDED_PROTO="https").get("/admin/login/").status_code == 400


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "value"),
    [("SECURE_HSTS_SECONDS", "a year"), ("SECURE_HSTS_SECONDS", "-1"), ("SECURE_SSL_REDIRECT", "sometimes"),
     ("SECURE_HSTS_PRELOAD", "maybe"), ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "2")],
)  # fmt: skip
def test_a_bad_security_setting_stops_start_up_naming_it(variable: str, value: str) -> None:
    result = _production("-c", "import django; django.setup()", env={variable: value})
    assert result.returncode != 0
    assert f"{variable}: " in result.stderr
