from __future__ import annotations

from django.urls import path

from pipelines.api.views import HealthView

urlpatterns = [
    path("health", HealthView.as_view(), name="health"),
]
