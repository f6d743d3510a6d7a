"""Module and report statistics as pure functions (reference-domain §7.1–§7.2, fixed).

Inputs are raw emission sums per emission type, rollup rows already excluded, so every kg is
counted exactly once: a data row sits at exactly one node of the tree. Each module walks its
subtrees once (the buildings module no longer walks embodied energy twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from carbon.choices import ModuleStatus, ModuleTypeId
from carbon.reference_data import EMISSION_TYPES, MODULE_EMISSION_ROOTS

PARENT: dict[int, int | None] = {row.id: row.parent_id for row in EMISSION_TYPES}
SCOPE: dict[int, int | None] = {row.id: (row.scope.value if row.scope else None) for row in EMISSION_TYPES}
CHILDREN: dict[int, list[int]] = {}
for _row in EMISSION_TYPES:
    if _row.parent_id is not None:
        CHILDREN.setdefault(_row.parent_id, []).append(_row.id)

# IT-related emissions for the report's it_total_kg: IT equipment and purchases, every cloud
# and AI service, and research facilities (computing centres). Subtrees, each counted once.
IT_ROOTS = (80200, 90300, 110000, 100000)


def subtree(root: int) -> list[int]:
    nodes, stack = [], [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(CHILDREN.get(node, ()))
    return nodes


@dataclass(frozen=True)
class RawSum:
    kg: float
    quantity: float | None


def module_stats(
    *, module_type_id: int, raw: Mapping[int, RawSum], entry_count: int, computed_at: str
) -> dict[str, Any]:
    """Stats of one report module from its raw sums per emission type."""
    roots = MODULE_EMISSION_ROOTS.get(ModuleTypeId(module_type_id), ())
    nodes = {node for root in roots for node in subtree(root)}
    scopes = {1: 0.0, 2: 0.0, 3: 0.0}
    for node in nodes:
        scope = SCOPE.get(node)
        if node in raw and scope is not None:
            scopes[scope] += raw[node].kg
    by_type: dict[str, float] = {}
    by_quantity: dict[str, float] = {}
    for node in nodes:
        members = subtree(node)
        kg = sum(raw[m].kg for m in members if m in raw)
        quantity = sum(raw[m].quantity or 0.0 for m in members if m in raw)
        if kg:
            by_type[str(node)] = kg
        if quantity:
            by_quantity[str(node)] = quantity
    return {
        "scope1": scopes[1],
        "scope2": scopes[2],
        "scope3": scopes[3],
        "total": scopes[1] + scopes[2] + scopes[3],
        "by_emission_type": dict(sorted(by_type.items(), key=lambda kv: int(kv[0]))),
        "by_additional_value": dict(sorted(by_quantity.items(), key=lambda kv: int(kv[0]))),
        "entry_count": entry_count,
        "computed_at": computed_at,
    }


def same_figures(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """True when two stats differ only by their timestamp (no change to validate again)."""
    if old is None:
        return False
    strip = {"computed_at"}
    return {k: v for k, v in old.items() if k not in strip} == {k: v for k, v in new.items() if k not in strip}


@dataclass(frozen=True)
class ModuleFigures:
    module_type_id: int
    status: int
    stats: Mapping[str, Any] | None
    it_kg: float


def report_stats(*, modules: Iterable[ModuleFigures], computed_at: str) -> tuple[dict[str, Any], str, int]:
    """Report rollup: (stats, completion_progress, overall_status)."""
    modules = list(modules)
    totals = {"scope1": 0.0, "scope2": 0.0, "scope3": 0.0, "total": 0.0}
    by_type: dict[str, float] = {}
    by_quantity: dict[str, float] = {}
    entry_count = 0
    for module in modules:
        stats = module.stats or {}
        for key in totals:
            totals[key] += float(stats.get(key, 0.0))
        for key, value in (stats.get("by_emission_type") or {}).items():
            by_type[key] = by_type.get(key, 0.0) + value
        for key, value in (stats.get("by_additional_value") or {}).items():
            by_quantity[key] = by_quantity.get(key, 0.0) + value
        entry_count += int(stats.get("entry_count", 0))
    validated = [m for m in modules if m.status == ModuleStatus.VALIDATED]
    highest = max(validated, key=lambda m: float((m.stats or {}).get("total", 0.0)), default=None)
    stats = {
        **totals,
        "by_emission_type": dict(sorted(by_type.items(), key=lambda kv: int(kv[0]))),
        "by_additional_value": dict(sorted(by_quantity.items(), key=lambda kv: int(kv[0]))),
        "entry_count": entry_count,
        "it_total_kg": sum(m.it_kg for m in modules),
        "highest_category_module_id": highest.module_type_id if highest else None,
        "computed_at": computed_at,
    }
    if not validated:
        overall = ModuleStatus.NOT_STARTED
    elif len(validated) == len(modules):
        overall = ModuleStatus.VALIDATED
    else:
        overall = ModuleStatus.IN_PROGRESS
    return stats, f"{len(validated)}/{len(modules)}", int(overall)


def it_kg(raw: Mapping[int, RawSum]) -> float:
    nodes = {node for root in IT_ROOTS for node in subtree(root)}
    return sum(raw[n].kg for n in nodes if n in raw)
