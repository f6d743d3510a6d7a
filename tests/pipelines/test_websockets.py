"""The console's websockets through ``config.asgi.application`` (origin check, session auth, routing).

Transactional: consumers read through other connections, and the relay tails committed rows.
No REDIS_URL here, so the relay runs: a socket may receive the same pipeline's snapshot twice
(once from ``pipelines.events``, once relayed) and, right after ``hello``, the snapshots of
pipelines changed in the last seconds. Every assertion therefore waits, with a deadline, for
the message it is about and tolerates others; none relies on an exact message count.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import LazySettings, settings
from django.contrib.auth.models import Permission
from django.core.serializers.json import DjangoJSONEncoder
from django.test import Client
from django.utils import timezone

from carbon.models import User
from config.asgi import application
from pipelines import events
from pipelines.choices import JobResult, JobState, JobType
from pipelines.models import IngestionJob, Pipeline
from pipelines.relay import RELAY, RelayCursor
from pipelines.selectors import pipeline_snapshot
from pipelines.services import Scope, pipeline_abort, pipeline_create, pipeline_status_refresh
from tests.pipelines.api_helpers import RUNNING, pipeline_build
from tests.pipelines.conftest import Processes
from tests.roles import Roles

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://localhost:8000"
LIST = "/ws/pipelines/"
Snapshot = dict[str, Any]


def run(coroutine: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(coroutine)()


def staff(user: User) -> User:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def headers(user: User | None = None, *, origin: bytes | None = ORIGIN) -> list[tuple[bytes, bytes]]:
    """Handshake headers of a browser tab: its Origin and, when logged in, the session cookie."""
    result = [(b"host", b"localhost:8000")]
    if origin is not None:
        result.append((b"origin", origin))
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        result.append((b"cookie", cookie.encode()))
    return result


def detail_path(pipeline: Pipeline) -> str:
    return f"/ws/pipelines/{pipeline.pk}/"


class Socket:
    def __init__(self, path: str, handshake: list[tuple[bytes, bytes]]) -> None:
        self.communicator = WebsocketCommunicator(application, path, headers=handshake)
        self.received: list[dict[str, Any]] = []

    async def open(self) -> dict[str, Any]:
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected
        hello = await self.communicator.receive_json_from(timeout=10)
        assert hello["type"] == "hello", hello
        return hello

    async def refusal(self) -> int | None:
        """The close code of a refused connection; None when refused at the handshake itself."""
        connected, _ = await self.communicator.connect(timeout=10)
        if not connected:
            return None
        message = await self.communicator.receive_output(timeout=10)
        assert message["type"] == "websocket.close", message
        return int(message["code"])

    async def until(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 15) -> dict[str, Any]:
        """The first message matching PREDICATE, waiting at most TIMEOUT seconds in all."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message within {timeout}s; got {self.received}")
            try:
                message = await self.communicator.receive_json_from(timeout=remaining)
            except TimeoutError:
                raise AssertionError(f"no matching message within {timeout}s; got {self.received}") from None
            self.received.append(message)
            if predicate(message):
                return message

    async def snapshot(self, predicate: Callable[[Snapshot], bool], *, timeout: float = 15) -> Snapshot:
        message = await self.until(lambda m: m["type"] == "snapshot" and predicate(m["snapshot"]), timeout=timeout)
        snapshot: Snapshot = message["snapshot"]
        return snapshot

    def snapshots(self) -> list[Snapshot]:
        return [m["snapshot"] for m in self.received if m["type"] == "snapshot"]

    async def close(self) -> None:
        await self.communicator.disconnect(timeout=5)


def of(pipeline: Pipeline, **expected: Any) -> Callable[[Snapshot], bool]:
    return lambda s: s["pipeline_id"] == str(pipeline.pk) and all(s[k] == v for k, v in expected.items())


def as_json(snapshot: Snapshot | None) -> Snapshot:
    assert snapshot is not None
    decoded: Snapshot = json.loads(json.dumps(snapshot, cls=DjangoJSONEncoder))
    return decoded


def finish_running_job(pipeline: Pipeline, message: str = "recalculated") -> None:
    """A job update as a worker commits it, then the status refresh that publishes at commit."""
    IngestionJob.objects.filter(pipeline=pipeline, state=JobState.RUNNING).update(
        state=JobState.FINISHED,
        result=JobResult.SUCCESS,
        finished_at=timezone.now(),
        lease_owner=None,
        lease_expires_at=None,
        status_message=message,
        closed_fan_in=True,  # as if it coalesced into an active aggregation
        updated_at=timezone.now(),
    )
    pipeline_status_refresh(pipeline_id=pipeline.pk)


# --- Handshake: origin, authentication, authorization ---------------------------------------


