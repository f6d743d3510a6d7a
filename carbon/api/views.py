"""REST views of the domain (thin: parse input, call a service or selector, render).

Who may call what is decided by the permission classes over the request's ``AccessScope``
(SPEC §6.3); which rows a caller sees is decided by the selectors, from the same scope.
Every error body is ``{"detail": "…"}`` (``config.api``); a 400 names its field.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from carbon.api import serializers as s
from carbon.api.permissions import CanConfigure, CanViewConfiguration, CanViewReports, request_scope
from carbon.models import YearConfiguration
from carbon.selectors import (
    Page,
    aggregation_staleness,
    carbon_report_get,
    carbon_report_list,
    factor_list,
    recalculation_status_by_module,
    stale_factors,
    unit_list,
    year_configuration_get,
    year_configuration_list,
)
from carbon.services import (
    ConfigInvalid,
    NothingToRecalculate,
    RecalculationInvalid,
    RecalculationStarted,
    RecalculationTargetUnknown,
    YearConfigurationExists,
    emission_recalculation_start,
    year_configuration_create,
    year_configuration_patch,
)
from pipelines.api.access import CanViewPipelines
from pipelines.services import ActiveJobConflict


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict with the current state of the resource."
    default_code = "conflict"


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _page(page: Page) -> dict[str, Any]:
    return {"items": page.items, "total": page.total, "limit": page.limit, "offset": page.offset}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(s.DomainErrorSerializer) for code in codes}


# --- Recalculation, status and health (/sync/…) -----------------------------------------------------


def _recalculation_response(
    *, module_type_id: int, data_entry_type_id: int | None, year: int, only_stale: bool, user: Any
) -> Response:
    try:
        started: RecalculationStarted = emission_recalculation_start(
            module_type_id=module_type_id,
            data_entry_type_id=data_entry_type_id,
            year=year,
            only_stale=only_stale,
            user=user,
        )
    except RecalculationTargetUnknown as exc:
        raise NotFound(str(exc)) from None
    except RecalculationInvalid as exc:
        raise ValidationError({exc.field: exc.reason}) from None
    except NothingToRecalculate as exc:
        raise ValidationError(str(exc)) from None  # the reference's exact text, no field
    except ActiveJobConflict as exc:
        raise Conflict(str(exc)) from None
    body = {
        "job_id": started.job.pk,
        "pipeline_id": started.pipeline.pk,
        "state": started.job.state,
        "message": started.message,
    }
    return Response(s.RecalculationStartedSerializer(body).data)


class RecalculateDataEntryTypeView(APIView):
    """POST /sync/recalculate-emissions/{module_type_id}/{data_entry_type_id}?year= (superadmin)."""

    permission_classes = [CanConfigure]

    @extend_schema(
        operation_id="sync_recalculate_data_entry_type",
        summary="Recalculate the emissions of one data-entry type for a year, then aggregate",
        parameters=[s.YearQuerySerializer],
        request=None,
        responses={200: s.RecalculationStartedSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, module_type_id: int, data_entry_type_id: int) -> Response:
        query = _valid(s.YearQuerySerializer, request.query_params)
        return _recalculation_response(
            module_type_id=module_type_id,
            data_entry_type_id=data_entry_type_id,
            year=query["year"],
            only_stale=False,
            user=request.user,
        )


class RecalculateModuleView(APIView):
    """POST /sync/recalculate-emissions/{module_type_id}?year=&only_stale= (superadmin)."""

    permission_classes = [CanConfigure]

    @extend_schema(
        operation_id="sync_recalculate_module",
        summary="Recalculate the emissions of a module's data-entry types for a year, then aggregate",
        parameters=[s.ModuleRecalculationQuerySerializer],
        request=None,
        responses={200: s.RecalculationStartedSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, module_type_id: int) -> Response:
        query = _valid(s.ModuleRecalculationQuerySerializer, request.query_params)
        return _recalculation_response(
            module_type_id=module_type_id,
            data_entry_type_id=None,
            year=query["year"],
            only_stale=query["only_stale"],
            user=request.user,
        )


class RecalculationStatusView(APIView):
    """GET /sync/recalculation-status?year= — per module and type: do its emissions need recomputing?"""

    permission_classes = [CanViewPipelines]

    @extend_schema(
        operation_id="sync_recalculation_status",
        parameters=[s.YearQuerySerializer],
        responses={200: s.RecalculationModuleStatusSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.YearQuerySerializer, request.query_params)
        rows = recalculation_status_by_module(year=query["year"])
        return Response(s.RecalculationModuleStatusSerializer(rows, many=True).data)


class StaleStatsView(APIView):
    """GET /sync/health/stale-stats?older_than_minutes= — (module, year) scopes whose stats may be stale."""

    permission_classes = [CanViewPipelines]

    @extend_schema(
        operation_id="sync_health_stale_stats",
        parameters=[s.StaleStatsQuerySerializer],
        responses={200: s.StaleStatsSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.StaleStatsQuerySerializer, request.query_params)
        rows = aggregation_staleness(older_than_minutes=query["older_than_minutes"])
        return Response(s.StaleStatsSerializer(rows, many=True).data)


# --- Year configuration -------------------------------------------------------------------------------


class YearConfigurationListView(APIView):
    """GET /year-configuration/ — every year (started years only without configuration view)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="year_configuration_list",
        responses={200: s.YearConfigurationSerializer(many=True), **_errors(401)},
    )
    def get(self, request: Request) -> Response:
        rows = year_configuration_list(scope=request_scope(request))
        return Response(s.YearConfigurationSerializer(rows, many=True).data)


