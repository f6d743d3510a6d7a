"""Admin registrations for the domain tables.

The big tables (entries, emissions, factors) use raw-id widgets, no full result count and
select_related so that a changelist stays a couple of queries at any size.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Model
from django.http import HttpRequest

from carbon import models
from config.admin_utils import ReadOnlyModelAdmin


class ReferenceAdmin(ReadOnlyModelAdmin):
    """Reference enumerations come from migrations: visible, not editable."""


@admin.register(models.ModuleType)
class ModuleTypeAdmin(ReferenceAdmin):
    list_display = ["id", "code", "label"]


@admin.register(models.DataEntryType)
class DataEntryTypeAdmin(ReferenceAdmin):
    list_display = ["id", "code", "label", "module_type"]
    list_select_related = ["module_type"]
    list_filter = ["module_type"]


@admin.register(models.EmissionType)
class EmissionTypeAdmin(ReferenceAdmin):
    list_display = ["id", "code", "parent", "scope", "category", "is_rollup"]
    list_select_related = ["parent"]
    list_filter = ["scope", "category", "is_rollup"]
    search_fields = ["code"]


class RoleAssignmentInline(admin.TabularInline):
    model = models.RoleAssignment
    fk_name = "user"
    extra = 0
    raw_id_fields = ["unit"]


@admin.register(models.User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Directory", {"fields": ("institutional_id", "display_name")}),
    )
    list_display = ["username", "email", "display_name", "institutional_id", "is_staff", "is_superuser"]
    search_fields = ["username", "email", "display_name", "institutional_id"]
    inlines = [RoleAssignmentInline]


@admin.register(models.RoleAssignment)
class RoleAssignmentAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "unit", "created_at"]
    list_select_related = ["user", "unit"]
    list_filter = ["role"]
    raw_id_fields = ["user", "unit"]
    search_fields = ["user__username", "user__email", "unit__name", "unit__institutional_id"]


@admin.register(models.Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ["institutional_code", "institutional_id", "name", "level", "is_active", "principal"]
    list_select_related = ["principal"]
    list_filter = ["level", "is_active"]
    search_fields = ["institutional_code", "institutional_id", "name", "label_en", "label_fr"]
    raw_id_fields = ["parent", "principal"]
    show_full_result_count = False


@admin.register(models.YearConfiguration)
class YearConfigurationAdmin(admin.ModelAdmin):
    list_display = ["year", "is_started", "configuration_completed", "unit_source", "updated_at"]
    readonly_fields = ["configuration_completed", "created_at", "updated_at"]


@admin.register(models.CarbonProject)
class CarbonProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "unit", "report_type", "name", "start_year", "end_year"]
    list_select_related = ["unit"]
    list_filter = ["report_type"]
    raw_id_fields = ["unit"]
    search_fields = ["unit__name", "unit__institutional_id", "name"]
    show_full_result_count = False


class CarbonReportModuleInline(admin.TabularInline):
    model = models.CarbonReportModule
    extra = 0
    fields = ["module_type", "status", "last_updated"]
    readonly_fields = ["module_type", "last_updated"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(models.CarbonReport)
class CarbonReportAdmin(admin.ModelAdmin):
    list_display = ["id", "unit", "year", "overall_status", "completion_progress", "last_updated"]
    list_select_related = ["unit"]
    list_filter = ["year", "overall_status"]
    raw_id_fields = ["unit", "project"]
    search_fields = ["unit__name", "unit__institutional_id"]
    inlines = [CarbonReportModuleInline]
    show_full_result_count = False


@admin.register(models.CarbonReportModule)
class CarbonReportModuleAdmin(admin.ModelAdmin):
    list_display = ["id", "report", "module_type", "status", "last_updated"]
    list_select_related = ["report__unit", "module_type"]
    list_filter = ["module_type", "status"]
    raw_id_fields = ["report"]
    show_full_result_count = False


@admin.register(models.DataEntry)
class DataEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "data_entry_type", "year", "unit", "source", "status", "updated_at"]
    list_select_related = ["data_entry_type", "unit"]
    list_filter = ["year", "module_type", "data_entry_type", "source"]
    raw_id_fields = ["carbon_report_module", "unit", "created_by"]
    show_full_result_count = False


@admin.register(models.DataEntryEmission)
class DataEntryEmissionAdmin(admin.ModelAdmin):
    list_display = ["id", "data_entry_id", "emission_type", "kg_co2eq", "scope", "is_rollup", "computed_at"]
    list_select_related = ["emission_type"]
    list_filter = ["scope", "is_rollup"]
    raw_id_fields = ["data_entry", "carbon_report_module", "primary_factor"]
    show_full_result_count = False


@admin.register(models.Factor)
class FactorAdmin(admin.ModelAdmin):
    list_display = ["id", "data_entry_type", "year", "emission_type", "classification_key", "updated_at"]
    list_select_related = ["data_entry_type", "emission_type"]
    list_filter = ["year", "data_entry_type"]
    search_fields = ["classification_key"]
    raw_id_fields = ["emission_type"]
    show_full_result_count = False


@admin.register(models.Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["natural_key", "transport_mode", "name", "iata_code", "country_code"]
    list_filter = ["transport_mode", "continent"]
    search_fields = ["name", "iata_code", "natural_key", "municipality"]
    show_full_result_count = False


@admin.register(models.BuildingRoom)
class BuildingRoomAdmin(admin.ModelAdmin):
    list_display = ["building_name", "room_name", "room_type", "room_surface_square_meter", "building_location"]
    list_filter = ["room_type"]
    search_fields = ["building_name", "room_name"]
    show_full_result_count = False


@admin.register(models.CurrencyRate)
class CurrencyRateAdmin(admin.ModelAdmin):
    list_display = ["year", "currency", "rate_to_eur", "source", "updated_at"]
    list_filter = ["year", "currency"]
