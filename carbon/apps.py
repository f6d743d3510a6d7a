from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig


class CarbonConfig(AppConfig):
    name = "carbon"
    verbose_name = "Carbon inventory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers emission_recalc, module_emission_recalc and aggregation with the engine.
        import_module("carbon.handlers")
