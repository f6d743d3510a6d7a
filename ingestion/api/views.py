"""REST views of ingestion: uploads, downloads, dispatching pipelines (SPEC §6.2, reference-pipeline-core §6).

Thin by rule: parse the request, call one service or selector of ``ingestion``, render. Every
error is ``{"detail": …}`` (``config.api``); the mapping from service exceptions to status codes
is ``_service_errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, UnsupportedMediaType
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from carbon.api.permissions import CanConfigure, CanUpload, request_scope
from carbon.services import YearConfigurationExists
from ingestion.api.serializers import (
    FactorSyncRequestSerializer,
    FactorSyncUploadSerializer,
    IngestionErrorSerializer,
    ObjectivesUploadRequestSerializer,
    ObjectivesUploadResponseSerializer,
    SyncDispatchRequestSerializer,
    SyncDispatchResponseSerializer,
    SyncDispatchUploadSerializer,
    TempUploadRequestSerializer,
    TempUploadResponseSerializer,
    UnitSyncRequestSerializer,
    UnitSyncResponseSerializer,
)
from ingestion.csv_safe import neutralised_csv
from ingestion.csvio import CsvError
from ingestion.files import UploadTooLarge
from ingestion.selectors import CONFIGURATION_EDIT_DENIED, DispatchForbidden, DispatchNotFound, downloadable_file
from ingestion.services import (
    DispatchInvalid,
    SourceJobUnusable,
    Upload,
    UploadUnsupported,
    YearNotFound,
    YearNotProvisioned,
    factors_dispatch,
    objectives_file_upload,
    sync_dispatch,
    units_sync_schedule,
    uploads_store,
)
from ingestion.services_objectives import CATEGORY_NAMES, ObjectivesInvalid
from pipelines.models import IngestionJob, Pipeline


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "upload too large"


class Unprocessable(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "unprocessable"


class CanDispatch(CanUpload):
    """Configurers and principals get as far as the dispatch's own unit check (ingestion.selectors)."""

    message = CONFIGURATION_EDIT_DENIED


# Service field names that live under ``config`` in the request body.
DISPATCH_CONFIG_FIELDS = frozenset(
    {"module_type_id", "data_entry_type_id", "carbon_report_module_id", "reduction_objective_type_id", "source_job_id"}
)
# On /sync/factors/{module}/{type} the module and type are path parameters.
FACTOR_CONFIG_FIELDS = frozenset({"carbon_report_module_id", "reduction_objective_type_id", "source_job_id"})
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


@contextmanager
def _service_errors(*, config_fields: frozenset[str] = DISPATCH_CONFIG_FIELDS) -> Iterator[None]:
    """Service exceptions → API errors (400 naming the request field, 403, 404, 409, 413, 415, 422)."""
    try:
        yield
    except DispatchInvalid as exc:
        errors: dict[str, Any] = (
            {"config": {exc.field: [exc.reason]}} if exc.field in config_fields else {exc.field: [exc.reason]}
        )
        raise serializers.ValidationError(errors) from None
    except YearNotProvisioned as exc:
        raise Conflict(str(exc)) from None
    except DispatchForbidden as exc:
        raise PermissionDenied(str(exc)) from None
    except (DispatchNotFound, YearNotFound) as exc:
        raise NotFound(str(exc)) from None
    except SourceJobUnusable as exc:
        raise Unprocessable(str(exc)) from None
    except UploadUnsupported as exc:
        raise UnsupportedMediaType("", detail=str(exc)) from None
    except UploadTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None


def _upload(file: UploadedFile | None) -> Upload | None:
    if file is None:
        return None
    # chunks() reads a large upload from Django's temporary file: never the whole file in memory.
    return Upload(name=file.name or "upload.csv", content_type=file.content_type or "", chunks=file.chunks())


def _dispatch_payload(pipeline: Pipeline, job: IngestionJob) -> dict[str, Any]:
    return {
        "job_id": job.pk,
        "pipeline_id": str(pipeline.pk),
        "state": job.state,
        "message": f"Sync initiated using {job.ingestion_method}",
        "progress": None,
    }


