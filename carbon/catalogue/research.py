"""Research facilities (module 6): research_facilities 70, mice_and_fish_animal_facilities 71
(reference-domain §2.3, factors §4.3, computed sums §4.5).

A facility's footprint (its own report, summed into the factor by the computed-factor job) is
shared among its users by use: an entry gets use / total_use of it, provided its ``use_unit`` is
the facility's (compared normalised). A unit mismatch, or sums not yet computed, yield no row
and a warning: 0 kg would read as "measured, nothing emitted".

- 70, Strategy A on researchfacility_id: kg = use / total_use × kg_co2eq_sum.
- 71, Strategy A on (researchfacility_id, researchfacility_type): the same over six sources,
  each weighted by its share: kg = Σ_src use × <src>_share / total_use × kg_co2eq_sum_<src>,
  skipping sources without a share or a sum.
Both give 0 kg when total_use ≤ 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, FactorShape, normalise
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M

if TYPE_CHECKING:
    # Annotations only: carbon.compute imports the catalogue, so a runtime import would be circular.
    from carbon.compute import ComputeContext, FactorRecord

IT_FACILITIES = ("scitas", "rcp")
ANIMAL_TYPE = {"mice": 10020001, "fish": 10020002}
SOURCES = (
    "processemissions",
    "building_energycombustions",
    "building_rooms",
    "purchases_common",
    "purchases_additional",
    "equipments",
)

COLUMNS = (
    Column("researchfacility_id", required=True),
    Column("researchfacility_name", required=True),
    Column("use", "float", required=True, minimum=0),
    Column("use_unit", required=True),
    Column("note"),
)

ANIMAL_COLUMNS = (*COLUMNS[:2], Column("researchfacility_type", required=True), *COLUMNS[2:])


def facility_type(values: Mapping[str, Any]) -> int:
    name = values.get("researchfacility_name")
    return 100300 if name is not None and normalise(name) in IT_FACILITIES else 100100


def animal_type(values: Mapping[str, Any]) -> int:
    kind = values.get("researchfacility_type")
    return ANIMAL_TYPE.get(normalise(kind), 100200) if kind is not None else 100200


_SHARED_VALUES = (Column("use_unit", required=True), Column("total_use", "float", required=True))

FACTOR = FactorShape(
    classification=(Column("researchfacility_id", required=True), Column("researchfacility_name", required=True)),
    values=(*_SHARED_VALUES, Column("kg_co2eq_sum", "float", minimum=0)),
    emission_type=facility_type,
)

ANIMAL_FACTOR = FactorShape(
    classification=(
        Column("researchfacility_id", required=True),
        Column("researchfacility_name", required=True),
        Column("researchfacility_type", required=True),
    ),
    values=(
        *_SHARED_VALUES,
        *(Column(f"{src}_share", "float", required=True, minimum=0, maximum=1) for src in SOURCES),
        *(Column(f"kg_co2eq_sum_{src}", "float", minimum=0) for src in SOURCES),
    ),
    emission_type=animal_type,
)


def _same_unit(data: Mapping[str, Any], factor: FactorRecord, ctx: ComputeContext) -> bool:
    """The facility measures use in the entry's unit (else a warning says why there is no row)."""
    unit = factor.values.get("use_unit")
    if unit is None or normalise(unit) != normalise(data.get("use_unit", "")):
        ctx.warnings.append(
            f"research facility {data.get('researchfacility_id')}: use_unit {data.get('use_unit')!r}"
            f" does not match the facility's {unit!r}; no emission"
        )
        return False
    return True


def _not_computed(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    ctx.warnings.append(
        f"research facility {data.get('researchfacility_id')}: its kg_co2eq sums for {ctx.year}"
        " are not computed yet; no emission"
    )
    return []


def _compute_facility(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    factor = ctx.factors.by_kind("researchfacility_id", data.get("researchfacility_id"))
    if factor is None or not _same_unit(data, factor, ctx):
        return []
    total = factor.value("kg_co2eq_sum")
    if total is None:
        return _not_computed(data, ctx)
    total_use = factor.value("total_use", 0) or 0
    kg = (data.get("use") or 0) / total_use * total if total_use > 0 else 0.0
    return [EmissionRow(emission_type_id=facility_type(data), kg_co2eq=kg, factor_id=factor.id)]


def _compute_animal(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    facility, kind = data.get("researchfacility_id"), data.get("researchfacility_type")
    factor = ctx.factors.by_kind("researchfacility_id", facility, "researchfacility_type", kind)
    if factor is None or not _same_unit(data, factor, ctx):
        return []
    sources = [(factor.value(f"{s}_share"), factor.value(f"kg_co2eq_sum_{s}")) for s in SOURCES]
    shared = [share * total for share, total in sources if share is not None and total is not None]
    if not shared:
        return _not_computed(data, ctx)
    total_use = factor.value("total_use", 0) or 0
    kg = (data.get("use") or 0) / total_use * sum(shared) if total_use > 0 else 0.0
    return [EmissionRow(emission_type_id=animal_type(data), kg_co2eq=kg, factor_id=factor.id)]


SPECS = [
    DataEntryTypeSpec(
        det=D.RESEARCH_FACILITIES,
        module=M.RESEARCH_FACILITIES,
        columns=COLUMNS,
        compute=_compute_facility,
        factor=FACTOR,
        override_type=facility_type,
        requires_factors=True,
    ),
    DataEntryTypeSpec(
        det=D.MICE_AND_FISH_ANIMAL_FACILITIES,
        module=M.RESEARCH_FACILITIES,
        columns=ANIMAL_COLUMNS,
        compute=_compute_animal,
        factor=ANIMAL_FACTOR,
        override_type=animal_type,
        requires_factors=True,
    ),
]
