"""Channels consumers of the engine: live pipeline snapshots over SSE and websockets (SPEC §5.6).

- ``PipelineStreamConsumer``: GET /api/v1/sync/pipelines/{id}/stream, server-sent events.
- ``PipelineListSocket`` (``/ws/pipelines/``) and ``PipelineSocket`` (``/ws/pipelines/<uuid>/``):
  the operations console's websockets, for staff users with the pipelines view scope.

Every snapshot arrives as a ``pipeline.snapshot`` message on the groups ``pipelines`` and
``pipeline.<uuid>``: from ``pipelines.events`` (this process, or any process through Redis) or,
without Redis, from the per-process database relay (``pipelines.relay``), which each consumer
subscribes to while it is open. Pushes are hints: clients re-read the REST API on (re)connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from uuid import UUID

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from pipelines import streaming
from pipelines.events import LIST_GROUP, group_for
from pipelines.relay import relay_subscribe, relay_unsubscribe
from pipelines.wiring import PipelineAccess, user_access


def _token_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of an ``Authorization: Token <key>`` header, or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0].lower() == "token":
                return parts[1]
    return None


def _token_user(key: str | None) -> Any:
    """The active user whose API token is KEY, or None (no such token: never issued, or revoked)."""
    from rest_framework.authtoken.models import Token

    if key is None:
        return None
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is not None and token.user.is_active:
        return token.user
    return None


def _credentials_recheck(user: Any, token_key: str | None) -> Any:
    """USER as the database has it now, or AnonymousUser once its credentials no longer hold.

    Run before every snapshot of an open stream: a revoked token (``manage.py api_token
    --revoke``) or a deactivated account ends the stream at its next poll or push, as it turns
    the next request into a 401 — an open stream is no way around a revocation.
    """
    if not getattr(user, "is_authenticated", False):
        return user  # already refused
    if token_key is not None:
        return _token_user(token_key) or AnonymousUser()
    fresh = type(user)._default_manager.filter(pk=user.pk, is_active=True).first()
    return fresh or AnonymousUser()


class PipelineStreamConsumer(AsyncHttpConsumer):
    """SSE of one pipeline: the snapshot on connect, on every change, ping every 15 s, end at terminal.

    Authenticated by the session (AuthMiddlewareStack) or a token header; scope-checked like
    GET /sync/pipelines/{id}. Credentials and scope are re-checked on every poll and push: a
    revoked token, a deactivated account or a removed role ends the stream (it closes).
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
        self.token_key: str | None = None
        if user is None or not user.is_authenticated:
            self.token_key = _token_key(self.scope.get("headers", []))
            user = await database_sync_to_async(_token_user)(self.token_key) or AnonymousUser()
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
        relay_subscribe(self.channel_name)  # without Redis: other processes' changes, sooner than a poll
        await self._emit(opening.snapshot)
        if not self.closed:
            self.streaming = True
            self.ticker = asyncio.ensure_future(self._tick())

    def _current_snapshot(self) -> dict[str, Any] | None:
        """The snapshot as the caller may see it now: credentials, then scope, re-checked (sync)."""
        self.user = _credentials_recheck(self.user, self.token_key)
        return streaming.stream_snapshot(user=self.user, pipeline_id=self.pipeline_id)

    async def pipeline_snapshot(self, message: dict[str, Any]) -> None:
        """A push from ``pipelines.events`` (type ``pipeline.snapshot``)."""
        # Re-read rather than trust the pushed body: it also re-checks the caller's access.
        snapshot = await database_sync_to_async(self._current_snapshot)()
        await self._emit(snapshot)

    async def _tick(self) -> None:
        last_sent = time.monotonic()
        while not self.closed:
            await asyncio.sleep(min(self.poll_seconds, self.heartbeat_seconds))
            before = self.last_fingerprint
            snapshot = await database_sync_to_async(self._current_snapshot)()
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
        relay_unsubscribe(self.channel_name)  # idempotent: _leave runs on stop and on disconnect
        if hasattr(self, "group"):
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.group, self.channel_name)

    async def disconnect(self) -> None:
        self.closed = True
        await self._leave()


