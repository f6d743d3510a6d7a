"""Test doubles for formula tests: factors and reference data written by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carbon.compute import ComputeContext, FactorIndex, FactorRecord, normalised_classification


def factor(id: int, emission_type_id: int, classification: Mapping[str, Any], **values: Any) -> FactorRecord:
    return FactorRecord(
        id=id,
        emission_type_id=emission_type_id,
        classification=normalised_classification(classification),
        values=values,
    )


@dataclass
class FakeLookups:
    airports: dict[str, tuple[float, float]] = field(default_factory=dict)
    stations: dict[str, tuple[float, float]] = field(default_factory=dict)
    rooms: dict[tuple[str, str], float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    def airport(self, iata: str) -> tuple[float, float] | None:
        return self.airports.get(iata.upper())

    def station(self, natural_key: str) -> tuple[float, float] | None:
        return self.stations.get(natural_key)

    def room_surface(self, building: str, room: str) -> float | None:
        return self.rooms.get((building, room))

    def rate_to_eur(self, currency: str) -> float | None:
        return 1.0 if currency.lower() == "eur" else self.rates.get(currency.lower())


def context(*factors: FactorRecord, year: int = 2025, lookups: FakeLookups | None = None) -> ComputeContext:
    return ComputeContext(year=year, factors=FactorIndex(factors), lookups=lookups or FakeLookups())
