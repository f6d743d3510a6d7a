"""Input and output shapes of the domain API (SPEC §6.2, reference-pipeline-core §6).

Inputs are validated here (types, ranges, required fields: a 400 names the field); outputs
describe what the selectors already shaped, so that the OpenAPI schema is exact. Nothing here
decides anything: rules live in ``carbon.services`` and ``carbon.selectors``.

Statuses are plain strings in the schema, documented by their help text: a ``status`` enum
would share its generated component name with the engine's own ``status`` fields.
"""

from __future__ import annotations

from rest_framework import serializers

from carbon.choices import ModuleStatus
from carbon.selectors import MAX_PAGE_SIZE, WhyStale
from pipelines.api.serializers import MAX_OFFSET, SMALL_INT_MAX
from pipelines.choices import JobResult, JobState

YEAR_MIN, YEAR_MAX = 2000, 2100
STALE_MINUTES_MAX = 10 * 366 * 24 * 60  # ten years: beyond, the cut-off date itself overflows
MODULE_STATUS_HELP = f"Module status name: {', '.join(ModuleStatus.names)}."
JOB_STATE_HELP = f"Job state name: {', '.join(JobState.values)}."
JOB_RESULT_HELP = f"Job result name (null until FINISHED): {', '.join(JobResult.values)}."


def year_field(*, required: bool = True, help_text: str | None = None) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=YEAR_MIN, max_value=YEAR_MAX, required=required, help_text=help_text)


# --- Inputs ----------------------------------------------------------------------------------------


class YearQuerySerializer(serializers.Serializer):
    year = year_field(help_text="Reporting year (2000–2100).")


class ModuleRecalculationQuerySerializer(YearQuerySerializer):
    only_stale = serializers.BooleanField(
        required=False, default=False, help_text="Only the data-entry types whose factors changed since their last run."
    )


class StaleStatsQuerySerializer(serializers.Serializer):
    older_than_minutes = serializers.IntegerField(
        min_value=1,
        max_value=STALE_MINUTES_MAX,
        default=60,
        help_text="Age (minutes) beyond which a pending or finished aggregation is stale.",
    )


class PageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, default=0)


class UnitQuerySerializer(PageQuerySerializer):
    level = serializers.IntegerField(min_value=1, max_value=10, required=False, help_text="Exact unit level.")
    q = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=255, help_text="Substring of name, code or cf."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # ``parent`` is also the attribute a DRF field keeps its parent serializer in: declared
        # as a class attribute it would shadow it, so it is added here.
        fields = super().get_fields()
        fields["parent"] = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=32, help_text="Parent's directory code or cf."
        )
        return fields


class FactorQuerySerializer(PageQuerySerializer):
    year = year_field(help_text="Factor year.")
    data_entry_type_id = serializers.IntegerField(
        required=False, min_value=1, max_value=SMALL_INT_MAX, help_text="One data-entry type."
    )


class CarbonReportQuerySerializer(PageQuerySerializer):
    year = year_field(required=False, help_text="Reporting year.")
    unit = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=32, help_text="The unit's cf or directory code."
    )


class YearPathSerializer(serializers.Serializer):
    year = year_field()


class YearConfigurationCreateSerializer(serializers.Serializer):
    is_started = serializers.BooleanField(required=False, default=False, help_text="Open the year to end users.")
    config = serializers.DictField(
        required=False, help_text="Deep-merged into the default config; injected read-only fields are ignored."
    )


class YearConfigurationPatchSerializer(serializers.Serializer):
    is_started = serializers.BooleanField(required=False, help_text="Open (or close) the year to end users.")
    config = serializers.DictField(
        required=False, help_text="Deep-merged into the stored config; injected read-only fields are ignored."
    )


# --- Outputs ---------------------------------------------------------------------------------------


class DomainErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong; for a 400, starts with the field it is about.")


class RecalculationStartedSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    pipeline_id = serializers.UUIDField()
    state = serializers.CharField(help_text=JOB_STATE_HELP)
    message = serializers.CharField()


class RecalculationTypeStatusSerializer(serializers.Serializer):
    module_type_id = serializers.IntegerField()
    data_entry_type_id = serializers.IntegerField()
    year = serializers.IntegerField()
    needs_recalculation = serializers.BooleanField()
    last_factor_job_id = serializers.IntegerField(allow_null=True)
    last_factor_job_result = serializers.CharField(allow_null=True, help_text=JOB_RESULT_HELP)
    last_recalculation_job_id = serializers.IntegerField(allow_null=True)
    last_recalculation_job_result = serializers.CharField(allow_null=True, help_text=JOB_RESULT_HELP)


