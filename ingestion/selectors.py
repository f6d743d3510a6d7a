"""Reads behind the ingestion API: who may dispatch for which unit, which stored file a user
may download, and which earlier job an upload may copy.

Visibility answers never distinguish "does not exist" from "may not see it": both are None
(the API answers 404), so a user cannot probe for other units' uploads.
"""

from __future__ import annotations

from pathlib import Path

from carbon.models import CarbonReportModule
from carbon.permissions import AccessScope
from ingestion.files import FilePathError, path_resolve, relative_to_root
from pipelines.choices import IngestionMethod, TargetType
from pipelines.models import IngestionJob

# Job folders of the file layout: tmp/ → processing/<job>/ → processed/<job>/.
JOB_FOLDERS = ("processing", "processed")
CONFIGURATION_EDIT_DENIED = "Permission denied: requires backoffice.configuration.edit"


class DispatchForbidden(PermissionError):
    """The caller may not start this pipeline (403)."""


class DispatchNotFound(LookupError):
    """Something the dispatch names does not exist, or is not the caller's to see (404)."""


def report_module_unit_id(*, carbon_report_module_id: int) -> int | None:
    """The unit owning a carbon report module (through its report), or None if there is no such module."""
    return (
        CarbonReportModule.objects.filter(pk=carbon_report_module_id).values_list("report__unit_id", flat=True).first()
    )


def dispatch_permission_check(
    *, access: AccessScope, target_type: str, ingestion_method: str, carbon_report_module_id: int | None
) -> None:
    """Decide whether ACCESS may start this dispatch; raise DispatchForbidden or DispatchNotFound.

    1. Configurers (superadmin) may dispatch anything.
    2. Anyone else only a unit-specific CSV data upload: target DATA_ENTRIES, CSV, and a
       ``carbon_report_module_id`` (a per-year or API import replaces every unit's rows).
    3. The module's unit must exist (404 "Unit for carbon_report_module_id N not found") and be
       one the caller uploads for (a principal of that unit), else 403.
    """
    if access.can_configure:
        return
    if (
        target_type != TargetType.DATA_ENTRIES
        or ingestion_method != IngestionMethod.CSV
        or carbon_report_module_id is None
    ):
        raise DispatchForbidden(CONFIGURATION_EDIT_DENIED)
    unit_id = report_module_unit_id(carbon_report_module_id=carbon_report_module_id)
    if unit_id is None:
        raise DispatchNotFound(f"Unit for carbon_report_module_id {carbon_report_module_id} not found")
    if not access.can_upload_for_unit(unit_id):
        raise DispatchForbidden(CONFIGURATION_EDIT_DENIED)


def job_visible(*, access: AccessScope, job_id: int) -> IngestionJob | None:
    """The job when ACCESS sees its pipeline (pipeline viewers; unit-pinned ones per unit), else None."""
    if not access.can_view_pipelines:
        return None
    job = IngestionJob.objects.filter(pk=job_id).first()
    if job is None or not access.can_see_unit(job.unit_id):
        return None
    return job


def copy_source_visible(*, access: AccessScope, job_id: int) -> IngestionJob | None:
    """The job whose processed file an upload may copy ("copy from previous year"), else None.

    Configurers may copy any job. Anyone else only a unit-specific job of a unit they upload
    for: a per-year file holds every unit's rows, and copying it into one's own module would
    disclose them.
    """
    job = IngestionJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    if access.can_configure:
        return job
    if job.unit_id is None or not access.can_upload_for_unit(job.unit_id):
        return None
    return job


def downloadable_file(*, access: AccessScope, relative: str) -> Path | None:
    """The file at RELATIVE (under FILES_ROOT) if ACCESS may download it, else None.

    1. Resolve the path inside FILES_ROOT (no ``..``, not absolute, symlinks resolved and
       still inside); anything else is None.
    2. Classify by the *resolved* path, so a symlink cannot borrow another folder's rule:
       ``tmp/…`` → configurers only; ``processing/<job>/…`` and ``processed/<job>/…`` of a
       unit-specific job → whoever sees that job's pipeline; of any other job → only those
       who see every unit (a per-year file holds every unit's rows: names, FTE, purchases);
       any other place → nobody.
    3. Only a regular file is served (never a directory).
    """
    try:
        path = path_resolve(relative)
    except FilePathError:
        return None
    if not path.is_file():
        return None
    parts = Path(relative_to_root(path)).parts
    if len(parts) >= 2 and parts[0] == "tmp":
        return path if access.can_configure else None
    if len(parts) >= 3 and parts[0] in JOB_FOLDERS and _is_job_id(parts[1]):
        job = job_visible(access=access, job_id=int(parts[1]))
        if job is None or (job.unit_id is None and not access.sees_all_units):
            return None
        return path
    return None


def _is_job_id(text: str) -> bool:
    # ASCII digits only, and short enough for a bigint: a larger number is no job (not a 500).
    return text.isascii() and text.isdigit() and len(text) <= 18