def test_anonymous_is_refused_with_4401(roles: Roles) -> None:
    async def scenario() -> None:
        assert await Socket(LIST, headers()).refusal() == 4401

    run(scenario)


@pytest.mark.parametrize(
    ("role", "make_staff"),
    [
        ("backoffice", False),  # may read pipelines through the API, but is not staff
        ("standard", True),  # staff without the pipelines view scope
    ],
)
def test_non_staff_and_staff_without_pipeline_view_are_refused_with_4403(
    roles: Roles, role: str, make_staff: bool
) -> None:
    user = staff(roles.users[role]) if make_staff else roles.users[role]
    handshake = headers(user)

    async def scenario() -> None:
        assert await Socket(LIST, handshake).refusal() == 4403

    run(scenario)


@pytest.mark.parametrize("origin", [b"http://evil.example.org", None])
def test_foreign_or_missing_origin_is_refused_at_the_handshake(superuser: User, origin: bytes | None) -> None:
    handshake = headers(superuser, origin=origin)

    async def scenario() -> None:
        assert await Socket(LIST, handshake).refusal() is None

    run(scenario)


def test_staff_with_the_pipelines_view_permission_gets_hello_and_pong(superuser: User) -> None:
    operator = staff(User.objects.create_user(username="operator", password=None))
    operator.user_permissions.add(Permission.objects.get(codename="view_pipeline", content_type__app_label="pipelines"))
    sockets = [Socket(LIST, headers(superuser)), Socket(LIST, headers(operator))]

    async def scenario() -> None:
        for socket in sockets:
            hello = await socket.open()
            assert set(hello) == {"type", "server_time"}
            assert abs(timezone.now() - datetime.fromisoformat(hello["server_time"])) < timedelta(minutes=1)
            await socket.communicator.send_to(text_data="not json")  # ignored, the socket stays up
            await socket.communicator.send_json_to({"type": "ping"})
            assert await socket.until(lambda m: m["type"] == "pong") == {"type": "pong"}
            await socket.close()

    run(scenario)


def test_pipeline_socket_refuses_unknown_and_invisible_pipelines_with_4404(roles: Roles) -> None:
    pipeline_b = pipeline_build(RUNNING, unit=roles.unit_b)
    principal_a = headers(staff(roles.users["principal_a"]))
    superadmin = headers(staff(roles.users["superadmin"]))

    async def scenario() -> None:
        assert await Socket("/ws/pipelines/00000000-0000-0000-0000-000000000000/", superadmin).refusal() == 4404
        assert await Socket(detail_path(pipeline_b), principal_a).refusal() == 4404
        assert await Socket("/ws/pipelines/not-a-pipeline/", superadmin).refusal() is None  # no route
        socket = Socket(detail_path(pipeline_b), superadmin)
        await socket.open()
        await socket.close()

    run(scenario)


# --- Events ---------------------------------------------------------------------------------


def test_a_job_change_reaches_list_and_pipeline_subscribers_as_a_full_snapshot(roles: Roles) -> None:
    pipeline = pipeline_build(RUNNING, unit=roles.unit_a)
    user = staff(roles.users["superadmin"])
    listing, detail = Socket(LIST, headers(user)), Socket(detail_path(pipeline), headers(user))

    async def scenario() -> None:
        await listing.open()
        await detail.open()
        await database_sync_to_async(finish_running_job)(pipeline)
        expected = as_json(await database_sync_to_async(pipeline_snapshot)(pipeline_id=pipeline.pk))
        assert expected["status"] == "SUCCESS"
        for socket in (listing, detail):
            assert await socket.snapshot(of(pipeline, status="SUCCESS")) == expected
            await socket.close()

    run(scenario)


def test_an_abort_reaches_the_subscribers(roles: Roles) -> None:
    pipeline = pipeline_build([(JobType.CSV_INGEST, JobState.NOT_STARTED, None)])
    user = staff(roles.users["superadmin"])
    listing, detail = Socket(LIST, headers(user)), Socket(detail_path(pipeline), headers(user))

    async def scenario() -> None:
        await listing.open()
        await detail.open()
        outcome = await database_sync_to_async(pipeline_abort)(pipeline_id=pipeline.pk, user=user)
        assert outcome.applied
        for socket in (listing, detail):
            cancelled = await socket.snapshot(of(pipeline, status="CANCELLED"))
            assert cancelled["cancel_requested"] is True
            assert [j["result"] for j in cancelled["jobs"]] == ["CANCELLED"]
            await socket.close()

    run(scenario)


