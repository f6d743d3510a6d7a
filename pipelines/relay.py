"""Live events without Redis: each web process tails the database for changed pipelines (SPEC §5.6).

Why: with ``REDIS_URL`` unset the channel layer lives in memory, one per process. In the
embedded mode (``manage.py serve``) the worker and the reconciler are other processes, so the
snapshots they publish through ``pipelines.events`` never reach the web process and its
websocket and SSE clients. With Redis every process reaches every other one, and no relay runs.

What: at most one relay task per web process, started lazily by the first live consumer that
subscribes (``relay_subscribe``: websocket consumers and the SSE stream). While anyone is
subscribed it polls every ``TICK_SECONDS`` and publishes each changed pipeline's snapshot, once
per tick, to the local layer's groups ``pipelines`` and ``pipeline.<uuid>`` — the message
``pipelines.events`` sends, so consumers cannot tell the two paths apart. When the last
subscriber leaves, the task parks on an event: no query, no timer, until someone subscribes.

Change detection (``RelayCursor.poll``; indexes ``pipeline_updated_idx`` and ``job_updated_idx``).
The engine's writes stamp ``updated_at`` (pipeline or job row) with the writer's clock; one
that does not (a lease renewal) is relayed with its pipeline's next stamped change.

1. ``since = min(high_water, previous_poll - OVERLAP_SECONDS)``, where ``high_water`` is the
   newest ``updated_at`` seen so far and ``previous_poll`` the relay's clock when it last asked.
2. Read ``(id, updated_at)`` of pipelines and ``(id, pipeline_id, updated_at)`` of jobs with
   ``updated_at > since``, newest first, each bounded by ``ROW_LIMIT``: two index range scans.
3. A row is new when its ``(table, id, updated_at)`` is not in ``seen``; the pipelines of new
   rows are the changed ones. ``seen`` becomes exactly the rows just read (``since`` never
   decreases, so a row that drops out of the window cannot come back with the same stamp).
4. Read the changed pipelines' snapshots (two queries per 100 pipelines) and publish them.

Why the overlap: a row can be stamped at T and committed later (the stamp is taken before a
lock wait, or on PostgreSQL another writer commits a newer stamp first). Rows stamped after
``high_water`` are found whatever the clocks say; a row committed after the previous poll has
a stamp > ``previous_poll - OVERLAP`` as long as its stamp-to-commit lag is under the overlap
(clocks of one host, as in the embedded mode). A late row beyond that is missed only if no
later change of its pipeline follows — and every job's terminal write follows all its others.

Cost: nothing while nobody is subscribed. Subscribed and quiet: once the overlap has passed
the last change, ``since = high_water`` and each tick is two index seeks returning no row.
Busy: the rows changed in the last ``OVERLAP + TICK`` seconds, at most ``ROW_LIMIT`` per table
(newest first: past the limit the oldest changes of that window are skipped and logged;
pushes are hints, clients re-read the REST API on connect, and the SSE stream polls too).

Ordering: a snapshot read before a commit may be delivered after a fresher one (from
``pipelines.events`` in this process); that commit's row is new to the next poll, which
publishes a snapshot at least as fresh — clients converge within a tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from pipelines.events import EVENT_TYPE, LIST_GROUP, group_for

logger = logging.getLogger(__name__)

# A change reaches the relay's clients within a tick (plus a snapshot read): 0.1 s keeps the
# commit → websocket latency at about 0.1 s p95 (make bench: live event latency, relay) for
# 20 index seeks a second per web process, and only while someone is connected.
TICK_SECONDS = 0.1
OVERLAP_SECONDS = 2.0
ROW_LIMIT = 500
SNAPSHOT_BATCH = 100


def relay_needed() -> bool:
    """True when events do not cross processes by themselves (no Redis channel layer)."""
    return not settings.REDIS_URL


class RelayCursor:
    """Where the relay is in the stream of changed rows (see the module docstring, steps 1-4)."""

    def __init__(self, *, overlap: float = OVERLAP_SECONDS, limit: int = ROW_LIMIT, now: datetime | None = None):
        self.overlap = timedelta(seconds=overlap)
        self.limit = limit
        start = now or timezone.now()
        self.high_water = start
        self.previous_poll = start
        # (table, id) → updated_at of every row read by the last poll.
        self.seen: dict[tuple[str, Any], datetime] = {}
        self.truncated = False

    def since(self) -> datetime:
        return min(self.high_water, self.previous_poll - self.overlap)

    def changed_pipeline_ids(self, *, now: datetime | None = None) -> list[UUID]:
        """Steps 1-3: the pipelines with a row changed since the last poll (two queries)."""
        from pipelines.models import IngestionJob, Pipeline

        asked_at = now or timezone.now()
        since = self.since()
        pipelines = list(
            Pipeline.objects.filter(updated_at__gt=since)
            .order_by("-updated_at")
            .values_list("pk", "pk", "updated_at")[: self.limit]
        )
        jobs = list(
            IngestionJob.objects.filter(updated_at__gt=since)
            .order_by("-updated_at")
            .values_list("pk", "pipeline_id", "updated_at")[: self.limit]
        )
        truncated = len(pipelines) == self.limit or len(jobs) == self.limit
        if truncated and not self.truncated:  # once per burst, not twice a second
            logger.info("live-event relay: over %d rows changed since %s; the oldest are not pushed", self.limit, since)
        self.truncated = truncated
        seen: dict[tuple[str, Any], datetime] = {}
        changed: dict[UUID, None] = {}  # ordered set: newest first
        high_water = self.high_water
        for table, rows in (("pipeline", pipelines), ("job", jobs)):
            for pk, pipeline_id, updated_at in rows:
                key = (table, pk)
                seen[key] = updated_at
                if self.seen.get(key) != updated_at:
                    changed[pipeline_id] = None
                high_water = max(high_water, updated_at)
        # Only once both reads succeeded: a failed poll is simply asked again.
        self.seen, self.high_water, self.previous_poll = seen, high_water, asked_at
        return list(changed)

    def poll(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """Steps 1-4: the snapshots of the pipelines changed since the last poll."""
        return snapshots_read(self.changed_pipeline_ids(now=now))


def snapshots_read(pipeline_ids: Iterable[UUID]) -> list[dict[str, Any]]:
    """Full snapshots of PIPELINE_IDS (deleted ones skipped), two queries per batch."""
    from pipelines.models import Pipeline
    from pipelines.selectors import pipeline_payloads

    ids = list(pipeline_ids)
    snapshots: list[dict[str, Any]] = []
    for start in range(0, len(ids), SNAPSHOT_BATCH):
        batch = ids[start : start + SNAPSHOT_BATCH]
        snapshots += pipeline_payloads(list(Pipeline.objects.select_related("created_by").filter(pk__in=batch)))
    return snapshots


async def snapshot_publish(layer: Any, snapshot: dict[str, Any]) -> None:
    """Send SNAPSHOT as ``pipelines.events`` would: to the list group and the pipeline's group."""
    message = {"type": EVENT_TYPE, "snapshot": snapshot}
    await layer.group_send(LIST_GROUP, message)
    await layer.group_send(group_for(snapshot["pipeline_id"]), message)


