"""Starting ingestion pipelines: the one entry point behind the API, the console and commands.

``upload_dispatch`` validates and starts a pipeline; the ``*_dispatch``/``*_upload`` services
below add what the REST API needs around it (storing uploads, permissions, copying an earlier
job's file) so that the views only parse and render.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings

from carbon.choices import DataEntryTypeId, ModuleTypeId
from carbon.models import CarbonReportModule, YearConfiguration
from carbon.permissions import AccessScope
from carbon.reference_data import DATA_ENTRY_TYPE_MODULE
from carbon.selectors import year_provisioned
from carbon.services import year_units_sync
from ingestion.files import UPLOAD_PREFIXES, FilePathError, files_root, path_resolve, upload_store
from ingestion.selectors import DispatchNotFound, copy_source_visible, dispatch_permission_check
from ingestion.services_factors import factor_file_resolve
from ingestion.services_objectives import KINDS, objectives_upload
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobState, JobType, TargetType
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


# What each target can be loaded from ("provider unsupported" in the reference: a 400 here).
METHODS_FOR_TARGET: dict[str, tuple[str, ...]] = {
    TargetType.DATA_ENTRIES: (IngestionMethod.CSV, IngestionMethod.API),
    TargetType.FACTORS: (IngestionMethod.CSV, IngestionMethod.COMPUTED),
    TargetType.REFERENCE_DATA: (IngestionMethod.CSV,),
    TargetType.REDUCTION_OBJECTIVES: (IngestionMethod.CSV,),
}

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

    1. The target must be loadable by the method (METHODS_FOR_TARGET); the module and the
       data-entry type must agree (a type alone names its module). API ingestion is the
       travel API (professional travel, year-wide, never unit-specific); reduction
       objectives name their kind in ``config.reduction_objective_type_id``.
    2. The file (for CSV methods) must be an upload under FILES_ROOT/tmp and exist.
    3. A unit-specific upload names its report module, which fixes module, year and unit.
    4. A year is required for data and factors; uploads for a year wait for its unit sync
       (YearNotProvisioned → 409). Reference data is global (no year).
    5. Create the pipeline and its root job; workers pick it up at once (NOTIFY).
    """
    if target_type not in TargetType.values:
        raise DispatchInvalid("target_type", f"must be one of {', '.join(TargetType.values)}")
    methods = METHODS_FOR_TARGET[target_type]
    if ingestion_method not in methods:
        raise DispatchInvalid("ingestion_method", f"{target_type} is loaded by {' or '.join(methods)}")
    module_type_id, data_entry_type_id = _module_and_type(module_type_id, data_entry_type_id)
    if ingestion_method == IngestionMethod.API:
        # The travel-booking API is the only API source: it feeds professional travel, year-wide.
        if module_type_id not in (None, ModuleTypeId.PROFESSIONAL_TRAVEL):
            raise DispatchInvalid("ingestion_method", "api ingestion exists for professional travel (module 2) only")
        if carbon_report_module_id is not None:
            raise DispatchInvalid("carbon_report_module_id", "a unit-specific upload is a CSV upload")
        module_type_id = module_type_id or int(ModuleTypeId.PROFESSIONAL_TRAVEL)
    if target_type == TargetType.REDUCTION_OBJECTIVES:
        kind = (config or {}).get("reduction_objective_type_id")
        if kind not in KINDS:
            raise DispatchInvalid(
                "reduction_objective_type_id", "must be 0 (footprint), 1 (population) or 2 (scenarios)"
            )
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
        if year is not None and year != module.report.year:
            raise DispatchInvalid("year", f"the report module {carbon_report_module_id} is of {module.report.year}")
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
            raise YearNotProvisioned(
                f"Year {year} is not yet provisioned — wait for the unit_sync pipeline to complete "
                "before uploading data."
            )
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


