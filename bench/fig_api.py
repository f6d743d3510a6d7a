"""``GET /api/v1/sync/pipelines`` (limit 50) over the 100k-pipeline / 1M-job history.

Requests go through Django's test ``Client`` in this process (the whole Django stack —
middleware, session authentication of a superuser, DRF, the selector, JSON rendering — without
a network hop or an ASGI server): first page, a deep OFFSET page, a deep cursor page (the
cursor of the row at that depth), and one case per filter (state, job_type — a rare and a
common type —, module_type_id, year, has_errors, since/until, q). Each case: one warm-up
request, then ≥ 30 timed ones (quick: 10); p50/p95 of the wall time, the queries of each request
(``CaptureQueriesContext``; the count must be the same in every case).

The process first does what a web process does at start-up (``config.warmup.application_freeze``:
the loaded application is frozen out of the garbage collector's scans).

Floor (B7.5): the SQL of one request — the exact statements Django sent, captured — executed
again on a raw cursor, median of 5: what the request costs the database alone.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bench.context import Context
from bench.core import CollectorWatch, Figure, log, median, ms, percentile, profiled, wait_for
from bench.data import HISTORY_ORIGIN, HISTORY_STEP_MINUTES

TARGET_MS = 50.0


def _cases(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    from django.db import connection

    from pipelines.selectors import cursor_encode

    depth = ctx.sizes.deep_offset
    # A window inside the generated history: a tenth of it, from its middle.
    since = datetime.fromisoformat(HISTORY_ORIGIN) + timedelta(minutes=HISTORY_STEP_MINUTES * ctx.sizes.history // 2)
    until = since + timedelta(minutes=HISTORY_STEP_MINUTES * ctx.sizes.history // 10)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT created_at, id FROM pipelines_pipeline ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
            [depth - 1],
        )
        created_at, pk = cursor.fetchone()
    return [
        ("first page", {}),
        (f"offset {depth:,}", {"offset": depth}),
        (f"cursor at {depth:,}", {"cursor": cursor_encode(created_at, pk)}),
        ("state=FAILED", {"state": "FAILED"}),
        ("job_type=unit_sync (rare)", {"job_type": "unit_sync"}),
        ("job_type=aggregation", {"job_type": "aggregation"}),
        ("module_type_id=4", {"module_type_id": 4}),
        ("year=2025", {"year": 2025}),
        ("has_errors=true", {"has_errors": "true"}),
        (f"since/until ({(until - since).days} days)", {"since": since.isoformat(), "until": until.isoformat()}),
        ("q=unknown unit", {"q": "unknown unit"}),
        ("state+module+year", {"state": "SUCCESS", "module_type_id": 4, "year": 2025}),
    ]


def _sql_floor(statements: list[str], runs: int = 5) -> float:
    from django.db import connection

    totals = []
    with connection.cursor() as cursor:
        for _ in range(runs):
            started = time.perf_counter()
            for sql in statements:
                cursor.execute(sql)
                if cursor.description is not None:
                    cursor.fetchall()
            totals.append(time.perf_counter() - started)
    return median(totals)


def list_figures(ctx: Context, superuser: Any) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from config.warmup import application_freeze
    from pipelines.models import Pipeline
    from pipelines.selectors import COUNTS_QUIET_SECONDS

    # What the web entry points (config.wsgi, config.asgi) do once their application is loaded.
    frozen = application_freeze()
    log(f"list: {frozen:,} objects frozen out of the garbage collector's scans, as at a web process's start")
    client = Client()
    client.force_login(superuser)
    unfiltered = 0
    counts: dict[str, set[int]] = {}
    cold_counts: dict[str, int] = {}
    # The history as an operator browses it: nothing changed for COUNTS_QUIET_SECONDS (the data
    # was generated just now), so the counters of each filter set are counted once, then cached.
    newest = Pipeline.objects.order_by("-updated_at").values_list("updated_at", flat=True).first()
    if newest is not None:
        wait_for(
            lambda: timezone.now() - newest > timedelta(seconds=COUNTS_QUIET_SECONDS + 0.5),
            timeout=COUNTS_QUIET_SECONDS + 5,
            interval=0.2,
            what="the generated history to be quiet",
        )
    for name, params in _cases(ctx):
        url = "/api/v1/sync/pipelines?" + urlencode({"limit": 50, **params})
        times: list[float] = []
        queries: set[int] = set()
        statements: list[str] = []
        content = b""
        cold = 0.0
        watch = CollectorWatch()
        for attempt in range(1 + ctx.sizes.list_requests):
            with CaptureQueriesContext(connection) as captured, watch:
                started = time.perf_counter()
                response = client.get(url)
                elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.content[:300]!r}")
            if attempt < 1:
                cold = elapsed  # the first request of this filter set: its counters are not cached yet
                cold_counts[name] = len(captured.captured_queries)
                continue
            times.append(elapsed)
            queries.add(len(captured.captured_queries))
            statements = [q["sql"] for q in captured.captured_queries]
            content = response.content
        # Parsed once, after the timed requests: 50 parsed items are ~5,000 dicts and lists of
        # the harness's own, which would otherwise sit in the same process as the server's and
        # lengthen the collector's full collections that the requests are timed through.
        body = json.loads(content)
        items, total = len(body["items"]), body["total"]
        counts[name] = queries
        with profiled(ctx.profile_dir, f"list-{len(counts):02d}"):
            for _ in range(10 if ctx.profile_dir else 0):
                client.get(url)
        ctx.explain(f"list-{len(counts):02d}", statements)
        if not params:
            unfiltered = total
        floor = _sql_floor(statements)
        p95 = percentile(times, 95) * 1000
        log(
            f"list {name}: p50 {ms(median(times))} ms p95 {p95:.1f} ms (first request {ms(cold)} ms), "
            f"sql {ms(floor)} ms, queries {queries}, full collections {watch.pauses_ms} ms"
        )
        ctx.add(
            Figure(
                key=f"list:{name}",
                label=f"GET /sync/pipelines {name}",
                value=round(p95, 1),
                unit="ms p95",
                ceiling=ms(floor),
                ceiling_label="its SQL alone",
                target=f"p95 ≤ {TARGET_MS:g} ms",
                passed=p95 <= TARGET_MS,
                details={
                    "p50_ms": ms(median(times)),
                    "p95_ms": round(p95, 2),
                    "max_ms": ms(max(times)),
                    "first_request_ms": ms(cold),
                    "gc_full_collections_ms": watch.pauses_ms,
                    "requests": len(times),
                    "queries": sorted(queries),
                    "items": items,
                    "total": total,
                    "statements": statements,
                },
            )
        )
    distinct = set().union(*counts.values())
    cold_distinct = set(cold_counts.values())
    ctx.add(
        Figure(
            key="list:query_count",
            label="GET /sync/pipelines query count across cases",
            value=float(max(distinct)),
            unit="queries",
            target="constant",
            # constant across cases; a first request also runs the counters' GROUP BY
            passed=len(distinct) == 1 and cold_distinct <= {max(distinct), max(distinct) + 1},
            note=(
                f"Test Client in-process, session-authenticated superuser, limit 50, ≥ {ctx.sizes.list_requests} "
                f"timed requests per case after 1 warm-up, {unfiltered:,} pipelines in the unfiltered set. "
                f"As a web process does at start (config.warmup), the process first froze its {frozen:,} loaded "
                "objects out of the garbage collector's scans. "
                "Queries per request include the session and user lookups. The per-status counters of a "
                "filter set are cached while the history is quiet (pipelines.selectors.COUNTS_QUIET_SECONDS): "
                "the timed requests reuse them, the first request of each case counts (its time is in the "
                "details, first_request_ms) and sends one query more: "
                + ", ".join(f"{n}: {c}" for n, c in cold_counts.items())
                + ". Counts seen in the timed requests: "
                + ", ".join(f"{n}: {sorted(c)}" for n, c in counts.items())
            ),
        )
    )
