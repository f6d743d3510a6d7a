"""Request-level access checks of the engine's API (SPEC §6.3).

The scope is computed once per request and cached on it, so every check after the first
costs no query. The scope itself comes from the domain (``pipelines.wiring``).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from pipelines.wiring import PipelineAccess, user_access

_CACHE_ATTR = "_pipelines_access"


def request_access(request: Any) -> PipelineAccess:
    """The scope of the request's user, computed once per request."""
    cached = getattr(request, _CACHE_ATTR, None)
    if cached is None:
        cached = user_access(getattr(request, "user", None))
        setattr(request, _CACHE_ATTR, cached)
    return cached


class CanViewPipelines(BasePermission):
    """Pipeline lists, details, streams and status reads; unit-pinned rows are filtered apart."""

    message = "You do not have permission to view pipelines."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request_access(request).can_view_pipelines)


class CanOperatePipelines(BasePermission):
    """Abort, retry, recover, bulk actions."""

    message = "You do not have permission to operate pipelines."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request_access(request).can_operate_pipelines)