def _module_and_type(module_type_id: int | None, data_entry_type_id: int | None) -> tuple[int | None, int | None]:
    """The (module, data-entry type) of a request, checked against each other; a type names its module."""
    if module_type_id is not None and module_type_id not in ModuleTypeId.values:
        raise DispatchInvalid("module_type_id", f"{module_type_id} is not a module type (1–8)")
    if data_entry_type_id is None:
        return module_type_id, None
    if data_entry_type_id not in DataEntryTypeId.values:
        raise DispatchInvalid("data_entry_type_id", f"{data_entry_type_id} is not a data-entry type")
    owner = int(DATA_ENTRY_TYPE_MODULE[DataEntryTypeId(data_entry_type_id)])
    if module_type_id is not None and owner != module_type_id:
        raise DispatchInvalid(
            "data_entry_type_id", f"{data_entry_type_id} does not belong to module {ModuleTypeId(module_type_id).label}"
        )
    return owner, data_entry_type_id


# --- Uploads (REST API) ---------------------------------------------------------------------------

ALLOWED_UPLOAD_EXTENSIONS = (".csv",)
# Browsers and OSes label CSV files inconsistently (Excel's, plain text, or nothing at all).
ALLOWED_UPLOAD_CONTENT_TYPES = frozenset(
    {"text/csv", "application/csv", "application/vnd.ms-excel", "text/plain", "application/octet-stream", ""}
)


class UploadUnsupported(ValueError):
    """An upload that is not a CSV file (415)."""


@dataclass(frozen=True)
class Upload:
    """A file as it arrives: its client-side name and content type, and its bytes as a stream."""

    name: str
    content_type: str
    chunks: Iterable[bytes]


@dataclass(frozen=True)
class StoredUpload:
    name: str
    path: str  # relative to FILES_ROOT, under tmp/
    size: int


def upload_check(*, upload: Upload) -> None:
    """Refuse (UploadUnsupported) a file that is not a CSV by its name or its content type."""
    name = PurePosixPath(upload.name.replace("\\", "/")).name
    if not name.lower().endswith(ALLOWED_UPLOAD_EXTENSIONS):
        raise UploadUnsupported(f"{name}: only {', '.join(ALLOWED_UPLOAD_EXTENSIONS)} files can be uploaded")
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type not in ALLOWED_UPLOAD_CONTENT_TYPES:
        raise UploadUnsupported(f"{name}: content type {content_type} is not accepted for a CSV file")


def uploads_store(*, uploads: list[Upload]) -> list[StoredUpload]:
    """Store uploads under ``tmp/``, all or none.

    1. Check every file (CSV by name and content type) before writing any (UploadUnsupported).
    2. Stream each to ``tmp/<stamp>/<name>`` through ``upload_store``, which refuses one past
       FILES_MAX_SIZE_MB (UploadTooLarge) and deletes what it wrote of it.
    3. On any failure remove the files already stored for this request, then re-raise.
    """
    for upload in uploads:
        upload_check(upload=upload)
    limit = settings.FILES_MAX_SIZE_MB * 1024 * 1024
    stored: list[StoredUpload] = []
    try:
        for upload in uploads:
            relative = upload_store(name=upload.name, chunks=upload.chunks, max_bytes=limit)
            size = path_resolve(relative, prefixes=UPLOAD_PREFIXES).stat().st_size
            stored.append(StoredUpload(name=PurePosixPath(upload.name).name, path=relative, size=size))
    except BaseException:
        for done in stored:
            upload_discard(relative=done.path)
        raise
    return stored


def upload_discard(*, relative: str) -> None:
    """Delete an upload under ``tmp/`` together with its ``tmp/<stamp>/`` folder (missing is fine)."""
    try:
        path = path_resolve(relative, prefixes=UPLOAD_PREFIXES)
    except FilePathError:
        return
    folder = path.parent
    if folder != files_root() / "tmp" and folder.is_relative_to(files_root() / "tmp"):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --- Dispatch (REST API) --------------------------------------------------------------------------


class SourceJobUnusable(ValueError):
    """A copy-from job whose file cannot be reused (422, as the reference)."""


@dataclass(frozen=True)
class DispatchRequest:
    """A parsed ``POST /sync/dispatch`` (or ``/sync/factors/…``) request."""

    target_type: str
    ingestion_method: str = IngestionMethod.CSV
    year: int | None = None
    file_path: str | None = None
    module_type_id: int | None = None
    data_entry_type_id: int | None = None
    carbon_report_module_id: int | None = None
    reduction_objective_type_id: int | None = None
    source_job_id: int | None = None
    filters: dict[str, Any] | None = None


