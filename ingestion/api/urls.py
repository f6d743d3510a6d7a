"""Ingestion endpoints under /api/v1/ (mounted next to the engine's and the domain's)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from ingestion.api.views import (
    FactorSyncView,
    FileDownloadView,
    ObjectivesUploadView,
    SyncDispatchView,
    TempUploadView,
    UnitSyncView,
)

urlpatterns: list[URLPattern | URLResolver] = [
    # Before files/<path:path>, which would otherwise take "temp-upload" as a path to download.
    path("files/temp-upload", TempUploadView.as_view(), name="files-temp-upload"),
    path("files/<path:path>", FileDownloadView.as_view(), name="files-download"),
    path("sync/dispatch", SyncDispatchView.as_view(), name="sync-dispatch"),
    path("sync/factors/<int:module_type_id>/<int:data_entry_type_id>", FactorSyncView.as_view(), name="sync-factors"),
    path("sync/units", UnitSyncView.as_view(), name="sync-units"),
    path("year-configuration/<int:year>/upload", ObjectivesUploadView.as_view(), name="year-configuration-upload"),
]