def test_the_list_socket_carries_only_the_pipelines_of_the_callers_units(roles: Roles) -> None:
    pipeline_a = pipeline_build(RUNNING, unit=roles.unit_a)
    pipeline_b = pipeline_build(RUNNING, unit=roles.unit_b, year=2024)  # one active recalc per scope
    principal_a = Socket(LIST, headers(staff(roles.users["principal_a"])))
    superadmin = Socket(LIST, headers(staff(roles.users["superadmin"])))

    async def scenario() -> None:
        await principal_a.open()
        await superadmin.open()
        # B changes first: had its snapshot passed the filter, it would arrive before A's (one
        # channel is first in, first out), whichever path (events or relay) carried it.
        await database_sync_to_async(finish_running_job)(pipeline_b)
        await database_sync_to_async(finish_running_job)(pipeline_a)
        await principal_a.snapshot(of(pipeline_a, status="SUCCESS"))
        assert str(pipeline_b.pk) not in {s["pipeline_id"] for s in principal_a.snapshots()}
        # The control: someone who sees every unit receives both.
        await superadmin.snapshot(of(pipeline_b, status="SUCCESS"))
        await superadmin.snapshot(of(pipeline_a, status="SUCCESS"))
        await principal_a.close()
        await superadmin.close()

    run(scenario)


def test_a_reconnecting_client_resyncs_from_the_rest_api(roles: Roles) -> None:
    pipeline = pipeline_build(RUNNING)
    user = staff(roles.users["superadmin"])
    browser = Client()
    browser.force_login(user)

    def rest_read() -> dict[str, Any]:
        response = browser.get(f"/api/v1/sync/pipelines/{pipeline.pk}")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    handshake = headers(user)

    async def scenario() -> None:
        first = Socket(detail_path(pipeline), handshake)
        await first.open()
        await first.close()
        # Changed while the client was away: nothing is replayed on the socket; the client's
        # re-sync is its REST read right after the new socket says hello (SPEC §5.6).
        await database_sync_to_async(finish_running_job)(pipeline, "changed while disconnected")
        again = Socket(detail_path(pipeline), handshake)
        await again.open()
        current = await database_sync_to_async(rest_read)()
        assert current["status"] == "SUCCESS"
        assert current["jobs"][1]["status_message"] == "changed while disconnected"
        assert current == as_json(await database_sync_to_async(pipeline_snapshot)(pipeline_id=pipeline.pk))
        await again.close()

    run(scenario)


# --- The relay (no REDIS_URL) ---------------------------------------------------------------


def test_a_change_that_bypasses_the_event_emitter_is_relayed_from_the_database(roles: Roles) -> None:
    pipeline = pipeline_build(RUNNING)
    user = staff(roles.users["superadmin"])
    listing, detail = Socket(LIST, headers(user)), Socket(detail_path(pipeline), headers(user))

    def write_behind_the_engines_back() -> None:
        # As another process would: committed, ``updated_at`` stamped, no pipeline_event_emit.
        IngestionJob.objects.filter(pipeline=pipeline, state=JobState.RUNNING).update(
            status_message="written elsewhere", updated_at=timezone.now()
        )

    async def scenario() -> None:
        await listing.open()
        await detail.open()
        assert RELAY.running
        await database_sync_to_async(write_behind_the_engines_back)()
        for socket in (listing, detail):
            relayed = await socket.snapshot(lambda s: s["jobs"][1]["status_message"] == "written elsewhere")
            assert relayed["pipeline_id"] == str(pipeline.pk)
            await socket.close()

    run(scenario)


def test_a_worker_process_progress_reaches_the_socket_through_the_relay(roles: Roles, processes: Processes) -> None:
    # The worker is another process with its own in-memory layer: what it publishes reaches
    # nobody here. Only the relay, reading the database, can carry its progress.
    user = staff(roles.users["superadmin"])
    handshake = headers(user)
    published_here: list[str] = []
    events.listeners.append(lambda snapshot: published_here.append(snapshot["status"]))

    async def scenario() -> None:
        listing = Socket(LIST, handshake)
        await listing.open()
        pipeline, _ = await database_sync_to_async(pipeline_create)(
            job_type=JobType.CSV_INGEST,
            scope=Scope(module_type_id=4, year=2025),
            config={"steps": 3, "step_seconds": 0.2},
        )
        processes.worker()  # python -m tests.pipelines.worker_main run_worker (the engine's test handlers)
        await listing.snapshot(of(pipeline, status="RUNNING"), timeout=60)
        final = await listing.snapshot(of(pipeline, status="SUCCESS"), timeout=60)
        assert final["progress"]["done"] is True
        assert [j["state"] for j in final["jobs"]] == ["FINISHED"]
        await listing.close()

    try:
        run(scenario)
    finally:
        events.listeners.pop()
    # This process only published the creation; RUNNING and SUCCESS came from the worker's rows.
    assert set(published_here) == {"NOT_STARTED"}


