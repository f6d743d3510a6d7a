"""REST views of the engine (thin: parse, call a selector or service, render).

Access (SPEC §6.3): reads need ``CanViewPipelines``, operations ``CanOperatePipelines``; a
pipeline pinned to a unit the caller cannot see is dropped from lists and is a 404 elsewhere.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import DatabaseError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines import selectors, services, streaming
from pipelines.api import serializers as api
from pipelines.api.access import CanOperatePipelines, CanViewPipelines, request_access
from pipelines.models import Pipeline
from pipelines.selectors import system_health

ERROR = inline_serializer("Error", fields={"detail": serializers.CharField()})
ERRORS = {401: ERROR, 403: ERROR, 404: ERROR}


def _actor(request: Request) -> str:
    user: Any = request.user
    return str(getattr(user, "email", "") or user.get_username())


def _visible_pipeline(request: Request, pipeline_id: UUID) -> Pipeline:
    pipeline = selectors.pipeline_visible_get(access=request_access(request), pipeline_id=pipeline_id)
    if pipeline is None:
        raise NotFound(f"Pipeline {pipeline_id} not found")
    return pipeline


def _snapshot(pipeline_id: UUID) -> dict[str, Any]:
    snapshot = selectors.pipeline_snapshot(pipeline_id=pipeline_id)
    if snapshot is None:  # deleted between the check and the read
        raise NotFound(f"Pipeline {pipeline_id} not found")
    return snapshot


class HealthView(APIView):
    """GET /api/v1/health — 200 when healthy, 503 otherwise (for load balancers and monitors)."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(responses={200: api.HealthSerializer, 503: api.HealthSerializer})
    def get(self, request: Request) -> Response:
        try:
            health = system_health()
        except DatabaseError as exc:
            return Response(
                {"healthy": False, "checks": {"database": False}, "detail": f"database unreachable: {exc}"}, status=503
            )
        return Response(health, status=200 if health["healthy"] else 503)


