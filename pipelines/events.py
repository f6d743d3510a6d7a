"""Live events: the one call site that publishes a pipeline's state (SPEC §5.6).

Every committed job or pipeline change calls ``pipeline_event_emit``. At commit it builds a
full snapshot and sends it to the Channels groups ``pipelines`` and ``pipeline.<uuid>``.
Pushes are hints (a client re-reads the REST API on connect), so a failed send is logged,
never raised into the write that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from django.db import transaction

from pipelines.db import DATA_ALIAS

logger = logging.getLogger(__name__)

LIST_GROUP = "pipelines"
EVENT_TYPE = "pipeline.snapshot"

# In-process observers (tests, the embedded server's diagnostics); called with each snapshot.
listeners: list[Callable[[dict[str, Any]], None]] = []


def group_for(pipeline_id: UUID | str) -> str:
    return f"pipeline.{pipeline_id}"


def pipeline_event_emit(pipeline_id: UUID, *, using: str = DATA_ALIAS) -> None:
    """Publish PIPELINE_ID's snapshot once the current transaction commits (now, if none is open)."""
    transaction.on_commit(lambda: _publish(pipeline_id, using), using=using)


def _publish(pipeline_id: UUID, using: str) -> None:
    from pipelines.selectors import pipeline_snapshot

    try:
        snapshot = pipeline_snapshot(pipeline_id=pipeline_id, using=using)
        if snapshot is None:
            return
        for listener in listeners:
            listener(snapshot)
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": EVENT_TYPE, "snapshot": snapshot}
        async_to_sync(layer.group_send)(LIST_GROUP, message)
        async_to_sync(layer.group_send)(group_for(pipeline_id), message)
    except Exception:
        logger.exception("could not publish the snapshot of pipeline %s", pipeline_id)
