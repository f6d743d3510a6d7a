"""Server-sent events of one pipeline (GET /api/v1/sync/pipelines/{id}/stream).

The protocol, shared by the Channels consumer (``pipelines.consumers``, the real stream under
ASGI) and the plain view (one snapshot per connection under WSGI):

- ``event: pipeline-update`` with the full snapshot of ``pipelines.selectors`` as data, sent
  first on connect and then whenever it changes;
- a ``: ping`` comment when 15 s pass without an event, so proxies keep the connection;
- the terminal snapshot carries ``"stream_closed": true`` and the response ends after it.

Pushes from the channel layer are hints; the consumer also re-reads the snapshot every few
seconds, so a lost message (or a worker in another process without Redis) only delays it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder

from pipelines.selectors import pipeline_payloads, pipeline_visible_get
from pipelines.wiring import user_access

EVENT_NAME = "pipeline-update"
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 2.0
# Fields that change without anything an operator would see changing.
_VOLATILE = ("updated_at",)


def sse_event(snapshot: dict[str, Any], *, closed: bool) -> bytes:
    data = {**snapshot, "stream_closed": closed}
    return f"event: {EVENT_NAME}\ndata: {json.dumps(data, cls=DjangoJSONEncoder)}\n\n".encode()


def sse_comment(text: str = "ping") -> bytes:
    return f": {text}\n\n".encode()


def sse_retry(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


def snapshot_fingerprint(snapshot: dict[str, Any]) -> str:
    """What decides "changed": the snapshot without volatile fields."""
    stable = {k: v for k, v in snapshot.items() if k not in _VOLATILE}
    return json.dumps(stable, sort_keys=True, cls=DjangoJSONEncoder)


@dataclass(frozen=True)
class StreamOpening:
    """What to answer a stream request: an error (status, detail) or the first snapshot."""

    status: int
    detail: str = ""
    snapshot: dict[str, Any] | None = None


def stream_open(*, user: Any, pipeline_id: UUID | str) -> StreamOpening:
    """Check USER may stream PIPELINE_ID and read its snapshot (401, 403, 404 or 200)."""
    access = user_access(user)
    if not access.authenticated:
        return StreamOpening(401, "Authentication credentials were not provided.")
    if not access.can_view_pipelines:
        return StreamOpening(403, "You do not have permission to view pipelines.")
    try:
        key = UUID(str(pipeline_id))
    except ValueError:
        return StreamOpening(404, f"Pipeline {pipeline_id} not found")
    pipeline = pipeline_visible_get(access=access, pipeline_id=key)
    if pipeline is None:
        return StreamOpening(404, f"Pipeline {pipeline_id} not found")
    return StreamOpening(200, snapshot=pipeline_payloads([pipeline])[0])


def stream_snapshot(*, user: Any, pipeline_id: UUID | str) -> dict[str, Any] | None:
    """The current snapshot, re-checking access (a role removed mid-stream ends the stream)."""
    return stream_open(user=user, pipeline_id=pipeline_id).snapshot
