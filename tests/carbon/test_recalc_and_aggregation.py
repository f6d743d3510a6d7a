"""Recalculation and aggregation against the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from carbon.choices import ModuleStatus, ModuleTypeId
from carbon.models import CarbonReport, CarbonReportModule, DataEntry, DataEntryEmission, Factor
from carbon.reference_data import EMISSION_TYPES, MODULE_EMISSION_ROOTS
from carbon.services import emissions_recalculate, module_stats_recompute
from carbon.stats import subtree
from tests.carbon.conftest import make_entry, make_factor, make_year

pytestmark = pytest.mark.django_db

MONITOR_VALUES: dict[str, Any] = {
    "active_power_w": 100,
    "standby_power_w": 10,
    "active_usage_hours_per_week": 40,
    "standby_usage_hours_per_week": 128,
    "ef_kg_co2eq_per_kwh": 0.1,
}


def figures(obj: CarbonReportModule | CarbonReport) -> dict[str, Any]:
    assert obj.stats is not None, f"{obj} has no stats"
    return obj.stats


def kg_of(entry: DataEntry) -> float:
    return sum(DataEntryEmission.objects.filter(data_entry=entry, is_rollup=False).values_list("kg_co2eq", flat=True))


def test_recalc_follows_the_factors_doubling_removing_and_adding() -> None:
    year = make_year(units=2)
    factor = make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR_VALUES)
    monitor = make_entry(year.modules[(0, 4)], 11, {"equipment_id": "1", "name": "m", "equipment_class": "monitors"})
    printer = make_entry(year.modules[(1, 4)], 11, {"equipment_id": "2", "name": "p", "equipment_class": "Printers"})
    # given: 27.456 kg for the monitor (reference example), nothing for the unmatched printer
    stats = emissions_recalculate(data_entry_type_id=11, year=2025)
    assert (stats.recalculated, stats.errors) == (2, 0)
    assert kg_of(monitor) == pytest.approx(27.456)
    assert kg_of(printer) == 0
    assert stats.affected_module_ids == {year.modules[(0, 4)].pk, year.modules[(1, 4)].pk}
    # when the factor doubles, the emission doubles
    Factor.objects.filter(pk=factor.pk).update(values={**MONITOR_VALUES, "ef_kg_co2eq_per_kwh": 0.2})
    emissions_recalculate(data_entry_type_id=11, year=2025)
    assert kg_of(monitor) == pytest.approx(54.912)
    # a new factor matches the entry that had none: 10 h × 50 W × 52 / 1000 × 1 = 26 kg
    make_factor(11, 80200, {"equipment_class": "PRINTERS"}, active_power_w=50, standby_power_w=0,
                active_usage_hours_per_week=10, standby_usage_hours_per_week=0, ef_kg_co2eq_per_kwh=1)  # fmt: skip
    emissions_recalculate(data_entry_type_id=11, year=2025)
    assert kg_of(printer) == pytest.approx(26.0)
    # removing the factor clears the emissions (the entry stays)
    factor.delete()
    emissions_recalculate(data_entry_type_id=11, year=2025)
    assert kg_of(monitor) == 0
    assert DataEntry.objects.filter(pk=monitor.pk).exists()


def test_factor_of_another_year_is_not_used() -> None:
    year = make_year(units=1)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, year=2024, **MONITOR_VALUES)
    entry = make_entry(year.modules[(0, 4)], 11, {"equipment_id": "1", "name": "m", "equipment_class": "Monitors"})
    emissions_recalculate(data_entry_type_id=11, year=2025)
    assert kg_of(entry) == 0


def test_a_broken_entry_is_isolated_and_reported() -> None:
    year = make_year(units=1)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR_VALUES)
    module = year.modules[(0, 4)]
    good = make_entry(module, 11, {"equipment_id": "1", "name": "m", "equipment_class": "Monitors"})
    # stored data that no longer fits the formula (hours as text)
    bad = make_entry(module, 11, {"equipment_id": "2", "name": "m", "equipment_class": "Monitors",
                                  "active_usage_hours_per_week": "lots"})  # fmt: skip
    stats = emissions_recalculate(data_entry_type_id=11, year=2025)
    assert stats.errors == 1
    assert stats.error_details[0]["data_entry_id"] == bad.pk
    assert "TypeError" in stats.error_details[0]["error"]
    assert kg_of(good) == pytest.approx(27.456)


def test_recalc_can_be_scoped_to_report_modules() -> None:
    year = make_year(units=2)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR_VALUES)
    first = make_entry(year.modules[(0, 4)], 11, {"equipment_id": "1", "name": "m", "equipment_class": "Monitors"})
    second = make_entry(year.modules[(1, 4)], 11, {"equipment_id": "2", "name": "m", "equipment_class": "Monitors"})
    emissions_recalculate(data_entry_type_id=11, year=2025, carbon_report_module_ids=[year.modules[(0, 4)].pk])
    assert kg_of(first) > 0
    assert kg_of(second) == 0


def test_recalc_streams_in_batches_with_progress() -> None:
    year = make_year(units=1)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR_VALUES)
    for i in range(25):
        make_entry(year.modules[(0, 4)], 11, {"equipment_id": str(i), "name": "m", "equipment_class": "Monitors"})
    seen: list[tuple[int, int]] = []
    stats = emissions_recalculate(
        data_entry_type_id=11, year=2025, batch_size=10, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(10, 25), (20, 25), (25, 25)]
    assert stats.emissions == 25


def _leaf_types(module: int) -> list[int]:
    nodes = {node for root in MODULE_EMISSION_ROOTS[ModuleTypeId(module)] for node in subtree(root)}
    scoped = {row.id for row in EMISSION_TYPES if row.scope is not None and not row.is_rollup}
    return sorted(nodes & scoped)


def _emission(
    entry: DataEntry, emission_type: int, kg: float, *, scope: int | None = None, rollup: bool = False
) -> DataEntryEmission:
    return DataEntryEmission(
        data_entry=entry,
        carbon_report_module_id=entry.carbon_report_module_id,
        emission_type_id=emission_type,
        kg_co2eq=kg,
        scope=scope,
        is_rollup=rollup,
        computed_at="2025-01-01T00:00:00Z",
    )


def test_stats_equal_a_from_scratch_sql_sum_on_200_units() -> None:
    # given: 200 units × 8 modules with emission rows at random scoped nodes, plus rollup rows
    rng = random.Random(20251125)
    year = make_year(units=200)
    scope_of = {row.id: (row.scope.value if row.scope else None) for row in EMISSION_TYPES}
    entries = DataEntry.objects.bulk_create(
        [
            DataEntry(
                carbon_report_module=crm,
                data_entry_type_id=10,
                module_type_id=crm.module_type_id,
                year=2025,
                unit_id=year.units[index].pk,
                data={},
                source=1,
            )  # fmt: skip
            for (index, _module), crm in year.modules.items()
            for _ in range(2)
        ]
    )
    rows: list[DataEntryEmission] = []
    for entry in entries:
        types = _leaf_types(entry.module_type_id)
        picked = [rng.choice(types) for _ in range(rng.randint(0, 3))]
        rows.extend(_emission(entry, t, round(rng.uniform(0, 500), 3), scope=scope_of[t]) for t in picked)
        if len(picked) > 1:  # a rollup that must never be added in
            rows.append(_emission(entry, 60100, 10_000, rollup=True))
    DataEntryEmission.objects.bulk_create(rows, batch_size=2000)
    # when
    for module in ModuleTypeId:
        module_stats_recompute(module_type_id=module, year=2025)
    # then: each module's figures equal SQL sums over its non-rollup rows
    leaf_rows = DataEntryEmission.objects.filter(is_rollup=False)
    for crm in CarbonReportModule.objects.filter(report__year=2025):
        mine = leaf_rows.filter(carbon_report_module=crm)
        for scope in (1, 2, 3):
            expected = mine.filter(scope=scope).aggregate(kg=Sum("kg_co2eq"))["kg"] or 0.0
            assert figures(crm)[f"scope{scope}"] == pytest.approx(expected), (crm.pk, scope)
        assert figures(crm)["total"] == pytest.approx(mine.aggregate(kg=Sum("kg_co2eq"))["kg"] or 0.0)
        by_type = dict(
            mine.values("emission_type_id").annotate(kg=Sum("kg_co2eq")).values_list("emission_type_id", "kg")
        )
        for emission_type, kg in by_type.items():
            if not any(r.parent_id == emission_type for r in EMISSION_TYPES):  # a leaf
                assert figures(crm)["by_emission_type"][str(emission_type)] == pytest.approx(kg)
        assert figures(crm)["entry_count"] == 2
    # and each report's total is the sum of its modules'
    for report in CarbonReport.objects.filter(year=2025):
        expected = leaf_rows.filter(carbon_report_module__report=report).aggregate(kg=Sum("kg_co2eq"))["kg"] or 0.0
        assert figures(report)["total"] == pytest.approx(expected)
        assert report.completion_progress == "0/8"


def test_embodied_energy_is_counted_once_in_the_buildings_total() -> None:
    year = make_year(units=1)
    crm = year.modules[(0, 3)]
    entry = make_entry(crm, 32, {"building_name": "BC"})
    DataEntryEmission.objects.create(data_entry=entry, carbon_report_module=crm, emission_type_id=60300, kg_co2eq=100,
                                     scope=3, computed_at="2025-01-01T00:00:00Z")  # fmt: skip
    module_stats_recompute(module_type_id=3, year=2025)
    crm.refresh_from_db()
    # the reference walked 60300 as a root of its own as well: scope3 and total were 200
    assert (figures(crm)["scope3"], figures(crm)["total"]) == (100, 100)
    assert figures(crm)["by_emission_type"]["60000"] == 100


def test_it_total_counts_each_kg_once() -> None:
    year = make_year(units=1)
    crm = year.modules[(0, 6)]
    entry = make_entry(crm, 70, {})
    DataEntryEmission.objects.create(data_entry=entry, carbon_report_module=crm, emission_type_id=100300, kg_co2eq=40,
                                     scope=3, computed_at="2025-01-01T00:00:00Z")  # fmt: skip
    module_stats_recompute(module_type_id=6, year=2025)
    report = CarbonReport.objects.get(pk=year.reports[0].pk)
    # the reference summed the research-facility root and every node under it: 80
    assert figures(report)["it_total_kg"] == 40


def test_changed_figures_reopen_a_validated_module() -> None:
    year = make_year(units=1)
    crm = year.modules[(0, 4)]
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR_VALUES)
    make_entry(crm, 11, {"equipment_id": "1", "name": "m", "equipment_class": "Monitors"})
    emissions_recalculate(data_entry_type_id=11, year=2025)
    module_stats_recompute(module_type_id=4, year=2025)
    CarbonReportModule.objects.filter(pk=crm.pk).update(status=ModuleStatus.VALIDATED)
    # same figures again: the validation holds
    module_stats_recompute(module_type_id=4, year=2025)
    assert CarbonReportModule.objects.get(pk=crm.pk).status == ModuleStatus.VALIDATED
    report = CarbonReport.objects.get(pk=year.reports[0].pk)
    assert (report.completion_progress, figures(report)["highest_category_module_id"]) == ("1/8", 4)
    # new data: back to IN_PROGRESS
    make_entry(crm, 11, {"equipment_id": "2", "name": "m", "equipment_class": "Monitors"})
    emissions_recalculate(data_entry_type_id=11, year=2025)
    module_stats_recompute(module_type_id=4, year=2025)
    assert CarbonReportModule.objects.get(pk=crm.pk).status == ModuleStatus.IN_PROGRESS


def test_aggregation_query_count_does_not_grow_with_units() -> None:
    def queries(units: int, year: int) -> int:
        make_year(units=units, year=year)
        with CaptureQueriesContext(connection) as ctx:
            module_stats_recompute(module_type_id=4, year=year)
        return len(ctx.captured_queries)

    assert queries(3, 2030) == queries(60, 2031)


def test_a_module_emptied_by_a_reupload_is_refreshed_even_out_of_scope() -> None:
    year = make_year(units=2)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR_VALUES)
    gone = make_entry(year.modules[(0, 4)], 11, {"equipment_id": "1", "name": "m", "equipment_class": "Monitors"})
    make_entry(year.modules[(1, 4)], 11, {"equipment_id": "2", "name": "m", "equipment_class": "Monitors"})
    emissions_recalculate(data_entry_type_id=11, year=2025)
    module_stats_recompute(module_type_id=4, year=2025)
    # when: the first unit's rows disappear and only the second module is named
    gone.delete()
    module_stats_recompute(module_type_id=4, year=2025, carbon_report_module_ids=[year.modules[(1, 4)].pk])
    emptied = CarbonReportModule.objects.get(pk=year.modules[(0, 4)].pk)
    assert (figures(emptied)["total"], figures(emptied)["entry_count"]) == (0, 0)
