"""Job handlers of the ingestion app, registered with the engine by ``IngestionConfig.ready()``.

Importing a handler module registers its handlers (``pipelines.registry.register``).
"""

from __future__ import annotations

from ingestion.handlers import data, factors, reference, travel, units

__all__ = ["data", "factors", "reference", "travel", "units"]
