"""The SSE stream of one pipeline through the Channels consumer (the ASGI path, routing included).

Transactional: the consumer reads through other threads' connections, so data must be committed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator
from django.utils import timezone

from config.asgi import application
from pipelines.choices import JobResult, JobState
from pipelines.consumers import PipelineStreamConsumer
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import pipeline_status_refresh
from tests.pipelines.api_helpers import DONE_OK, RUNNING, pipeline_build
from tests.roles import Roles

pytestmark = pytest.mark.django_db(transaction=True)


def token_header(roles: Roles, role: str) -> list[tuple[bytes, bytes]]:
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=roles.users[role])
    return [(b"authorization", f"Token {token.key}".encode())]


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


class Stream:
    """An open request to the ASGI app; ``frame()`` returns the next body chunk."""

    def __init__(self, app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.communicator = ApplicationCommunicator(app, http_scope(path, headers))
        self.more = True

    async def open(self) -> dict[str, Any]:
        await self.communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        return await self.communicator.receive_output(timeout=10)

    async def frame(self, timeout: float = 10) -> str:
        message = await self.communicator.receive_output(timeout=timeout)
        assert message["type"] == "http.response.body"
        self.more = message.get("more_body", False)
        return bytes(message["body"]).decode()

    async def close(self) -> None:
        await self.communicator.send_input({"type": "http.disconnect"})
        await self.communicator.wait(timeout=5)


def event_data(frame: str) -> dict[str, Any]:
    assert frame.startswith("event: pipeline-update\ndata: "), frame
    data: dict[str, Any] = json.loads(frame.split("data: ", 1)[1])
    return data


def run(coroutine: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(coroutine)()


def stream_path(pipeline: Pipeline) -> str:
    return f"/api/v1/sync/pipelines/{pipeline.pk}/stream"


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("standard", 403), ("principal_b", 404)])
def test_refusals_before_the_stream_opens(roles: Roles, role: str, code: int) -> None:
    pipeline = pipeline_build(RUNNING, unit=roles.unit_a)
    headers = token_header(roles, role) if role != "anonymous" else []

    async def scenario() -> None:
        stream = Stream(application, stream_path(pipeline), headers)
        start = await stream.open()
        assert start["status"] == code
        body = json.loads(await stream.frame())
        assert "detail" in body
        if code == 401:
            assert (b"WWW-Authenticate", b"Token") in start["headers"]

    run(scenario)


def test_snapshot_on_connect_on_change_and_closed_after_the_terminal_one(roles: Roles) -> None:
    pipeline = pipeline_build(RUNNING, unit=roles.unit_a)
    running = IngestionJob.objects.get(pipeline=pipeline, state=JobState.RUNNING)

    def finish() -> None:
        IngestionJob.objects.filter(pk=running.pk).update(
            state=JobState.FINISHED,
            result=JobResult.SUCCESS,
            finished_at=timezone.now(),
            lease_owner=None,
            lease_expires_at=None,
            status_message="recalculated",
            closed_fan_in=True,  # as if it coalesced into an active aggregation
        )
        pipeline_status_refresh(pipeline_id=pipeline.pk)  # publishes to the group at commit

    headers = token_header(roles, "principal_a")

    async def scenario() -> None:
        stream = Stream(application, stream_path(pipeline), headers)
        start = await stream.open()
        assert start["status"] == 200
        assert (b"Content-Type", b"text/event-stream; charset=utf-8") in start["headers"]
        first = event_data(await stream.frame())
        assert (first["status"], first["stream_closed"], stream.more) == ("RUNNING", False, True)
        await database_sync_to_async(finish)()
        # a poll may see the finished job a moment before the pipeline's status follows it
        last = event_data(await stream.frame())
        while stream.more:
            assert last["stream_closed"] is False
            last = event_data(await stream.frame())
        assert (last["status"], last["stream_closed"]) == ("SUCCESS", True)
        assert last["jobs"][1]["status_message"] == "recalculated"
        assert stream.more is False

    run(scenario)


def test_a_terminal_pipeline_streams_one_snapshot_and_ends(roles: Roles) -> None:
    pipeline = pipeline_build(DONE_OK)

    headers = token_header(roles, "backoffice")

    async def scenario() -> None:
        stream = Stream(application, stream_path(pipeline), headers)
        assert (await stream.open())["status"] == 200
        data = event_data(await stream.frame())
        assert (data["status"], data["stream_closed"], stream.more) == ("SUCCESS", True, False)

    run(scenario)


class FastConsumer(PipelineStreamConsumer):
    heartbeat_seconds = 0.3
    poll_seconds = 0.1


def test_heartbeat_comment_when_nothing_changes_and_polling_catches_unpushed_changes(roles: Roles) -> None:
    pipeline = pipeline_build(RUNNING)
    app = FastConsumer.as_asgi()

    def finish_without_push() -> None:
        # written behind the engine's back: no event is published, the poll must notice
        IngestionJob.objects.filter(pipeline=pipeline, state=JobState.RUNNING).update(status_message="silent change")

    headers = token_header(roles, "superadmin")

    async def scenario() -> None:
        communicator = Stream(app, stream_path(pipeline), headers)
        communicator.communicator.scope["url_route"] = {"kwargs": {"pipeline_id": str(pipeline.pk)}}
        communicator.communicator.scope["user"] = roles.users["superadmin"]
        assert (await communicator.open())["status"] == 200
        event_data(await communicator.frame())
        assert await communicator.frame(timeout=5) == ": ping\n\n"
        await database_sync_to_async(finish_without_push)()
        frame = await communicator.frame(timeout=5)
        while frame == ": ping\n\n":
            frame = await communicator.frame(timeout=5)
        assert event_data(frame)["jobs"][1]["status_message"] == "silent change"
        await communicator.close()

    run(scenario)
