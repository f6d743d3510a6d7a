"""Buildings emissions against figures worked out by hand (reference-domain §2.3)."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.catalogue import spec_for
from carbon.catalogue.buildings import BUILDING_FACTOR, COMBUSTION_FACTOR
from carbon.compute import OVERRIDE_KEY, entry_emissions
from tests.carbon.fakes import FakeLookups, context, factor

# The same room name in two buildings: only the (building, room) pair tells them apart (§11.10).
ROOMS = FakeLookups(rooms={("BC", "BC 150"): 24.5, ("BC", "BC 210"): 61.0, ("CE", "BC 150"): 1000.0})

BC_OFFICE = factor(1, 60100, {"building_name": "BC", "room_type": "office"}, heating_kwh_per_square_meter=80,
                   cooling_kwh_per_square_meter=10, ventilation_kwh_per_square_meter=15,
                   lighting_kwh_per_square_meter=20, ef_kg_co2eq_per_kwh=0.1, energy_type="thermal",
                   conversion_factor=1)  # fmt: skip
# energy_type as an alias, as a factor stored before normalisation could carry it.
BC_LAB = factor(2, 60100, {"building_name": "bc", "room_type": "Laboratories"}, heating_kwh_per_square_meter=150,
                cooling_kwh_per_square_meter=40, ventilation_kwh_per_square_meter=60,
                lighting_kwh_per_square_meter=25, ef_kg_co2eq_per_kwh=0.1, energy_type="elec",
                conversion_factor=0.33)  # fmt: skip

NATURAL_GAS = factor(11, 60201, {"unit": "kWh", "name": "natural_gas"}, ef_kg_co2eq_per_unit=0.228)
COAL = factor(12, 60200, {"unit": "kg", "name": "coal"}, ef_kg_co2eq_per_unit=0.34)

DEFAULT_NEW = factor(21, 60300, {"building_name": "default", "category": "new-tech"}, ef_kgco2eq_per_m2=12.5)
DEFAULT_DEMOLITION = factor(22, 60300, {"building_name": "default", "category": "demolition"}, ef_kgco2eq_per_m2=2)
BC_RENOVATION = factor(23, 60300, {"building_name": "BC", "category": "ren-env"}, ef_kgco2eq_per_m2=4.0)
EMBODIED = (DEFAULT_NEW, DEFAULT_DEMOLITION, BC_RENOVATION)

OFFICE = {"building_name": "BC", "room_name": "BC 150", "room_type": "office"}


def parsed(det: int, raw: dict[str, Any]) -> dict[str, Any]:
    data, errors = spec_for(det).parse_row(raw)
    assert errors == []
    return data


def kg_by_type(rows: list[Any]) -> dict[int, float]:
    return {row.emission_type_id: row.kg_co2eq for row in rows}


def test_office_thermal_heating() -> None:
    rows = entry_emissions(spec_for(30), parsed(30, OFFICE), context(BC_OFFICE, BC_LAB, lookups=ROOMS))
    # 24.5 m² × 1 (default ratio) × 0.1 kg/kWh:
    assert kg_by_type(rows) == {
        6010101: pytest.approx(49.0),  # lighting: 24.5 × 20 × 0.1
        6010201: pytest.approx(24.5),  # cooling: 24.5 × 10 × 0.1
        6010301: pytest.approx(36.75),  # ventilation: 24.5 × 15 × 0.1
        6010401: 0.0,  # electric heating: the factor is thermal, so conversion 0 (row still written)
        6010501: pytest.approx(196.0),  # thermal heating: 24.5 × 80 × 0.1 × 1
        60100: pytest.approx(306.25),  # rollup: 49 + 24.5 + 36.75 + 0 + 196
    }
    assert {row.factor_id for row in rows} == {1}


def test_laboratory_electric_heating_with_a_ratio() -> None:
    data = parsed(30, {**OFFICE, "room_name": "BC 210", "room_type": "laboratories", "room_allocation_ratio": "0.5"})
    rows = entry_emissions(spec_for(30), data, context(BC_OFFICE, BC_LAB, lookups=ROOMS))
    # 61 m² × 0.5 = 30.5 m²; × 0.1 kg/kWh:
    assert kg_by_type(rows) == {
        6010102: pytest.approx(76.25),  # lighting: 30.5 × 25 × 0.1
        6010202: pytest.approx(122.0),  # cooling: 30.5 × 40 × 0.1
        6010302: pytest.approx(183.0),  # ventilation: 30.5 × 60 × 0.1
        6010402: pytest.approx(150.975),  # electric heating ('elec'): 30.5 × 150 × 0.33 × 0.1
        6010502: 0.0,  # thermal heating: the factor is electric
        60100: pytest.approx(532.225),  # rollup: 76.25 + 122 + 183 + 150.975
    }


def test_room_is_found_by_building_and_room_not_room_alone() -> None:
    ctx = context(BC_OFFICE, lookups=FakeLookups(rooms={("CE", "BC 150"): 1000.0}))
    assert entry_emissions(spec_for(30), parsed(30, OFFICE), ctx) == []
    assert ctx.warnings == ["room 'BC 150' of building 'BC' has no known surface: no emission"]


def test_building_without_a_factor_for_the_room_type_gives_no_emission() -> None:
    data = parsed(30, {**OFFICE, "room_type": "Archives"})
    assert entry_emissions(spec_for(30), data, context(BC_OFFICE, BC_LAB, lookups=ROOMS)) == []


def test_building_override_needs_no_surface() -> None:
    data = {**parsed(30, {**OFFICE, "room_name": "BC 999"}), OVERRIDE_KEY: 123.0}
    (row,) = entry_emissions(spec_for(30), data, context(BC_OFFICE, lookups=ROOMS))
    # One row, on the first use's leaf (lighting of an office); no rollup for a single row.
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (6010101, 123.0, None)


def test_building_factor_energy_type_aliases_are_normalised_at_upload() -> None:
    energy_type = next(column for column in BUILDING_FACTOR.values if column.name == "energy_type")
    assert [energy_type.parse(raw) for raw in ("elec", "Electricity", "therm", "thermal")] == [
        "electric",
        "electric",
        "thermal",
        "thermal",
    ]


def test_combustion_of_a_listed_fuel() -> None:
    data = parsed(31, {"name": "Natural_Gas", "quantity": "12000"})
    (row,) = entry_emissions(spec_for(31), data, context(NATURAL_GAS, COAL))
    # 12000 kWh × 0.228 kg/kWh = 2736 kg
    assert (row.emission_type_id, row.factor_id) == (60201, 11)
    assert row.kg_co2eq == pytest.approx(2736.0)


def test_combustion_of_an_unlisted_fuel_is_filed_under_combustion() -> None:
    (row,) = entry_emissions(spec_for(31), parsed(31, {"name": "coal", "quantity": "100"}), context(NATURAL_GAS, COAL))
    # 100 kg × 0.34 = 34 kg
    assert (row.emission_type_id, row.factor_id) == (60200, 12)
    assert row.kg_co2eq == pytest.approx(34.0)


def test_combustion_without_a_factor_gives_no_emission() -> None:
    data = parsed(31, {"name": "pellets", "quantity": "3000"})
    assert entry_emissions(spec_for(31), data, context(NATURAL_GAS)) == []


def test_combustion_needs_factors_and_its_override_needs_none() -> None:
    assert spec_for(31).requires_factors
    data = {**parsed(31, {"name": "Wood logs", "quantity": "1"}), OVERRIDE_KEY: 7.0}
    (row,) = entry_emissions(spec_for(31), data, context())
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (60206, 7.0, None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("natural_gas", 60201), ("Heating Oil", 60202), ("BIOMETHANE", 60203), ("pellets", 60204),
     ("forest_chips", 60205), ("wood_logs", 60206), ("coal", 60200)],
)  # fmt: skip
def test_combustion_factor_emission_type_from_its_name(name: str, expected: int) -> None:
    assert COMBUSTION_FACTOR.emission_type({"unit": "kg", "name": name}) == expected


def test_embodied_energy_of_a_building_with_its_own_factors() -> None:
    data = parsed(32, {"building_name": "bc", "room_surface_square_meter": "24.5", "data_entry_id": "7"})
    (row,) = entry_emissions(spec_for(32), data, context(*EMBODIED))
    # Only BC's own category: 24.5 m² × 4 kg/m² = 98 kg
    assert (row.emission_type_id, row.factor_id) == (60300, 23)
    assert row.kg_co2eq == pytest.approx(98.0)


def test_embodied_energy_falls_back_to_the_default_building() -> None:
    data = parsed(32, {"building_name": "CE", "room_surface_square_meter": "24.5"})
    rows = entry_emissions(spec_for(32), data, context(*EMBODIED))
    # One row per default category, no rollup: 24.5 × 12.5 = 306.25 kg; 24.5 × 2 = 49 kg
    assert [(row.emission_type_id, row.factor_id) for row in rows] == [(60300, 21), (60300, 22)]
    assert [row.kg_co2eq for row in rows] == [pytest.approx(306.25), pytest.approx(49.0)]


def test_embodied_energy_is_never_uploaded_and_takes_overrides() -> None:
    assert not spec_for(32).csv_upload
    data = {**parsed(32, {"building_name": "CE", "room_surface_square_meter": "24.5"}), OVERRIDE_KEY: 1.0}
    (row,) = entry_emissions(spec_for(32), data, context())
    assert (row.emission_type_id, row.kg_co2eq) == (60300, 1.0)


@pytest.mark.parametrize(
    ("det", "raw", "column", "reason"),
    [
        (30, {**OFFICE, "room_type": "kitchen"}, "room_type", "must be one of office, laboratories, archives"),
        (30, {**OFFICE, "room_allocation_ratio": "1.5"}, "room_allocation_ratio", "must be ≤ 1 (got 1.5)"),
        (30, {**OFFICE, "room_name": ""}, "room_name", "is required"),
        (31, {"name": "natural_gas", "quantity": "-1"}, "quantity", "must be ≥ 0 (got -1)"),
        (31, {"name": "natural_gas", "quantity": "12 000"}, "quantity", "must be a number"),
        (32, {"building_name": "BC", "room_surface_square_meter": ""}, "room_surface_square_meter", "is required"),
    ],
)
def test_bad_values_name_their_column(det: int, raw: dict[str, str], column: str, reason: str) -> None:
    _, errors = spec_for(det).parse_row(raw)
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]
