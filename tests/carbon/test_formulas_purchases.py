"""Purchase emissions against figures worked out by hand (reference-domain §2.3–§2.4, fix §11.6)."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.catalogue import purchases, spec_for
from carbon.catalogue.base import EntryError
from carbon.compute import OVERRIDE_KEY, FactorRecord, entry_emissions
from tests.carbon.fakes import FakeLookups, context, factor

# Rates are "EUR per one unit of the currency", as FakeLookups.rate_to_eur answers them.
RATES = FakeLookups(rates={"chf": 1.05, "usd": 0.92})

USB_CABLE = {
    "name": "USB-C cable 2m",
    "supplier": "Digitec Galaxus AG",
    "quantity": "1",
    "total_spent_amount": "16.59",
    "currency": "chf",
    "purchase_institutional_code": "43211600",
    "purchase_additional_code": "IA23",
}


def purchase_factor(
    id: int, code: str, additional: str | None, ef: float, *, currency: str = "eur", emission_type: int = 90300
) -> FactorRecord:
    classification = {"purchase_institutional_code": code, "purchase_additional_code": additional, "currency": currency}
    return factor(id, emission_type, classification, ef_kg_co2eq_per_currency=ef)


IA23 = purchase_factor(1, "43211600", "IA23", 0.5)
IB11 = purchase_factor(2, "43211600", "IB11", 0.7)
AVERAGE = purchase_factor(3, "43211600", None, 0.2)


def entry(det: int, **raw: str) -> dict[str, Any]:
    data, errors = spec_for(det).parse_row(raw)
    assert errors == []
    return data


def purchase(**raw: str) -> dict[str, Any]:
    return entry(61, **{"name": "x", "total_spent_amount": "100", "currency": "eur", **raw})


def test_reference_example_additional_code_wins_and_chf_becomes_eur() -> None:
    # 16.59 CHF × 1.05 EUR/CHF = 17.4195 EUR; × 0.5 kg/EUR = 8.70975 kg
    (row,) = entry_emissions(spec_for(61), entry(61, **USB_CABLE), context(AVERAGE, IA23, IB11, lookups=RATES))
    assert (row.emission_type_id, row.factor_id) == (90300, 1)
    assert row.kg_co2eq == pytest.approx(8.70975)
    assert row.meta["amount_in_factor_currency"] == pytest.approx(17.4195)


def test_without_additional_code_the_average_row_of_the_institutional_code_wins() -> None:
    # 100 EUR × 0.2 kg/EUR (the row without an additional code) = 20 kg
    (row,) = entry_emissions(
        spec_for(61), purchase(purchase_institutional_code="43211600"), context(IA23, IB11, AVERAGE)
    )
    assert row.factor_id == 3
    assert row.kg_co2eq == pytest.approx(20.0)


def test_an_additional_code_no_factor_carries_falls_back_to_the_average_row() -> None:
    data = purchase(purchase_institutional_code="43211600", purchase_additional_code="ZZ99")
    (row,) = entry_emissions(spec_for(61), data, context(IA23, IB11, AVERAGE))
    assert row.factor_id == 3  # 100 EUR × 0.2 = 20 kg
    assert row.kg_co2eq == pytest.approx(20.0)


def test_a_single_factor_of_the_institutional_code_wins_outright() -> None:
    # The reference's cathode: 5026.65 CHF × 1.05 = 5277.9825 EUR; × 0.3 kg/EUR = 1583.39475 kg
    cathode = purchase_factor(9, "D", "NB61", 0.3, emission_type=90400)
    data = entry(62, name="Cathode TFE 174C", total_spent_amount="5026.65", purchase_institutional_code="d")
    (row,) = entry_emissions(spec_for(62), data, context(cathode, lookups=RATES))
    assert (row.emission_type_id, row.factor_id) == (90400, 9)
    assert row.kg_co2eq == pytest.approx(1583.39475)


def test_matching_is_trimmed_and_case_insensitive() -> None:
    data = purchase(purchase_institutional_code=" 43211600 ", purchase_additional_code="ia23")
    (row,) = entry_emissions(spec_for(61), data, context(AVERAGE, IA23))
    assert row.factor_id == 1  # 100 EUR × 0.5 = 50 kg
    assert row.kg_co2eq == pytest.approx(50.0)


def test_the_institutional_code_disambiguates_a_shared_additional_code() -> None:
    ctx = context(purchase_factor(4, "A", "X1", 0.1), purchase_factor(5, "B", "X1", 0.9))
    (row,) = entry_emissions(
        spec_for(61), purchase(purchase_institutional_code="b", purchase_additional_code="x1"), ctx
    )
    assert row.factor_id == 5  # 100 EUR × 0.9 = 90 kg
    assert row.kg_co2eq == pytest.approx(90.0)
    with pytest.raises(EntryError, match="Ambiguous factor data"):
        entry_emissions(spec_for(61), purchase(purchase_institutional_code="C", purchase_additional_code="X1"), ctx)


def test_no_average_row_or_two_of_them_is_ambiguous() -> None:
    data = purchase(purchase_institutional_code="43211600")
    with pytest.raises(EntryError, match="Ambiguous factor data: 2 factors .* 0 average rows"):
        entry_emissions(spec_for(61), data, context(IA23, IB11))
    average_chf = purchase_factor(6, "43211600", None, 0.2, currency="chf")
    with pytest.raises(EntryError, match="Ambiguous factor data: 3 factors .* 2 average rows"):
        entry_emissions(spec_for(61), data, context(IA23, AVERAGE, average_chf))


def test_no_factor_for_the_codes_means_no_emission() -> None:
    data = purchase(purchase_institutional_code="99999999", purchase_additional_code="QQ")
    assert entry_emissions(spec_for(61), data, context(IA23, AVERAGE)) == []


def test_the_amount_is_converted_into_the_factors_currency() -> None:
    # EF per CHF: 1000 USD × 0.92 EUR/USD / 1.05 EUR/CHF = 876.190476 CHF; × 0.5 kg/CHF = 438.095238 kg
    per_chf = purchase_factor(7, "V", None, 0.5, currency="chf", emission_type=90700)
    data = entry(65, name="van", total_spent_amount="1000", currency="USD", purchase_institutional_code="V")
    (row,) = entry_emissions(spec_for(65), data, context(per_chf, lookups=RATES))
    assert row.emission_type_id == 90700
    assert row.kg_co2eq == pytest.approx(438.0952381)
    assert row.meta["factor_currency"] == "chf"


def test_same_currency_needs_no_rate() -> None:
    # 200 CHF × 0.5 kg/CHF = 100 kg, with no rate known at all
    per_chf = purchase_factor(7, "V", None, 0.5, currency="chf", emission_type=90700)
    data = entry(65, name="van", total_spent_amount="200", purchase_institutional_code="V")
    assert data["currency"] == "chf"  # the default
    (row,) = entry_emissions(spec_for(65), data, context(per_chf))
    assert row.kg_co2eq == pytest.approx(100.0)


def test_a_missing_rate_is_an_entry_error_naming_currency_and_year() -> None:
    data = entry(61, name="x", total_spent_amount="5000", currency="jpy", purchase_institutional_code="43211600")
    with pytest.raises(EntryError, match="No exchange rate to EUR for JPY in 2024"):
        entry_emissions(spec_for(61), data, context(AVERAGE, year=2024, lookups=RATES))


@pytest.mark.parametrize(
    ("det", "category", "emission_type"),
    [
        (60, "scientific_equipment", 90200),
        (61, "it_equipment", 90300),
        (62, "consumable_accessories", 90400),
        (63, "biological_chemical_gaseous_product", 90500),
        (64, "services", 90600),
        (65, "vehicles", 90700),
        (66, "other_purchases", 90800),
    ],
)
def test_each_purchase_category_routes_to_its_det_and_type(det: int, category: str, emission_type: int) -> None:
    assert purchases.FACTOR.routes[category] == det
    assert spec_for(det).factor is purchases.FACTOR
    only = purchase_factor(1, "C", None, 2, emission_type=emission_type)
    data = entry(det, name="x", total_spent_amount="10", currency="eur", purchase_institutional_code="C")
    (row,) = entry_emissions(spec_for(det), data, context(only))
    assert (row.emission_type_id, row.kg_co2eq) == (emission_type, pytest.approx(20.0))  # 10 EUR × 2 = 20 kg


def test_override_lands_on_the_dets_type_even_without_a_factor() -> None:
    data = entry(64, name="cleaning", total_spent_amount="10", purchase_institutional_code="none-such")
    data[OVERRIDE_KEY] = 42.0
    (row,) = entry_emissions(spec_for(64), data, context())
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (90600, 42.0, None)


@pytest.mark.parametrize(
    ("raw", "column", "reason"),
    [
        ({"currency": "btc"}, "currency", "must be one of aud, cad, chf, cny, eur, gbp, jpy, sek, usd (got 'btc')"),
        ({"total_spent_amount": "-1"}, "total_spent_amount", "must be ≥ 0 (got -1)"),
        ({"total_spent_amount": "16,59"}, "total_spent_amount", "use a dot as the decimal separator"),
        ({"total_spent_amount": ""}, "total_spent_amount", "is required"),
        ({"purchase_institutional_code": " "}, "purchase_institutional_code", "is required"),
        ({"quantity": "-2"}, "quantity", "must be ≥ 0 (got -2)"),
    ],
)
def test_bad_purchase_values_name_their_column(raw: dict[str, str], column: str, reason: str) -> None:
    _, errors = spec_for(60).parse_row({**USB_CABLE, **raw})
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]


# Additional purchases (det 67): kg = annual_consumption × coef_to_kg × ef_kg_co2eq_per_kg.

LN2 = factor(20, 90901, {"name": "ln2"}, ef_kg_co2eq_per_kg=0.43)
DRY_ICE = factor(21, 90900, {"name": "dry_ice"}, ef_kg_co2eq_per_kg=1.0)


def test_reference_example_ln2() -> None:
    # 1200 l × 0.808 kg/l = 969.6 kg of LN2; × 0.43 = 416.928 kg
    data = entry(67, name="LN2", unit="l", annual_consumption="1200", coef_to_kg="0.808")
    (row,) = entry_emissions(spec_for(67), data, context(LN2, DRY_ICE))
    assert (row.emission_type_id, row.factor_id) == (90901, 20)
    assert row.kg_co2eq == pytest.approx(416.928)


def test_a_name_with_spaces_finds_the_factor_spelled_with_underscores() -> None:
    # 300 kg × 1 kg/kg × 1.0 = 300 kg, under the "additional" node since it is not LN2
    data = entry(67, name="Dry  ice", unit="kg", annual_consumption="300", coef_to_kg="1")
    (row,) = entry_emissions(spec_for(67), data, context(LN2, DRY_ICE))
    assert (row.emission_type_id, row.factor_id) == (90900, 21)
    assert row.kg_co2eq == pytest.approx(300.0)


def test_unknown_additional_purchase_means_no_emission() -> None:
    data = entry(67, name="Helium", unit="l", annual_consumption="10", coef_to_kg="0.125")
    assert entry_emissions(spec_for(67), data, context(LN2, DRY_ICE)) == []


def test_additional_override_lands_on_the_ln2_leaf() -> None:
    data = entry(67, name="ln2", unit="l", annual_consumption="1", coef_to_kg="1")
    data[OVERRIDE_KEY] = 9.0
    (row,) = entry_emissions(spec_for(67), data, context())
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (90901, 9.0, None)


def test_additional_factor_rows_are_stored_under_their_type() -> None:
    assert purchases.ADDITIONAL_FACTOR.emission_type({"name": " LN2 "}) == 90901
    assert purchases.ADDITIONAL_FACTOR.emission_type({"name": "dry_ice"}) == 90900
    assert spec_for(67).requires_factors
    assert not spec_for(60).requires_factors  # satisfied by the module's common factor file


@pytest.mark.parametrize(
    ("raw", "column", "reason"),
    [
        ({"coef_to_kg": ""}, "coef_to_kg", "is required"),
        ({"annual_consumption": "-5"}, "annual_consumption", "must be ≥ 0 (got -5)"),
        ({"unit": ""}, "unit", "is required"),
    ],
)
def test_bad_additional_values_name_their_column(raw: dict[str, str], column: str, reason: str) -> None:
    _, errors = spec_for(67).parse_row(
        {"name": "LN2", "unit": "l", "annual_consumption": "1200", "coef_to_kg": "0.808", **raw}
    )
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]
