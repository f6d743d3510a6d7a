"""Headcount (module 1): member 1 and student 2 (reference-domain §2.3).

One factor file per type. Strategy B3: every factor of the year under the food, waste or
commuting subtree gives one row at the factor's own type, scaled by the entry's FTE; the
entry's rows roll up into 40000.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, FactorShape, normalise
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M
from carbon.reference_data import EMISSION_TYPES, MODULE_EMISSION_ROOTS

if TYPE_CHECKING:
    # Types only: carbon.compute imports the catalogue package at load time.
    from carbon.compute import ComputeContext

ROLLUP = 40000
SIUS_CODES = ("51", "52", "53", "54", "56", "57", "58", "59")
CLASSIFICATION_KEYS = ("headcount_category", "headcount_class", "headcount_subclass")

_TYPE_BY_CODE = {row.code: row.id for row in EMISSION_TYPES}
_PARENT = {row.id: row.parent_id for row in EMISSION_TYPES}


def _in_subtree(type_id: int, roots: tuple[int, ...]) -> bool:
    node: int | None = type_id
    while node is not None:
        if node in roots:
            return True
        node = _PARENT[node]
    return False


# The whole subtrees, not only their leaves: the original looked at leaves only, so a factor
# filed at an intermediate node (waste/biogas, or the food root) was never found (§2.3 ⚠).
HEADCOUNT_TYPES = frozenset(row.id for row in EMISSION_TYPES if _in_subtree(row.id, MODULE_EMISSION_ROOTS[M.HEADCOUNT]))


def _code_part(value: Any) -> str:
    if value is None or str(value).strip() == "":
        return ""
    return normalise(value).replace(" ", "_").replace("-", "_")


def factor_emission_type(classification: Mapping[str, Any]) -> int | None:
    """(category, class[, subclass]) → the most specific headcount type whose code exists, e.g.
    waste/recycling/paper → 2000401; an unknown subclass falls back to its class's node."""
    parts: list[str] = []
    for key in CLASSIFICATION_KEYS:
        part = _code_part(classification.get(key))
        if not part:
            break
        parts.append(part)
    for depth in range(len(parts), 0, -1):
        type_id = _TYPE_BY_CODE.get("__".join(parts[:depth]))
        if type_id is not None and type_id in HEADCOUNT_TYPES:
            return type_id
    return None


def _compute(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    fte = data.get("fte")
    if fte is None:
        return []
    rows = []
    for factor in ctx.factors.factors:
        per_fte = factor.value("number_of_unit_per_fte")
        ef = factor.value("ef_kg_co2eq_per_unit")
        if factor.emission_type_id not in HEADCOUNT_TYPES or per_fte is None or ef is None:
            continue
        # Meals, kg of waste or km commuted by the entry's share of a full-time person.
        units = float(fte) * per_fte
        rows.append(
            EmissionRow(
                emission_type_id=factor.emission_type_id,
                kg_co2eq=units * ef,
                factor_id=factor.id,
                additional_value=units,
                meta={"unit": factor.classification.get("unit")},
            )
        )
    return rows


FACTOR = FactorShape(
    classification=(
        Column("headcount_category", required=True),
        Column("headcount_class", required=True),
        Column("headcount_subclass"),
        Column("unit", required=True),
    ),
    values=(
        Column("number_of_unit_per_fte", "float", required=True, minimum=0),
        Column("ef_kg_co2eq_per_unit", "float", required=True, minimum=0),
    ),
    emission_type=factor_emission_type,
)

MEMBER_COLUMNS = (
    Column("name", required=True),
    Column("sius_code", "choice", required=True, choices=SIUS_CODES),
    Column("user_institutional_id", required=True),
    Column("fte", "float", required=True, minimum=0, maximum=1),
    Column("note"),
)

# One student entry carries the FTE of a whole population, so it has no upper bound.
STUDENT_COLUMNS = (Column("fte", "float", required=True, minimum=0),)

SPECS = [
    DataEntryTypeSpec(
        det=D.MEMBER,
        module=M.HEADCOUNT,
        columns=MEMBER_COLUMNS,
        compute=_compute,
        factor=FACTOR,
        rollup_emission_type=ROLLUP,
    ),
    DataEntryTypeSpec(
        det=D.STUDENT,
        module=M.HEADCOUNT,
        columns=STUDENT_COLUMNS,
        compute=_compute,
        factor=FACTOR,
        rollup_emission_type=ROLLUP,
        csv_upload=False,
    ),
]
