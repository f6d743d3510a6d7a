"""Cancel marks: the embedded (SQLite) side channel for aborting a running job.

SQLite has one writer. A running job's data transaction holds the write lock until it ends,
so an abort cannot record ``cancel_requested_at`` while the job runs — the very moment it
matters. The abort service therefore also drops an empty file named after the job, which the
worker's heartbeat looks for; the handler then stops at its next progress write and rolls
back, releasing the lock so the database flag lands. PostgreSQL never needs this.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def _directory() -> Path:
    return Path(settings.FILES_ROOT) / ".cancel"


def _path(job_id: int) -> Path:
    return _directory() / f"job-{int(job_id)}"


def raise_mark(job_id: int) -> None:
    _directory().mkdir(parents=True, exist_ok=True)
    _path(job_id).touch()


def is_raised(job_id: int) -> bool:
    return _path(job_id).exists()


def clear_mark(job_id: int) -> None:
    _path(job_id).unlink(missing_ok=True)