def sync_dispatch(
    *, request: DispatchRequest, access: AccessScope, user: Any = None, upload: Upload | None = None
) -> tuple[Pipeline, IngestionJob]:
    """Start the pipeline of an API dispatch.

    1. Permission (``dispatch_permission_check``): configurers anything; others only a
       unit-specific CSV data upload into a unit they are principal of (403 / 404).
    2. The file comes from exactly one of: ``file_path`` (an earlier temp-upload), UPLOAD
       (a multipart ``file``, stored like a temp-upload), or ``source_job_id`` (copy the
       processed file of an earlier successful job — "copy from previous year"). API and
       computed methods need none.
    3. ``upload_dispatch`` validates the rest and starts the pipeline. A file stored or copied
       by this request is removed again when the dispatch is refused, so nothing is left in
       ``tmp/``.
    """
    dispatch_permission_check(
        access=access,
        target_type=request.target_type,
        ingestion_method=request.ingestion_method,
        carbon_report_module_id=request.carbon_report_module_id,
    )
    given = {"file_path": request.file_path, "file": upload, "source_job_id": request.source_job_id}
    sources = [name for name, value in given.items() if value is not None and value != ""]
    if len(sources) > 1:
        raise DispatchInvalid(sources[1], f"give one of {' or '.join(sources)}, not both")
    if sources and request.ingestion_method != IngestionMethod.CSV:
        raise DispatchInvalid(sources[0], f"{request.ingestion_method} ingestion reads no file")
    file_path, stored_here = request.file_path, None
    if upload is not None:
        stored_here = file_path = uploads_store(uploads=[upload])[0].path
    elif request.source_job_id is not None:
        stored_here = file_path = job_file_copy(request=request, access=access)
    config: dict[str, Any] = {}
    if request.reduction_objective_type_id is not None:
        config["reduction_objective_type_id"] = request.reduction_objective_type_id
    if request.data_entry_type_id is not None:
        config["data_entry_type_id"] = request.data_entry_type_id
    if request.source_job_id is not None:
        config["copied_from_job_id"] = request.source_job_id
    if request.filters:
        config["filters"] = request.filters
    try:
        return upload_dispatch(
            target_type=request.target_type,
            ingestion_method=request.ingestion_method,
            year=request.year,
            module_type_id=request.module_type_id,
            data_entry_type_id=request.data_entry_type_id,
            carbon_report_module_id=request.carbon_report_module_id,
            file_path=file_path,
            config=config,
            user=user,
        )
    except BaseException:
        if stored_here is not None:
            upload_discard(relative=stored_here)
        raise


def job_file_copy(*, request: DispatchRequest, access: AccessScope) -> str:
    """Copy the processed file of ``request.source_job_id`` to a fresh upload under ``tmp/``.

    1. The job must exist and be the caller's to copy (``copy_source_visible``), else
       DispatchNotFound (404).
    2. It must be an upload of the same target and module (DispatchInvalid, 400).
    3. It must have FINISHED with SUCCESS and still have its ``processed_file_path``
       (SourceJobUnusable, 422).
    4. The file is streamed into ``tmp/<stamp>/<name>`` (the size limit applies); the returned
       path is then dispatched like any upload.
    """
    assert request.source_job_id is not None
    source = copy_source_visible(access=access, job_id=request.source_job_id)
    if source is None:
        raise DispatchNotFound(f"Source job {request.source_job_id} not found")
    if source.target_type != request.target_type:
        raise DispatchInvalid("source_job_id", f"job {source.pk} is a {source.target_type} upload")
    if request.module_type_id is not None and source.module_type_id != request.module_type_id:
        raise DispatchInvalid("source_job_id", f"job {source.pk} is an upload of module {source.module_type_id}")
    if source.state != JobState.FINISHED or source.result != JobResult.SUCCESS:
        raise SourceJobUnusable(f"Source job {source.pk} did not finish successfully")
    processed = (source.meta or {}).get("processed_file_path")
    if not processed:
        raise SourceJobUnusable(f"Source job {source.pk} has no processed file")
    try:
        path = path_resolve(str(processed), prefixes=("processed/",))
    except FilePathError:
        raise SourceJobUnusable(f"Source job {source.pk} has no readable processed file") from None
    if not path.is_file():
        raise SourceJobUnusable(f"The processed file of source job {source.pk} is gone")
    with path.open("rb") as handle:
        return upload_store(name=path.name, chunks=iter(lambda: handle.read(1 << 20), b""))


