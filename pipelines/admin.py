"""Read-only admin for the engine's tables.

Jobs and pipelines change only through the engine's services (claim, finish, abort, retry)
so that every change is a compare-and-set and is pushed live; the admin shows them. The
operations console is the place to act on them.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from config.admin_utils import ReadOnlyModelAdmin
from pipelines.models import IngestionJob, Pipeline, Worker


class IngestionJobInline(admin.TabularInline):
    model = IngestionJob
    fk_name = "pipeline"
    extra = 0
    fields = ("id", "parent", "job_type", "state", "result", "status_message", "attempts", "started_at", "finished_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Pipeline)
class PipelineAdmin(ReadOnlyModelAdmin):
    list_display = ["id", "kind", "status", "has_errors", "module_type_id", "year", "unit_code", "created_at"]
    list_filter = ["status", "kind", "has_errors", "year"]
    search_fields = ["id", "last_error", "unit_code"]
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    inlines = [IngestionJobInline]


@admin.register(IngestionJob)
class IngestionJobAdmin(ReadOnlyModelAdmin):
    list_display = [
        "id",
        "pipeline_id",
        "job_type",
        "state",
        "result",
        "module_type_id",
        "year",
        "attempts",
        "created_at",
    ]
    list_filter = ["state", "result", "job_type"]
    search_fields = ["status_message"]
    ordering = ["-id"]
    show_full_result_count = False


@admin.register(Worker)
class WorkerAdmin(ReadOnlyModelAdmin):
    list_display = ["id", "hostname", "pid", "git_sha", "version", "started_at", "last_heartbeat_at", "current_job_id"]
    ordering = ["id"]
