"""Starting ingestion pipelines: the one entry point behind the API, the console and commands."""

from __future__ import annotations

from typing import Any

from carbon.models import CarbonReportModule
from carbon.selectors import year_provisioned
from ingestion.files import UPLOAD_PREFIXES, path_resolve
from pipelines.choices import EntityType, IngestionMethod, JobType, TargetType
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import Scope, pipeline_create


class YearNotProvisioned(Exception):
    """Uploads for a year wait until its unit sync has succeeded (409)."""


class DispatchInvalid(ValueError):
    """A dispatch request that cannot start a pipeline; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


JOB_TYPE_FOR_TARGET = {
    TargetType.DATA_ENTRIES: JobType.CSV_INGEST,
    TargetType.FACTORS: JobType.FACTOR_INGEST,
    TargetType.REFERENCE_DATA: JobType.REFERENCE_INGEST,
    TargetType.REDUCTION_OBJECTIVES: JobType.CSV_INGEST,
}


def upload_dispatch(
    *,
    target_type: str,
    year: int | None,
    module_type_id: int | None,
    file_path: str | None,
    data_entry_type_id: int | None = None,
    carbon_report_module_id: int | None = None,
    ingestion_method: str = IngestionMethod.CSV,
    config: dict[str, Any] | None = None,
    user: Any = None,
) -> tuple[Pipeline, IngestionJob]:
    """Validate an upload request and start its pipeline.

    1. The file (for CSV methods) must be an upload under FILES_ROOT/tmp and exist.
    2. A year is required for data and factors; uploads for a year wait for its unit sync
       (YearNotProvisioned → 409). Reference data is global (no year).
    3. A unit-specific upload names its report module, which fixes module, year and unit.
    4. Create the pipeline and its root job; workers pick it up at once (NOTIFY).
    """
    if target_type not in TargetType.values:
        raise DispatchInvalid("target_type", f"must be one of {', '.join(TargetType.values)}")
    job_type = (
        JobType.API_INGEST
        if target_type == TargetType.DATA_ENTRIES and ingestion_method == IngestionMethod.API
        else JOB_TYPE_FOR_TARGET[TargetType(target_type)]
    )
    if ingestion_method == IngestionMethod.CSV:
        if not file_path:
            raise DispatchInvalid("file_path", "is required for a CSV upload")
        try:
            path = path_resolve(file_path, prefixes=UPLOAD_PREFIXES)
        except ValueError as exc:
            raise DispatchInvalid("file_path", str(exc)) from None
        if not path.is_file():
            raise DispatchInvalid("file_path", f"{file_path} does not exist (upload it first)")
    unit_id, unit_code, entity = None, "", EntityType.MODULE_PER_YEAR
    if carbon_report_module_id is not None:
        module = CarbonReportModule.objects.select_related("report__unit").filter(pk=carbon_report_module_id).first()
        if module is None:
            raise DispatchInvalid("carbon_report_module_id", f"{carbon_report_module_id} does not exist")
        if module_type_id is not None and module.module_type_id != module_type_id:
            raise DispatchInvalid("carbon_report_module_id", "belongs to another module")
        module_type_id, year = module.module_type_id, module.report.year
        unit = module.report.unit
        unit_id, unit_code, entity = (
            unit.pk,
            unit.institutional_id or unit.institutional_code,
            EntityType.MODULE_UNIT_SPECIFIC,
        )
    if target_type != TargetType.REFERENCE_DATA:
        if year is None:
            raise DispatchInvalid("year", "is required")
        if not year_provisioned(year=year):
            raise YearNotProvisioned(f"Year {year} is not yet provisioned: run its unit sync first")
    if target_type in (TargetType.DATA_ENTRIES, TargetType.FACTORS) and module_type_id is None:
        raise DispatchInvalid("module_type_id", "is required")
    job_config = {**(config or {}), "file_path": file_path}
    if carbon_report_module_id is not None:
        job_config["carbon_report_module_id"] = carbon_report_module_id
    return pipeline_create(
        job_type=job_type,
        scope=Scope(
            entity_type=entity,
            ingestion_method=ingestion_method,
            target_type=target_type,
            module_type_id=module_type_id,
            data_entry_type_id=data_entry_type_id,
            year=year,
            unit_id=unit_id,
            unit_code=unit_code,
        ),
        config=job_config,
        created_by=user,
    )
