"""Purchases (module 5): common purchases 60..66 and additional purchases 67 (reference-domain §2.3–§2.4).

Common purchases share one module-level factor file routed by ``purchase_category``. Their
factor is found by the override rule (``purchase_factor``): the additional code first, then the
institutional code with its single "average" row. kg = the spent amount, converted into the
factor's own currency, × ``ef_kg_co2eq_per_currency`` (fix §11.6: the factor's classification
``currency`` is the EF's currency):

    amount_in_C = total_spent_amount × rate_to_eur(entry currency) / rate_to_eur(C)
    kg          = amount_in_C × ef_kg_co2eq_per_currency

Additional purchases (LN2, dry ice…) are matched by name:
kg = annual_consumption × coef_to_kg × ef_kg_co2eq_per_kg.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, EntryError, FactorShape, fixed_type, normalise
from carbon.catalogue.money import DEFAULT_FACTOR_CURRENCY, convert
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M

if TYPE_CHECKING:
    # Annotations only: carbon.compute imports the catalogue, so a runtime import would be circular.
    from carbon.compute import ComputeContext, FactorIndex, FactorRecord

CURRENCIES = ("aud", "cad", "chf", "cny", "eur", "gbp", "jpy", "sek", "usd")

EMISSION_TYPE = {
    D.SCIENTIFIC_EQUIPMENT: 90200,
    D.IT_EQUIPMENT: 90300,
    D.CONSUMABLE_ACCESSORIES: 90400,
    D.BIOLOGICAL_CHEMICAL_GASEOUS_PRODUCT: 90500,
    D.SERVICES: 90600,
    D.VEHICLES: 90700,
    D.OTHER_PURCHASES: 90800,
}

# The routing values are the data-entry type names, as the reference's factor files spell them.
ROUTES = {det.name.lower(): det for det in EMISSION_TYPE}

COLUMNS = (
    Column("name", required=True),
    Column("supplier"),
    Column("quantity", "float", minimum=0),
    Column("total_spent_amount", "float", required=True, minimum=0),
    Column("currency", "choice", choices=CURRENCIES, default="chf"),
    Column("purchase_institutional_code", required=True),
    Column("purchase_institutional_description"),
    Column("purchase_additional_code"),
    Column("note"),
)

FACTOR = FactorShape(
    classification=(
        Column("purchase_institutional_code", required=True),
        Column("purchase_additional_code"),
        Column("currency", "choice", required=True, choices=CURRENCIES),
    ),
    values=(
        Column("ef_kg_co2eq_per_currency", "float", required=True, minimum=0),
        Column("translation_key"),
    ),
    routing=Column("purchase_category", "choice", required=True, choices=tuple(ROUTES)),
    routes=ROUTES,
)


def purchase_factor(data: Mapping[str, Any], factors: FactorIndex) -> FactorRecord | None:
    """The override rule of reference-domain §2.4: the additional code first, then the institutional
    code. EntryError("Ambiguous factor data: …") when a step finds candidates but cannot pick one."""
    institutional = data.get("purchase_institutional_code")
    additional = data.get("purchase_additional_code")
    by_additional = _by_additional_code(additional, institutional, factors) if additional else None
    if by_additional is not None:
        return by_additional
    return _by_institutional_code(institutional, factors) if institutional else None


def _by_additional_code(additional: Any, institutional: Any, factors: FactorIndex) -> FactorRecord | None:
    """The one factor carrying ADDITIONAL, narrowed by INSTITUTIONAL if several do; None when none
    does (the institutional code then decides)."""
    carrying = factors.where(purchase_additional_code=additional)
    if len(carrying) <= 1:
        return carrying[0] if carrying else None
    same_code = [f for f in carrying if f.classification.get("purchase_institutional_code") == normalise(institutional)]
    if len(same_code) == 1:
        return same_code[0]
    raise EntryError(
        f"Ambiguous factor data: {len(carrying)} factors carry additional code {additional!r}"
        f" and institutional code {institutional!r} does not single one out"
    )


def _by_institutional_code(institutional: Any, factors: FactorIndex) -> FactorRecord | None:
    """The one factor of INSTITUTIONAL, else its single "average" row (the one without an additional code)."""
    same_code = factors.where(purchase_institutional_code=institutional)
    if len(same_code) <= 1:
        return same_code[0] if same_code else None
    average = [f for f in same_code if "purchase_additional_code" not in f.classification]
    if len(average) == 1:
        return average[0]
    raise EntryError(
        f"Ambiguous factor data: {len(same_code)} factors for institutional code {institutional!r}"
        f" and {len(average)} average rows (without an additional code) among them; exactly one is needed"
    )


def _compute_common(det: D) -> Callable[[Mapping[str, Any], ComputeContext], list[EmissionRow]]:
    def compute(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
        factor = purchase_factor(data, ctx.factors)
        ef = factor.value("ef_kg_co2eq_per_currency") if factor else None
        if factor is None or ef is None:
            return []
        factor_currency = factor.classification.get("currency", DEFAULT_FACTOR_CURRENCY)
        amount = convert(data.get("total_spent_amount") or 0, data.get("currency") or "chf", factor_currency, ctx)
        return [
            EmissionRow(
                emission_type_id=EMISSION_TYPE[det],
                kg_co2eq=amount * ef,
                factor_id=factor.id,
                meta={"amount_in_factor_currency": amount, "factor_currency": factor_currency},
            )
        ]

    return compute


ADDITIONAL_COLUMNS = (
    Column("name", required=True),
    Column("unit", required=True),
    Column("annual_consumption", "float", required=True, minimum=0),
    Column("coef_to_kg", "float", required=True, minimum=0),
    Column("note"),
)


def name_key(name: Any) -> str:
    """Names compare trimmed, case-insensitively, and with spaces and underscores alike, so the
    data's "Dry ice" finds the factor file's "dry_ice" (both spellings appear in reference-domain §3.7/§4.3)."""
    return normalise(name).replace(" ", "_")


def _additional_type(values: Mapping[str, Any]) -> int | None:
    name = values.get("name")
    if name is None:
        return None
    return 90901 if name_key(name) == "ln2" else 90900


ADDITIONAL_FACTOR = FactorShape(
    classification=(Column("name", required=True),),
    values=(Column("ef_kg_co2eq_per_kg", "float", required=True, minimum=0),),
    emission_type=_additional_type,
)


def _additional_factor(name: Any, factors: FactorIndex) -> FactorRecord | None:
    # The latest upload wins a tie, as in FactorIndex.by_kind.
    key = name_key(name)
    matches = [f for f in factors.factors if name_key(f.classification.get("name", "")) == key]
    return matches[-1] if matches else None


def _compute_additional(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    emission_type = _additional_type(data)
    factor = _additional_factor(data.get("name"), ctx.factors)
    ef = factor.value("ef_kg_co2eq_per_kg") if factor else None
    if emission_type is None or factor is None or ef is None:
        return []
    kg_of_product = (data.get("annual_consumption") or 0) * (data.get("coef_to_kg") or 0)
    return [EmissionRow(emission_type_id=emission_type, kg_co2eq=kg_of_product * ef, factor_id=factor.id)]


SPECS = [
    *(
        DataEntryTypeSpec(
            det=det,
            module=M.PURCHASE,
            columns=COLUMNS,
            compute=_compute_common(det),
            factor=FACTOR,
            factor_match=purchase_factor,
            override_type=fixed_type(emission_type),
        )
        for det, emission_type in EMISSION_TYPE.items()
    ),
    DataEntryTypeSpec(
        det=D.ADDITIONAL_PURCHASES,
        module=M.PURCHASE,
        columns=ADDITIONAL_COLUMNS,
        compute=_compute_additional,
        factor=ADDITIONAL_FACTOR,
        override_type=_additional_type,
        requires_factors=True,
    ),
]