# Close codes of the console's websockets (4000-4999: the application's own range).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


class PipelineSocketBase(AsyncJsonWebsocketConsumer):
    """What both console websockets share: the handshake's checks, ``hello``, ping/pong, relay.

    Protocol (the console's JS is written against exactly this):
    - server → client once accepted: ``{"type": "hello", "server_time": ISO 8601}``;
    - server → client per change: ``{"type": "snapshot", "snapshot": <GET /sync/pipelines/{id} body>}``;
    - client → server ``{"type": "ping"}`` → ``{"type": "pong"}``; anything else is ignored.
    Pushes are hints: the client re-reads the REST API on connect and on every reconnect, so
    nothing is replayed here.

    Refusals complete the handshake and then close with a code, because a browser is told no
    code for a refused handshake (it sees 1006): 4401 not logged in, 4403 not staff or without
    the pipelines view scope, 4404 no such pipeline or not visible. The Origin header has been
    checked before (``AllowedHostsOriginValidator`` in ``config.asgi``): a foreign page is
    refused at the handshake. The scope is computed once, at connect: a role change applies at
    the next connection.
    """

    group = ""
    access: PipelineAccess | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        if not (user.is_active and user.is_staff):
            await self._refuse(CLOSE_FORBIDDEN)
            return
        refusal = await database_sync_to_async(self.authorize)(user)
        if refusal:
            await self._refuse(refusal)
            return
        # Joined before accepting (``groups`` is what the base class leaves on disconnect):
        # group messages wait until connect() returns, so ``hello`` is always first, and any
        # change committed after the client's REST re-read is pushed.
        self.groups = [self.group]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        relay_subscribe(self.channel_name)
        await self.send_json({"type": "hello", "server_time": timezone.now().isoformat()})

    def authorize(self, user: Any) -> int | None:
        """Set ``access`` (and ``group``); the close code refusing USER, or None (runs in a thread)."""
        self.access = user_access(user)
        if not self.access.can_view_pipelines:
            return CLOSE_FORBIDDEN
        return None

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        relay_unsubscribe(self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        # A malformed frame is ignored rather than crashing the consumer (the base class raises).
        if not text_data:
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)

    async def pipeline_snapshot(self, message: dict[str, Any]) -> None:
        """A ``pipeline.snapshot`` group message (``pipelines.events`` or ``pipelines.relay``)."""
        snapshot: dict[str, Any] = message["snapshot"]
        if self.visible(snapshot):
            await self.send_json({"type": "snapshot", "snapshot": snapshot})

    def visible(self, snapshot: dict[str, Any]) -> bool:
        return True


class PipelineListSocket(PipelineSocketBase):
    """``/ws/pipelines/``: every pipeline's snapshots (the console list), filtered by the caller's units."""

    group = LIST_GROUP

    def visible(self, snapshot: dict[str, Any]) -> bool:
        # The scope computed at connect answers without a query (SPEC §6.3: a unit-pinned
        # pipeline is invisible to a user without scope on its unit).
        return self.access is not None and self.access.can_see_unit(snapshot.get("unit_id"))


class PipelineSocket(PipelineSocketBase):
    """``/ws/pipelines/<uuid>/``: one pipeline's snapshots (its detail view)."""

    def authorize(self, user: Any) -> int | None:
        from pipelines.models import Pipeline

        refusal = super().authorize(user)
        if refusal:
            return refusal
        try:
            pipeline_id = UUID(str(self.scope["url_route"]["kwargs"]["pipeline_id"]))
        except ValueError:
            return CLOSE_NOT_FOUND
        found = list(Pipeline.objects.filter(pk=pipeline_id).values_list("unit_id", flat=True)[:1])
        # A pipeline's unit never changes: checked once here, as GET /sync/pipelines/{id} does.
        if not found or self.access is None or not self.access.can_see_unit(found[0]):
            return CLOSE_NOT_FOUND
        self.group = group_for(pipeline_id)
        return None
