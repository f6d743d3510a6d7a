"""Permission classes of the domain API, over the request's cached ``AccessScope`` (SPEC §6.3)."""

from __future__ import annotations

from typing import Any, cast

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from carbon.permissions import AccessScope
from pipelines.api.access import request_access


def request_scope(request: Any) -> AccessScope:
    """The request user's scope (computed once per request, shared with the engine's checks)."""
    return cast(AccessScope, request_access(request))


class _ScopePermission(BasePermission):
    attribute = ""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and getattr(request_scope(request), self.attribute))


class CanConfigure(_ScopePermission):
    """Year configuration, factor/reference/per-year uploads, unit sync, manual recalcs."""

    attribute = "can_configure"
    message = "Permission denied: requires the superadmin role (configuration)."


class CanViewConfiguration(_ScopePermission):
    attribute = "can_view_configuration"
    message = "Permission denied: requires the back-office or superadmin role."


class CanUpload(_ScopePermission):
    attribute = "can_upload_somewhere"
    message = "Permission denied: requires the superadmin role or a unit principal role."


class CanViewReports(_ScopePermission):
    attribute = "can_view_reports"
    message = "Permission denied: requires a back-office, principal or superadmin role."
