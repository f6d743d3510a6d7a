"""Status rules of the engine: pure functions over plain values (no ORM, no clock).

Everything here is decided from job states, never from counters, so any process that reads
the same committed rows reaches the same answer (SPEC §5.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.choices import JobResult, JobState, JobType, PipelineStatus

HISTORY_LIMIT = 50
MESSAGE_REASON_LIMIT = 200

# A job of the key type fans in to one job of the value type once every sibling (same
# pipeline, same parent) of the key type has finished.
FAN_IN: Mapping[str, str] = {JobType.EMISSION_RECALC: JobType.AGGREGATION}
# The job types groups fan in to: they read their scope (config) under the year lock, so a
# fan-in that coalesces into an active one can still widen it (``fan_in_widen``).
FAN_IN_TARGETS = frozenset(FAN_IN.values())

PHASE_LABELS = {1: "data", 2: "emissions", 3: "aggregation"}
# Plain strings for the per-job checks (a list page applies them to ~450 jobs; an enum member
# looked up on its class costs several times a string comparison).
_FINISHED: str = JobState.FINISHED.value
_ERROR: str = JobResult.ERROR.value

# One bit per job type, for ``Pipeline.job_types`` ("the pipeline has a job of type X", the
# list's job_type filter). Stored in rows: a type keeps its bit forever, new types take new bits.
JOB_TYPE_BITS: Mapping[str, int] = {
    JobType.CSV_INGEST: 1 << 0,
    JobType.API_INGEST: 1 << 1,
    JobType.FACTOR_INGEST: 1 << 2,
    JobType.REFERENCE_INGEST: 1 << 3,
    JobType.UNIT_SYNC: 1 << 4,
    JobType.EMISSION_RECALC: 1 << 5,
    JobType.MODULE_EMISSION_RECALC: 1 << 6,
    JobType.AGGREGATION: 1 << 7,
}


@dataclass(frozen=True, slots=True)
class JobView:
    """What the rules need to know about one job."""

    id: int
    parent_id: int | None
    job_type: str
    state: str
    result: str | None = None
    status_message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # True when this job settled its fan-in group: it chained (or requeued) the group's
    # aggregation, or found an active one of the same scope to coalesce into.
    closed_fan_in: bool = False

    @property
    def finished(self) -> bool:
        return self.state == _FINISHED

    @property
    def failed(self) -> bool:
        return self.state == _FINISHED and self.result == _ERROR


@dataclass(frozen=True, slots=True)
class PipelineVerdict:
    status: PipelineStatus
    has_errors: bool
    job_count: int
    error_count: int
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str
    phase: int
    phases_total: int = 3
    job_types: int = 0  # job_types_mask of the pipeline's jobs
    search_text: str = ""  # pipeline_search_text of its jobs

    @property
    def phase_label(self) -> str:
        return PHASE_LABELS[self.phase]

    @property
    def is_terminal(self) -> bool:
        return self.status not in (PipelineStatus.NOT_STARTED, PipelineStatus.RUNNING)


def fan_in_groups(jobs: Iterable[JobView]) -> dict[tuple[str, int | None], list[JobView]]:
    """Siblings that fan in together, keyed by (job type, parent id)."""
    groups: dict[tuple[str, int | None], list[JobView]] = {}
    for job in jobs:
        if job.job_type in FAN_IN:
            groups.setdefault((job.job_type, job.parent_id), []).append(job)
    return groups


def fan_in_due(group: Sequence[JobView]) -> bool:
    """A group needs its fan-in job when all members finished and at least one produced data.

    When every member failed or was cancelled nothing changed, so there is nothing to fan in.
    """
    return all(j.finished for j in group) and any(j.result in (JobResult.SUCCESS, JobResult.WARNING) for j in group)


def fan_in_open(group: Sequence[JobView]) -> bool:
    """The group is due but no member settled it: a fan-in job is missing."""
    return fan_in_due(group) and not any(j.closed_fan_in for j in group)


def job_types_mask(job_types: Iterable[str]) -> int:
    """The set of JOB_TYPES as bits (``JOB_TYPE_BITS``); an unknown type adds nothing."""
    mask = 0
    for job_type in job_types:
        mask |= JOB_TYPE_BITS.get(job_type, 0)
    return mask


# Separates the messages of Pipeline.search_text. The list refuses a ``q`` holding a control
# character, so a match never spans two messages.
SEARCH_SEPARATOR = "\x1f"


def pipeline_search_text(jobs: Iterable[JobView]) -> str:
    """What the list's ``q`` searches in a pipeline: its jobs' messages, each once, in job order.

    It holds the messages as of the pipeline's last status refresh (every job's claim, finish,
    retry or abort refreshes it); the selector also searches the live messages of its jobs still
    queued or running. ``last_error`` is one of these messages (``_first_informative_error``).
    """
    ordered = sorted(jobs, key=lambda j: j.id)
    return SEARCH_SEPARATOR.join(dict.fromkeys(j.status_message for j in ordered if j.status_message))


def informative(message: str) -> bool:
    return message.strip().lower() not in {"", "success"}


def pipeline_verdict(jobs: Sequence[JobView], *, expected_recalc: int | None = None) -> PipelineVerdict:
    """The pipeline's status from its jobs (SPEC §5.2).

    1. No job, or none claimed yet → NOT_STARTED.
    2. Not every job FINISHED, or a fan-in group is due but not settled → RUNNING (with
       ``has_errors`` already true if any job ended in ERROR).
    3. Otherwise terminal: root ERROR → FAILED (its data did not land, whatever else happened);
       any CANCELLED job → CANCELLED; any other ERROR → PARTIAL; else SUCCESS. WARNING never
       makes a pipeline PARTIAL. (The engine never pairs a root ERROR with a cancelled job — a
       failed root leaves no child — but the rules do not rely on it:
       ``tests/pipelines/test_rules_properties.py`` draws every combination.)
    """
    ordered = sorted(jobs, key=lambda j: j.id)
    errored = [j for j in ordered if j.failed]
    status = _status(ordered, errored)
    started = [j.started_at for j in ordered if j.started_at is not None]
    finished = [j.finished_at for j in ordered if j.finished_at is not None]
    terminal = status not in (PipelineStatus.NOT_STARTED, PipelineStatus.RUNNING)
    return PipelineVerdict(
        status=status,
        has_errors=bool(errored),
        job_count=len(ordered),
        error_count=len(errored),
        started_at=min(started) if started else None,
        finished_at=max(finished) if terminal and finished else None,
        last_error=_first_informative_error(errored),
        phase=_phase(ordered, expected_recalc),
        job_types=job_types_mask(j.job_type for j in ordered),
        search_text=pipeline_search_text(ordered),
    )


def _status(ordered: Sequence[JobView], errored: Sequence[JobView]) -> PipelineStatus:
    if all(j.state == JobState.NOT_STARTED and j.started_at is None for j in ordered):
        return PipelineStatus.NOT_STARTED  # also the empty pipeline
    settled = all(j.finished for j in ordered) and not any(
        fan_in_open(group) for group in fan_in_groups(ordered).values()
    )
    if not settled:
        return PipelineStatus.RUNNING
    if ordered[0].failed:
        return PipelineStatus.FAILED
    if any(j.result == JobResult.CANCELLED for j in ordered):
        return PipelineStatus.CANCELLED
    if errored:
        return PipelineStatus.PARTIAL
    return PipelineStatus.SUCCESS


def _first_informative_error(errored: Sequence[JobView]) -> str:
    for job in errored:
        if informative(job.status_message):
            return job.status_message
    return errored[0].status_message if errored else ""


def _phase(ordered: Sequence[JobView], expected_recalc: int | None) -> int:
    """1 = data (root running), 2 = emissions (recalcs running), 3 = aggregation."""
    if not ordered or not ordered[0].finished:
        return 1
    recalcs = [j for j in ordered if j.job_type == JobType.EMISSION_RECALC]
    expected = expected_recalc if expected_recalc is not None else len(recalcs)
    if sum(1 for j in recalcs if j.finished) < expected:
        return 2
    return 3


# --- Messages ------------------------------------------------------------------------------


def cap_reason(reason: str, limit: int = MESSAGE_REASON_LIMIT) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def first_row_error(meta: Mapping[str, Any]) -> str:
    """The first row error's reason, wherever the provider stored it (top level or under stats)."""
    for container in (meta, meta.get("stats") or {}):
        rows = container.get("row_errors") if isinstance(container, Mapping) else None
        if isinstance(rows, list):
            for row in rows:
                if isinstance(row, Mapping) and str(row.get("reason") or "").strip():
                    where = [f"row {row['row']}"] if row.get("row") is not None else []
                    if row.get("column"):
                        where.append(f"column {row['column']}")
                    prefix = f"{', '.join(where)}: " if where else ""
                    return prefix + str(row["reason"]).strip()
    return ""


