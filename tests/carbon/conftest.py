"""Fixtures of the carbon tests: a provisioned year of units, reports and modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carbon.choices import CarbonReportType, DataEntrySource, ModuleTypeId
from carbon.compute import classification_key, normalised_classification
from carbon.models import CarbonProject, CarbonReport, CarbonReportModule, DataEntry, Factor, Unit


@dataclass
class Year:
    year: int
    units: list[Unit]
    reports: list[CarbonReport]
    # (unit index, module type) → report module
    modules: dict[tuple[int, int], CarbonReportModule]


def make_year(*, units: int, year: int = 2025) -> Year:
    """UNITS units with their Calculator project, report and 8 modules (bulk inserts)."""
    created = Unit.objects.bulk_create(
        [
            Unit(institutional_code=f"{year}{i:05d}", institutional_id=f"{year}9{i:05d}", name=f"U{i}", level=4)
            for i in range(units)
        ]
    )
    projects = CarbonProject.objects.bulk_create(
        [CarbonProject(unit=u, report_type=CarbonReportType.CALCULATOR) for u in created]
    )
    reports = CarbonReport.objects.bulk_create(
        [CarbonReport(project=p, unit=u, year=year) for p, u in zip(projects, created, strict=True)]
    )
    modules = CarbonReportModule.objects.bulk_create(
        [CarbonReportModule(report=r, module_type_id=int(m)) for r in reports for m in ModuleTypeId]
    )
    by_key = {(i, int(m)): modules[i * 8 + j] for i in range(units) for j, m in enumerate(ModuleTypeId)}
    return Year(year=year, units=created, reports=reports, modules=by_key)


def make_factor(
    det: int, emission_type: int, classification: dict[str, Any], year: int = 2025, **values: Any
) -> Factor:
    return Factor.objects.create(
        data_entry_type_id=det,
        emission_type_id=emission_type,
        year=year,
        classification=normalised_classification(classification),
        classification_key=classification_key(classification),
        values=values,
    )


def make_entry(module: CarbonReportModule, det: int, data: dict[str, Any]) -> DataEntry:
    return DataEntry.objects.create(
        carbon_report_module=module,
        data_entry_type_id=det,
        module_type_id=module.module_type_id,
        year=module.report.year,
        unit_id=module.report.unit_id,
        data=data,
        source=DataEntrySource.CSV_MODULE_PER_YEAR,
    )
