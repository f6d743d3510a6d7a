"""Live-event latency: a job's committed change → a websocket client of ``/ws/pipelines/``.

Set-up per path: a real daphne (``config.asgi:application``) and a real worker (the engine's
test handler, ``tests.pipelines.worker_main run_worker``, which reports progress at a set
pace), sharing the bench database; a websocket client over TCP with a staff session cookie
and the site's Origin, as the console opens it.

- Redis path: both processes with ``REDIS_URL=redis://127.0.0.1:6379/11`` (that database
  number only, flushed before and after): the worker publishes through channels-redis.
- Relay path: no ``REDIS_URL``; daphne's database relay (``pipelines.relay``) tails the
  tables every ``TICK_SECONDS`` (0.1 s) and publishes what changed.

Latency of one event = the client's receive time − the stamp of the newest job change the
snapshot shows (the ``ts`` of the latest ``status_history`` entry, written with the same
``timezone.now()`` as the row's ``updated_at``, just before its commit), counted once per
stamp (a later snapshot showing the same stamp is a second delivery, not a new event). Same
machine, same clock. The stamp precedes the commit, so the figure errs on the slow side.

Floor (Redis path): a stamped ``pipeline.snapshot`` message sent by this process straight to
the ``pipelines`` group through channels-redis — the same daphne, consumer, layer and client,
without the database write and the snapshot read.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

from bench.context import Context
from bench.core import REDIS_DB, Figure, Services, free_port, http_answering, log, median, ms, percentile, wait_for

TARGET_MS = 250.0
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def _session_cookie(user: Any) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _newest_stamp(snapshot: dict[str, Any]) -> float | None:
    stamps = [
        datetime.fromisoformat(entry["ts"]).timestamp()
        for job in snapshot.get("jobs", [])
        for entry in job.get("status_history") or []
        if entry.get("ts")
    ]
    return max(stamps) if stamps else None


class Listener(threading.Thread):
    """A websocket client of /ws/pipelines/ recording (receive time, snapshot) pairs."""

    def __init__(self, port: int, cookie: str) -> None:
        super().__init__(daemon=True)
        from websockets.sync.client import connect
        from websockets.typing import Origin

        self.connection = connect(
            f"ws://127.0.0.1:{port}/ws/pipelines/",
            origin=Origin(f"http://127.0.0.1:{port}"),
            additional_headers={"Cookie": cookie},
            proxy=None,
            open_timeout=10,
        )
        self.hello = json.loads(self.connection.recv(timeout=10))
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                raw = self.connection.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return
            now = time.time()
            message = json.loads(raw)
            if message.get("type") == "snapshot":
                self.received.append((now, message["snapshot"]))

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.connection.close()


def _latencies(received: list[tuple[float, dict[str, Any]]], pipeline_ids: set[str]) -> list[float]:
    first_seen: dict[float, float] = {}
    for at, snapshot in received:
        if snapshot.get("pipeline_id") not in pipeline_ids:
            continue
        stamp = _newest_stamp(snapshot)
        if stamp is not None and stamp not in first_seen:
            first_seen[stamp] = at - stamp
    return list(first_seen.values())


def _redis_floor(listener: Listener, samples: int) -> list[float]:
    from asgiref.sync import async_to_sync
    from django.utils.module_loading import import_string

    layer = import_string("channels_redis.core.RedisChannelLayer")(hosts=[REDIS_URL])
    marker = "bench-floor"
    start = len(listener.received)
    for i in range(samples):
        snapshot: dict[str, Any] = {
            "pipeline_id": marker,
            "unit_id": None,
            "bench_sent": time.time(),
            "seq": i,
            "jobs": [],
        }
        async_to_sync(layer.group_send)("pipelines", {"type": "pipeline.snapshot", "snapshot": snapshot})
        time.sleep(0.05)
    time.sleep(0.5)
    return [at - s["bench_sent"] for at, s in listener.received[start:] if s.get("pipeline_id") == marker]


def _redis_available() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
        client.flushdb()  # this database number only
        return True
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def _redis_flush() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def _one_path(ctx: Context, superuser: Any, *, redis_url: str | None) -> Figure:
    from pipelines.choices import JobType
    from pipelines.models import Worker
    from pipelines.services import Scope, pipeline_create

    path = "redis" if redis_url else "relay"
    events = ctx.sizes.live_events
    from pipelines.relay import TICK_SECONDS

    # The relay publishes at most once per tick: pace the worker so each tick sees one change.
    step_seconds = 0.3 if redis_url else max(0.3, TICK_SECONDS * 1.1)
    services = Services(ctx.env, f"live-{path}")
    overrides = {"REDIS_URL": redis_url or "", "WORKER_HEARTBEAT_SECONDS": "5", "JOB_LEASE_SECONDS": "30"}
    port = free_port()
    worker_id = f"worker:bench-live-{path}:1"
    floor: list[float] = []
    try:
        services.daphne(port, **overrides)
        services.worker(worker_id, test_handlers=True, **overrides)
        wait_for(lambda: http_answering(port), timeout=60, interval=0.2, what="daphne")
        wait_for(lambda: Worker.objects.filter(pk=worker_id).exists(), timeout=60, what="the live worker")
        time.sleep(1.5)
        listener = Listener(port, _session_cookie(superuser))
        listener.start()
        try:
            pipeline, _ = pipeline_create(
                job_type=JobType.CSV_INGEST,
                scope=Scope(module_type_id=4, year=2026),
                config={"steps": events + 3, "step_seconds": step_seconds},
            )
            wait_for(
                lambda: any(
                    s.get("pipeline_id") == str(pipeline.pk) and s["progress"]["done"] for _, s in listener.received
                ),
                timeout=60 + events * step_seconds * 2,
                interval=0.1,
                what=f"the {path} pipeline's terminal snapshot",
            )
            if redis_url:
                floor = _redis_floor(listener, 40)
        finally:
            listener.close()
    finally:
        services.stop_all()
    latencies = _latencies(listener.received, {str(pipeline.pk)})
    log(f"live {path}: {len(latencies)} events, p95 {ms(percentile(latencies, 95))} ms")
    p95 = percentile(latencies, 95) * 1000
    relay_note = (
        ""
        if redis_url
        else f" Relay tick {TICK_SECONDS:g} s (pipelines.relay.TICK_SECONDS): a change waits 0–{TICK_SECONDS:g} s."
    )
    return Figure(
        key=f"live_latency:{path}",
        label=f"live event commit → websocket ({'Redis' if redis_url else 'DB relay, no Redis'}), N={len(latencies)}",
        value=round(p95, 1),
        unit="ms p95",
        ceiling=ms(percentile(floor, 95)) if floor else None,
        ceiling_label="raw group_send → client p95" if floor else "",
        target=f"p95 ≤ {TARGET_MS:g} ms",
        passed=p95 <= TARGET_MS and len(latencies) >= events,
        note=(
            f"daphne + 1 worker (test handler, progress every {step_seconds} s), client on /ws/pipelines/: "
            f"p50 {ms(median(latencies))} ms, p95 {p95:.1f} ms, max {ms(max(latencies))} ms over "
            f"{len(latencies)} distinct job changes."
            + (f" Floor: stamped group_send via channels-redis, p50 {ms(median(floor))} ms." if floor else "")
            + relay_note
        ),
        details={
            "p50_ms": ms(median(latencies)),
            "p95_ms": round(p95, 2),
            "max_ms": ms(max(latencies)),
            "events": len(latencies),
            "snapshots_received": len(listener.received),
            "floor_ms": [ms(f) for f in floor],
        },
    )


def live_figures(ctx: Context, superuser: Any) -> None:
    if _redis_available():
        try:
            ctx.add(_one_path(ctx, superuser, redis_url=REDIS_URL))
        finally:
            _redis_flush()
    else:
        ctx.add(
            Figure(
                key="live_latency:redis",
                label="live event commit → websocket (Redis)",
                value=None,
                unit="ms p95",
                target=f"p95 ≤ {TARGET_MS:g} ms",
                passed=False,
                note=f"Redis unreachable at {REDIS_URL}: NOT MEASURED",
            )
        )
    ctx.add(_one_path(ctx, superuser, redis_url=None))
