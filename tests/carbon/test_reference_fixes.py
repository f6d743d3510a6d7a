"""The reference system's quirks that this implementation fixes (reference-domain §11).

Each test here fails on the reference behaviour. The other fixes are pinned where they live:
embodied energy counted once and leaves-only IT totals in test_recalc_and_aggregation.py,
the external-AI single row also in test_formulas_external.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from carbon.catalogue import spec_for
from carbon.compute import classification_key
from carbon.models import BuildingRoom, DataEntryEmission, Factor
from carbon.selectors import DbLookups
from carbon.services import emissions_recalculate
from tests.carbon.conftest import make_entry, make_factor, make_year

pytestmark = pytest.mark.django_db

MONITOR: dict[str, Any] = {"active_power_w": 100, "standby_power_w": 10, "active_usage_hours_per_week": 40,
           "standby_usage_hours_per_week": 128, "ef_kg_co2eq_per_kwh": 0.1}  # fmt: skip


def test_one_normalisation_for_identity_and_matching() -> None:
    # upload identity: the same factor written differently is the same factor
    assert classification_key({"equipment_class": " Monitors ", "sub_class": ""}) == classification_key(
        {"equipment_class": "monitors"}
    )
    # recalc matching: the reference matched case-insensitively at upload, exactly at recalc,
    # so "MONITORS" linked at upload and silently lost its emission at the next recalc
    year = make_year(units=1)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR)
    entry = make_entry(year.modules[(0, 4)], 11, {"equipment_id": "1", "name": "m", "equipment_class": "MONITORS"})
    emissions_recalculate(data_entry_type_id=11, year=2025)
    assert DataEntryEmission.objects.get(data_entry=entry).kg_co2eq == pytest.approx(27.456)
    assert Factor.objects.get().classification == {"equipment_class": "monitors"}


def test_external_ai_entry_gets_one_emission_not_six() -> None:
    year = make_year(units=1)
    make_factor(41, 110204, {"provider": "ChatGPT (OpenAI)", "usage_type": "code"}, ef_kg_co2eq_per_request=4.32)
    data, errors = spec_for(41).parse_row(
        {
            "provider": "ChatGPT (OpenAI)",
            "usage_type": "code",
            "requests_per_user_per_day": "gt_100",
            "fte_count": "0.8",
        }
    )
    assert errors == []
    entry = make_entry(year.modules[(0, 7)], 41, data)
    emissions_recalculate(data_entry_type_id=41, year=2025)
    (row,) = DataEntryEmission.objects.filter(data_entry=entry)
    # 100 requests × 5 days × 46 weeks × 0.8 fte × 4.32 g / 1000 = 79.488 kg, under OpenAI
    assert (row.emission_type_id, row.kg_co2eq) == (110204, pytest.approx(79.488))


def test_rooms_are_matched_by_building_and_room() -> None:
    # the reference looked rooms up by name alone and took the first: another building's room
    BuildingRoom.objects.create(building_name="CM", room_name="101", room_surface_square_meter=300)
    BuildingRoom.objects.create(building_name="BC", room_name="101", room_surface_square_meter=20)
    lookups = DbLookups(year=2025)
    assert lookups.room_surface("BC", "101") == 20
    assert lookups.room_surface("cm ", "101") == 300
    assert lookups.room_surface("XX", "101") is None
