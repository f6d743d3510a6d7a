"""Engine enumerations (SPEC §5.2, reference-pipeline-core §1.1).

Stored as names; the API also accepts the reference system's integers, kept here as
``REFERENCE_INT`` maps so that payloads written for it stay valid.
"""

from __future__ import annotations

from django.db import models


class JobType(models.TextChoices):
    CSV_INGEST = "csv_ingest", "CSV ingest"
    API_INGEST = "api_ingest", "API ingest"
    FACTOR_INGEST = "factor_ingest", "Factor ingest"
    REFERENCE_INGEST = "reference_ingest", "Reference data ingest"
    UNIT_SYNC = "unit_sync", "Unit sync"
    EMISSION_RECALC = "emission_recalc", "Emission recalculation"
    MODULE_EMISSION_RECALC = "module_emission_recalc", "Module emission recalculation"
    AGGREGATION = "aggregation", "Aggregation"


class JobState(models.TextChoices):
    NOT_STARTED = "NOT_STARTED", "Not started"
    RUNNING = "RUNNING", "Running"
    FINISHED = "FINISHED", "Finished"


ACTIVE_JOB_STATES = (JobState.NOT_STARTED, JobState.RUNNING)


class JobResult(models.TextChoices):
    SUCCESS = "SUCCESS", "Success"
    WARNING = "WARNING", "Warning"
    ERROR = "ERROR", "Error"
    CANCELLED = "CANCELLED", "Cancelled"


class PipelineStatus(models.TextChoices):
    NOT_STARTED = "NOT_STARTED", "Not started"
    RUNNING = "RUNNING", "Running"
    SUCCESS = "SUCCESS", "Success"
    PARTIAL = "PARTIAL", "Partial"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


ACTIVE_PIPELINE_STATUSES = (PipelineStatus.NOT_STARTED, PipelineStatus.RUNNING)
TERMINAL_PIPELINE_STATUSES = frozenset(
    {PipelineStatus.SUCCESS, PipelineStatus.PARTIAL, PipelineStatus.FAILED, PipelineStatus.CANCELLED}
)


class EntityType(models.TextChoices):
    MODULE_PER_YEAR = "MODULE_PER_YEAR", "Module, per year"
    MODULE_UNIT_SPECIFIC = "MODULE_UNIT_SPECIFIC", "Module, unit-specific"
    GLOBAL_PER_YEAR = "GLOBAL_PER_YEAR", "Global, per year"


class TargetType(models.TextChoices):
    DATA_ENTRIES = "DATA_ENTRIES", "Data entries"
    FACTORS = "FACTORS", "Factors"
    REDUCTION_OBJECTIVES = "REDUCTION_OBJECTIVES", "Reduction objectives"
    REFERENCE_DATA = "REFERENCE_DATA", "Reference data"


class IngestionMethod(models.TextChoices):
    API = "api", "API"
    CSV = "csv", "CSV"
    MANUAL = "manual", "Manual"
    COMPUTED = "computed", "Computed"


class WorkerKind(models.TextChoices):
    WORKER = "worker", "Worker"
    RECONCILER = "reconciler", "Reconciler"


# The reference system's integer values (persisted ABI there; accepted on input here).
REFERENCE_INT: dict[type[models.TextChoices], dict[int, str]] = {
    EntityType: {1: EntityType.MODULE_PER_YEAR, 2: EntityType.MODULE_UNIT_SPECIFIC, 3: EntityType.GLOBAL_PER_YEAR},
    TargetType: {
        0: TargetType.DATA_ENTRIES,
        1: TargetType.FACTORS,
        2: TargetType.REDUCTION_OBJECTIVES,
        3: TargetType.REFERENCE_DATA,
    },
    IngestionMethod: {
        0: IngestionMethod.API,
        1: IngestionMethod.CSV,
        2: IngestionMethod.MANUAL,
        3: IngestionMethod.COMPUTED,
    },
}