class PipelineListView(APIView):
    """GET /sync/pipelines — newest first; filters, per-status counters, offset or cursor pages."""

    permission_classes = [CanViewPipelines]

    @extend_schema(
        operation_id="sync_pipelines_list",
        parameters=[api.PipelineListQuerySerializer],
        responses={200: api.PipelinePageSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = api.PipelineListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        try:
            page = selectors.pipeline_page(
                access=request_access(request),
                filters=api.pipeline_filters(data),
                limit=data["limit"],
                offset=data["offset"],
                cursor=data.get("cursor"),
            )
        except selectors.InvalidCursor as exc:
            raise serializers.ValidationError({"cursor": str(exc).split(": ", 1)[-1]}) from None
        return Response(
            {
                "items": page.items,
                "total": page.total,
                "counts": page.counts,
                "limit": data["limit"],
                "offset": data["offset"],
                "next_cursor": page.next_cursor,
            }
        )


class PipelineDetailView(APIView):
    """GET /sync/pipelines/{id} — the snapshot the live events carry."""

    permission_classes = [CanViewPipelines]

    @extend_schema(responses={200: api.PipelineSerializer, **ERRORS})
    def get(self, request: Request, pipeline_id: UUID) -> Response:
        pipeline = _visible_pipeline(request, pipeline_id)
        return Response(selectors.pipeline_payloads([pipeline])[0])


class PipelineStreamView(APIView):
    """GET /sync/pipelines/{id}/stream — server-sent events (``pipelines.streaming``).

    Under ASGI (daphne, ``manage.py serve``) this path is served by the Channels consumer and
    stays open until the terminal snapshot. This view answers when the app runs under WSGI:
    one snapshot per connection and a ``retry`` hint, which EventSource clients follow.
    """

    permission_classes = [CanViewPipelines]

    @extend_schema(
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="`event: pipeline-update` frames, each a pipeline snapshot"
            ),
            **ERRORS,
        }
    )
    def get(self, request: Request, pipeline_id: UUID) -> HttpResponse:
        _visible_pipeline(request, pipeline_id)
        snapshot = _snapshot(pipeline_id)
        done = bool(snapshot["progress"]["done"])
        body = streaming.sse_event(snapshot, closed=done)
        if not done:
            body = streaming.sse_retry(int(streaming.POLL_SECONDS * 1000)) + body
        response = HttpResponse(body, content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache"
        return response


class PipelineAbortView(APIView):
    """POST /sync/pipelines/{id}/abort — 409 when the pipeline has already ended."""

    permission_classes = [CanOperatePipelines]

    @extend_schema(request=None, responses={200: api.AbortResultSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, pipeline_id: UUID) -> Response:
        _visible_pipeline(request, pipeline_id)
        outcome = services.pipeline_abort(pipeline_id=pipeline_id, user=request.user)
        if not outcome.applied:
            detail = f"Pipeline {pipeline_id} has no non-terminal jobs to abort (every job is already FINISHED)."
            return Response({"detail": detail}, status=409)
        return Response(
            {
                "pipeline_id": str(pipeline_id),
                "aborted_by": _actor(request),
                "cancelled": outcome.cancelled,
                "signalled": outcome.signalled,
                "pipeline": _snapshot(pipeline_id),
            }
        )


class PipelineRetryView(APIView):
    """POST /sync/pipelines/{id}/retry — re-run its failed and cancelled jobs only."""

    permission_classes = [CanOperatePipelines]

    @extend_schema(request=None, responses={200: api.RetryResultSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, pipeline_id: UUID) -> Response:
        _visible_pipeline(request, pipeline_id)
        try:
            outcome = services.pipeline_retry_failed(pipeline_id=pipeline_id, user=request.user)
        except services.InvalidTransition as exc:
            return Response({"detail": str(exc)}, status=409)
        if not outcome.retried:
            detail = f"Pipeline {pipeline_id} has no failed or cancelled job to retry"
            if outcome.skipped:
                detail += f" ({'; '.join(f'job {k}: {v}' for k, v in outcome.skipped.items())})"
            return Response({"detail": detail}, status=409)
        return Response(
            {
                "pipeline_id": str(pipeline_id),
                "retried_job_ids": outcome.retried,
                "skipped": {str(k): v for k, v in outcome.skipped.items()},
                "pipeline": _snapshot(pipeline_id),
            }
        )


class PipelineBulkView(APIView):
    """POST /sync/pipelines/bulk — abort or retry every visible pipeline matching the filters."""

    permission_classes = [CanOperatePipelines]

    @extend_schema(request=api.BulkSerializer, responses={200: api.BulkResultSerializer, 400: ERROR, **ERRORS})
    def post(self, request: Request) -> Response:
        body = api.BulkSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        filters = api.pipeline_filters(body.validated_data["filters"])
        matching = selectors.pipelines_filter(selectors.pipelines_visible(access=request_access(request)), filters)
        if filters.status:
            matching = matching.filter(status=filters.status)
        try:
            outcome = services.pipelines_bulk_apply(
                action=body.validated_data["action"], pipelines=matching, user=request.user
            )
        except services.BulkTooLarge as exc:
            raise serializers.ValidationError({"filters": str(exc)}) from None
        return Response(
            {
                "action": body.validated_data["action"],
                "matched": outcome.matched,
                "applied": outcome.applied,
                "skipped": outcome.skipped,
                "applied_pipeline_ids": outcome.applied_ids,
            }
        )


class JobDetailView(APIView):
    """GET /sync/jobs/{id} — one job with its whole meta (config, stats, row errors)."""

    permission_classes = [CanViewPipelines]

    @extend_schema(responses={200: api.JobDetailSerializer, **ERRORS})
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_visible_get(access=request_access(request), job_id=job_id)
        if job is None:
            raise NotFound(f"Job {job_id} not found")
        return Response(job)


class JobRecoverView(APIView):
    """POST /sync/jobs/{id}/recover — give a stale RUNNING job back to the queue."""

    permission_classes = [CanOperatePipelines]

    @extend_schema(request=None, responses={200: api.JobDetailSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, job_id: int) -> Response:
        access = request_access(request)
        if selectors.job_visible_get(access=access, job_id=job_id) is None:
            raise NotFound(f"Job {job_id} not found")
        try:
            services.job_recover(job_id=job_id, user=request.user)
        except services.InvalidTransition:
            return Response(
                {
                    "detail": f"Job {job_id} cannot be recovered: not found, not in RUNNING state, "
                    "or lock is not yet stale"
                },
                status=409,
            )
        return Response(selectors.job_visible_get(access=access, job_id=job_id))


class WorkersView(APIView):
    """GET /sync/workers — live worker and reconciler processes."""

    permission_classes = [CanViewPipelines]

    @extend_schema(responses={200: api.WorkerSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(selectors.workers_live(access=request_access(request)))


class ActivePipelinesView(APIView):
    """GET /sync/active-pipelines?year=&modules=1,2 — ``{"<module>": "<pipeline>"}`` of active work."""

    permission_classes = [CanViewPipelines]

    @extend_schema(
        parameters=[api.ActivePipelinesQuerySerializer],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"<module_type_id>": "<pipeline uuid>"}')},
    )
    def get(self, request: Request) -> Response:
        query = api.ActivePipelinesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            selectors.active_pipelines_by_module(
                access=request_access(request),
                year=query.validated_data["year"],
                modules=query.validated_data["modules"],
            )
        )


class ActiveYearPipelinesView(APIView):
    """GET /sync/active-pipelines/year/{year} — pipelines of active year-wide jobs (unit sync)."""

    permission_classes = [CanViewPipelines]

    @extend_schema(responses={200: serializers.ListSerializer(child=serializers.UUIDField()), **ERRORS})
    def get(self, request: Request, year: int) -> Response:
        return Response(selectors.active_global_pipelines(year=year))
