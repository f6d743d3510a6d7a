"""Travel emissions against figures worked out by hand (reference-domain §2.3).

Distances are checked with the spherical law of cosines, an independent formula for the
same great circle, so a slip in the haversine under test cannot hide in its own copy.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from carbon.catalogue import spec_for
from carbon.catalogue.base import EntryError
from carbon.catalogue.travel import train_country
from carbon.compute import OVERRIDE_KEY, entry_emissions
from tests.carbon.fakes import FakeLookups, context, factor

GVA = (46.2381, 6.1090)
CDG = (49.0097, 2.5479)
JFK = (40.6413, -73.7781)
LAUSANNE = (46.5167, 6.6291)
GENEVE = (46.2104, 6.1424)
PARIS_GARE_DE_LYON = (48.8443, 2.3744)

AIRPORTS = FakeLookups(airports={"GVA": GVA, "CDG": CDG, "JFK": JFK})
STATIONS = FakeLookups(
    stations={
        "train:ch:lausanne": LAUSANNE,
        "train:ch:genève": GENEVE,
        "train:fr:paris gare de lyon": PARIS_GARE_DE_LYON,
    }
)


def law_of_cosines_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    cos_angle = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return 6371 * math.acos(cos_angle)


def plane_factor(id: int, category: str, cabin: str, ef: float, low: float, high: float) -> Any:
    return factor(id, 50200, {"category": category, "cabin_class": cabin}, ef_kg_co2eq_per_km=ef,
                  rfi_adjustment=1.35, min_distance=low, max_distance=high)  # fmt: skip


SHORT_ECONOMY = plane_factor(1, "short_to_medium_haul", "economy", 0.2906, 0, 2500)
SHORT_BUSINESS = plane_factor(2, "short_to_medium_haul", "business", 0.4471, 0, 2500)
LONG_BUSINESS = plane_factor(3, "medium_to_long_haul", "business", 0.3930, 2500, 999999)
PLANES = (SHORT_ECONOMY, SHORT_BUSINESS, LONG_BUSINESS)

TRAIN_CH = factor(11, 50100, {"country_code": "CH"}, ef_kg_co2eq_per_km=0.0075)
TRAIN_ROW = factor(12, 50100, {"country_code": "RoW"}, ef_kg_co2eq_per_km=0.035)
TRAIN_FR = factor(13, 50100, {"country_code": "fr"}, ef_kg_co2eq_per_km=0.02)

FLIGHT = {"origin_iata": "GVA", "destination_iata": "CDG", "user_institutional_id": "123456", "cabin_class": "economy"}
TRIP = {
    "user_institutional_id": "123456",
    "origin_name": "Lausanne",
    "origin_country_code": "CH",
    "destination_name": "Genève",
    "destination_country_code": "CH",
    "origin_natural_key": "train:ch:lausanne",
    "destination_natural_key": "train:ch:genève",
    "cabin_class": "second",
}
TO_PARIS = {
    "destination_name": "Paris Gare de Lyon",
    "destination_country_code": "FR",
    "destination_natural_key": "train:fr:paris gare de lyon",
    "cabin_class": "first",
    "number_of_trips": "2",
}


def parsed(det: int, base: dict[str, Any], **raw: Any) -> dict[str, Any]:
    data, errors = spec_for(det).parse_row({**base, **raw})
    assert errors == []
    return data


def test_the_hand_distances_are_the_great_circle() -> None:
    assert round(law_of_cosines_km(GVA, CDG)) == 408
    assert round(law_of_cosines_km(GVA, JFK)) == 6201
    assert round(law_of_cosines_km(LAUSANNE, GENEVE)) == 51
    assert round(law_of_cosines_km(LAUSANNE, PARIS_GARE_DE_LYON)) == 410


def test_plane_short_haul_economy_return_trip() -> None:
    (row,) = entry_emissions(spec_for(20), parsed(20, FLIGHT, number_of_trips="2"), context(*PLANES, lookups=AIRPORTS))
    # GVA–CDG 408 km + 95 km approach = 503 km a trip (short haul, < 2500); × 2 trips = 1006 km
    distance = (round(law_of_cosines_km(GVA, CDG)) + 95) * 2
    assert distance == 1006
    # 1006 km × 0.2906 kg/km × 1.35 RFI = 394.66386 kg; 1006 × 1.35 = 1358.1 km
    assert (row.emission_type_id, row.factor_id) == (50203, 1)
    assert row.kg_co2eq == pytest.approx(distance * 0.2906 * 1.35)
    assert row.kg_co2eq == pytest.approx(394.66386)
    assert row.additional_value == pytest.approx(1358.1)
    assert row.meta == {"distance_km": 1006, "haul_category": "short_to_medium_haul"}


def test_plane_long_haul_business_one_trip_by_default() -> None:
    data = parsed(20, FLIGHT, destination_iata="JFK", cabin_class="business")
    assert data["number_of_trips"] == 1
    (row,) = entry_emissions(spec_for(20), data, context(*PLANES, lookups=AIRPORTS))
    # GVA–JFK 6201 km + 95 = 6296 km (≥ 2500: long haul); × 0.3930 × 1.35 = 3340.3428 kg
    assert (row.emission_type_id, row.factor_id) == (50202, 3)
    assert row.kg_co2eq == pytest.approx(3340.3428)


def test_plane_matching_ignores_case_everywhere() -> None:
    # Stored as typed (not through the parser): the original never matched 'Economy' (§2.3 ⚠).
    data = {**FLIGHT, "origin_iata": "gva", "cabin_class": "Economy"}
    upper = plane_factor(9, "SHORT_TO_MEDIUM_HAUL", "ECONOMY", 0.2906, 0, 2500)
    (row,) = entry_emissions(spec_for(20), data, context(upper, lookups=AIRPORTS))
    # 408 + 95 = 503 km × 0.2906 × 1.35 = 197.33193 kg
    assert (row.emission_type_id, row.factor_id) == (50203, 9)
    assert row.kg_co2eq == pytest.approx(197.33193)


def test_plane_with_an_unknown_airport_gives_no_emission_and_a_warning() -> None:
    ctx = context(*PLANES, lookups=AIRPORTS)
    assert entry_emissions(spec_for(20), parsed(20, FLIGHT, destination_iata="XXX"), ctx) == []
    assert ctx.warnings == ["destination_iata 'XXX' has no known coordinates: no emission"]


def test_plane_outside_every_band_gives_no_emission() -> None:
    # 6296 km is beyond the only band, [0, 2500).
    ctx = context(SHORT_BUSINESS, lookups=AIRPORTS)
    data = parsed(20, FLIGHT, destination_iata="JFK", cabin_class="business")
    assert entry_emissions(spec_for(20), data, ctx) == []
    assert ctx.warnings == ["no plane factor band holds 6296 km: no emission"]


def test_plane_without_a_factor_for_its_cabin_gives_no_emission() -> None:
    data = parsed(20, FLIGHT, cabin_class="first")
    assert entry_emissions(spec_for(20), data, context(*PLANES, lookups=AIRPORTS)) == []


def test_overlapping_plane_bands_are_an_entry_error() -> None:
    overlapping = plane_factor(4, "regional", "economy", 0.3, 0, 1000)
    with pytest.raises(EntryError, match="plane factors overlap at 503 km: regional, short_to_medium_haul"):
        entry_emissions(spec_for(20), parsed(20, FLIGHT), context(*PLANES, overlapping, lookups=AIRPORTS))


def test_plane_override_lands_on_the_cabin_leaf_even_without_coordinates() -> None:
    data = {**parsed(20, FLIGHT, origin_iata="XXX", cabin_class="Business"), OVERRIDE_KEY: 0.0}
    (row,) = entry_emissions(spec_for(20), data, context(*PLANES, lookups=AIRPORTS))
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (50202, 0.0, None)


def test_train_domestic_second_class() -> None:
    (row,) = entry_emissions(spec_for(21), parsed(21, TRIP), context(TRAIN_CH, TRAIN_ROW, lookups=STATIONS))
    # Lausanne–Genève 51 km × 1.2 = 61.2 → 61 km; CH rate: 61 × 0.0075 = 0.4575 kg
    assert round(round(law_of_cosines_km(LAUSANNE, GENEVE)) * 1.2) == 61
    assert (row.emission_type_id, row.factor_id) == (50102, 11)
    assert row.kg_co2eq == pytest.approx(0.4575)
    assert row.additional_value == pytest.approx(61.0)
    assert row.meta == {"distance_km": 61, "country_code": "CH"}


def test_train_abroad_falls_back_to_rest_of_world() -> None:
    (row,) = entry_emissions(spec_for(21), parsed(21, TRIP, **TO_PARIS), context(TRAIN_CH, TRAIN_ROW, lookups=STATIONS))
    # Lausanne–Paris 410 km × 1.2 = 492 km × 2 trips = 984 km; no FR factor → RoW: 984 × 0.035 = 34.44 kg
    assert (row.emission_type_id, row.factor_id) == (50101, 12)
    assert row.kg_co2eq == pytest.approx(34.44)
    assert row.additional_value == pytest.approx(984.0)


def test_train_abroad_uses_the_country_factor_whatever_its_case() -> None:
    data = parsed(21, TRIP, **{**TO_PARIS, "destination_country_code": "Fr"})
    (row,) = entry_emissions(spec_for(21), data, context(TRAIN_CH, TRAIN_ROW, TRAIN_FR, lookups=STATIONS))
    # 984 km × 0.02 = 19.68 kg
    assert row.factor_id == 13
    assert row.kg_co2eq == pytest.approx(19.68)


@pytest.mark.parametrize(
    ("origin", "destination", "expected"),
    [("CH", "CH", "CH"), ("ch", " ch ", "CH"), ("CH", "FR", "FR"), ("FR", "CH", "FR"), ("DE", "FR", "FR"),
     ("", "CH", "RoW")],
)  # fmt: skip
def test_train_country_rule(origin: str, destination: str, expected: str) -> None:
    assert train_country(origin, destination) == expected


def test_train_without_a_resolved_station_gives_no_emission_and_a_warning() -> None:
    ctx = context(TRAIN_CH, TRAIN_ROW, lookups=STATIONS)
    data = parsed(21, TRIP)
    del data["destination_natural_key"]
    assert entry_emissions(spec_for(21), data, ctx) == []
    assert ctx.warnings == ["destination_natural_key is missing: no emission"]


def test_train_with_an_unknown_class_gives_no_emission() -> None:
    ctx = context(TRAIN_CH, lookups=STATIONS)
    assert entry_emissions(spec_for(21), {**TRIP, "cabin_class": "third"}, ctx) == []
    assert ctx.warnings == ["unknown cabin_class 'third': no emission"]


def test_train_override() -> None:
    data = {**parsed(21, TRIP, cabin_class="FIRST"), OVERRIDE_KEY: 12.5}
    (row,) = entry_emissions(spec_for(21), data, context(TRAIN_CH, lookups=STATIONS))
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (50101, 12.5, None)


@pytest.mark.parametrize(
    ("det", "raw", "column", "reason"),
    [
        (20, {"cabin_class": "premium"}, "cabin_class", "must be one of first, business, economy (got 'premium')"),
        (20, {"number_of_trips": "0"}, "number_of_trips", "must be ≥ 1 (got 0)"),
        (20, {"number_of_trips": "1.5"}, "number_of_trips", "must be a whole number (got 1.5)"),
        (20, {"departure_date": "2025-13-01"}, "departure_date", "must be a date like 2025-03-10"),
        (20, {"origin_iata": ""}, "origin_iata", "is required"),
        (21, {"cabin_class": "economy"}, "cabin_class", "must be one of first, second (got 'economy')"),
        (21, {"origin_country_code": ""}, "origin_country_code", "is required"),
    ],
)
def test_bad_values_name_their_column(det: int, raw: dict[str, str], column: str, reason: str) -> None:
    _, errors = spec_for(det).parse_row({**(FLIGHT if det == 20 else TRIP), **raw})
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]


def test_departure_dates_are_stored_iso() -> None:
    assert parsed(20, FLIGHT, departure_date="10.03.2025")["departure_date"] == "2025-03-10"
