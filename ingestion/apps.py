from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers unit_sync with the engine.
        import_module("ingestion.handlers")
