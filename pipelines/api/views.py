"""REST views of the engine (thin: parse, call a selector or service, render)."""

from __future__ import annotations

from django.db import DatabaseError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines.selectors import system_health


class HealthView(APIView):
    """GET /api/v1/health — 200 when healthy, 503 otherwise (for load balancers and monitors)."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        responses={
            200: inline_serializer(
                "Health",
                fields={
                    "healthy": serializers.BooleanField(),
                    "checks": serializers.DictField(child=serializers.BooleanField()),
                    "live_workers": serializers.IntegerField(),
                    "worker_versions": serializers.ListField(child=serializers.CharField()),
                    "mixed_versions": serializers.BooleanField(),
                    "last_reconciler_sweep": serializers.DateTimeField(allow_null=True),
                    "checked_at": serializers.DateTimeField(),
                },
            ),
            503: None,
        }
    )
    def get(self, request: Request) -> Response:
        try:
            health = system_health()
        except DatabaseError as exc:
            return Response(
                {"healthy": False, "checks": {"database": False}, "detail": f"database unreachable: {exc}"}, status=503
            )
        return Response(health, status=200 if health["healthy"] else 503)
