"""Advisory transaction locks (reference-pipeline-core §5), PostgreSQL only.

Categories, and the only order in which they may be taken (so no cycle can form):

    1239 global ─▶ 1236 year          (unit_sync)
    1237 module×year ─▶ 1236 year     (ingest, factor, recalc; the recalc fan-in step)
    1236 year                         (aggregation)

1237 serialises writers of one (module, year): a recalc never reads half-written factors or
entries. 1236 serialises everything that rewrites a year's report rollups (aggregations,
unit_sync) and makes the fan-in decision wait for a running aggregation of that year, so an
aggregation it coalesces into has not read yet. On SQLite (one writer) they are no-ops.
All are transaction-scoped: released at COMMIT or ROLLBACK of the data transaction.
"""

from __future__ import annotations

from django.db import connections

from pipelines.db import DATA_ALIAS, is_postgres

LOCK_YEAR = 1236
LOCK_MODULE_YEAR = 1237
LOCK_GLOBAL = 1239


def _require_transaction(alias: str) -> None:
    if not connections[alias].in_atomic_block:
        raise RuntimeError("advisory transaction locks need an open transaction (they would be released at once)")


def lock_module_year(*, module_type_id: int | None, year: int | None, alias: str = DATA_ALIAS) -> bool:
    """Take (1237, module×100000+year). Skipped (False) when either scope value is missing."""
    if module_type_id is None or year is None or not is_postgres(alias):
        return False
    _require_transaction(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_MODULE_YEAR, module_type_id * 100_000 + year])
    return True


def lock_year(*, year: int | None, alias: str = DATA_ALIAS) -> bool:
    """Take (1236, year): aggregation, unit_sync and the fan-in decision of a year."""
    if year is None or not is_postgres(alias):
        return False
    _require_transaction(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_YEAR, year])
    return True


def lock_global(*, alias: str = DATA_ALIAS) -> bool:
    """Take the one-key lock 1239 (its key space is disjoint from the two-key locks)."""
    if not is_postgres(alias):
        return False
    _require_transaction(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_GLOBAL])
    return True
