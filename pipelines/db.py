"""Database plumbing of the engine: which connection writes job state, wake-ups, vendor tests."""

from __future__ import annotations

from django.db import connections

DATA_ALIAS = "default"
# Channel the workers LISTEN on; payload-free, a wake-up hint only.
JOBS_CHANNEL = "carbon_pipeline_jobs"


def is_postgres(alias: str = DATA_ALIAS) -> bool:
    return connections[alias].vendor == "postgresql"


def state_alias() -> str:
    """The connection for job-state writes made while a data transaction is open.

    PostgreSQL: the separate ``jobs`` alias (autocommit), so progress and history survive a
    data rollback and are visible live. SQLite: the data connection itself (one writer); the
    runner re-applies the history it kept in memory when it writes the terminal state.
    """
    return "jobs" if "jobs" in connections.settings and is_postgres() else DATA_ALIAS


def jobs_notify(alias: str = DATA_ALIAS) -> None:
    """Wake idle workers. Inside a transaction PostgreSQL delivers it at COMMIT (never before)."""
    if is_postgres(alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [JOBS_CHANNEL])
