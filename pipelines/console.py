"""The operations console's page (SPEC §7): a shell that the browser fills from the API.

Why a shell: the console must show exactly what the REST API and the live events say, and
keep showing it without reloads. So the server renders no pipeline at all; it hands the page
the user's permissions and the URLs to call (reversed here, so routes stay defined once), and
``pipelines/static/pipelines/console.js`` reads ``GET /sync/pipelines`` and the websocket
``/ws/pipelines/``. The API enforces the same permissions again (``carbon.permissions``:
the Django ``view_pipeline``/``change_pipeline`` permissions of staff map to the API scope),
so hiding buttons here is a convenience, never the access check.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from pipelines.choices import JobType, PipelineStatus
from pipelines.wiring import domain_labels

VIEW_PERMISSIONS = ("pipelines.view_pipeline", "pipelines.change_pipeline")
OPERATE_PERMISSION = "pipelines.change_pipeline"
# Routed by config.asgi (Channels), not by Django's URLconf.
WEBSOCKET_PATH = "/ws/pipelines/"
STALE_STATS_MINUTES = 60
TEMPLATE = "admin/pipelines/console.html"

_ID = uuid.UUID(int=0)
# The page loads its script, styles and images from this site only and runs no inline code
# (its configuration is a json_script, which is data); it talks to this site's API and
# websocket only, and may not be framed. A strict policy therefore costs nothing and turns an
# injection into a blocked script rather than a session takeover.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def can_view(user: Any) -> bool:
    """The console's gate: the Django view (or change) permission on pipelines."""
    return bool(getattr(user, "is_active", False)) and any(user.has_perm(p) for p in VIEW_PERMISSIONS)


def can_operate(user: Any) -> bool:
    return bool(getattr(user, "is_active", False)) and bool(user.has_perm(OPERATE_PERMISSION))


def _templated(name: str, *, placeholder: str) -> str:
    """The URL of NAME for one pipeline, with ``{id}`` where the pipeline id goes."""
    return reverse(name, kwargs={"pipeline_id": _ID}).replace(str(_ID), placeholder)


def _optional(name: str, **kwargs: Any) -> str | None:
    """The URL of NAME, or None when the route is not installed (its panel is then left out)."""
    try:
        return reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


def console_config(user: Any) -> dict[str, Any]:
    """What the page's script needs: permissions, endpoints and the filter choices."""
    files = _optional("files-download", path="__path__")
    modules = domain_labels().get("module", {})
    return {
        "can_operate": can_operate(user),
        "urls": {
            "pipelines": reverse("pipeline-list"),
            "pipeline": _templated("pipeline-detail", placeholder="{id}"),
            "abort": _templated("pipeline-abort", placeholder="{id}"),
            "retry": _templated("pipeline-retry", placeholder="{id}"),
            "bulk": reverse("pipeline-bulk"),
            "workers": reverse("workers"),
            "stale_stats": _optional("stale-stats"),
            "files": files.replace("__path__", "{path}") if files else None,
            "websocket": WEBSOCKET_PATH,
        },
        "stale_stats_minutes": STALE_STATS_MINUTES,
        "statuses": [{"value": value, "label": str(label)} for value, label in PipelineStatus.choices],
        "job_types": [{"value": value, "label": str(label)} for value, label in JobType.choices],
        "modules": [{"value": mid, "label": title} for mid, (_name, title) in sorted(modules.items())],
    }


def console_view(request: HttpRequest, *, context: dict[str, Any]) -> HttpResponse:
    """GET /admin/pipelines/console/ — 403 without the pipelines view permission.

    CONTEXT is the admin site's (header, navigation); login is checked by ``admin_view``.
    """
    if not can_view(request.user):
        raise PermissionDenied("The operations console needs the pipelines view permission.")
    get_token(request)  # the script sends the csrftoken cookie back as X-CSRFToken on POSTs
    response = render(
        request,
        TEMPLATE,
        {
            **context,
            "title": "Pipeline operations",
            # The table needs the page's width; the admin's navigation stays in the header links.
            "is_nav_sidebar_enabled": False,
            "console_config": console_config(request.user),
        },
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
