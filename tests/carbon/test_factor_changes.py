"""Emissions follow their factors, for every data-entry type of every module.

For each type: one entry and one matching factor; the recalculated emission is positive;
doubling the factor's coefficient doubles it; removing the factor clears it (the entry stays);
a factor uploaded afterwards matches the entry again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from carbon.catalogue import CATALOGUE, spec_for
from carbon.choices import TransportMode
from carbon.models import BuildingRoom, CurrencyRate, DataEntryEmission, Factor, Location
from carbon.services import emissions_recalculate
from tests.carbon.conftest import make_entry, make_factor, make_year

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Case:
    det: int
    emission_type: int
    classification: dict[str, Any]
    values: dict[str, Any]
    # the coefficients that scale the emission linearly
    doubled: tuple[str, ...]
    entry: dict[str, Any]
    reference: dict[str, Any] = field(default_factory=dict)


MONITOR = {"active_power_w": 100, "standby_power_w": 10, "active_usage_hours_per_week": 40,
           "standby_usage_hours_per_week": 128, "ef_kg_co2eq_per_kwh": 0.1}  # fmt: skip
EQUIPMENT = {"equipment_id": "B1", "name": "EIZO", "equipment_class": "Monitors"}
FOOD = {"headcount_category": "food", "headcount_class": "vegetarian", "unit": "meal"}
PURCHASE = {"name": "cable", "total_spent_amount": "100", "currency": "eur", "purchase_institutional_code": "43000000"}

CASES = [
    Case(1, 10001, FOOD, {"number_of_unit_per_fte": 100, "ef_kg_co2eq_per_unit": 1.2}, ("ef_kg_co2eq_per_unit",),
         {"name": "A", "sius_code": "53", "user_institutional_id": "1", "fte": "0.8"}),
    Case(2, 10001, FOOD, {"number_of_unit_per_fte": 100, "ef_kg_co2eq_per_unit": 1.2}, ("ef_kg_co2eq_per_unit",),
         {"fte": "2"}),
    Case(20, 50203, {"category": "short_to_medium_haul", "cabin_class": "economy"},
         {"ef_kg_co2eq_per_km": 0.2906, "rfi_adjustment": 1.35, "min_distance": 0, "max_distance": 2500},
         ("ef_kg_co2eq_per_km",),
         {"origin_iata": "GVA", "destination_iata": "CDG", "user_institutional_id": "1", "cabin_class": "Economy"},
         {"airports": True}),
    Case(21, 50102, {"country_code": "CH"}, {"ef_kg_co2eq_per_km": 0.0075}, ("ef_kg_co2eq_per_km",),
         {"user_institutional_id": "1", "origin_name": "Lausanne", "origin_country_code": "CH",
          "destination_name": "Genève", "destination_country_code": "CH", "origin_natural_key": "train:ch:lausanne",
          "destination_natural_key": "train:ch:geneve", "cabin_class": "second"},
         {"stations": True}),
    Case(30, 60101, {"building_name": "BC", "room_type": "office"},
         {"ef_kg_co2eq_per_kwh": 0.1, "heating_kwh_per_square_meter": 80, "cooling_kwh_per_square_meter": 10,
          "ventilation_kwh_per_square_meter": 15, "lighting_kwh_per_square_meter": 20, "energy_type": "thermal",
          "conversion_factor": 1},
         ("ef_kg_co2eq_per_kwh",), {"building_name": "BC", "room_name": "BC 150", "room_type": "office"},
         {"rooms": True}),
    Case(31, 60201, {"unit": "kWh", "name": "natural_gas"}, {"ef_kg_co2eq_per_unit": 0.228},
         ("ef_kg_co2eq_per_unit",), {"name": "natural_gas", "quantity": "12000"}),
    Case(32, 60300, {"building_name": "BC", "category": "new-tech"}, {"ef_kgco2eq_per_m2": 12.5},
         ("ef_kgco2eq_per_m2",), {"building_name": "BC", "room_surface_square_meter": "24.5"}),
    *[Case(det, t, {"equipment_class": "Monitors"}, MONITOR, ("ef_kg_co2eq_per_kwh",), EQUIPMENT)
      for det, t in ((10, 80100), (11, 80200), (12, 80300))],
    *[Case(det, 90200 + (det - 60) * 100, {"purchase_institutional_code": "43000000", "currency": "eur"},
           {"ef_kg_co2eq_per_currency": 0.5}, ("ef_kg_co2eq_per_currency",), PURCHASE)
      for det in range(60, 67)],
    Case(67, 90901, {"name": "ln2"}, {"ef_kg_co2eq_per_kg": 0.43}, ("ef_kg_co2eq_per_kg",),
         {"name": "LN2", "unit": "l", "annual_consumption": "1200", "coef_to_kg": "0.808"}),
    Case(40, 110103, {"service_type": "storage", "provider": "AWS", "currency": "eur"},
         {"ef_kg_co2eq_per_currency": 0.05}, ("ef_kg_co2eq_per_currency",),
         {"service_type": "storage", "provider": "aws", "spent_amount": "6192", "currency": "eur"}),
    Case(41, 110202, {"provider": "Mistral AI", "usage_type": "text"}, {"ef_kg_co2eq_per_request": 1.14},
         ("ef_kg_co2eq_per_request",),
         {"provider": "Mistral AI", "usage_type": "text", "requests_per_user_per_day": "5_20", "fte_count": "3"}),
    Case(50, 70200, {"category": "co2", "unit": "kg"}, {"ef_kg_co2eq_per_unit": 1.0}, ("ef_kg_co2eq_per_unit",),
         {"category": "CO2", "quantity": "100"}),
    Case(70, 100100, {"researchfacility_id": "13101", "researchfacility_name": "CIBM"},
         {"use_unit": "hours", "total_use": 4000, "kg_co2eq_sum": 8000}, ("kg_co2eq_sum",),
         {"researchfacility_id": "13101", "researchfacility_name": "CIBM", "use": "35", "use_unit": "hours"}),
    Case(71, 10020001, {"researchfacility_id": "1321", "researchfacility_name": "CPG", "researchfacility_type": "mice"},
         {"use_unit": "housings", "total_use": 2000, "building_rooms_share": 0.6, "kg_co2eq_sum_building_rooms": 40000},
         ("kg_co2eq_sum_building_rooms",),
         {"researchfacility_id": "1321", "researchfacility_name": "CPG", "researchfacility_type": "mice", "use": "258",
          "use_unit": "housings"}),
]  # fmt: skip


def test_every_declared_type_has_a_case() -> None:
    assert sorted(c.det for c in CASES) == sorted(int(det) for det in CATALOGUE)


def _reference_data(case: Case) -> None:
    if case.reference.get("airports"):
        for iata, lat, lon in (("GVA", 46.2381, 6.1090), ("CDG", 49.0097, 2.5479)):
            Location.objects.create(transport_mode=TransportMode.PLANE, name=iata, iata_code=iata, latitude=lat,
                                    longitude=lon, natural_key=f"plane:{iata}")  # fmt: skip
    if case.reference.get("stations"):
        for key, lat, lon in (("train:ch:lausanne", 46.5167, 6.6291), ("train:ch:geneve", 46.2102, 6.1424)):
            Location.objects.create(transport_mode=TransportMode.TRAIN, name=key, country_code="CH", latitude=lat,
                                    longitude=lon, natural_key=key)  # fmt: skip
    if case.reference.get("rooms"):
        BuildingRoom.objects.create(building_name="BC", room_name="BC 150", room_surface_square_meter=24.5)
    CurrencyRate.objects.create(year=2025, currency="chf", rate_to_eur=1.05)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"det{c.det}")
def test_emissions_follow_the_factor(case: Case) -> None:
    # given: one entry stored as an upload would store it (parsed and normalised)
    year = make_year(units=1)
    _reference_data(case)
    spec = spec_for(case.det)
    data, errors = spec.parse_row(case.entry)
    assert errors == []
    entry = make_entry(year.modules[(0, int(spec.module))], case.det, data)
    factor = make_factor(case.det, case.emission_type, case.classification, **case.values)

    def kg() -> float:
        emissions_recalculate(data_entry_type_id=case.det, year=2025)
        rows = DataEntryEmission.objects.filter(data_entry=entry, is_rollup=False)
        return sum(rows.values_list("kg_co2eq", flat=True))

    base = kg()
    assert base > 0
    # doubling the coefficient doubles the emission
    Factor.objects.filter(pk=factor.pk).update(values={**case.values, **{k: case.values[k] * 2 for k in case.doubled}})
    assert kg() == pytest.approx(2 * base)
    # removing the factor clears it; the entry stays
    factor.delete()
    assert kg() == 0
    # a factor uploaded later matches the entry that had none
    make_factor(case.det, case.emission_type, case.classification, **case.values)
    assert kg() == pytest.approx(base)
