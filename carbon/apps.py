from __future__ import annotations

from django.apps import AppConfig


class CarbonConfig(AppConfig):
    name = "carbon"
    verbose_name = "Carbon inventory"
    default_auto_field = "django.db.models.BigAutoField"
