"""The ``unit_sync`` job handler (SPEC §4.3, reference-domain §6.2, reference-pipeline-core §2.2)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from ingestion.services_units import PHASE_MODULES, PHASE_REPORTS, PHASE_UPSERT, units_sync
from ingestion.unit_directory import DirectoryError, directory_fetch, source_display
from pipelines.choices import JobType
from pipelines.locks import lock_global, lock_year
from pipelines.registry import HandlerResult, JobCancelled, JobContext, LeaseLost, ReleaseRequested, register

logger = logging.getLogger(__name__)

PHASE_FETCH = "fetch_units"
PHASE_LABELS = {
    PHASE_FETCH: "Fetching units",
    PHASE_UPSERT: "Upserting units and users",
    PHASE_REPORTS: "Creating carbon reports",
    PHASE_MODULES: "Ensuring report modules",
}
YEAR_RANGE = range(2000, 2101)
ERROR_TEXT_LIMIT = 500

# The job is being stopped, not failing: no phase is marked failed for these.
_STOPS = (JobCancelled, LeaseLost, ReleaseRequested)


class PhaseLog:
    """``meta.phases``: ``[{name, state: running|finished|failed, started_at, finished_at}]``.

    Each change is written through ``ctx.progress``: on PostgreSQL on the job-state
    connection, so it survives the data rollback of a failed job; on SQLite the runner keeps
    the meta in memory and writes it with the terminal state.
    """

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.phases: list[dict[str, Any]] = []

    @property
    def current(self) -> dict[str, Any] | None:
        return self.phases[-1] if self.phases and self.phases[-1]["state"] == "running" else None

    def snapshot(self) -> list[dict[str, Any]]:
        return [dict(phase) for phase in self.phases]

    def start(self, name: str) -> None:
        """Close the running phase and open NAME (a no-op if NAME is the one running)."""
        current = self.current
        if current is not None and current["name"] == name:
            return
        now = timezone.now().isoformat()
        if current is not None:
            current.update(state="finished", finished_at=now)
        self.phases.append({"name": name, "state": "running", "started_at": now, "finished_at": None})
        self.ctx.progress(
            f"{PHASE_LABELS.get(name, name)} (phase {len(self.phases)} of {len(PHASE_LABELS)})",
            meta={"phases": self.snapshot()},
        )

    def finish(self) -> None:
        current = self.current
        if current is not None:
            current.update(state="finished", finished_at=timezone.now().isoformat())

    def fail(self, exc: BaseException) -> None:
        """Mark the running phase failed with EXC's text, and record it (best effort)."""
        current = self.current
        if current is None:
            return
        error = _error_text(exc)
        current.update(state="failed", finished_at=timezone.now().isoformat(), error=error)
        try:
            self.ctx.progress(
                f"{PHASE_LABELS.get(current['name'], current['name'])} failed: {error}",
                meta={"phases": self.snapshot()},
            )
        except Exception:
            # On SQLite a broken data transaction refuses the write; the runner still holds
            # the meta in memory. The original error is what the job must report.
            logger.debug("job %s: could not record the failed phase", self.ctx.job.pk, exc_info=True)


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, DatabaseError) or not text:
        text = f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text[:ERROR_TEXT_LIMIT]


def _target_year(ctx: JobContext) -> int:
    raw = ctx.config.get("target_year") or ctx.job.year
    if raw is None:
        raise ValueError("unit_sync needs a target year (config.target_year or the job's year); it has none")
    try:
        year = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"unit_sync: target_year must be a year, got {raw!r}") from None
    if year not in YEAR_RANGE:
        raise ValueError(f"unit_sync: target_year must be between 2000 and 2100, got {year}")
    return year


@register(JobType.UNIT_SYNC)
def unit_sync(ctx: JobContext) -> HandlerResult:
    """Provision a year from the unit directory.

    1. Target year = ``config.target_year``, else the job's year (ValueError without one).
    2. ``fetch_units``: read the whole directory (HTTP pages or the JSON file), reporting each
       page; an empty directory is an error (it would open a year without any unit).
    3. Take the global lock (1239) then the year lock (1236). Only now: holding them during
       the HTTP reads would stall every aggregation of the year behind a slow directory.
       1239 serialises unit_syncs of all years (they upsert the same units); 1236 keeps
       aggregations of the year from rolling up reports while they are being created.
    4. ``upsert_units_and_users`` → ``create_carbon_reports`` → ``ensure_modules`` and the
       ``configuration_completed`` stamp, all in the job's data transaction (``units_sync``).
    A phase that raises is recorded as failed, with the error, before the error propagates.
    """
    year = _target_year(ctx)
    source = str(settings.UNIT_SOURCE_URL or "").strip()
    if not source:
        raise ValueError("unit_sync: UNIT_SOURCE_URL is empty; there is no unit directory to read")
    shown = source_display(source)
    phases = PhaseLog(ctx)
    try:
        phases.start(PHASE_FETCH)
        records, principals = directory_fetch(
            source=source,
            user=settings.UNIT_SOURCE_USER,
            password=settings.UNIT_SOURCE_PASSWORD,
            on_page=lambda page, read, total: ctx.progress(
                f"Fetching units: {read} of {total if total is not None else '?'} (page {page})",
                processed=read,
                total=total,
            ),
        )
        if not records:
            raise DirectoryError(f"unit directory {shown} returned no units")
        phases.start(PHASE_UPSERT)
        lock_global()
        lock_year(year=year)
        counts = units_sync(year=year, records=records, principals=principals, source=shown, progress=phases.start)
        phases.finish()
    except _STOPS:
        raise
    except Exception as exc:
        phases.fail(exc)
        raise
    return HandlerResult(
        message=(
            f"Unit sync completed: {counts['units_synced']} units, {counts['users_synced']} principals, "
            f"{counts['carbon_reports_created']} reports created"
        ),
        meta={**counts, "carbon_report_year": year, "unit_source": shown, "phases": phases.snapshot()},
    )