def test_one_relay_per_process_parked_while_nobody_listens(roles: Roles) -> None:
    handshake = headers(staff(roles.users["superadmin"]))

    async def scenario() -> None:
        assert not RELAY.running  # lazily started: nobody has connected on this loop yet
        sockets = [Socket(LIST, handshake) for _ in range(3)]
        for socket in sockets:
            await socket.open()
        task = RELAY.task
        assert task is not None
        assert RELAY.running
        assert len(RELAY.subscribers) == 3
        assert [t for t in asyncio.all_tasks() if t.get_name() == task.get_name()] == [task]
        for socket in sockets:
            await socket.close()
        await asyncio.wait_for(RELAY.parked.wait(), timeout=5)
        polls = RELAY.polls
        await asyncio.sleep(RELAY.tick * 4)  # an observation window, not a synchronisation
        assert RELAY.polls == polls, "a parked relay must not poll"
        again = Socket(LIST, handshake)
        await again.open()
        assert RELAY.task is task  # the same task resumes; never a second one
        deadline = time.monotonic() + 5
        while RELAY.polls == polls:
            assert time.monotonic() < deadline, "the relay did not resume"
            await asyncio.sleep(0.01)
        await again.close()

    run(scenario)


def test_no_relay_runs_with_redis(roles: Roles, settings: LazySettings) -> None:
    # Only the flag changes: the layer stays in memory, so events still flow in this process.
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    pipeline = pipeline_build(RUNNING)
    handshake = headers(staff(roles.users["superadmin"]))

    async def scenario() -> None:
        socket = Socket(LIST, handshake)
        await socket.open()
        assert not RELAY.running
        await database_sync_to_async(finish_running_job)(pipeline)
        await socket.snapshot(of(pipeline, status="SUCCESS"))
        assert not RELAY.running
        await socket.close()

    run(scenario)


def test_the_sse_stream_subscribes_to_the_relay_while_open(roles: Roles) -> None:
    from tests.pipelines.test_stream import Stream, event_data, stream_path, token_header

    pipeline = pipeline_build(RUNNING)
    token = token_header(roles, "superadmin")

    async def scenario() -> None:
        stream = Stream(application, stream_path(pipeline), token)
        assert (await stream.open())["status"] == 200
        event_data(await stream.frame())
        assert RELAY.running
        assert len(RELAY.subscribers) == 1
        await stream.close()
        assert RELAY.subscribers == set()

    run(scenario)


# --- The relay's cursor ---------------------------------------------------------------------


def test_cursor_finds_each_change_once_in_two_queries(django_assert_num_queries: Any) -> None:
    pipeline = pipeline_build(RUNNING)
    other = pipeline_build(RUNNING, year=2024)  # one active recalc per scope
    cursor = RelayCursor()  # the pipelines just built are inside its first window (the overlap)
    with django_assert_num_queries(4):  # changed rows (2), then the snapshots (2)
        first = cursor.poll()
    assert {s["pipeline_id"] for s in first} == {str(pipeline.pk), str(other.pk)}
    with django_assert_num_queries(2):
        assert cursor.poll() == []
    # a job update: its pipeline's snapshot, once
    IngestionJob.objects.filter(pipeline=pipeline, state=JobState.RUNNING).update(
        status_message="progress", updated_at=timezone.now()
    )
    changed = cursor.poll()
    assert [(s["pipeline_id"], s["jobs"][1]["status_message"]) for s in changed] == [(str(pipeline.pk), "progress")]
    assert cursor.poll() == []
    # a late commit: stamped before the newest row seen, visible only now (within the overlap)
    IngestionJob.objects.filter(pipeline=other, state=JobState.RUNNING).update(
        status_message="late", updated_at=cursor.high_water - timedelta(seconds=1)
    )
    assert [s["pipeline_id"] for s in cursor.poll()] == [str(other.pk)]
    # a pipeline row change alone counts too
    Pipeline.objects.filter(pk=other.pk).update(last_error="x", updated_at=timezone.now())
    assert [s["pipeline_id"] for s in cursor.poll()] == [str(other.pk)]


def test_cursor_window_closes_on_the_high_water_mark_when_quiet() -> None:
    pipeline_build(RUNNING)
    cursor = RelayCursor()
    cursor.poll()
    assert cursor.since() < cursor.high_water  # busy: the overlap is re-read
    cursor.poll(now=cursor.high_water + timedelta(seconds=10))
    assert cursor.since() == cursor.high_water  # quiet: nothing but newer rows
    assert cursor.poll() == []
    assert cursor.seen == {}  # and nothing left to remember
