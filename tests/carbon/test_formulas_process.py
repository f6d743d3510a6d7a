"""Process emissions against figures worked out by hand (reference-domain §2.3)."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.catalogue import process, spec_for
from carbon.compute import OVERRIDE_KEY, entry_emissions
from tests.carbon.fakes import context, factor

CO2 = factor(1, 70200, {"category": "co2", "unit": "kg"}, ef_kg_co2eq_per_unit=1)
CH4 = factor(2, 70100, {"category": "ch4", "unit": "kg"}, ef_kg_co2eq_per_unit=28)
N2O = factor(3, 70300, {"category": "n2o", "unit": "kg"}, ef_kg_co2eq_per_unit=265)
R134A = factor(4, 70400, {"category": "refrigerants", "subcategory": "R134a", "unit": "kg"}, ef_kg_co2eq_per_unit=1430)
ANY_REFRIGERANT = factor(5, 70400, {"category": "refrigerants", "unit": "kg"}, ef_kg_co2eq_per_unit=2000)
ALL = (CO2, CH4, N2O, R134A, ANY_REFRIGERANT)


def entry(**raw: str) -> dict[str, Any]:
    data, errors = spec_for(50).parse_row(raw)
    assert errors == []
    return data


@pytest.mark.parametrize(
    ("raw", "emission_type", "factor_id", "kg"),
    [
        ({"category": "co2", "quantity": "100"}, 70200, 1, 100.0),  # 100 kg × GWP 1 = 100 kg
        ({"category": "refrigerants", "subcategory": "R134a", "quantity": "2.5"}, 70400, 4, 3575.0),  # 2.5 × 1430
        ({"category": "CH4", "quantity": "10"}, 70100, 2, 280.0),  # 10 × 28
        ({"category": "n2o", "quantity": "1"}, 70300, 3, 265.0),  # 1 × 265
        ({"category": " Refrigerants", "subcategory": "r134A", "quantity": "2"}, 70400, 4, 2860.0),  # 2 × 1430
    ],
)
def test_reference_examples_and_each_gas(raw: dict[str, str], emission_type: int, factor_id: int, kg: float) -> None:
    (row,) = entry_emissions(spec_for(50), entry(**raw), context(*ALL))
    assert (row.emission_type_id, row.factor_id) == (emission_type, factor_id)
    assert row.kg_co2eq == pytest.approx(kg)


def test_unknown_subcategory_falls_back_to_the_category_only_factor() -> None:
    # 2.5 kg × 2000 (the refrigerants row without a subcategory) = 5000 kg
    (row,) = entry_emissions(
        spec_for(50), entry(category="refrigerants", subcategory="R404A", quantity="2.5"), context(*ALL)
    )
    assert row.factor_id == 5
    assert row.kg_co2eq == pytest.approx(5000.0)


@pytest.mark.parametrize(
    ("category", "emission_type"),
    [("ch4", 70100), ("CO2", 70200), ("n2o", 70300), ("refrigerants", 70400), ("Refrigerant", 70400), ("sf6", None)],
)
def test_category_picks_the_type(category: str, emission_type: int | None) -> None:
    assert process.process_type({"category": category}) == emission_type
    assert process.FACTOR.emission_type({"category": category}) == emission_type


def test_unknown_category_means_no_emission_even_with_a_factor() -> None:
    sf6 = factor(6, 70000, {"category": "sf6", "unit": "kg"}, ef_kg_co2eq_per_unit=23500)
    data = entry(category="sf6", quantity="1")
    ctx = context(sf6)
    assert entry_emissions(spec_for(50), data, ctx) == []
    data[OVERRIDE_KEY] = 1.0
    assert entry_emissions(spec_for(50), data, ctx) == []
    assert len(ctx.warnings) == 1


def test_no_factor_for_the_category_means_no_emission() -> None:
    assert entry_emissions(spec_for(50), entry(category="ch4", quantity="1"), context(CO2)) == []


def test_override_lands_on_the_category_type() -> None:
    data = entry(category="n2o", quantity="1")
    data[OVERRIDE_KEY] = 7.0
    (row,) = entry_emissions(spec_for(50), data, context())
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (70300, 7.0, None)


@pytest.mark.parametrize(
    ("raw", "column", "reason"),
    [
        ({"quantity": ""}, "quantity", "is required"),
        ({"quantity": "-1"}, "quantity", "must be ≥ 0 (got -1)"),
        ({"quantity": "2,5"}, "quantity", "use a dot as the decimal separator"),
        ({"category": ""}, "category", "is required"),
    ],
)
def test_bad_values_name_their_column(raw: dict[str, str], column: str, reason: str) -> None:
    _, errors = spec_for(50).parse_row({"category": "co2", "quantity": "100", **raw})
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]
    assert spec_for(50).requires_factors