class YearConfigurationView(APIView):
    """GET|POST|PATCH /year-configuration/{year} — read (any user), create and change (superadmin)."""

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method in ("POST", "PATCH"):
            return [CanConfigure()]
        return [IsAuthenticated()]

    @extend_schema(
        operation_id="year_configuration_retrieve",
        responses={200: s.YearConfigurationSerializer, **_errors(401, 404)},
    )
    def get(self, request: Request, year: int) -> Response:
        row = year_configuration_get(scope=request_scope(request), year=year)
        if row is None:
            raise NotFound(f"Year {year} is not configured")
        return Response(s.YearConfigurationSerializer(row).data)

    @extend_schema(
        operation_id="year_configuration_create",
        summary="Open a year: store its configuration and start the unit sync that provisions it",
        request=s.YearConfigurationCreateSerializer,
        responses={201: s.YearConfigurationCreatedSerializer, **_errors(400, 401, 403, 409)},
    )
    def post(self, request: Request, year: int) -> Response:
        _valid(s.YearPathSerializer, {"year": year})
        body = _valid(s.YearConfigurationCreateSerializer, request.data)
        try:
            _, pipeline = year_configuration_create(
                year=year, user=request.user, is_started=body["is_started"], config=body.get("config")
            )
        except YearConfigurationExists as exc:
            raise Conflict(str(exc)) from None
        except ConfigInvalid as exc:
            raise ValidationError({f"config.{exc.field}": exc.reason}) from None
        row = year_configuration_get(scope=request_scope(request), year=year)
        return Response(
            s.YearConfigurationCreatedSerializer({**(row or {}), "pipeline_id": pipeline.pk}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        operation_id="year_configuration_partial_update",
        summary="Open or close a year, and/or deep-merge a change into its config",
        request=s.YearConfigurationPatchSerializer,
        responses={200: s.YearConfigurationSerializer, **_errors(400, 401, 403, 404)},
    )
    def patch(self, request: Request, year: int) -> Response:
        body = _valid(s.YearConfigurationPatchSerializer, request.data)
        try:
            year_configuration_patch(year=year, is_started=body.get("is_started"), config=body.get("config"))
        except YearConfiguration.DoesNotExist:
            raise NotFound(f"Year {year} is not configured") from None
        except ConfigInvalid as exc:
            raise ValidationError({f"config.{exc.field}": exc.reason}) from None
        row = year_configuration_get(scope=request_scope(request), year=year)
        return Response(s.YearConfigurationSerializer(row).data)


# --- Units, factors, reports ---------------------------------------------------------------------------


class UnitListView(APIView):
    """GET /units — the units the caller may see, paginated."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="units_list",
        parameters=[s.UnitQuerySerializer],
        responses={200: s.UnitPageSerializer, **_errors(400, 401)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.UnitQuerySerializer, request.query_params)
        page = unit_list(scope=request_scope(request), **query)
        return Response(s.UnitPageSerializer(_page(page)).data)


class FactorListView(APIView):
    """GET /factors?year=&data_entry_type_id= — a year's factors, paginated."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="factors_list",
        parameters=[s.FactorQuerySerializer],
        responses={200: s.FactorPageSerializer, **_errors(400, 401)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.FactorQuerySerializer, request.query_params)
        page = factor_list(**query)
        return Response(s.FactorPageSerializer(_page(page)).data)


class StaleFactorListView(APIView):
    """GET /factors/stale?year= — factors the latest upload of their type no longer carried."""

    permission_classes = [CanViewConfiguration]

    @extend_schema(
        operation_id="factors_stale_list",
        parameters=[s.YearQuerySerializer],
        responses={200: s.StaleFactorSerializer(many=True), **_errors(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.YearQuerySerializer, request.query_params)
        return Response(s.StaleFactorSerializer(stale_factors(year=query["year"]), many=True).data)


class CarbonReportListView(APIView):
    """GET /carbon-reports?year=&unit= — reports of the units the caller may see, paginated."""

    permission_classes = [CanViewReports]

    @extend_schema(
        operation_id="carbon_reports_list",
        parameters=[s.CarbonReportQuerySerializer],
        responses={200: s.CarbonReportPageSerializer, **_errors(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(s.CarbonReportQuerySerializer, request.query_params)
        page = carbon_report_list(scope=request_scope(request), **query)
        return Response(s.CarbonReportPageSerializer(_page(page)).data)


class CarbonReportView(APIView):
    """GET /carbon-reports/{id} — one report with its modules (404 when not visible to the caller)."""

    permission_classes = [CanViewReports]

    @extend_schema(
        operation_id="carbon_reports_retrieve",
        responses={200: s.CarbonReportDetailSerializer, **_errors(401, 403, 404)},
    )
    def get(self, request: Request, report_id: int) -> Response:
        row = carbon_report_get(scope=request_scope(request), report_id=report_id)
        if row is None:
            raise NotFound(f"Carbon report {report_id} not found")
        return Response(s.CarbonReportDetailSerializer(row).data)