class RecalculationModuleStatusSerializer(serializers.Serializer):
    module_type_id = serializers.IntegerField()
    year = serializers.IntegerField()
    needs_recalculation = serializers.BooleanField()
    data_entry_types = RecalculationTypeStatusSerializer(many=True)


class StaleStatsSerializer(serializers.Serializer):
    module_type_id = serializers.IntegerField()
    year = serializers.IntegerField()
    last_finished_aggregation_at = serializers.DateTimeField(allow_null=True)
    why_stale = serializers.ChoiceField(choices=WhyStale.choices)
    last_aggregation_job_id = serializers.IntegerField(allow_null=True)


class YearConfigurationSerializer(serializers.Serializer):
    year = serializers.IntegerField()
    is_started = serializers.BooleanField()
    configuration_completed = serializers.DateTimeField(allow_null=True)
    unit_source = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    config = serializers.JSONField(
        help_text=(
            "Stored config (reference-domain §6.3) plus read-only fields: per submodule latest_data_job, "
            "latest_api_data_job, latest_factor_job, latest_reference_job ({job_id, pipeline_id, state, result, "
            "finished_at} or null), incomplete, incomplete_reasons (missing_factor, missing_reference); per module "
            "latest_common_data_job, latest_common_factor_job, incomplete."
        )
    )


class YearConfigurationCreatedSerializer(YearConfigurationSerializer):
    pipeline_id = serializers.UUIDField(help_text="The unit_sync pipeline that provisions the year.")


class UnitPrincipalSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    display_name = serializers.CharField()


class UnitSerializer(serializers.Serializer):
    institutional_code = serializers.CharField()
    institutional_id = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    label_fr = serializers.CharField()
    label_en = serializers.CharField()
    level = serializers.IntegerField()
    parent_institutional_code = serializers.CharField(allow_null=True)
    parent_institutional_id = serializers.CharField(allow_null=True)
    path_institutional_code = serializers.CharField()
    path_name = serializers.CharField()
    unit_type_label = serializers.CharField()
    is_active = serializers.BooleanField()
    principal = UnitPrincipalSerializer(allow_null=True)


class UnitPageSerializer(serializers.Serializer):
    items = UnitSerializer(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class FactorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    data_entry_type_id = serializers.IntegerField()
    emission_type_id = serializers.IntegerField()
    year = serializers.IntegerField(allow_null=True)
    classification = serializers.JSONField()
    values = serializers.JSONField()
    is_computed = serializers.BooleanField()
    last_seen_job_id = serializers.IntegerField(allow_null=True)
    updated_at = serializers.DateTimeField()


class FactorPageSerializer(serializers.Serializer):
    items = FactorSerializer(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class StaleFactorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    data_entry_type_id = serializers.IntegerField()
    emission_type_id = serializers.IntegerField()
    classification = serializers.JSONField()
    last_seen_job_id = serializers.IntegerField(allow_null=True)


class ReportUnitSerializer(serializers.Serializer):
    institutional_code = serializers.CharField()
    institutional_id = serializers.CharField(allow_null=True)
    name = serializers.CharField()


class CarbonReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    year = serializers.IntegerField()
    unit = ReportUnitSerializer()
    overall_status = serializers.CharField(help_text=MODULE_STATUS_HELP)
    completion_progress = serializers.CharField(help_text='"<validated>/<modules>", e.g. "3/8".')
    stats = serializers.JSONField(
        allow_null=True,
        help_text=(
            "Report stats (reference-domain §7.2): scope1, scope2, scope3, total, by_emission_type, "
            "by_additional_value, entry_count, it_total_kg, highest_category_module_id, computed_at; "
            "null before the first aggregation."
        ),
    )
    last_updated = serializers.DateTimeField(allow_null=True)


class CarbonReportModuleSerializer(serializers.Serializer):
    module_type_id = serializers.IntegerField()
    module_label = serializers.CharField(allow_null=True, help_text="Module enum name, e.g. equipment.")
    status = serializers.CharField(help_text=MODULE_STATUS_HELP)
    stats = serializers.JSONField(
        allow_null=True,
        help_text=(
            "Module stats (reference-domain §7.1): scope1, scope2, scope3, total, by_emission_type, "
            "by_additional_value, entry_count, computed_at; null before the first aggregation."
        ),
    )
    last_updated = serializers.DateTimeField(allow_null=True)


class CarbonReportDetailSerializer(CarbonReportSerializer):
    modules = CarbonReportModuleSerializer(many=True)


class CarbonReportPageSerializer(serializers.Serializer):
    items = CarbonReportSerializer(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
