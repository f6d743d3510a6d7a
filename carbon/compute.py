"""Turning entries into emissions: factor matching and the generic compute loop.

Pure with respect to the database: factors and reference data arrive through a
``ComputeContext`` built once per (data-entry type, year) slice, so the same code serves a
100k-entry recalculation and a single entry in a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from carbon.catalogue.base import DataEntryTypeSpec, EmissionRow, normalise

OVERRIDE_KEY = "__kg_co2eq_override__"


@dataclass(frozen=True)
class FactorRecord:
    id: int
    emission_type_id: int
    # Normalised classification values (see ``normalise``); absent or empty keys are dropped.
    classification: Mapping[str, str]
    values: Mapping[str, Any]

    def value(self, key: str, default: float | None = None) -> float | None:
        raw = self.values.get(key)
        if raw is None or raw == "":
            return default
        return float(raw)


def normalised_classification(classification: Mapping[str, Any]) -> dict[str, str]:
    return {k: normalise(v) for k, v in classification.items() if v is not None and str(v).strip() != ""}


def classification_key(classification: Mapping[str, Any]) -> str:
    """The stored identity of a factor's classification: sorted ``key=value`` pairs, normalised."""
    return "|".join(f"{k}={v}" for k, v in sorted(normalised_classification(classification).items()))


# by_kind answers remembered per index (text arguments only); cleared when full.
KIND_MEMO_SIZE = 10_000


class FactorIndex:
    """The factors of one (data-entry type, year), with the matching rules of reference-domain §2.4.

    Matching is a dict lookup: per set of criteria keys, the factors are indexed once by their
    normalised values for those keys (built on first use), and ``by_kind`` remembers its answers
    for text arguments (a file names few distinct kinds), so a 1M-row upload or recalculation
    matches each row in constant time whatever the number of factors.
    """

    def __init__(self, factors: Iterable[FactorRecord]) -> None:
        self.factors = sorted(factors, key=lambda f: f.id)
        self._indexes: dict[tuple[str, ...], dict[tuple[str | None, ...], list[FactorRecord]]] = {}
        self._kinds: dict[tuple[str, str, str | None, str | None], FactorRecord | None] = {}

    def __len__(self) -> int:
        return len(self.factors)

    def where(self, **criteria: Any) -> list[FactorRecord]:
        """Factors whose classification equals every criterion (normalised); a None criterion
        matches a factor that has no value for that key. In id order."""
        return self._match(tuple(criteria), tuple(criteria.values()))

    def _match(self, keys: tuple[str, ...], values: tuple[Any, ...]) -> list[FactorRecord]:
        index = self._indexes.get(keys)
        if index is None:
            index = {}
            for factor in self.factors:
                index.setdefault(tuple(factor.classification.get(k) for k in keys), []).append(factor)
            self._indexes[keys] = index
        # normalise() is "" exactly when the value is blank: blank criteria look for an absent key.
        wanted = tuple(None if v is None else (normalise(v) or None) for v in values)
        return list(index.get(wanted, ()))

    def by_kind(
        self, kind_key: str, kind: Any, subkind_key: str | None = None, subkind: Any = None
    ) -> FactorRecord | None:
        """Strategy A: (kind, subkind) first, then (kind, no subkind). The latest upload wins a tie."""
        if type(kind) is str and (subkind is None or type(subkind) is str):
            memo = (kind_key, kind, subkind_key, subkind)
            if memo in self._kinds:
                return self._kinds[memo]
            if len(self._kinds) >= KIND_MEMO_SIZE:
                self._kinds.clear()
            found = self._kinds[memo] = self._by_kind(kind_key, kind, subkind_key, subkind)
            return found
        return self._by_kind(kind_key, kind, subkind_key, subkind)

    def _by_kind(self, kind_key: str, kind: Any, subkind_key: str | None, subkind: Any) -> FactorRecord | None:
        if kind is None or str(kind).strip() == "":
            return None
        if subkind_key is not None and subkind is not None and str(subkind).strip() != "":
            exact = self._match((kind_key, subkind_key), (kind, subkind))
            if exact:
                return exact[-1]
        fallback = (
            self._match((kind_key, subkind_key), (kind, None)) if subkind_key else self._match((kind_key,), (kind,))
        )
        return fallback[-1] if fallback else None


class Lookups(Protocol):
    """Reference data a formula may need, for the slice's year."""

    def airport(self, iata: str) -> tuple[float, float] | None: ...

    def station(self, natural_key: str) -> tuple[float, float] | None: ...

    def room_surface(self, building: str, room: str) -> float | None: ...

    def rate_to_eur(self, currency: str) -> float | None: ...


@dataclass
class ComputeContext:
    year: int
    factors: FactorIndex
    lookups: Lookups
    # Per-entry notes (unknown airport…) that do not stop the entry; the recalc reports them.
    warnings: list[str] = field(default_factory=list)


def entry_emissions(spec: DataEntryTypeSpec, data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    """All emission rows of one entry, rollup included (reference-domain §2.2, fixed).

    1. Compute the rows of the entry's formula.
    2. A kg_co2eq override replaces them with ONE row: under the type the declaration names
       for overrides, else the first computed row's type; with neither, it cannot be placed
       and the entry yields nothing (noted as a warning).
    3. An entry with more than one row gets its rollup row (kg = the sum), if the type has one.
    """
    rows = spec.compute(data, ctx)
    override = data.get(OVERRIDE_KEY)
    if override is not None:
        emission_type = spec.override_type(data) or (rows[0].emission_type_id if rows else None)
        if emission_type is None:
            ctx.warnings.append("kg_co2eq override ignored: no emission type could be resolved for the entry")
            return []
        rows = [EmissionRow(emission_type_id=emission_type, kg_co2eq=float(override), meta={"override": True})]
    if spec.rollup_emission_type is not None and len(rows) > 1:
        factor_ids = [r.factor_id for r in rows if r.factor_id is not None]
        rows.append(
            EmissionRow(
                emission_type_id=spec.rollup_emission_type,
                kg_co2eq=sum(r.kg_co2eq for r in rows),
                factor_id=min(factor_ids) if factor_ids else None,
                meta={"is_rollup": True},
            )
        )
    return rows