ERRORS = {
    code: OpenApiResponse(IngestionErrorSerializer, description=text)
    for code, text in {
        400: "invalid input; detail names the field",
        401: "not authenticated",
        403: "not allowed",
        404: "not found (or not yours to see)",
        409: "conflict",
        413: "file larger than FILES_MAX_SIZE_MB",
        415: "not a CSV file",
        422: "the copy-from job cannot be reused",
    }.items()
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


class TempUploadView(APIView):
    """POST /api/v1/files/temp-upload — store CSV files under ``tmp/`` for a later dispatch.

    Superadmins and principals (``CanUpload``). All or nothing: a refused file (not CSV → 415,
    over the size limit → 413, naming the file) leaves none of the request's files behind.
    """

    permission_classes = [CanUpload]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="files_temp_upload",
        request={"multipart/form-data": TempUploadRequestSerializer},
        responses={200: TempUploadResponseSerializer, **_errors(400, 401, 403, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        files = request.FILES.getlist("files")
        if not files:
            raise serializers.ValidationError({"files": ["at least one file is required"]})
        uploads = [upload for upload in map(_upload, files) if upload is not None]
        with _service_errors():
            stored = uploads_store(uploads=uploads)
        return Response({"files": [{"name": s.name, "path": s.path, "size": s.size} for s in stored]})


class FileDownloadView(APIView):
    """GET /api/v1/files/{path}?d=true — download a stored file (streamed).

    ``processing/<job>/…`` and ``processed/<job>/…`` are visible to whoever sees that job's
    pipeline; ``tmp/…`` to configurers. Anything else — outside FILES_ROOT, traversal, a
    symlink leaving it, a file of another unit's job, a missing file — is the same 404.
    ``d=true`` answers ``Content-Disposition: attachment``, otherwise inline. A CSV file is
    served with its spreadsheet-formula cells neutralised (``ingestion.csv_safe``); any other
    file as opaque bytes.
    """

    permission_classes = [IsAuthenticated]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # A download client may send ``Accept: text/csv``; errors are still rendered as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="files_download",
        parameters=[
            OpenApiParameter("path", OpenApiTypes.STR, OpenApiParameter.PATH, description="path under FILES_ROOT"),
            OpenApiParameter("d", OpenApiTypes.BOOL, description="true: download as an attachment"),
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **_errors(401, 404)},
    )
    def get(self, request: Request, path: str) -> StreamingHttpResponse:
        found = downloadable_file(access=request_scope(request), relative=path)
        if found is None:
            raise NotFound("File not found")
        try:
            handle = found.open("rb")
        except OSError:
            # Moved between the check and the open (processing/ → processed/ when a job commits).
            raise NotFound("File not found") from None
        attachment = str(request.query_params.get("d", "")).lower() in TRUE_VALUES
        # Never let a browser render a stored file as a page (a command may store any name):
        # CSV is text/csv, anything else opaque bytes (with nosniff from SecurityMiddleware).
        if found.suffix.lower() != ".csv":
            return FileResponse(
                handle, as_attachment=attachment, filename=found.name, content_type="application/octet-stream"
            )
        # A CSV goes to spreadsheets: its formula cells are neutralised on the way (csv_safe).
        response = StreamingHttpResponse(neutralised_csv(handle), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = content_disposition_header(attachment, found.name) or "inline"
        return response


class SyncDispatchView(APIView):
    """POST /api/v1/sync/dispatch — start an ingestion pipeline (reference ``/sync/dispatch``).

    Configurers (superadmin) may dispatch anything. A principal may dispatch a unit-specific
    CSV data upload (target DATA_ENTRIES with ``config.carbon_report_module_id``) into one of
    their units: an unknown module is 404 "Unit for carbon_report_module_id N not found",
    another unit's 403. Anyone else 403. The file is ``file_path`` (a temp-upload), a multipart
    ``file``, or ``config.source_job_id`` (copy an earlier successful job's processed file; 404
    unknown, 400 other target/module, 422 not reusable). API ingestion (travel) needs none.
    400 names the field; 409 until the year's unit sync has completed.
    """

    permission_classes = [CanDispatch]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="sync_dispatch",
        request={
            "application/json": SyncDispatchRequestSerializer,
            "multipart/form-data": SyncDispatchUploadSerializer,
        },
        responses={200: SyncDispatchResponseSerializer, **_errors(400, 401, 403, 404, 409, 413, 415, 422)},
    )
    def post(self, request: Request) -> Response:
        serializer = SyncDispatchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with _service_errors():
            pipeline, job = sync_dispatch(
                request=serializer.dispatch_request(),
                access=request_scope(request),
                user=request.user,
                upload=_upload(request.FILES.get("file")),
            )
        return Response(_dispatch_payload(pipeline, job))


class FactorSyncView(APIView):
    """POST /api/v1/sync/factors/{module_type_id}/{data_entry_type_id} — upload a year's factors.

    Superadmin only. The body is the dispatch body (``year`` required; ``target_type``, if
    given, must be FACTORS; ``ingestion_method`` csv, or computed for research-facility sums);
    the file is ``file_path``, a multipart ``file`` or ``config.source_job_id``.

    ``data_entry_type_id = 0`` is the module-level factor file: equipment (4) and common
    purchases (5) upload one file for the whole module, each row naming its type in a routing
    column; for a module with a single factor type, 0 means that type. Any other id pins the
    file to that type. A module without a module-level file, or a type of another module, is
    a 400 naming the parameter. Like every upload, 409 until the year is provisioned.
    """

    permission_classes = [CanConfigure]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="sync_factors",
        request={
            "application/json": FactorSyncRequestSerializer,
            "multipart/form-data": FactorSyncUploadSerializer,
        },
        responses={200: SyncDispatchResponseSerializer, **_errors(400, 401, 403, 404, 409, 413, 415, 422)},
    )
    def post(self, request: Request, module_type_id: int, data_entry_type_id: int) -> Response:
        serializer = FactorSyncRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with _service_errors(config_fields=FACTOR_CONFIG_FIELDS):
            pipeline, job = factors_dispatch(
                request=serializer.dispatch_request(),
                module_type_id=module_type_id,
                data_entry_type_id=data_entry_type_id,
                access=request_scope(request),
                user=request.user,
                upload=_upload(request.FILES.get("file")),
            )
        return Response(_dispatch_payload(pipeline, job))


class UnitSyncView(APIView):
    """POST /api/v1/sync/units {target_year} — (re)sync the year's units from the unit directory.

    Superadmin only. A new year is created first (as ``POST /year-configuration/{year}``);
    its sync's success opens it to uploads.
    """

    permission_classes = [CanConfigure]

    @extend_schema(
        operation_id="sync_units",
        request=UnitSyncRequestSerializer,
        responses={200: UnitSyncResponseSerializer, **_errors(400, 401, 403, 409)},
    )
    def post(self, request: Request) -> Response:
        serializer = UnitSyncRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        year = serializer.validated_data["target_year"]
        try:
            pipeline, job = units_sync_schedule(year=year, user=request.user)
        except YearConfigurationExists:
            # Only when another request created the year between our check and our insert.
            raise Conflict(f"Year {year} was just created by another request; its unit sync is scheduled") from None
        return Response(
            {"job_id": job.pk, "pipeline_id": str(pipeline.pk), "state": job.state, "message": "Unit sync scheduled"}
        )


class ObjectivesUploadView(APIView):
    """POST /api/v1/year-configuration/{year}/upload — a year's reduction objectives (reference-domain §4.6).

    Superadmin only; synchronous and all or nothing: 400 lists every row error (``detail`` is
    the first, ``errors`` all of them) and changes nothing; 404 for a year not configured.
    """

    permission_classes = [CanConfigure]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="year_configuration_objectives_upload",
        request={"multipart/form-data": ObjectivesUploadRequestSerializer},
        responses={200: ObjectivesUploadResponseSerializer, **_errors(400, 401, 403, 404, 413, 415)},
    )
    def post(self, request: Request, year: int) -> Response:
        serializer = ObjectivesUploadRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = _upload(serializer.validated_data["file"])
        assert upload is not None  # the serializer requires the file
        category = serializer.validated_data["category"]
        with _service_errors():
            try:
                result = objectives_file_upload(year=year, category=category, upload=upload)
            except ObjectivesInvalid as exc:
                raise serializers.ValidationError(exc.errors) from None
            except CsvError as exc:
                raise serializers.ValidationError({"file": [str(exc)]}) from None
        return Response(
            {
                "year": result.year,
                "category": result.category,
                "reduction_objective_type_id": CATEGORY_NAMES[result.category],
                "rows_processed": result.rows_processed,
                "file_path": result.file_path,
            }
        )
