"""Declarations of this module's data-entry types (to be written)."""

from __future__ import annotations

from carbon.catalogue.base import DataEntryTypeSpec

SPECS: list[DataEntryTypeSpec] = []
