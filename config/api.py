"""Project-wide REST conventions (SPEC §6.1): every error body is ``{"detail": "…"}``.

DRF answers validation errors as ``{"field": ["message"]}``; the frontend of the reference
system reads ``detail``. The handler keeps DRF's status codes, flattens the first message into
``detail`` naming its field (``"year: this field is required"``), and keeps every message under
``errors`` so nothing is lost.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler


def _flatten(errors: Any, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        out: list[str] = []
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            out.extend(_flatten(value, name))
        return out
    if isinstance(errors, list):
        out = []
        for index, value in enumerate(errors):
            nested = isinstance(value, dict | list)
            out.extend(_flatten(value, f"{prefix}[{index}]" if nested and prefix else prefix))
        return out
    text = str(errors)
    return [f"{prefix}: {text}" if prefix else text]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        messages = _flatten(response.data)
        response.data = {"detail": messages[0] if messages else "invalid input", "errors": response.data}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    elif isinstance(response.data, list):
        response.data = {"detail": "; ".join(str(item) for item in response.data)}
    return response


@csrf_exempt  # it changes nothing; a POST to a wrong path must get its 404, not a CSRF page
def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """Any /api/ path no route matched: a JSON 404, never Django's HTML page (DEBUG or not)."""
    return JsonResponse({"detail": f"Not found: {request.path}"}, status=404)
