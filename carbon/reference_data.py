"""Reference enumerations as rows: modules, data-entry types and the emission-type tree.

Pure data; ``reference_rows_sync`` writes it through whichever app registry it is given
(the historical one in migrations, the live one in tests after a flush). Ids are the
reference system's (reference-domain §1.5) and are an ABI: append new rows, never renumber.
A change here must ship with a migration that calls the sync again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carbon.choices import DataEntryTypeId as D
from carbon.choices import EmissionCategory as C
from carbon.choices import ModuleTypeId as M
from carbon.choices import Scope as S

MODULE_DATA_ENTRY_TYPES: dict[M, tuple[D, ...]] = {
    M.HEADCOUNT: (D.MEMBER, D.STUDENT),
    M.PROFESSIONAL_TRAVEL: (D.PLANE, D.TRAIN),
    M.BUILDINGS: (D.BUILDING, D.ENERGY_COMBUSTION, D.BUILDING_EMBODIED_ENERGY),
    M.EQUIPMENT: (D.SCIENTIFIC, D.IT, D.OTHER),
    M.PURCHASE: (
        D.SCIENTIFIC_EQUIPMENT,
        D.IT_EQUIPMENT,
        D.CONSUMABLE_ACCESSORIES,
        D.BIOLOGICAL_CHEMICAL_GASEOUS_PRODUCT,
        D.SERVICES,
        D.VEHICLES,
        D.OTHER_PURCHASES,
        D.ADDITIONAL_PURCHASES,
    ),
    M.RESEARCH_FACILITIES: (D.RESEARCH_FACILITIES, D.MICE_AND_FISH_ANIMAL_FACILITIES),
    M.EXTERNAL_CLOUD_AND_AI: (D.EXTERNAL_CLOUDS, D.EXTERNAL_AI),
    M.PROCESS_EMISSIONS: (D.PROCESS_EMISSIONS,),
}

DATA_ENTRY_TYPE_MODULE: dict[D, M] = {det: module for module, dets in MODULE_DATA_ENTRY_TYPES.items() for det in dets}


@dataclass(frozen=True, slots=True)
class EmissionTypeRow:
    id: int
    code: str
    parent_id: int | None
    scope: S | None
    category: C | None
    is_rollup: bool = False


def _tree() -> list[EmissionTypeRow]:
    rows: list[EmissionTypeRow] = []

    def add(
        id_: int,
        code: str,
        parent: EmissionTypeRow | None,
        scope: S | None = None,
        category: C | None = None,
        *,
        rollup: bool = False,
    ) -> EmissionTypeRow:
        full_code = f"{parent.code}__{code}" if parent else code
        row = EmissionTypeRow(id_, full_code, parent.id if parent else None, scope, category, rollup)
        rows.append(row)
        return row

    def children(
        parent: EmissionTypeRow,
        names: list[str],
        scope: S | None,
        category: C | None,
        *,
        first_id: int,
    ) -> list[EmissionTypeRow]:
        return [add(first_id + i, name, parent, scope, category) for i, name in enumerate(names)]

    # Headcount: food, waste and commuting carry data rows; 40000 is the per-entry rollup.
    food = add(10000, "food", None, S.SCOPE3, C.FOOD)
    children(food, ["vegetarian", "non_vegetarian"], S.SCOPE3, C.FOOD, first_id=10001)
    waste = add(20000, "waste", None, S.SCOPE3, C.WASTE)
    add(20001, "incineration", waste, S.SCOPE3, C.WASTE)
    add(20002, "composting", waste, S.SCOPE3, C.WASTE)
    biogas = add(20003, "biogas", waste, S.SCOPE3, C.WASTE)
    children(biogas, ["organic_waste_food_leftovers", "cooking_vegetable_oil"], S.SCOPE3, C.WASTE, first_id=2000301)
    recycling = add(20004, "recycling", waste, S.SCOPE3, C.WASTE)
    recycled = [
        "paper", "cardboard", "plastics", "glass", "ferrous_metals", "non_ferrous_metals", "electronics",
        "wood", "pet", "aluminum", "textile", "toner_and_ink_cartridges", "inert_waste",
    ]  # fmt: skip
    children(recycling, recycled, S.SCOPE3, C.WASTE, first_id=2000401)
    commuting = add(30000, "commuting", None, S.SCOPE3, C.COMMUTING)
    modes = ["walking", "cycling", "powered_two_wheeler", "public_transport", "car"]
    children(commuting, modes, S.SCOPE3, C.COMMUTING, first_id=30001)
    add(40000, "headcount", None, rollup=True)

    # Professional travel: only the class leaves carry data rows.
    travel = add(50000, "professional_travel", None, None, C.PROFESSIONAL_TRAVEL)
    train = add(50100, "train", travel, None, C.PROFESSIONAL_TRAVEL)
    children(train, ["class_1", "class_2"], S.SCOPE3, C.PROFESSIONAL_TRAVEL, first_id=50101)
    plane = add(50200, "plane", travel, None, C.PROFESSIONAL_TRAVEL)
    children(plane, ["first", "business", "eco"], S.SCOPE3, C.PROFESSIONAL_TRAVEL, first_id=50201)

    # Buildings: 5 energies × 6 room types under the per-entry rollup node 60100.
    buildings = add(60000, "buildings", None)
    rooms = add(60100, "rooms", buildings, rollup=True)
    energies = [
        (60101, "lighting", S.SCOPE2, C.BUILDINGS_ROOM),
        (60102, "cooling", S.SCOPE2, C.BUILDINGS_ROOM),
        (60103, "ventilation", S.SCOPE2, C.BUILDINGS_ROOM),
        (60104, "heating_elec", S.SCOPE2, C.BUILDINGS_ROOM),
        (60105, "heating_thermal", S.SCOPE1, C.BUILDINGS_ENERGY_COMBUSTION),
    ]
    room_types = ["office", "laboratories", "archives", "libraries", "auditoriums", "miscellaneous"]
    for energy_id, name, scope, category in energies:
        energy = add(energy_id, name, rooms, scope, category)
        children(energy, room_types, scope, category, first_id=energy_id * 100 + 1)
    combustion = add(60200, "combustion", buildings, S.SCOPE1, C.BUILDINGS_ENERGY_COMBUSTION)
    fuels = ["natural_gas", "heating_oil", "biomethane", "pellets", "forest_chips", "wood_logs"]
    children(combustion, fuels, S.SCOPE1, C.BUILDINGS_ENERGY_COMBUSTION, first_id=60201)
    add(60300, "construction_and_renovation", buildings, S.SCOPE3, C.EMBODIED_ENERGY)

    process = add(70000, "process_emissions", None, S.SCOPE1, C.PROCESS_EMISSIONS)
    for offset, gas in enumerate(["ch4", "co2", "n2o", "refrigerants"], start=1):
        add(70000 + offset * 100, gas, process, S.SCOPE1, C.PROCESS_EMISSIONS)

    equipment = add(80000, "equipment", None, S.SCOPE2, C.EQUIPMENT)
    for offset, kind in enumerate(["scientific", "it", "other"], start=1):
        add(80000 + offset * 100, kind, equipment, S.SCOPE2, C.EQUIPMENT)

    purchases = add(90000, "purchases", None, S.SCOPE3, C.PURCHASES)
    purchase_kinds = [
        "goods_and_services", "scientific_equipment", "it_equipment", "consumable_accessories",
        "biological_chemical_gaseous", "services", "vehicles", "other",
    ]  # fmt: skip
    for offset, kind in enumerate(purchase_kinds, start=1):
        add(90000 + offset * 100, kind, purchases, S.SCOPE3, C.PURCHASES)
    additional = add(90900, "additional", purchases, S.SCOPE1, C.PURCHASES)
    add(90901, "ln2", additional, S.SCOPE1, C.PURCHASES)

    research = add(100000, "research_facilities", None, S.SCOPE3, C.RESEARCH_FACILITIES)
    add(100100, "facilities", research, S.SCOPE3, C.RESEARCH_FACILITIES)
    animal = add(100200, "animal", research, S.SCOPE3, C.RESEARCH_FACILITIES)
    children(animal, ["mice", "fish"], S.SCOPE3, C.RESEARCH_FACILITIES, first_id=10020001)
    add(100300, "it_facilities", research, S.SCOPE3, C.RESEARCH_FACILITIES)

    external = add(110000, "external", None, S.SCOPE3, C.EXTERNAL_CLOUD_AND_AI)
    clouds = add(110100, "clouds", external, S.SCOPE3, C.EXTERNAL_CLOUD_AND_AI)
    services = ["virtualisation", "calcul", "stockage"]
    children(clouds, services, S.SCOPE3, C.EXTERNAL_CLOUD_AND_AI, first_id=110101)
    ai = add(110200, "ai", external, S.SCOPE3, C.EXTERNAL_CLOUD_AND_AI)
    providers = ["google", "mistral_ai", "anthropic", "openai", "cohere", "others"]
    children(ai, [f"provider_{p}" for p in providers], S.SCOPE3, C.EXTERNAL_CLOUD_AND_AI, first_id=110201)
    return rows


EMISSION_TYPES: tuple[EmissionTypeRow, ...] = tuple(_tree())

# The subtrees a module's statistics walk (reference-domain §1.5). Buildings lists only its
# root: 60300 is a child of it, and listing it again counted embodied energy twice (§11).
MODULE_EMISSION_ROOTS: dict[M, tuple[int, ...]] = {
    M.HEADCOUNT: (10000, 20000, 30000),
    M.PROFESSIONAL_TRAVEL: (50000,),
    M.BUILDINGS: (60000,),
    M.EQUIPMENT: (80000,),
    M.PURCHASE: (90000,),
    M.RESEARCH_FACILITIES: (100000,),
    M.EXTERNAL_CLOUD_AND_AI: (110000,),
    M.PROCESS_EMISSIONS: (70000,),
}


def reference_rows_sync(apps: Any) -> None:
    """Upsert every reference row by id (idempotent).

    1. Module types from ``ModuleTypeId``; 2. data-entry types with their module;
    3. emission types, parents before children (the order of ``EMISSION_TYPES``).
    """
    module_type = apps.get_model("carbon", "ModuleType")
    data_entry_type = apps.get_model("carbon", "DataEntryType")
    emission_type = apps.get_model("carbon", "EmissionType")
    for module in M:
        module_type.objects.update_or_create(
            id=module.value, defaults={"code": module.name.lower(), "label": module.label}
        )
    for det in D:
        data_entry_type.objects.update_or_create(
            id=det.value,
            defaults={
                "code": det.name.lower(),
                "label": det.label,
                "module_type_id": DATA_ENTRY_TYPE_MODULE[det].value,
            },
        )
    for row in EMISSION_TYPES:
        emission_type.objects.update_or_create(
            id=row.id,
            defaults={
                "code": row.code,
                "parent_id": row.parent_id,
                "scope": row.scope.value if row.scope else None,
                "category": row.category.value if row.category else None,
                "is_rollup": row.is_rollup,
            },
        )
