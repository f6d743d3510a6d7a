"""Equipment (module 4): scientific 10, IT 11, other 12 (reference-domain §2.3).

One module-level factor file routed by ``equipment_category``; Strategy A on
(equipment_class, sub_class) with a class-only fallback; hours default to the factor's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, FactorShape, fixed_type
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M

if TYPE_CHECKING:
    # Types only: carbon.compute imports the catalogue package at load time.
    from carbon.compute import ComputeContext, FactorIndex, FactorRecord

WEEKS_PER_YEAR = 52
HOURS_PER_WEEK = 168

EMISSION_TYPE = {D.SCIENTIFIC: 80100, D.IT: 80200, D.OTHER: 80300}

COLUMNS = (
    Column("equipment_id", required=True),
    Column("name", required=True),
    Column("equipment_class", required=True),
    Column("sub_class"),
    Column("active_usage_hours_per_week", "int", minimum=0, maximum=HOURS_PER_WEEK),
    Column("standby_usage_hours_per_week", "int", minimum=0, maximum=HOURS_PER_WEEK),
    Column("note"),
)

FACTOR = FactorShape(
    classification=(Column("equipment_class", required=True), Column("sub_class")),
    values=(
        Column("active_power_w", "float", required=True, minimum=0),
        Column("standby_power_w", "float", required=True, minimum=0),
        Column("active_usage_hours_per_week", "int", required=True, minimum=0, maximum=HOURS_PER_WEEK),
        Column("standby_usage_hours_per_week", "int", required=True, minimum=0, maximum=HOURS_PER_WEEK),
        Column("ef_kg_co2eq_per_kwh", "float", required=True, minimum=0),
    ),
    routing=Column("equipment_category", "choice", required=True, choices=("scientific", "it", "other")),
    routes={"scientific": D.SCIENTIFIC, "it": D.IT, "other": D.OTHER},
)


def _hours_fit_in_a_week(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    active = data.get("active_usage_hours_per_week") or 0
    standby = data.get("standby_usage_hours_per_week") or 0
    if active + standby > HOURS_PER_WEEK:
        return [
            (
                "standby_usage_hours_per_week",
                f"active + standby hours must be ≤ {HOURS_PER_WEEK} (got {active + standby})",
            )
        ]
    return []


def equipment_factor(data: Mapping[str, Any], factors: FactorIndex) -> FactorRecord | None:
    return factors.by_kind("equipment_class", data.get("equipment_class"), "sub_class", data.get("sub_class"))


def _compute(det: D) -> Any:
    def compute(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
        factor = equipment_factor(data, ctx.factors)
        if factor is None:
            return []
        # Missing or zero hours are taken from the factor (its typical usage).
        active = data.get("active_usage_hours_per_week") or factor.value("active_usage_hours_per_week", 0) or 0
        standby = data.get("standby_usage_hours_per_week") or factor.value("standby_usage_hours_per_week", 0) or 0
        watt_hours_per_week = active * (factor.value("active_power_w", 0) or 0) + standby * (
            factor.value("standby_power_w", 0) or 0
        )
        kwh = watt_hours_per_week * WEEKS_PER_YEAR / 1000
        kg = kwh * (factor.value("ef_kg_co2eq_per_kwh", 0) or 0)
        return [EmissionRow(emission_type_id=EMISSION_TYPE[det], kg_co2eq=kg, factor_id=factor.id, meta={"kwh": kwh})]

    return compute


SPECS = [
    DataEntryTypeSpec(
        det=det,
        module=M.EQUIPMENT,
        columns=COLUMNS,
        compute=_compute(det),
        factor=FACTOR,
        factor_match=equipment_factor,
        check=_hours_fit_in_a_week,
        override_type=fixed_type(EMISSION_TYPE[det]),
    )
    for det in (D.SCIENTIFIC, D.IT, D.OTHER)
]
