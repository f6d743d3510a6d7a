"""Input parsing and documented output shapes of the engine's API.

Output is built by ``pipelines.selectors`` as plain dicts (the same snapshot the live events
carry); the output serializers here document that shape in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from pipelines.choices import JobResult, JobState, JobType, PipelineStatus
from pipelines.selectors import PipelineFilters
from pipelines.services import BULK_ACTIONS

MAX_PAGE = 200
# Bounds that keep every integer inside the columns' ranges (a larger one is a 400, not a
# database overflow): ids of modules/types are small integers, offsets stay sane.
SMALL_INT_MAX = 32767
MAX_OFFSET = 1_000_000_000


class PipelineStatusField(serializers.CharField):
    """A PipelineStatus name, case-insensitive."""

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data).strip().upper()
        if text not in PipelineStatus.values:
            raise serializers.ValidationError(
                f"Invalid state {data!r}. Expected one of: {', '.join(PipelineStatus.values)}"
            )
        return text


class PipelineFiltersSerializer(serializers.Serializer[Any]):
    state = PipelineStatusField(required=False, help_text="pipeline status")
    job_type = serializers.ChoiceField(choices=JobType.choices, required=False)
    module_type_id = serializers.IntegerField(required=False, min_value=1, max_value=SMALL_INT_MAX)
    year = serializers.IntegerField(required=False, min_value=2000, max_value=2100)
    has_errors = serializers.BooleanField(required=False, allow_null=True, default=None)
    since = serializers.DateTimeField(required=False, help_text="created at or after")
    until = serializers.DateTimeField(required=False, help_text="created at or before")
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="message search")

    def validate_q(self, value: str) -> str:
        # Pipeline.search_text separates messages with a control character (U+001F): a term
        # holding one could match across two messages, and no message holds one on purpose.
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise serializers.ValidationError("must not contain control characters (tabs, newlines…)")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since > until:
            raise serializers.ValidationError({"until": "must not be before since"})
        return attrs


def pipeline_filters(data: dict[str, Any]) -> PipelineFilters:
    """The selector's filters from validated ``PipelineFiltersSerializer`` data."""
    return PipelineFilters(
        status=data.get("state"),
        job_type=data.get("job_type"),
        module_type_id=data.get("module_type_id"),
        year=data.get("year"),
        has_errors=data.get("has_errors"),
        since=data.get("since"),
        until=data.get("until"),
        q=(data.get("q") or "").strip(),
    )


class PipelineListQuerySerializer(PipelineFiltersSerializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)
    cursor = serializers.CharField(required=False, help_text="next_cursor of the previous page")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if attrs.get("cursor") and attrs.get("offset"):
            raise serializers.ValidationError({"cursor": "use either cursor or offset, not both"})
        return attrs


class BulkSerializer(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=[(a, a) for a in BULK_ACTIONS])
    filters = PipelineFiltersSerializer(required=False, default=dict)


class ActivePipelinesQuerySerializer(serializers.Serializer[Any]):
    year = serializers.IntegerField(min_value=2000, max_value=2100)
    modules = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_modules(self, value: str) -> list[int]:
        try:
            modules = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise serializers.ValidationError("modules must be a comma-separated list of integers") from None
        if any(not 1 <= m <= SMALL_INT_MAX for m in modules):
            raise serializers.ValidationError(f"modules must be between 1 and {SMALL_INT_MAX}")
        return modules


# --- Documented output ----------------------------------------------------------------------------


class ProgressSerializer(serializers.Serializer[Any]):
    phase = serializers.IntegerField()
    phases_total = serializers.IntegerField()
    phase_label = serializers.CharField()
    done = serializers.BooleanField()
    has_error = serializers.BooleanField()
    status = serializers.ChoiceField(choices=PipelineStatus.choices)


class HistoryEntrySerializer(serializers.Serializer[Any]):
    ts = serializers.DateTimeField()
    message = serializers.CharField()
    kind = serializers.CharField()


