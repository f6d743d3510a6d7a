"""config.bulk.rows_update: the set-based write-back of the aggregation, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from carbon.choices import ModuleStatus
from carbon.models import CarbonReportModule
from config import bulk
from tests.carbon.conftest import make_year

pytestmark = pytest.mark.django_db

AWKWARD_STATS = {
    "total": 1.5,
    "note": 'tab\there, quote " and backslash \\ and ünïcödé',
    "nested": {"list": [1, None, "x"], "big": 2**70},  # beyond 64 bits: orjson refuses, json does not
}


def test_rows_update_writes_only_the_named_fields_of_the_given_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    year = make_year(units=3)
    modules = list(CarbonReportModule.objects.order_by("pk"))
    untouched = {m.pk: (m.stats, m.status, m.last_updated) for m in modules}
    picked = modules[1:6]
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for index, module in enumerate(picked):
        module.stats = {**AWKWARD_STATS, "index": index} if index else None
        module.status = ModuleStatus.IN_PROGRESS
        module.last_updated = stamp
        module.module_type_id = 99  # not named: must not be written
    monkeypatch.setattr(bulk, "UPDATE_BATCH", 2)  # 5 rows in batches of 2 on PostgreSQL

    with CaptureQueriesContext(connection) as queries:
        written = bulk.rows_update(CarbonReportModule, picked, ["stats", "status", "last_updated"])

    assert written == 5
    if connection.vendor == "postgresql":
        assert len(queries) == 3, [q["sql"][:80] for q in queries]
    after = {m.pk: m for m in CarbonReportModule.objects.order_by("pk")}
    for index, module in enumerate(picked):
        row = after[module.pk]
        assert row.stats == ({**AWKWARD_STATS, "index": index} if index else None)
        assert (row.status, row.last_updated) == (ModuleStatus.IN_PROGRESS, stamp)
        assert row.module_type_id != 99
    for pk, before in untouched.items():
        if pk not in {m.pk for m in picked}:
            assert (after[pk].stats, after[pk].status, after[pk].last_updated) == before
    assert len(after) == len(year.modules)


def test_rows_update_of_nothing_sends_no_query() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert bulk.rows_update(CarbonReportModule, [], ["stats"]) == 0
    assert len(queries) == 0


def test_rows_update_refuses_a_field_that_is_not_a_column() -> None:
    year = make_year(units=1)
    with pytest.raises(TypeError if connection.vendor == "postgresql" else ValueError):
        bulk.rows_update(CarbonReportModule, [year.modules[(0, 1)]], ["data_entries"])