# Factor files named by a path segment: 0 means "no data-entry type", the module's own file.
MODULE_LEVEL_TYPE_ID = 0


def factors_dispatch(
    *,
    request: DispatchRequest,
    module_type_id: int,
    data_entry_type_id: int,
    access: AccessScope,
    user: Any = None,
    upload: Upload | None = None,
) -> tuple[Pipeline, IngestionJob]:
    """Start a factor upload for (module, type) — ``POST /sync/factors/{module}/{type}``.

    1. Type ``0`` (MODULE_LEVEL_TYPE_ID) is the module-level file (equipment, common
       purchases: each row names its type in a routing column); any other type pins the file.
    2. A year is required (factors are per year); a CSV upload's shape is resolved now
       (``factor_file_resolve``) so that a module without a module-level file, or a type of
       another module, is a 400 naming ``data_entry_type_id`` rather than a failed job.
    3. Then as ``sync_dispatch`` with target FACTORS.
    """
    det = None if data_entry_type_id == MODULE_LEVEL_TYPE_ID else data_entry_type_id
    if request.year is None:
        raise DispatchInvalid("year", "is required (factors are per year)")
    if request.ingestion_method == IngestionMethod.CSV:
        try:
            factor_file_resolve(module_type_id=module_type_id, data_entry_type_id=det)
        except ValueError as exc:
            field = "module_type_id" if str(exc).startswith("module_type_id=") else "data_entry_type_id"
            raise DispatchInvalid(field, str(exc)) from None
    factor_request = DispatchRequest(
        target_type=TargetType.FACTORS,
        ingestion_method=request.ingestion_method,
        year=request.year,
        file_path=request.file_path,
        module_type_id=module_type_id,
        data_entry_type_id=det,
        source_job_id=request.source_job_id,
        filters=request.filters,
    )
    return sync_dispatch(request=factor_request, access=access, user=user, upload=upload)


# --- Unit sync and reduction objectives (REST API) ------------------------------------------------


class YearNotFound(LookupError):
    """No configuration for the year (404)."""


def units_sync_schedule(*, year: int, user: Any = None) -> tuple[Pipeline, IngestionJob]:
    """Start the year's unit sync (creating the year when it is new) and return it with its root job."""
    pipeline = year_units_sync(year=year, user=user)
    job = IngestionJob.objects.filter(pipeline=pipeline, parent__isnull=True).order_by("id").first()
    assert job is not None  # pipeline_create inserts the root job with its pipeline
    return pipeline, job


@dataclass(frozen=True)
class ObjectivesUploaded:
    year: int
    category: str
    rows_processed: int
    file_path: str


def objectives_file_upload(*, year: int, category: str, upload: Upload) -> ObjectivesUploaded:
    """The synchronous reduction-objectives upload of a year (reference-domain §4.6).

    1. The year must be configured (YearNotFound → 404).
    2. Store the file like a temp-upload (CSV only, size-limited).
    3. Parse and store it all or nothing (``objectives_upload``: ObjectivesInvalid with every
       row error, CsvError for an unreadable file). A refused file is deleted again; an
       accepted one stays where the year's config records it.
    """
    if not YearConfiguration.objects.filter(year=year).exists():
        raise YearNotFound(f"Year {year} is not configured")
    stored = uploads_store(uploads=[upload])[0]
    path = path_resolve(stored.path, prefixes=UPLOAD_PREFIXES)
    try:
        rows = objectives_upload(year=year, category=category, path=path, file_path=stored.path)
    except BaseException:
        upload_discard(relative=stored.path)
        raise
    return ObjectivesUploaded(year=year, category=category, rows_processed=rows, file_path=stored.path)