class JobSerializer(serializers.Serializer[Any]):
    job_id = serializers.IntegerField()
    parent_id = serializers.IntegerField(allow_null=True)
    job_type = serializers.ChoiceField(choices=JobType.choices)
    state = serializers.ChoiceField(choices=JobState.choices)
    result = serializers.ChoiceField(choices=JobResult.choices, allow_null=True)
    status_message = serializers.CharField(allow_blank=True)
    module_type_id = serializers.IntegerField(allow_null=True)
    data_entry_type_id = serializers.IntegerField(allow_null=True)
    data_entry_type_label = serializers.CharField(allow_null=True)
    data_entry_type_title = serializers.CharField(allow_null=True)
    year = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    worker = serializers.CharField(allow_null=True, help_text="lease owner while RUNNING")
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    status_history = HistoryEntrySerializer(many=True)
    meta = serializers.DictField(help_text="phases, progress, stats counters, processed_file_path, first_row_error")


class JobDetailSerializer(JobSerializer):
    pipeline_id = serializers.UUIDField()
    lease_expires_at = serializers.DateTimeField(allow_null=True)


class PipelineSerializer(serializers.Serializer[Any]):
    pipeline_id = serializers.UUIDField()
    job_type = serializers.ChoiceField(choices=JobType.choices, help_text="the root job's type")
    status = serializers.ChoiceField(choices=PipelineStatus.choices)
    has_errors = serializers.BooleanField()
    is_orphan = serializers.BooleanField()
    entity_type = serializers.CharField()
    target_type = serializers.CharField(allow_null=True)
    ingestion_method = serializers.CharField()
    module_type_id = serializers.IntegerField(allow_null=True)
    module_label = serializers.CharField(allow_null=True)
    module_title = serializers.CharField(allow_null=True)
    data_entry_type_id = serializers.IntegerField(allow_null=True)
    data_entry_type_label = serializers.CharField(allow_null=True)
    data_entry_type_title = serializers.CharField(allow_null=True)
    year = serializers.IntegerField(allow_null=True)
    unit_id = serializers.IntegerField(allow_null=True)
    unit_institutional_id = serializers.CharField(allow_null=True)
    author = serializers.CharField(allow_null=True)
    status_message = serializers.CharField(allow_blank=True)
    last_error = serializers.CharField(allow_blank=True)
    job_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    latest_job_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    cancel_requested = serializers.BooleanField()
    progress = ProgressSerializer()
    jobs = JobSerializer(many=True)


class PipelinePageSerializer(serializers.Serializer[Any]):
    items = PipelineSerializer(many=True)
    total = serializers.IntegerField(help_text="pipelines matching every filter")
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="per status, over every filter but state"
    )
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    next_cursor = serializers.CharField(allow_null=True)


class AbortResultSerializer(serializers.Serializer[Any]):
    pipeline_id = serializers.UUIDField()
    aborted_by = serializers.CharField()
    cancelled = serializers.IntegerField(help_text="jobs ended CANCELLED before they started")
    signalled = serializers.IntegerField(help_text="running jobs asked to stop")
    pipeline = PipelineSerializer()


class RetryResultSerializer(serializers.Serializer[Any]):
    pipeline_id = serializers.UUIDField()
    retried_job_ids = serializers.ListField(child=serializers.IntegerField())
    skipped = serializers.DictField(child=serializers.CharField())
    pipeline = PipelineSerializer()


class BulkResultSerializer(serializers.Serializer[Any]):
    action = serializers.CharField()
    matched = serializers.IntegerField()
    applied = serializers.IntegerField()
    skipped = serializers.IntegerField()
    applied_pipeline_ids = serializers.ListField(child=serializers.UUIDField())


class WorkerSerializer(serializers.Serializer[Any]):
    pod_id = serializers.CharField()
    kind = serializers.CharField()
    hostname = serializers.CharField()
    pid = serializers.IntegerField()
    git_sha = serializers.CharField(allow_null=True)
    app_version = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    last_heartbeat_at = serializers.DateTimeField()
    heartbeat_age_seconds = serializers.IntegerField()
    claimed_job_count = serializers.IntegerField()
    current_job_id = serializers.IntegerField(allow_null=True)


class HealthSerializer(serializers.Serializer[Any]):
    healthy = serializers.BooleanField()
    checks = serializers.DictField(child=serializers.BooleanField())
    live_workers = serializers.IntegerField(required=False)
    worker_versions = serializers.ListField(child=serializers.CharField(), required=False)
    mixed_versions = serializers.BooleanField(required=False)
    last_reconciler_sweep = serializers.DateTimeField(allow_null=True, required=False)
    checked_at = serializers.DateTimeField(required=False)
    detail = serializers.CharField(required=False, help_text="why the database is unreachable (503)")