class Relay:
    """The process's relay task and who listens to it.

    Invariant: at most one task at a time, on the event loop of its subscribers (daphne has
    one). A task whose loop has gone (tests run one loop per test) is replaced, and its
    subscribers, which lived on that loop, are forgotten with it.
    """

    def __init__(self, *, tick: float = TICK_SECONDS, overlap: float = OVERLAP_SECONDS, limit: int = ROW_LIMIT):
        self.tick = tick
        self.overlap = overlap
        self.limit = limit
        self.subscribers: set[str] = set()
        self.polls = 0  # polls made by the current task (diagnostics, tests)
        self.task: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self.parked = asyncio.Event()  # set while the task waits for a subscriber

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done() and not self.task.get_loop().is_closed()

    def subscribe(self, channel_name: str) -> bool:
        """Count CHANNEL_NAME in and make sure the task runs; False when no relay is needed or possible."""
        if not relay_needed():
            return False
        loop = asyncio.get_running_loop()
        if not self.running:
            self._start(loop)
        elif self.task is not None and self.task.get_loop() is not loop:
            # Another live loop in this process (not daphne's case): its layer is not ours.
            logger.warning("live-event relay already runs on another event loop; %s gets no relayed events", loop)
            return False
        self.subscribers.add(channel_name)
        self._wanted.set()
        return True

    def unsubscribe(self, channel_name: str) -> None:
        self.subscribers.discard(channel_name)
        if not self.subscribers:
            self._wanted.clear()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.subscribers = set()
        self.polls = 0
        # Fresh events: asyncio binds one to the loop that first waits on it.
        self._wanted = asyncio.Event()
        self.parked = asyncio.Event()
        self.task = loop.create_task(self._run(), name="pipelines-live-event-relay")

    async def _run(self) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        cursor: RelayCursor | None = None
        failing = False
        while True:
            if not self.subscribers:
                # Parked: costs nothing until the next subscriber; clients re-read on connect,
                # so the changes made meanwhile are not replayed (a fresh cursor starts now).
                cursor = None
                self.parked.set()
                await self._wanted.wait()
                self.parked.clear()
            if cursor is None:
                cursor = RelayCursor(overlap=self.overlap, limit=self.limit)
            started = time.monotonic()
            snapshots: list[dict[str, Any]] = []
            try:
                snapshots = await database_sync_to_async(cursor.poll)()
                failing = False
            except Exception:
                if not failing:  # once per outage, not twice a second
                    logger.exception("live-event relay: polling the database failed; retrying every %ss", self.tick)
                failing = True
            self.polls += 1
            for snapshot in snapshots:
                try:
                    await snapshot_publish(layer, snapshot)
                except Exception:
                    logger.exception("live-event relay: could not publish pipeline %s", snapshot["pipeline_id"])
            await asyncio.sleep(max(0.0, self.tick - (time.monotonic() - started)))


RELAY = Relay()


def relay_subscribe(channel_name: str) -> bool:
    """A live consumer starts listening: relay other processes' changes to it (no-op with Redis).

    Call from the consumer's event loop; pair with ``relay_unsubscribe`` when it ends.
    """
    return RELAY.subscribe(channel_name)


def relay_unsubscribe(channel_name: str) -> None:
    RELAY.unsubscribe(channel_name)
