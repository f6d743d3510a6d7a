"""OpenAPI schema post-processing (drf-spectacular hook).

Every operation documents the errors the project's conventions produce everywhere (SPEC §6.1),
so schema-driven clients and the schemathesis run know them: 400 (validation, ``detail`` plus
``errors``), 404, 415 where a body is taken, and, unless the view is public, 401 and 403. Views document their specific
codes (409, 413, 415, 422, 503) themselves; this hook never overwrites what a view declared.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "errors": {"description": "every validation message, by field (400 only)"},
    },
    "required": ["detail"],
}
DESCRIPTIONS = {
    "400": "invalid input",
    "401": "not authenticated",
    "403": "not allowed",
    "404": "not found",
    "415": "a body in a media type the operation does not take",
}
# Paths that take no credentials (monitors, schema browsers).
PUBLIC_PATHS = ("/api/v1/health",)


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorDetail"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/ErrorDetail"}
    for path, operations in result.get("paths", {}).items():
        # Any path can miss (a malformed id answers a JSON 404 from config.api.api_not_found).
        codes = ["400", "404"] if path in PUBLIC_PATHS else ["400", "401", "403", "404"]
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code in codes + (["415"] if "requestBody" in operation else []):
                responses.setdefault(
                    code, {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": reference}}}
                )
            # The error handler gives every error the same shape, whatever a view declared.
            for code, response in responses.items():
                if code.startswith(("4", "5")) and "content" not in response:
                    response["content"] = {"application/json": {"schema": reference}}
    return result
