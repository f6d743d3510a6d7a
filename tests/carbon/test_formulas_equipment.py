"""Equipment emissions against figures worked out by hand (reference-domain §2.3)."""

from __future__ import annotations

import pytest

from carbon.catalogue import spec_for
from carbon.compute import entry_emissions
from tests.carbon.fakes import context, factor

MONITOR = factor(
    7,
    80200,
    {"equipment_class": "Monitors"},
    active_power_w=100,
    standby_power_w=10,
    active_usage_hours_per_week=30,
    standby_usage_hours_per_week=100,
    ef_kg_co2eq_per_kwh=0.1,
)


def test_reference_example_40h_at_100w_and_128h_at_10w() -> None:
    # (40 h × 100 W + 128 h × 10 W) = 5280 Wh/week; × 52 / 1000 = 274.56 kWh; × 0.1 = 27.456 kg
    data, errors = spec_for(11).parse_row(
        {"equipment_id": "B1", "name": "EIZO", "equipment_class": " monitors ", "active_usage_hours_per_week": "40",
         "standby_usage_hours_per_week": "128"}
    )  # fmt: skip
    assert errors == []
    (row,) = entry_emissions(spec_for(11), data, context(MONITOR))
    assert row.emission_type_id == 80200
    assert row.factor_id == 7
    assert row.kg_co2eq == pytest.approx(27.456)


def test_missing_hours_come_from_the_factor() -> None:
    # (30 × 100 + 100 × 10) = 4000 Wh/week → 208 kWh → 20.8 kg
    data, _ = spec_for(11).parse_row({"equipment_id": "B1", "name": "x", "equipment_class": "Monitors"})
    (row,) = entry_emissions(spec_for(11), data, context(MONITOR))
    assert row.kg_co2eq == pytest.approx(20.8)


def test_subclass_falls_back_to_the_class_only_factor() -> None:
    specific = factor(8, 80200, {"equipment_class": "Monitors", "sub_class": "4K"}, active_power_w=200,
                      standby_power_w=0, active_usage_hours_per_week=10, standby_usage_hours_per_week=0,
                      ef_kg_co2eq_per_kwh=1)  # fmt: skip
    ctx = context(MONITOR, specific)
    four_k, _ = spec_for(11).parse_row(
        {"equipment_id": "1", "name": "x", "equipment_class": "Monitors", "sub_class": "4k"}
    )
    other, _ = spec_for(11).parse_row(
        {"equipment_id": "2", "name": "x", "equipment_class": "Monitors", "sub_class": "HD"}
    )
    assert entry_emissions(spec_for(11), four_k, ctx)[0].factor_id == 8  # 10 h × 200 W × 52 / 1000 × 1 = 104 kg
    assert entry_emissions(spec_for(11), four_k, ctx)[0].kg_co2eq == pytest.approx(104.0)
    assert entry_emissions(spec_for(11), other, ctx)[0].factor_id == 7


def test_no_matching_factor_means_no_emission() -> None:
    data, _ = spec_for(10).parse_row({"equipment_id": "1", "name": "x", "equipment_class": "Centrifuge"})
    assert entry_emissions(spec_for(10), data, context(MONITOR)) == []


def test_override_replaces_the_formula() -> None:
    data, _ = spec_for(12).parse_row({"equipment_id": "1", "name": "x", "equipment_class": "Monitors"})
    data["__kg_co2eq_override__"] = 5.5
    (row,) = entry_emissions(spec_for(12), data, context(MONITOR))
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (80300, 5.5, None)


@pytest.mark.parametrize(
    ("raw", "column", "reason"),
    [
        ({"active_usage_hours_per_week": "169"}, "active_usage_hours_per_week", "must be ≤ 168 (got 169)"),
        ({"active_usage_hours_per_week": "1,5"}, "active_usage_hours_per_week", "use a dot as the decimal separator"),
        (
            {"active_usage_hours_per_week": "100", "standby_usage_hours_per_week": "100"},
            "standby_usage_hours_per_week",
            "active + standby hours must be ≤ 168 (got 200)",
        ),  # fmt: skip
        ({"equipment_class": ""}, "equipment_class", "is required"),
    ],
)
def test_bad_values_name_their_column(raw: dict[str, str], column: str, reason: str) -> None:
    row = {"equipment_id": "1", "name": "x", "equipment_class": "Monitors", **raw}
    _, errors = spec_for(10).parse_row(row)
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]
