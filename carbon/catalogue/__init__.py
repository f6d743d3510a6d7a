"""The module catalogue: one declaration per data-entry type, gathered from the module files."""

from __future__ import annotations

from carbon.catalogue import buildings, equipment, external, headcount, process, purchases, research, travel
from carbon.catalogue.base import DataEntryTypeSpec
from carbon.choices import DataEntryTypeId, ModuleTypeId

CATALOGUE: dict[DataEntryTypeId, DataEntryTypeSpec] = {
    spec.det: spec
    for module in (headcount, travel, buildings, equipment, purchases, research, external, process)
    for spec in module.SPECS
}


def spec_for(det: int) -> DataEntryTypeSpec:
    try:
        return CATALOGUE[DataEntryTypeId(det)]
    except (ValueError, KeyError):
        raise KeyError(f"no declaration for data-entry type {det}") from None


def specs_for_module(module: int) -> list[DataEntryTypeSpec]:
    return [spec for spec in CATALOGUE.values() if spec.module == ModuleTypeId(module)]
