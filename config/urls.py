from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.api import api_not_found

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Three apps share /api/v1/ (and its sync/ prefix): the engine, ingestion and the domain.
    path("api/v1/", include("pipelines.api.urls")),
    path("api/v1/", include("ingestion.api.urls")),
    path("api/v1/", include("carbon.api.urls")),
    # Last: an /api/ path no route matched (a malformed id, say) answers JSON like the rest.
    re_path(r"^api/(?P<unmatched>[\s\S]*)$", api_not_found),
]
