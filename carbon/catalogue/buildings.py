"""Buildings (module 3): building 30, energy combustion 31, embodied energy 32
(reference-domain §2.3).

One factor file per type. A room's five energy uses come from its surface (reference data,
found by building AND room) and its building's per-m² factor for the room type (Strategy A,
type-only fallback), rolled up into 60100. Combustion is a quantity times the fuel's factor
(Strategy A on the fuel name). Embodied energy is the room surface times each construction
category's per-m² factor of the building, or of the "default" building.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, FactorShape, fixed_type, normalise
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M

if TYPE_CHECKING:
    # Types only: carbon.compute imports the catalogue package at load time.
    from carbon.compute import ComputeContext, FactorRecord

ROOMS_ROLLUP = 60100
COMBUSTION = 60200
EMBODIED_ENERGY = 60300
DEFAULT_BUILDING = "default"

# The leaf of (energy, room type) is energy id × 100 + the room type's index.
ROOM_TYPES = {"office": 1, "laboratories": 2, "archives": 3, "libraries": 4, "auditoriums": 5, "miscellaneous": 6}
LIGHTING, COOLING, VENTILATION, HEATING_ELEC, HEATING_THERMAL = 60101, 60102, 60103, 60104, 60105
KWH_PER_M2_KEY = {
    LIGHTING: "lighting_kwh_per_square_meter",
    COOLING: "cooling_kwh_per_square_meter",
    VENTILATION: "ventilation_kwh_per_square_meter",
    HEATING_ELEC: "heating_kwh_per_square_meter",
    HEATING_THERMAL: "heating_kwh_per_square_meter",
}
# A room is heated either electrically or thermally: the factor's energy_type says which of
# the two heating rows carries the heating, the other one is written at 0 kg.
HEATING_ENERGY_TYPE = {HEATING_ELEC: "electric", HEATING_THERMAL: "thermal"}
ENERGY_TYPE_ALIASES = {"elec": "electric", "electricity": "electric", "therm": "thermal"}

FUELS = {
    "natural_gas": 60201,
    "heating_oil": 60202,
    "biomethane": 60203,
    "pellets": 60204,
    "forest_chips": 60205,
    "wood_logs": 60206,
}


def room_leaf(energy: int, room_type: Any) -> int | None:
    index = ROOM_TYPES.get(normalise(room_type)) if room_type is not None else None
    return energy * 100 + index if index is not None else None


def _conversion(energy: int, factor: FactorRecord) -> float:
    heating = HEATING_ENERGY_TYPE.get(energy)
    if heating is None:
        return 1.0
    declared = normalise(factor.values.get("energy_type") or "")
    if ENERGY_TYPE_ALIASES.get(declared, declared) != heating:
        return 0.0
    conversion = factor.value("conversion_factor")
    return 1.0 if conversion is None else conversion


def _room_surface(data: Mapping[str, Any], ctx: ComputeContext) -> float | None:
    building, room = data.get("building_name"), data.get("room_name")
    surface = ctx.lookups.room_surface(str(building), str(room)) if building and room else None
    if surface is None:
        ctx.warnings.append(f"room {room!r} of building {building!r} has no known surface: no emission")
    return surface


def _building(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    surface = _room_surface(data, ctx)
    factor = ctx.factors.by_kind("building_name", data.get("building_name"), "room_type", data.get("room_type"))
    ef = factor.value("ef_kg_co2eq_per_kwh") if factor else None
    if surface is None or factor is None or ef is None:
        return []
    ratio = data.get("room_allocation_ratio")
    allocated_m2 = surface * (1.0 if ratio is None else float(ratio))
    rows = []
    for energy, kwh_key in KWH_PER_M2_KEY.items():
        leaf = room_leaf(energy, data.get("room_type"))
        kwh_per_m2 = factor.value(kwh_key)
        if leaf is not None and kwh_per_m2 is not None:
            kwh = allocated_m2 * kwh_per_m2 * _conversion(energy, factor)
            rows.append(EmissionRow(emission_type_id=leaf, kg_co2eq=kwh * ef, factor_id=factor.id, meta={"kwh": kwh}))
    return rows


def _building_override_type(data: Mapping[str, Any]) -> int | None:
    # An override replaces the room's five uses with one figure; it is filed under the first
    # use's leaf, as the compute loop would, but also when the room's surface is unknown
    # (likely the very reason for the override).
    return room_leaf(LIGHTING, data.get("room_type"))


def fuel_type(row: Mapping[str, Any]) -> int:
    """Fuel name → its combustion leaf; an unlisted fuel is filed under combustion itself."""
    name = row.get("name")
    return FUELS.get(normalise(name).replace(" ", "_"), COMBUSTION) if name is not None else COMBUSTION


def _energy_combustion(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    factor = ctx.factors.by_kind("name", data.get("name"))
    quantity = data.get("quantity")
    ef = factor.value("ef_kg_co2eq_per_unit") if factor else None
    if factor is None or quantity is None or ef is None:
        return []
    return [EmissionRow(emission_type_id=fuel_type(data), kg_co2eq=float(quantity) * ef, factor_id=factor.id)]


def _embodied_energy(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    surface = data.get("room_surface_square_meter")
    if surface is None:
        return []
    factors = ctx.factors.where(building_name=data.get("building_name")) or ctx.factors.where(
        building_name=DEFAULT_BUILDING
    )
    rows = []
    for factor in factors:
        ef = factor.value("ef_kgco2eq_per_m2")
        if ef is None:
            continue
        kg = float(surface) * ef
        meta = {"category": factor.classification.get("category")}
        rows.append(EmissionRow(emission_type_id=EMBODIED_ENERGY, kg_co2eq=kg, factor_id=factor.id, meta=meta))
    return rows


BUILDING_COLUMNS = (
    Column("building_name", required=True),
    Column("room_name", required=True),
    Column("room_type", "choice", required=True, choices=tuple(ROOM_TYPES)),
    Column("room_allocation_ratio", "float", minimum=0, maximum=1, default=1.0),
    Column("note"),
)

BUILDING_FACTOR = FactorShape(
    classification=(
        Column("building_name", required=True),
        Column("room_type", "choice", required=True, choices=tuple(ROOM_TYPES)),
    ),
    values=(
        Column("ef_kg_co2eq_per_kwh", "float", required=True, minimum=0),
        Column("heating_kwh_per_square_meter", "float", required=True, minimum=0),
        Column("cooling_kwh_per_square_meter", "float", required=True, minimum=0),
        Column("ventilation_kwh_per_square_meter", "float", required=True, minimum=0),
        Column("lighting_kwh_per_square_meter", "float", required=True, minimum=0),
        Column("energy_type", "choice", required=True, choices=("electric", "thermal"), aliases=ENERGY_TYPE_ALIASES),
        Column("conversion_factor", "float", minimum=0, default=1.0),
    ),
    emission_type=fixed_type(ROOMS_ROLLUP),
)

COMBUSTION_COLUMNS = (
    Column("name", required=True),
    Column("quantity", "float", required=True, minimum=0),
    Column("note"),
)

COMBUSTION_FACTOR = FactorShape(
    classification=(Column("unit", required=True), Column("name", required=True)),
    values=(Column("ef_kg_co2eq_per_unit", "float", required=True, minimum=0),),
    emission_type=fuel_type,
)

EMBODIED_COLUMNS = (
    Column("building_name", required=True),
    Column("room_surface_square_meter", "float", required=True, minimum=0),
    # The building entry this one was derived from (it is kept in step with it).
    Column("data_entry_id", "int"),
)

EMBODIED_FACTOR = FactorShape(
    classification=(Column("building_name", required=True), Column("category", required=True)),
    values=(Column("ef_kgco2eq_per_m2", "float", required=True, minimum=0),),
    emission_type=fixed_type(EMBODIED_ENERGY),
)

SPECS = [
    DataEntryTypeSpec(
        det=D.BUILDING,
        module=M.BUILDINGS,
        columns=BUILDING_COLUMNS,
        compute=_building,
        factor=BUILDING_FACTOR,
        rollup_emission_type=ROOMS_ROLLUP,
        override_type=_building_override_type,
    ),
    DataEntryTypeSpec(
        det=D.ENERGY_COMBUSTION,
        module=M.BUILDINGS,
        columns=COMBUSTION_COLUMNS,
        compute=_energy_combustion,
        factor=COMBUSTION_FACTOR,
        override_type=fuel_type,
        requires_factors=True,
    ),
    DataEntryTypeSpec(
        det=D.BUILDING_EMBODIED_ENERGY,
        module=M.BUILDINGS,
        columns=EMBODIED_COLUMNS,
        compute=_embodied_energy,
        factor=EMBODIED_FACTOR,
        override_type=fixed_type(EMBODIED_ENERGY),
        csv_upload=False,
    ),
]
