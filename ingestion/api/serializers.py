"""Request and response shapes of the ingestion API (reference-pipeline-core §6, reference-domain §3.1).

Field names follow the reference so that its frontend keeps working; enum fields accept the
reference integers or the names and are answered as names. Multipart variants carry the same
fields as form fields, ``config`` and ``filters`` as JSON strings.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.utils import html

from ingestion.services import DispatchRequest
from ingestion.services_objectives import CATEGORY_NAMES
from pipelines.api.fields import NameOrReferenceIntField
from pipelines.choices import IngestionMethod, TargetType

# Ids that reach a bigint column: larger numbers are invalid input, not a database error.
BIGINT_MAX = 2**63 - 1
YEAR_MIN, YEAR_MAX = 2000, 2100
JSON_FORM_FIELDS = ("config", "filters")
CATEGORY_BY_KIND = {kind: name for name, kind in CATEGORY_NAMES.items()}


@extend_schema_field(OpenApiTypes.BINARY)
class UploadFileField(serializers.FileField):
    """A multipart file part (documented as binary, not as the URL a FileField answers with)."""


def form_to_dict(data: Any) -> Any:
    """Multipart form input as the JSON body it stands for (files dropped, JSON fields parsed)."""
    if not html.is_html_input(data):
        return data
    plain: dict[str, Any] = {}
    for key in data:
        value = data.get(key)
        if not isinstance(value, str):
            continue  # an uploaded file: the view reads it from request.FILES
        if key in JSON_FORM_FIELDS:
            if not value.strip():
                continue
            try:
                value = json.loads(value)
            except ValueError:
                raise serializers.ValidationError({key: ["must be a JSON object"]}) from None
        plain[key] = value
    return plain


class DispatchConfigSerializer(serializers.Serializer):
    module_type_id = serializers.IntegerField(required=False, allow_null=True)
    data_entry_type_id = serializers.IntegerField(required=False, allow_null=True)
    carbon_report_module_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=BIGINT_MAX
    )
    reduction_objective_type_id = serializers.IntegerField(required=False, allow_null=True)
    source_job_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=BIGINT_MAX, help_text="copy from previous year"
    )


class _DispatchFieldsSerializer(serializers.Serializer):
    ingestion_method = NameOrReferenceIntField(IngestionMethod, required=False, default=IngestionMethod.CSV)
    target_type = NameOrReferenceIntField(TargetType)
    year = serializers.IntegerField(required=False, allow_null=True, min_value=YEAR_MIN, max_value=YEAR_MAX)
    file_path = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=1024)


class SyncDispatchRequestSerializer(_DispatchFieldsSerializer):
    """``POST /sync/dispatch`` as JSON (and, parsed by ``form_to_dict``, as multipart)."""

    filters = serializers.DictField(required=False, allow_null=True)
    config = DispatchConfigSerializer(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(form_to_dict(data))

    def dispatch_request(self) -> DispatchRequest:
        data = self.validated_data
        config = data.get("config") or {}
        return DispatchRequest(
            # The factors endpoint fixes the target itself (its body may omit it).
            target_type=data.get("target_type", TargetType.FACTORS),
            ingestion_method=data["ingestion_method"],
            year=data.get("year"),
            file_path=data.get("file_path") or None,
            module_type_id=config.get("module_type_id"),
            data_entry_type_id=config.get("data_entry_type_id"),
            carbon_report_module_id=config.get("carbon_report_module_id"),
            reduction_objective_type_id=config.get("reduction_objective_type_id"),
            source_job_id=config.get("source_job_id"),
            filters=data.get("filters") or None,
        )


class SyncDispatchUploadSerializer(_DispatchFieldsSerializer):
    """``POST /sync/dispatch`` as multipart: the same fields as form fields, plus the file itself."""

    file = UploadFileField(required=False, help_text="a CSV file, stored as a temp-upload would be")
    filters = serializers.CharField(required=False, help_text="JSON object")
    config = serializers.CharField(required=False, help_text="JSON object, as in the JSON body")


class FactorSyncRequestSerializer(SyncDispatchRequestSerializer):
    """``POST /sync/factors/{module}/{type}``: the dispatch body; the year is required, the target is FACTORS."""

    target_type = NameOrReferenceIntField(TargetType, required=False)
    year = serializers.IntegerField(min_value=YEAR_MIN, max_value=YEAR_MAX)

    def validate_target_type(self, value: str) -> str:
        if value != TargetType.FACTORS:
            raise serializers.ValidationError("must be FACTORS on this endpoint")
        return value


class FactorSyncUploadSerializer(SyncDispatchUploadSerializer):
    """``POST /sync/factors/{module}/{type}`` as multipart."""

    target_type = NameOrReferenceIntField(TargetType, required=False)
    year = serializers.IntegerField(min_value=YEAR_MIN, max_value=YEAR_MAX)


class SyncDispatchResponseSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    pipeline_id = serializers.UUIDField()
    state = serializers.CharField(help_text="job state name (NOT_STARTED on creation)")
    message = serializers.CharField()
    progress = serializers.DictField(allow_null=True)


class TempUploadRequestSerializer(serializers.Serializer):
    files = serializers.ListField(child=UploadFileField(), help_text="one or several .csv files")


class StoredFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="the uploaded file's name")
    path = serializers.CharField(help_text="stored path under tmp/, to pass as file_path")
    size = serializers.IntegerField(help_text="bytes")


class TempUploadResponseSerializer(serializers.Serializer):
    files = StoredFileSerializer(many=True)


class UnitSyncRequestSerializer(serializers.Serializer):
    target_year = serializers.IntegerField(min_value=YEAR_MIN, max_value=YEAR_MAX)


class UnitSyncResponseSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    pipeline_id = serializers.UUIDField()
    state = serializers.CharField(help_text="job state name")
    message = serializers.CharField()


class ObjectivesUploadRequestSerializer(serializers.Serializer):
    """The file and its kind: ``category`` (footprint|population|scenarios) or ``reduction_objective_type_id`` (0–2)."""

    file = UploadFileField()
    category = serializers.CharField(required=False, help_text="footprint, population or scenarios")
    reduction_objective_type_id = serializers.IntegerField(
        required=False, help_text="0 (footprint), 1 (population) or 2 (scenarios)"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        category, kind = attrs.get("category"), attrs.get("reduction_objective_type_id")
        if kind is not None:
            if kind not in CATEGORY_BY_KIND:
                raise serializers.ValidationError(
                    {"reduction_objective_type_id": ["must be 0 (footprint), 1 (population) or 2 (scenarios)"]}
                )
            if category and category != CATEGORY_BY_KIND[kind]:
                raise serializers.ValidationError({"category": [f"contradicts reduction_objective_type_id={kind}"]})
            attrs["category"] = CATEGORY_BY_KIND[kind]
        elif not category:
            raise serializers.ValidationError({"category": ["This field is required."]})
        elif category not in CATEGORY_NAMES:
            raise serializers.ValidationError({"category": [f"must be one of {', '.join(CATEGORY_NAMES)}"]})
        return attrs


class ObjectivesUploadResponseSerializer(serializers.Serializer):
    year = serializers.IntegerField()
    category = serializers.CharField()
    reduction_objective_type_id = serializers.IntegerField()
    rows_processed = serializers.IntegerField()
    file_path = serializers.CharField()


# Every error: ``detail`` names the field; ``errors`` keeps every message (validation errors).
# Inline because a declared field cannot be called ``errors`` (Serializer.errors).
IngestionErrorSerializer = inline_serializer(
    "IngestionError", fields={"detail": serializers.CharField(), "errors": serializers.JSONField(required=False)}
)