def final_message(result: str, message: str, meta: Mapping[str, Any]) -> str:
    """The terminal status message of a job (reference-pipeline-core §8, fixed).

    A job that did not succeed never reports "Success": an empty or "Success" message becomes
    "<RESULT>: <inserted> inserted, <skipped> skipped — first error: <reason>" (reason capped
    at 200 characters), with the first row error found wherever the provider stored it. A real
    message is kept; a SUCCESS keeps its message.
    """
    if result == JobResult.SUCCESS:
        return message.strip() or "Success"
    if informative(message):
        return message.strip()
    raw_stats = meta.get("stats")
    stats: Mapping[str, Any] = raw_stats if isinstance(raw_stats, Mapping) else {}
    inserted = meta.get("inserted", stats.get("inserted", stats.get("rows_processed", 0)))
    skipped = meta.get("skipped", stats.get("skipped", stats.get("rows_skipped", 0)))
    text = f"{result}: {inserted} inserted, {skipped} skipped"
    reason = first_row_error(meta)
    if reason:
        text += f" — first error: {cap_reason(reason)}"
    return text


def history_append(history: Sequence[Mapping[str, Any]], entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Append ENTRY, keeping the last HISTORY_LIMIT entries (terminal ones included)."""
    merged = [dict(item) for item in history] + [dict(entry)]
    return merged[-HISTORY_LIMIT:]


def fan_in_config(payloads: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Union of the siblings' fan-in payloads: lists are merged (sorted, unique), scalars kept."""
    merged: dict[str, Any] = {}
    for payload in payloads:
        for key, value in payload.items():
            if isinstance(value, list):
                merged[key] = sorted(set(merged.get(key, [])) | set(value))
            else:
                merged.setdefault(key, value)
    return merged


def fan_in_widen(current: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The config of an active fan-in job that another group coalesces into: it must cover both.

    A list narrows the job's scope (``affected_module_ids``: only these), its absence means no
    bound. So a list present in both becomes their union, and a list missing from either side
    is dropped (unbounded wins). Scalars keep the current value.
    """
    widened = dict(current)
    for key in set(current) | set(extra):
        mine, theirs = current.get(key), extra.get(key)
        if isinstance(mine, list) or isinstance(theirs, list):
            if isinstance(mine, list) and isinstance(theirs, list):
                widened[key] = sorted(set(mine) | set(theirs))
            else:
                widened.pop(key, None)
    return widened
