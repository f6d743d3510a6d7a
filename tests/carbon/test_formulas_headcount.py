"""Headcount emissions against figures worked out by hand (reference-domain §2.3, §4.2)."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.catalogue import spec_for
from carbon.catalogue.headcount import FACTOR
from carbon.compute import OVERRIDE_KEY, entry_emissions
from tests.carbon.fakes import context, factor

VEGETARIAN = factor(
    1,
    10001,
    {"headcount_category": "food", "headcount_class": "vegetarian", "unit": "meal"},
    number_of_unit_per_fte=100,
    ef_kg_co2eq_per_unit=1.2,
)
PUBLIC_TRANSPORT = factor(
    2,
    30004,
    {"headcount_category": "commuting", "headcount_class": "public_transport", "unit": "km"},
    number_of_unit_per_fte=3000,
    ef_kg_co2eq_per_unit=0.04,
)
# Filed at an intermediate node of the waste tree: the original never found it (§2.3 ⚠).
BIOGAS = factor(
    3,
    20003,
    {"headcount_category": "waste", "headcount_class": "biogas", "unit": "kg"},
    number_of_unit_per_fte=50,
    ef_kg_co2eq_per_unit=0.1,
)
# Outside the food, waste and commuting trees: never a headcount row.
STRAY = factor(4, 80200, {"headcount_category": "it", "headcount_class": "x", "unit": "kg"},
               number_of_unit_per_fte=1, ef_kg_co2eq_per_unit=1000)  # fmt: skip

MEMBER = {"name": "Alice Martin", "sius_code": "53", "user_institutional_id": "123456", "fte": "0.8"}


def member(**raw: Any) -> dict[str, Any]:
    data, errors = spec_for(1).parse_row({**MEMBER, **raw})
    assert errors == []
    return data


def test_member_gets_one_row_per_factor_and_a_rollup() -> None:
    rows = entry_emissions(spec_for(1), member(), context(VEGETARIAN, PUBLIC_TRANSPORT, BIOGAS, STRAY))
    by_type = {row.emission_type_id: row for row in rows}
    assert sorted(by_type) == [10001, 20003, 30004, 40000]
    # 0.8 fte × 1.2 kg × 100 meals = 96 kg; 0.8 × 100 = 80 meals
    assert by_type[10001].kg_co2eq == pytest.approx(96.0)
    assert by_type[10001].additional_value == pytest.approx(80.0)
    assert by_type[10001].factor_id == 1
    # 0.8 fte × 0.04 kg × 3000 km = 96 kg; 0.8 × 3000 = 2400 km
    assert by_type[30004].kg_co2eq == pytest.approx(96.0)
    assert by_type[30004].additional_value == pytest.approx(2400.0)
    # 0.8 fte × 0.1 kg × 50 kg = 4 kg; 0.8 × 50 = 40 kg
    assert by_type[20003].kg_co2eq == pytest.approx(4.0)
    assert by_type[20003].additional_value == pytest.approx(40.0)
    # 96 + 96 + 4 = 196 kg, attributed to the lowest factor id
    assert by_type[40000].kg_co2eq == pytest.approx(196.0)
    assert by_type[40000].factor_id == 1
    assert by_type[40000].meta == {"is_rollup": True}


def test_student_fte_is_not_capped_and_one_row_has_no_rollup() -> None:
    data, errors = spec_for(2).parse_row({"fte": "12.5"})
    assert errors == []
    (row,) = entry_emissions(spec_for(2), data, context(VEGETARIAN))
    # 12.5 fte × 1.2 kg × 100 meals = 1500 kg; 12.5 × 100 = 1250 meals
    assert (row.emission_type_id, row.factor_id) == (10001, 1)
    assert row.kg_co2eq == pytest.approx(1500.0)
    assert row.additional_value == pytest.approx(1250.0)


def test_students_are_entered_in_the_ui_only() -> None:
    assert spec_for(1).csv_upload
    assert not spec_for(2).csv_upload


def test_zero_fte_gives_zero_kg_rows() -> None:
    rows = entry_emissions(spec_for(1), member(fte="0"), context(VEGETARIAN, PUBLIC_TRANSPORT))
    assert [row.kg_co2eq for row in rows] == [0.0, 0.0, 0.0]


def test_no_factor_means_no_emission() -> None:
    assert entry_emissions(spec_for(1), member(), context()) == []
    assert entry_emissions(spec_for(1), member(), context(STRAY)) == []


def test_override_replaces_every_row_with_one() -> None:
    data = {**member(), OVERRIDE_KEY: 50.0}
    (row,) = entry_emissions(spec_for(1), data, context(VEGETARIAN, PUBLIC_TRANSPORT))
    # Under the first computed row's type; a single row gets no rollup.
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (10001, 50.0, None)


def test_override_without_any_factor_is_reported_not_placed() -> None:
    ctx = context()
    assert entry_emissions(spec_for(1), {**member(), OVERRIDE_KEY: 50.0}, ctx) == []
    assert ctx.warnings == ["kg_co2eq override ignored: no emission type could be resolved for the entry"]


@pytest.mark.parametrize(
    ("category", "klass", "subclass", "expected"),
    [
        ("food", "vegetarian", None, 10001),
        (" Food ", "Non-Vegetarian", None, 10002),
        ("waste", "recycling", "paper", 2000401),
        ("Waste", "Recycling", "Toner and ink cartridges", 2000412),
        ("waste", "biogas", "cooking_vegetable_oil", 2000302),
        ("commuting", "car", None, 30005),
        ("commuting", "public transport", None, 30004),
        # The most specific existing node: an unknown subclass stays at its class, an unknown class at the root.
        ("waste", "recycling", "gold", 20004),
        ("food", "vegan", None, 10000),
        # Codes outside the three headcount trees are not headcount factors.
        ("headcount", "x", None, None),
        ("equipment", "it", None, None),
    ],
)
def test_factor_emission_type_from_its_classification(
    category: str, klass: str, subclass: str | None, expected: int | None
) -> None:
    classification = {"headcount_category": category, "headcount_class": klass, "headcount_subclass": subclass}
    assert FACTOR.emission_type(classification) == expected


@pytest.mark.parametrize(
    ("det", "raw", "column", "reason"),
    [
        (1, {"fte": "1.5"}, "fte", "must be ≤ 1 (got 1.5)"),
        (1, {"fte": "0,8"}, "fte", "use a dot as the decimal separator"),
        (1, {"fte": ""}, "fte", "is required"),
        (1, {"sius_code": "55"}, "sius_code", "must be one of 51, 52, 53, 54, 56, 57, 58, 59 (got '55')"),
        (1, {"name": "  "}, "name", "is required"),
        (1, {"user_institutional_id": ""}, "user_institutional_id", "is required"),
        (1, {"name": "A\x00da"}, "name", "must not contain a NUL character (U+0000)"),
        (2, {"fte": "-1"}, "fte", "must be ≥ 0 (got -1)"),
    ],
)
def test_bad_values_name_their_column(det: int, raw: dict[str, str], column: str, reason: str) -> None:
    _, errors = spec_for(det).parse_row({**MEMBER, **raw})
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]
