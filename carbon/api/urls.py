"""Routes of the domain API, mounted at /api/v1/ beside the engine's and ingestion's (SPEC §6.2)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from carbon.api import views

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "sync/recalculate-emissions/<int:module_type_id>/<int:data_entry_type_id>",
        views.RecalculateDataEntryTypeView.as_view(),
        name="recalculate-data-entry-type",
    ),
    path(
        "sync/recalculate-emissions/<int:module_type_id>",
        views.RecalculateModuleView.as_view(),
        name="recalculate-module",
    ),
    path("sync/recalculation-status", views.RecalculationStatusView.as_view(), name="recalculation-status"),
    path("sync/health/stale-stats", views.StaleStatsView.as_view(), name="stale-stats"),
    path("year-configuration/", views.YearConfigurationListView.as_view(), name="year-configuration-list"),
    path("year-configuration/<int:year>", views.YearConfigurationView.as_view(), name="year-configuration"),
    path("units", views.UnitListView.as_view(), name="units"),
    path("factors", views.FactorListView.as_view(), name="factors"),
    path("factors/stale", views.StaleFactorListView.as_view(), name="factors-stale"),
    path("carbon-reports", views.CarbonReportListView.as_view(), name="carbon-reports"),
    path("carbon-reports/<int:report_id>", views.CarbonReportView.as_view(), name="carbon-report"),
]
