from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Three apps share /api/v1/ (and its sync/ prefix): the engine, ingestion and the domain.
    path("api/v1/", include("pipelines.api.urls")),
    path("api/v1/", include("ingestion.api.urls")),
    path("api/v1/", include("carbon.api.urls")),
]
