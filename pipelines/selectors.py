"""Reads of the pipelines engine."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.core.cache import cache
from django.db import connections
from django.db.models import BooleanField, Count, F, Func, Q, QuerySet, Subquery, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from psycopg import sql

from pipelines import rules
from pipelines.choices import ACTIVE_JOB_STATES, EntityType, JobState, PipelineStatus, WorkerKind
from pipelines.db import DATA_ALIAS, is_postgres
from pipelines.models import IngestionJob, Pipeline, Worker
from pipelines.wiring import Labels, PipelineAccess, domain_labels

JOB_VIEW_FIELDS = (
    "id",
    "parent_id",
    "job_type",
    "state",
    "result",
    "status_message",
    "started_at",
    "finished_at",
    "closed_fan_in",
)


def job_views(jobs: QuerySet[IngestionJob] | list[dict[str, Any]]) -> list[rules.JobView]:
    """The rules' view of jobs, from a queryset (one query) or rows already read."""
    rows = jobs.values(*JOB_VIEW_FIELDS) if isinstance(jobs, QuerySet) else jobs
    return [rules.JobView(**{name: row[name] for name in JOB_VIEW_FIELDS}) for row in rows]


SNAPSHOT_JOB_FIELDS = (
    *JOB_VIEW_FIELDS,
    "pipeline_id",
    "attempts",
    "max_attempts",
    "lease_owner",
    "module_type_id",
    "data_entry_type_id",
    "year",
    "unit_id",
    "created_at",
    "cancel_requested_at",
    "status_history",
    "meta",
)
# The parts of a job's meta that lists and live snapshots carry (the rest, config and the row
# errors, is read from GET /sync/jobs/{id}): small, and enough for the console's row expand.
SNAPSHOT_META_KEYS = ("provider_name", "filters", "phases", "progress", "processed_file_path")
SNAPSHOT_STATS_KEYS = (
    "rows_processed",
    "rows_with_factors",
    "rows_without_factors",
    "rows_skipped",
    "row_errors_count",
    "inserted",
    "replaced",
    "factors_upserted",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _label(labels: Labels, kind: str, value: int | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    name, title = labels.get(kind, {}).get(value, (None, None))
    return name, title


def _job_meta_summary(meta: dict[str, Any]) -> dict[str, Any]:
    summary = {key: meta[key] for key in SNAPSHOT_META_KEYS if key in meta}
    stats = meta.get("stats")
    if isinstance(stats, dict):
        summary["stats"] = {key: stats[key] for key in SNAPSHOT_STATS_KEYS if key in stats}
    first = rules.first_row_error(meta)
    if first:
        summary["first_row_error"] = first
    return summary


def job_payload(job: dict[str, Any], *, labels: Labels, full_meta: bool = False) -> dict[str, Any]:
    """One job as the API, the console and live events show it."""
    det_name, det_title = _label(labels, "data_entry_type", job["data_entry_type_id"])
    started, finished = job["started_at"], job["finished_at"]
    meta = job.get("meta") or {}
    return {
        "job_id": job["id"],
        "parent_id": job["parent_id"],
        "job_type": job["job_type"],
        "state": job["state"],
        "result": job["result"],
        "status_message": job["status_message"],
        "module_type_id": job["module_type_id"],
        "data_entry_type_id": job["data_entry_type_id"],
        "data_entry_type_label": det_name,
        "data_entry_type_title": det_title,
        "year": job["year"],
        "attempts": job["attempts"],
        "max_attempts": job["max_attempts"],
        "worker": job["lease_owner"],
        "cancel_requested": job["cancel_requested_at"] is not None,
        "created_at": _iso(job["created_at"]),
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_seconds": (finished - started).total_seconds() if started and finished else None,
        "status_history": job["status_history"] or [],
        "meta": meta if full_meta else _job_meta_summary(meta),
    }


def pipeline_payloads(pipelines: Sequence[Pipeline], *, using: str = DATA_ALIAS) -> list[dict[str, Any]]:
    """PIPELINES (created_by selected) as full snapshots: one query for all their jobs.

    The same shape serves the list, the detail and the live events (SPEC §5.6: a snapshot,
    never a delta), so a client can replace a row with whatever it received last.
    """
    labels = domain_labels()
    jobs_by_pipeline: dict[UUID, list[dict[str, Any]]] = {p.pk: [] for p in pipelines}
    if pipelines:
        jobs = IngestionJob.objects.using(using).filter(pipeline_id__in=list(jobs_by_pipeline))
        jobs = jobs.order_by("pipeline_id", "id")
        for row in _snapshot_job_rows(jobs):
            jobs_by_pipeline[row["pipeline_id"]].append(row)
    return [
        _pipeline_payload(p, job_views(rows), [job_payload(row, labels=labels) for row in rows], labels)
        for p in pipelines
        for rows in (jobs_by_pipeline[p.pk],)
    ]


def pipeline_list_payloads(pipelines: Sequence[Pipeline], *, using: str = DATA_ALIAS) -> list[dict[str, Any]]:
    """``pipeline_payloads(PIPELINES)`` for a list page: on PostgreSQL its jobs come rendered.

    A page of 50 pipelines holds ~450 jobs (300 KB of JSON). Built as Python objects they cost
    most of the request, and the garbage collector's pauses make its tail. PostgreSQL builds each
    job's JSON in the jobs query instead (``_JOBS_RENDERED_SQL``: the fields of ``job_payload``,
    whose output it must equal — ``tests/pipelines/test_rendered_jobs.py``); ``jobs`` is then an
    ``orjson.Fragment`` that the API's renderer (``config.renderers.FastJSONRenderer``) writes as is.
    Only the columns the status rules read become Python values. SQLite: ``pipeline_payloads``.
    """
    if not pipelines or not is_postgres(using):
        return pipeline_payloads(pipelines, using=using)
    labels = domain_labels()
    titles = {str(k): list(v) for k, v in labels.get("data_entry_type", {}).items()}
    views: dict[UUID, list[rules.JobView]] = {p.pk: [] for p in pipelines}
    rendered: dict[UUID, list[str]] = {p.pk: [] for p in pipelines}
    params: dict[str, Any] = {
        "ids": list(views),
        "labels": orjson.dumps(titles).decode(),
        "space": PY_WHITESPACE,
    }
    with connections[using].cursor() as cursor:
        cursor.execute(_JOBS_RENDERED_SQL, params)
        for pipeline_id, pk, parent, job_type, state, result, message, started, finished, closed, payload in cursor:
            views[pipeline_id].append(
                rules.JobView(
                    pk, parent, job_type, state, result, message, _timestamp(started), _timestamp(finished), closed
                )
            )
            rendered[pipeline_id].append(payload)
    return [
        _pipeline_payload(p, views[p.pk], orjson.Fragment("[" + ",".join(rendered[p.pk]) + "]"), labels)
        for p in pipelines
    ]


# What Python's str.strip() removes (str.isspace(); tests/pipelines/test_rendered_jobs.py checks
# the list), for btrim() to strip the same characters as rules.first_row_error.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)
# JSON values Python treats as false (``value or default``), as jsonb.
_FALSY = sql.SQL("('null'::jsonb, 'false'::jsonb, '0'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{}'::jsonb)")


def _iso_sql(column: str) -> sql.Composable:
    """``datetime.isoformat()`` of a UTC timestamp: microseconds only when there are any."""
    return sql.SQL(
        "replace(to_char(j.{} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00'"
    ).format(sql.Identifier(column))


def _picked_sql(obj: sql.Composable, keys: Sequence[str]) -> sql.Composable:
    """``{key: OBJ[key] for key in KEYS if key in OBJ}``: one term per key."""
    term = sql.SQL("CASE WHEN {obj} ? {key} THEN jsonb_build_object({key}, {obj} -> {key}) ELSE '{{}}' END")
    return sql.SQL("({})").format(sql.SQL(" || ").join(term.format(obj=obj, key=sql.Literal(key)) for key in keys))


# rules.first_row_error(meta): the first row error with a reason, in meta then in meta.stats,
# as "row R, column C: reason" (for the shapes the providers write: row a number, column and
# reason text; other junk is skipped the same way). Only jobs that hold row errors run it.
_FIRST_ROW_ERROR_SQL = sql.SQL("""CASE WHEN j.meta ? 'row_errors' OR j.meta -> 'stats' ? 'row_errors' THEN (
  SELECT concat_ws(': ', nullif(concat_ws(', ',
           CASE WHEN jsonb_typeof(x.e -> 'row') <> 'null' THEN 'row ' || (x.e ->> 'row') END,
           CASE WHEN (x.e -> 'column') NOT IN {falsy} THEN 'column ' || (x.e ->> 'column') END), ''),
         btrim(x.e ->> 'reason', %(space)s))
  FROM (SELECT 1 AS n, j.meta -> 'row_errors' AS a UNION ALL SELECT 2, j.meta -> 'stats' -> 'row_errors') src
  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(src.a) = 'array' THEN src.a ELSE '[]' END)
       WITH ORDINALITY AS x(e, i)
  WHERE jsonb_typeof(x.e) = 'object' AND (x.e -> 'reason') NOT IN {falsy}
    AND btrim(x.e ->> 'reason', %(space)s) <> ''
  ORDER BY src.n, x.i LIMIT 1) END""").format(falsy=_FALSY)

_META_SUMMARY_SQL = sql.SQL("""CASE WHEN jsonb_typeof(j.meta) <> 'object' THEN '{{}}'::jsonb ELSE
  {picked}
  || CASE WHEN jsonb_typeof(j.meta -> 'stats') = 'object'
       THEN jsonb_build_object('stats', {stats}) ELSE '{{}}' END
  || jsonb_strip_nulls(jsonb_build_object('first_row_error', nullif({first_row_error}, '')))
END""").format(
    picked=_picked_sql(sql.SQL("j.meta"), SNAPSHOT_META_KEYS),
    stats=_picked_sql(sql.SQL("(j.meta -> 'stats')"), SNAPSHOT_STATS_KEYS),
    first_row_error=_FIRST_ROW_ERROR_SQL,
)

# The page's jobs: the columns of rules.JobView, then job_payload(job) as JSON text (same keys,
# same order, same values). Identifiers are the model's own; every value is a parameter.
_JOBS_RENDERED_SQL = sql.SQL("""
SELECT j.pipeline_id, j.id, j.parent_id, j.job_type, j.state, j.result, j.status_message,
       j.started_at::text, j.finished_at::text, j.closed_fan_in, row_to_json(payload)::text
FROM {table} j
CROSS JOIN LATERAL (SELECT %(labels)s::jsonb -> (j.data_entry_type_id::text) AS det) label
CROSS JOIN LATERAL (
  SELECT j.id AS job_id, j.parent_id AS parent_id, j.job_type AS job_type, j.state AS state,
         j.result AS result, j.status_message AS status_message,
         j.module_type_id AS module_type_id, j.data_entry_type_id AS data_entry_type_id,
         label.det ->> 0 AS data_entry_type_label, label.det ->> 1 AS data_entry_type_title,
         j.year AS year, j.attempts AS attempts, j.max_attempts AS max_attempts,
         j.lease_owner AS worker, j.cancel_requested_at IS NOT NULL AS cancel_requested,
         {created_at} AS created_at, {started_at} AS started_at, {finished_at} AS finished_at,
         extract(epoch FROM j.finished_at - j.started_at)::float8 AS duration_seconds,
         CASE WHEN j.status_history IN {falsy} THEN '[]'::jsonb ELSE j.status_history END AS status_history,
         {meta} AS meta
) payload
WHERE j.pipeline_id = ANY(%(ids)s)
ORDER BY j.pipeline_id, j.id
""").format(
    table=sql.Identifier(IngestionJob._meta.db_table),
    created_at=_iso_sql("created_at"),
    started_at=_iso_sql("started_at"),
    finished_at=_iso_sql("finished_at"),
    falsy=_FALSY,
    meta=_META_SUMMARY_SQL,
)


_JSON_FIELDS = ("status_history", "meta")
_TIME_FIELDS = ("started_at", "finished_at", "created_at", "cancel_requested_at")
_TEXT = "text_"


def _snapshot_job_rows(jobs: QuerySet[IngestionJob]) -> Iterator[dict[str, Any]]:
    """SNAPSHOT_JOB_FIELDS of JOBS, as ``values()`` gives them, decoded at a third of the cost.

    A list page reads ~450 jobs. Django decodes their JSON with the standard library and their
    timestamps with psycopg's pure-Python loader (its time-zone wrapper); read as text, orjson
    and ``datetime.fromisoformat`` (both C) make the same values — UTC-aware datetimes, the
    dicts and lists that were stored — for the list's largest cost after its counters.
    """
    special = {*_JSON_FIELDS, *_TIME_FIELDS}
    plain = [name for name in SNAPSHOT_JOB_FIELDS if name not in special]
    as_text = {_TEXT + name: Cast(name, output_field=TextField()) for name in (*_JSON_FIELDS, *_TIME_FIELDS)}
    for row in jobs.values(*plain, **as_text):
        for name in _JSON_FIELDS:
            text = row.pop(_TEXT + name)
            row[name] = None if text is None else orjson.loads(text)
        for name in _TIME_FIELDS:
            row[name] = _timestamp(row.pop(_TEXT + name))
        yield row


def _timestamp(text: str | None) -> datetime | None:
    """A timestamp column read as text: PostgreSQL's (with its offset) or SQLite's (naive UTC)."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _author(pipeline: Pipeline) -> str | None:
    user = pipeline.created_by
    if user is None:
        return None
    full = f"{user.first_name} {user.last_name}".strip()
    return str(getattr(user, "display_name", "") or full or user.email or user.get_username())


def _pipeline_payload(
    pipeline: Pipeline, views: Sequence[rules.JobView], jobs: list[dict[str, Any]] | orjson.Fragment, labels: Labels
) -> dict[str, Any]:
    """PIPELINE's snapshot; VIEWS are its jobs in id order, JOBS their payloads (or their JSON)."""
    verdict = rules.pipeline_verdict(views, expected_recalc=pipeline.expected_recalc)
    root = views[0] if views else None
    module_name, module_title = _label(labels, "module", pipeline.module_type_id)
    det_name, det_title = _label(labels, "data_entry_type", pipeline.data_entry_type_id)
    return {
        "pipeline_id": str(pipeline.pk),
        "job_type": pipeline.kind,
        "status": pipeline.status,
        "has_errors": pipeline.has_errors,
        "is_orphan": False,  # every job belongs to a pipeline here (the reference had orphans)
        "entity_type": pipeline.entity_type,
        "target_type": pipeline.target_type,
        "ingestion_method": pipeline.ingestion_method,
        "module_type_id": pipeline.module_type_id,
        "module_label": module_name,
        "module_title": module_title,
        "data_entry_type_id": pipeline.data_entry_type_id,
        "data_entry_type_label": det_name,
        "data_entry_type_title": det_title,
        "year": pipeline.year,
        "unit_id": pipeline.unit_id,
        "unit_institutional_id": pipeline.unit_code or None,
        "author": _author(pipeline),
        "status_message": root.status_message if root else "",
        "last_error": pipeline.last_error,
        "job_count": len(views),
        "error_count": verdict.error_count,
        "latest_job_id": views[-1].id if views else None,
        "created_at": _iso(pipeline.created_at),
        "started_at": _iso(pipeline.started_at),
        "finished_at": _iso(pipeline.finished_at),
        "updated_at": _iso(pipeline.updated_at),
        "cancel_requested": pipeline.cancel_requested_at is not None,
        "progress": {
            "phase": verdict.phase,
            "phases_total": verdict.phases_total,
            "phase_label": verdict.phase_label,
            "done": pipeline.is_terminal,
            "has_error": pipeline.has_errors,
            "status": pipeline.status,
        },
        "jobs": jobs,
    }


def pipeline_snapshot(*, pipeline_id: UUID | str, using: str = DATA_ALIAS) -> dict[str, Any] | None:
    """A full snapshot of one pipeline (never a delta), as pushed live and served by the API.

    Two queries: the pipeline row (with its author) and its jobs.
    """
    pipeline = Pipeline.objects.using(using).select_related("created_by").filter(pk=pipeline_id).first()
    if pipeline is None:
        return None
    return pipeline_payloads([pipeline], using=using)[0]


def system_health(*, now: Any = None) -> dict[str, Any]:
    """Database reachable, live workers, last reconciler sweep (GET /api/v1/health).

    Healthy = the database answers and, among the registered processes, at least one worker
    and one reconciler heartbeated within three of their periods. Three queries at most.
    """
    now = now or timezone.now()
    worker_cutoff = now - timedelta(seconds=3 * max(settings.WORKER_HEARTBEAT_SECONDS, settings.WORKER_POLL_SECONDS))
    sweep_cutoff = now - timedelta(seconds=3 * settings.PIPELINE_RECONCILER_INTERVAL_SECONDS)
    rows = list(Worker.objects.values_list("kind", "last_heartbeat_at", "git_sha", "version"))
    live_workers = [r for r in rows if r[0] == WorkerKind.WORKER and r[1] >= worker_cutoff]
    sweeps = [r[1] for r in rows if r[0] == WorkerKind.RECONCILER]
    last_sweep = max(sweeps, default=None)
    versions = sorted({f"{r[3]}@{r[2]}" if r[2] else r[3] for r in live_workers})
    checks = {
        "database": True,
        "workers": len(live_workers) > 0,
        "reconciler": last_sweep is not None and last_sweep >= sweep_cutoff,
    }
    return {
        "healthy": all(checks.values()),
        "checks": checks,
        "live_workers": len(live_workers),
        "worker_versions": versions,
        "mixed_versions": len(versions) > 1,
        "last_reconciler_sweep": last_sweep.isoformat() if last_sweep else None,
        "checked_at": now.isoformat(),
    }


# --- Lists (GET /sync/pipelines, the console) --------------------------------------------------


@dataclass(frozen=True)
class PipelineFilters:
    """The list filters of SPEC §6.2; every one optional. ``status`` is a PipelineStatus name."""

    status: str | None = None
    job_type: str | None = None
    module_type_id: int | None = None
    year: int | None = None
    has_errors: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""


def pipelines_visible(*, access: PipelineAccess, using: str = DATA_ALIAS) -> QuerySet[Pipeline]:
    """The pipelines ACCESS may see: all, or the unpinned ones plus those of its units."""
    pipelines = Pipeline.objects.using(using).all()
    if not access.can_view_pipelines:
        return pipelines.none()
    unit_ids = access.visible_unit_ids()
    if unit_ids is None:
        return pipelines
    return pipelines.filter(Q(unit_id__isnull=True) | Q(unit_id__in=sorted(unit_ids)))


def pipelines_filter(pipelines: QuerySet[Pipeline], filters: PipelineFilters) -> QuerySet[Pipeline]:
    """Apply FILTERS except ``status`` (the per-status counters are computed over this set).

    - ``job_type``: the root is of that type or any job of the pipeline is (a csv pipeline
      contains an aggregation), as in the reference;
    - ``module_type_id``/``year``: the pipeline's own scope (its root's);
    - ``since``/``until``: creation time, inclusive bounds;
    - ``q``: case-insensitive substring of any job's message (the last error is one), or the
      unit code.
    """
    if filters.job_type:
        # job_types holds the bits of every job type the pipeline has (written with its status),
        # so the filter is read from the covering index rather than an EXISTS per pipeline.
        bit = rules.JOB_TYPE_BITS.get(filters.job_type, 0)
        pipelines = pipelines.alias(has_type=F("job_types").bitand(bit)).filter(
            Q(kind=filters.job_type) | Q(has_type__gt=0)
        )
    if filters.module_type_id is not None:
        pipelines = pipelines.filter(module_type_id=filters.module_type_id)
    if filters.year is not None:
        pipelines = pipelines.filter(year=filters.year)
    if filters.has_errors is not None:
        pipelines = pipelines.filter(has_errors=filters.has_errors)
    if filters.since is not None:
        pipelines = pipelines.filter(created_at__gte=filters.since)
    if filters.until is not None:
        pipelines = pipelines.filter(created_at__lte=filters.until)
    if filters.q:
        pipelines = pipelines.filter(_q_matches(filters.q))
    return pipelines


def _q_matches(q: str) -> Q:
    """``q`` of the list: in the messages the pipeline's status refresh stored (search_text), in
    the live message of one of its queued or running jobs, or equal to its unit code.

    The terms are ORed on the pipelines table alone, so PostgreSQL can either walk the list's
    index until the page is full (a common term) or OR three index scans (a rare one: the
    trigram index of search_text, the unit code's, and the primary key for the active jobs'
    matches). Those matches are an ``ARRAY(SELECT …)``, computed once from the partial index
    of active jobs: a plain ``IN (SELECT …)`` inside an OR is a per-row filter, which rules out
    the index scans and walks the whole history when the term is rare.
    """
    live = IngestionJob.objects.filter(state__in=ACTIVE_JOB_STATES, status_message__icontains=q).values("pipeline_id")
    stored = Q(search_text__icontains=q) | Q(unit_code__iexact=q)
    if not is_postgres():
        return stored | Q(pk__in=live)
    return stored | Q(_AnyOfArray(F("pk"), ArraySubquery(live)))


class _AnyOfArray(Func):
    """``LHS = ANY(ARRAY(SELECT …))``: one array computed once, indexable like a literal list."""

    arg_joiner = " = ANY("
    template = "%(expressions)s)"
    output_field = BooleanField()
    conditional = True


def pipeline_status_counts(pipelines: QuerySet[Pipeline]) -> dict[str, int]:
    """Pipelines per status over the whole set (one GROUP BY query), every status present."""
    counts = dict.fromkeys(PipelineStatus.values, 0)
    for status, count in pipelines.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n"):
        counts[status] = count
    return counts


@dataclass(frozen=True)
class PipelinePage:
    items: list[dict[str, Any]]
    total: int
    counts: dict[str, int]
    next_cursor: str | None


class InvalidCursor(ValueError):
    pass


def cursor_encode(created_at: datetime, pk: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, pk = json.loads(raw)
        return datetime.fromisoformat(created), UUID(pk)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("cursor: not a cursor returned by this endpoint") from exc


# The per-status counters of a filtered set are an O(set) GROUP BY (100k pipelines: 25–45 ms
# of SQL on the 2-core bench box, half the list's budget). They are cached per process, keyed
# by the caller's scope, the filters and the newest pipeline change (max updated_at, read with
# the page at no extra query): every status write stamps updated_at, and pipelines are never
# deleted, so a new change means a new key. A change still uncommitted when the key was read
# may carry an older stamp than a committed one; so the cache is used only once the newest
# change is COUNTS_QUIET_SECONDS old — an engine write commits within milliseconds of its
# stamp (the relay relies on the same bound, OVERLAP_SECONDS). While pipelines change, every
# request counts afresh.
COUNTS_QUIET_SECONDS = 5.0
COUNTS_CACHE_SECONDS = 300
COUNTS_CACHE_PREFIX = "pipelines:counts:"


def pipeline_page(
    *, access: PipelineAccess, filters: PipelineFilters, limit: int, offset: int = 0, cursor: str | None = None
) -> PipelinePage:
    """One page of pipelines, newest first, with the per-status counters of the filtered set.

    Queries, whatever the page size: the page (with authors and the newest change), the
    counters (one GROUP BY, unless cached: see COUNTS_QUIET_SECONDS), the page's jobs.
    ``total`` is derived from the counters. With CURSOR, the page starts after the row it
    encodes (keyset on the (created_at, id) index: as fast at any depth); otherwise at OFFSET.
    """
    filtered = pipelines_filter(pipelines_visible(access=access), filters)
    page = filtered.filter(status=filters.status) if filters.status else filtered
    page = page.order_by("-created_at", "-id")
    if cursor:
        created, pk = cursor_decode(cursor)
        # (created_at, id) < (created, pk), spelled so that its first term bounds the index
        # range: an OR alone is read as a filter over the whole index.
        page = page.filter(Q(created_at__lte=created), Q(created_at__lt=created) | Q(id__lt=pk))
        offset = 0
    # Deferred join: find the page's ids by walking the covering index alone (index-only: it
    # holds every scalar filter column), then read those rows. Read whole rows, the walk would
    # fetch each row it skips — OFFSET rows, or the ~250 rows per match of a rare job type
    # (job_type=unit_sync: 12,600 heap fetches for one page, 24 ms; index-only, a few ms).
    window = page.values("pk")[offset : offset + limit + 1]
    # Each row also carries the newest change of all pipelines (the counters' cache key).
    newest_change = Subquery(Pipeline.objects.order_by("-updated_at").values("updated_at")[:1])
    rows = list(
        Pipeline.objects.filter(pk__in=window)
        .select_related("created_by")
        .annotate(newest_change=newest_change)
        .order_by("-created_at", "-id")
    )
    counts = _status_counts_cached(filtered, access=access, filters=filters, newest=_newest(rows))
    total = counts.get(filters.status, 0) if filters.status else sum(counts.values())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor_encode(rows[-1].created_at, rows[-1].pk) if more and rows else None
    return PipelinePage(items=pipeline_list_payloads(rows), total=total, counts=counts, next_cursor=next_cursor)


def _newest(rows: Sequence[Pipeline]) -> datetime | None:
    value = getattr(rows[0], "newest_change", None) if rows else None
    return value if isinstance(value, datetime) else None


def _status_counts_cached(
    filtered: QuerySet[Pipeline], *, access: PipelineAccess, filters: PipelineFilters, newest: datetime | None
) -> dict[str, int]:
    """``pipeline_status_counts(filtered)``, from the cache when nothing changed for a while."""
    if newest is None or newest > timezone.now() - timedelta(seconds=COUNTS_QUIET_SECONDS):
        return pipeline_status_counts(filtered)
    units = access.visible_unit_ids()
    scope = None if units is None else sorted(units)
    digest = hashlib.sha256(repr((scope, filters, newest.isoformat())).encode()).hexdigest()
    key = COUNTS_CACHE_PREFIX + digest
    counts = cache.get(key)
    if not isinstance(counts, dict):
        counts = pipeline_status_counts(filtered)
        cache.set(key, counts, COUNTS_CACHE_SECONDS)
    return counts


def pipeline_visible_get(*, access: PipelineAccess, pipeline_id: UUID) -> Pipeline | None:
    """The pipeline, or None when it does not exist or ACCESS may not see it (both answer 404)."""
    pipeline = Pipeline.objects.select_related("created_by").filter(pk=pipeline_id).first()
    if pipeline is None or not access.can_see_unit(pipeline.unit_id):
        return None
    return pipeline


def job_visible_get(*, access: PipelineAccess, job_id: int) -> dict[str, Any] | None:
    """One job with its whole meta (config, stats, row errors), or None when not visible."""
    row = IngestionJob.objects.filter(pk=job_id).values(*SNAPSHOT_JOB_FIELDS, "lease_expires_at").first()
    if row is None or not access.can_see_unit(row["unit_id"]):
        return None
    payload = job_payload(row, labels=domain_labels(), full_meta=True)
    payload.update(pipeline_id=str(row["pipeline_id"]), lease_expires_at=_iso(row["lease_expires_at"]))
    return payload


# --- Workers and active work --------------------------------------------------------------------


def workers_live(*, access: PipelineAccess | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Worker processes that heartbeated within three periods, newest heartbeat first.

    Two queries: the workers and the count of RUNNING jobs each holds a lease on. The current
    job's id is shown only to callers who see every unit (it may be another unit's job).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=3 * max(settings.WORKER_HEARTBEAT_SECONDS, settings.WORKER_POLL_SECONDS))
    workers = list(Worker.objects.filter(last_heartbeat_at__gte=cutoff).order_by("-last_heartbeat_at", "id"))
    show_jobs = access is None or access.visible_unit_ids() is None
    claimed = dict(
        IngestionJob.objects.filter(state=JobState.RUNNING, lease_owner__in=[w.pk for w in workers])
        .values_list("lease_owner")
        .annotate(n=Count("id"))
        .values_list("lease_owner", "n")
    )
    return [
        {
            "pod_id": worker.pk,
            "kind": worker.kind,
            "hostname": worker.hostname,
            "pid": worker.pid,
            "git_sha": worker.git_sha or None,
            "app_version": worker.version or None,
            "started_at": _iso(worker.started_at),
            "last_heartbeat_at": _iso(worker.last_heartbeat_at),
            "heartbeat_age_seconds": int((now - worker.last_heartbeat_at).total_seconds()),
            "claimed_job_count": claimed.get(worker.pk, 0),
            "current_job_id": worker.current_job_id if show_jobs else None,
        }
        for worker in workers
    ]


def active_pipelines_by_module(*, access: PipelineAccess, year: int, modules: list[int]) -> dict[str, str]:
    """``{"<module>": "<pipeline uuid>"}``: the pipeline of each module's most recent active job.

    Bounded by active work (the partial claim/lease indexes keep it small), one query.
    """
    if not modules:
        return {}
    jobs = IngestionJob.objects.filter(state__in=ACTIVE_JOB_STATES, year=year, module_type_id__in=modules)
    unit_ids = access.visible_unit_ids()
    if unit_ids is not None:
        jobs = jobs.filter(Q(unit_id__isnull=True) | Q(unit_id__in=sorted(unit_ids)))
    found: dict[str, str] = {}
    for module, pipeline_id in jobs.order_by("-id").values_list("module_type_id", "pipeline_id"):
        found.setdefault(str(module), str(pipeline_id))
    return found


def active_global_pipelines(*, year: int) -> list[str]:
    """Pipelines with an active year-wide job (unit sync), most recent first."""
    rows = (
        IngestionJob.objects.filter(state__in=ACTIVE_JOB_STATES, year=year, entity_type=EntityType.GLOBAL_PER_YEAR)
        .order_by("-id")
        .values_list("pipeline_id", flat=True)
    )
    return list(dict.fromkeys(str(pk) for pk in rows))
