"""Channels consumers of the engine: the server-sent-events stream of one pipeline.

(The console's websocket consumers join these in the console's own module.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from django.contrib.auth.models import AnonymousUser

from pipelines import streaming
from pipelines.events import group_for


def _token_user(headers: list[tuple[bytes, bytes]]) -> Any:
    """The user of an ``Authorization: Token <key>`` header, or None."""
    from rest_framework.authtoken.models import Token

    for name, value in headers:
        if name.lower() == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0].lower() == "token":
                token = Token.objects.select_related("user").filter(key=parts[1]).first()
                if token is not None and token.user.is_active:
                    return token.user
    return None


class PipelineStreamConsumer(AsyncHttpConsumer):
    """SSE of one pipeline: the snapshot on connect, on every change, ping every 15 s, end at terminal.

    Authenticated by the session (AuthMiddlewareStack) or a token header; scope-checked like
    GET /sync/pipelines/{id} and re-checked on every poll.
    """

    heartbeat_seconds = streaming.HEARTBEAT_SECONDS
    poll_seconds = streaming.POLL_SECONDS

    async def http_request(self, message: dict[str, Any]) -> None:
        """Hand the request to ``handle`` and, unlike the base class, keep the consumer alive.

        The base class stops the consumer as soon as ``handle`` returns; a stream must instead
        go on receiving group messages (and the client's disconnect) until it ends, when it
        sends itself ``stream.stop``.
        """
        if "body" in message:
            self.body.append(message["body"])
        if not message.get("more_body"):
            await self.handle(b"".join(self.body))
            if not getattr(self, "streaming", False):
                await self.disconnect()
                raise StopConsumer()

    async def stream_stop(self, message: dict[str, Any]) -> None:
        await self.disconnect()
        raise StopConsumer()

    async def handle(self, body: bytes) -> None:
        self.pipeline_id = str(self.scope["url_route"]["kwargs"]["pipeline_id"])
        self.closed = False
        self.last_fingerprint = ""
        self.ticker: asyncio.Task[None] | None = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            user = await database_sync_to_async(_token_user)(self.scope.get("headers", [])) or AnonymousUser()
        self.user = user
        opening = await database_sync_to_async(streaming.stream_open)(user=user, pipeline_id=self.pipeline_id)
        if opening.snapshot is None:
            headers = [(b"Content-Type", b"application/json")]
            if opening.status == 401:
                headers.append((b"WWW-Authenticate", b"Token"))
            await self.send_response(opening.status, json.dumps({"detail": opening.detail}).encode(), headers=headers)
            return
        await self.send_headers(
            headers=[
                (b"Content-Type", b"text/event-stream; charset=utf-8"),
                (b"Cache-Control", b"no-cache"),
                (b"X-Accel-Buffering", b"no"),  # nginx: do not buffer the stream
            ]
        )
        self.group = group_for(self.pipeline_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._emit(opening.snapshot)
        if not self.closed:
            self.streaming = True
            self.ticker = asyncio.ensure_future(self._tick())

    async def pipeline_snapshot(self, message: dict[str, Any]) -> None:
        """A push from ``pipelines.events`` (type ``pipeline.snapshot``)."""
        # Re-read rather than trust the pushed body: it also re-checks the caller's scope.
        snapshot = await database_sync_to_async(streaming.stream_snapshot)(user=self.user, pipeline_id=self.pipeline_id)
        await self._emit(snapshot)

    async def _tick(self) -> None:
        last_sent = time.monotonic()
        while not self.closed:
            await asyncio.sleep(min(self.poll_seconds, self.heartbeat_seconds))
            before = self.last_fingerprint
            snapshot = await database_sync_to_async(streaming.stream_snapshot)(
                user=self.user, pipeline_id=self.pipeline_id
            )
            await self._emit(snapshot)
            if self.last_fingerprint != before:
                last_sent = time.monotonic()
            elif not self.closed and time.monotonic() - last_sent >= self.heartbeat_seconds:
                await self.send_body(streaming.sse_comment(), more_body=True)
                last_sent = time.monotonic()

    async def _emit(self, snapshot: dict[str, Any] | None) -> None:
        if self.closed:
            return
        if snapshot is None:  # deleted, or no longer visible to the caller
            await self._close()
            return
        fingerprint = streaming.snapshot_fingerprint(snapshot)
        if fingerprint == self.last_fingerprint:
            return
        self.last_fingerprint = fingerprint
        done = bool(snapshot["progress"]["done"])
        if done:
            self.closed = True  # before awaiting: a concurrent push must not send after the end
        await self.send_body(streaming.sse_event(snapshot, closed=done), more_body=not done)
        if done:
            await self._stop()

    async def _close(self) -> None:
        self.closed = True
        await self.send_body(b"", more_body=False)
        await self._stop()

    async def _stop(self) -> None:
        await self._leave()
        if getattr(self, "streaming", False):
            # Ends the consumer from its own dispatch loop (a task cannot raise StopConsumer).
            await self.channel_layer.send(self.channel_name, {"type": "stream.stop"})

    async def _leave(self) -> None:
        ticker: asyncio.Task[None] | None = getattr(self, "ticker", None)
        if ticker is not None and ticker is not asyncio.current_task():
            ticker.cancel()
        if hasattr(self, "group"):
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def disconnect(self) -> None:
        self.closed = True
        await self._leave()
