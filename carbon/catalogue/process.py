"""Process emissions (module 8): process_emissions 50 (reference-domain §2.3).

The gas category picks the emission type (an unknown category keeps the entry and yields no
emission); Strategy A on (category, subcategory) with a category-only fallback;
kg = quantity × ef_kg_co2eq_per_unit (the gas's GWP).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, FactorShape, normalise
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M

if TYPE_CHECKING:
    # Annotation only: carbon.compute imports the catalogue, so a runtime import would be circular.
    from carbon.compute import ComputeContext

EMISSION_TYPE = {"ch4": 70100, "co2": 70200, "n2o": 70300, "refrigerants": 70400, "refrigerant": 70400}

COLUMNS = (
    Column("category", required=True),
    Column("subcategory"),
    Column("quantity", "float", required=True, minimum=0),
    Column("note"),
)


def process_type(values: Mapping[str, Any]) -> int | None:
    category = values.get("category")
    return EMISSION_TYPE.get(normalise(category)) if category is not None else None


FACTOR = FactorShape(
    classification=(Column("category", required=True), Column("subcategory"), Column("unit", required=True)),
    values=(Column("ef_kg_co2eq_per_unit", "float", required=True, minimum=0),),
    emission_type=process_type,
)


def _compute(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    emission_type = process_type(data)
    if emission_type is None:
        return []
    factor = ctx.factors.by_kind("category", data.get("category"), "subcategory", data.get("subcategory"))
    ef = factor.value("ef_kg_co2eq_per_unit") if factor else None
    if factor is None or ef is None:
        return []
    return [EmissionRow(emission_type_id=emission_type, kg_co2eq=(data.get("quantity") or 0) * ef, factor_id=factor.id)]


SPECS = [
    DataEntryTypeSpec(
        det=D.PROCESS_EMISSIONS,
        module=M.PROCESS_EMISSIONS,
        columns=COLUMNS,
        compute=_compute,
        factor=FACTOR,
        override_type=process_type,
        requires_factors=True,
    ),
]
