"""The upload's fast paths agree with the definitions they speed up.

- ``Column.compile`` parses every string exactly as ``Column.parse`` does (value and type, or
  the same ColumnError message);
- ``DataEntryTypeSpec.row_parser`` returns what ``parse_row`` returns for the same row, for
  every declaration, whatever the header holds or lacks;
- ``FactorIndex.where`` / ``by_kind`` (dict lookups, memoised) find what a linear scan finds;
- ``factor_match`` reads only the row's factor classification columns (the ingest memoises
  routing per tuple of those values).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from carbon.catalogue import CATALOGUE
from carbon.catalogue.base import Column, ColumnError, DataEntryTypeSpec
from carbon.compute import FactorIndex, FactorRecord, normalise
from tests.carbon.fakes import factor

# Good and bad text of every kind: blanks, spacing, case, numbers in many spellings (and
# non-numbers), bounds, dates, and the catalogue's own choice values and aliases.
COMMON = [
    "", " ", "\t", "  \n ", "abc", "Foo  Bar", "  Foo\tBar  ", "MONITORS", "monitors", "é à", "x" * 300,
    "0", "1", "-1", "1.5", " 42 ", "1,5", "1.000,5", "1e3", "1E-3", "1_000", "١٢", "nan", "NaN", "inf",
    "-inf", "1e400", "168", "169", "167.5", "0.5", "1.0", "2", "100", "101", "-0", "+3", ".5", "5.",
    "2025-03-10", "2025/3/1", "2025-02-30", "10.03.2025", "31.02.2025", "2025-03-10T12:00:00", "2025-3-10 x",
    "03/10/2025", "20250310", "\x00", "A\x00da", " \x00 ", "1\x00",
]  # fmt: skip


def _columns(spec: DataEntryTypeSpec) -> Iterator[Column]:
    yield from spec.columns
    if spec.factor is not None:
        yield from spec.factor.classification
        yield from spec.factor.values
        if spec.factor.routing is not None:
            yield spec.factor.routing


def _corpus(column: Column) -> list[str]:
    values = list(COMMON)
    for choice in column.choices:
        values += [choice, choice.upper(), f"  {choice} ", choice.replace("_", " ")]
    for alias in column.aliases:
        values += [alias, alias.upper(), f" {alias}  "]
    return values


def _outcome(parse: Any, raw: Any) -> tuple[str, Any]:
    try:
        value = parse(raw)
    except ColumnError as exc:
        return "error", str(exc)
    return "value", (type(value), value)


ALL_COLUMNS = {id(c): c for spec in CATALOGUE.values() for c in _columns(spec)}


@pytest.mark.parametrize("column", list(ALL_COLUMNS.values()), ids=lambda c: f"{c.name}:{c.kind}")
def test_a_compiled_column_parses_every_text_as_parse_does(column: Column) -> None:
    compiled = column.compile()
    for raw in _corpus(column):
        assert _outcome(compiled, raw) == _outcome(column.parse, raw), raw


def _rows(spec: DataEntryTypeSpec, rng: random.Random) -> Iterator[tuple[list[str], list[str]]]:
    """(header, values): headers in random order with extra columns and some declared ones left
    out; values drawn from each column's corpus (a valid-looking one most of the time)."""
    names = [c.name for c in spec.columns]
    corpora = {c.name: _corpus(c) for c in spec.columns}
    for _ in range(400):
        header = [n for n in names if rng.random() > 0.15] + ["extra", "kg_co2eq"]
        rng.shuffle(header)
        values = [
            rng.choice(corpora[name]) if name in corpora else rng.choice(["", "x"])
            for name in header
        ]  # fmt: skip
        yield header, values


@pytest.mark.parametrize("spec", list(CATALOGUE.values()), ids=lambda s: str(int(s.det)))
def test_a_compiled_row_parser_returns_what_parse_row_returns(spec: DataEntryTypeSpec) -> None:
    rng = random.Random(int(spec.det))
    compiled_for: dict[tuple[str, ...], Any] = {}
    for header, values in _rows(spec, rng):
        parse = compiled_for.setdefault(tuple(header), spec.row_parser(header))
        data, errors = parse(values)
        expected_data, expected_errors = spec.parse_row(dict(zip(header, values, strict=True)))
        assert errors == expected_errors, (header, values)
        assert list(data.items()) == list(expected_data.items()), (header, values)  # same values, same order
        assert [type(v) for v in data.values()] == [type(v) for v in expected_data.values()]


def test_valid_rows_parse_alike_too() -> None:
    # The random corpus is mostly invalid: make sure a fully valid row of each type agrees as well.
    spec = CATALOGUE[next(d for d in CATALOGUE if int(d) == 11)]
    header = ["unit_institutional_id", "equipment_id", "name", "equipment_class", "sub_class",
              "active_usage_hours_per_week", "standby_usage_hours_per_week", "note"]  # fmt: skip
    values = ["7918", " B1 ", "EIZO  monitor", " Monitors", "", " 40", "128 ", ""]
    data, errors = spec.row_parser(header)(values)
    assert (data, errors) == spec.parse_row(dict(zip(header, values, strict=True)))
    assert errors == []
    assert data == {"equipment_id": "B1", "name": "EIZO monitor", "equipment_class": "Monitors",
                    "active_usage_hours_per_week": 40, "standby_usage_hours_per_week": 128}  # fmt: skip


# --- Factor matching ---------------------------------------------------------------------------


def _linear_where(factors: list[FactorRecord], **criteria: Any) -> list[FactorRecord]:
    """The definition: equality with every normalised criterion; a blank one wants the key absent."""
    wanted = {k: (normalise(v) if v is not None and str(v).strip() != "" else None) for k, v in criteria.items()}
    return [
        f for f in sorted(factors, key=lambda f: f.id) if all(f.classification.get(k) == v for k, v in wanted.items())
    ]


def _linear_by_kind(factors: list[FactorRecord], kind_key: str, kind: Any, sub_key: str, sub: Any) -> Any:
    if kind is None or str(kind).strip() == "":
        return None
    if sub is not None and str(sub).strip() != "":
        exact = _linear_where(factors, **{kind_key: kind, sub_key: sub})
        if exact:
            return exact[-1]
    fallback = _linear_where(factors, **{kind_key: kind, sub_key: None})
    return fallback[-1] if fallback else None


def test_factor_matching_finds_what_a_linear_scan_finds() -> None:
    rng = random.Random(7)
    kinds = ["Monitors", "monitors ", "Laptops", "Printers", " PRINTERS", "Cent rifuges", "", None]
    subs = ["4K", "4k", "HD", "", " ", None]
    factors = []
    for pk in rng.sample(range(1, 500), 60):
        classification = {"equipment_class": rng.choice(kinds[:6])}
        if rng.random() < 0.5:
            classification["sub_class"] = rng.choice(subs[:3])
        if rng.random() < 0.2:
            classification["other"] = "x"
        factors.append(factor(pk, 80200, classification, active_power_w=1))
    index = FactorIndex(factors)
    for _ in range(3):  # again: answers now come from the memo
        for kind in [*kinds, 3, 3.0]:
            for sub in [*subs, 4]:
                assert index.where(equipment_class=kind, sub_class=sub) == _linear_where(
                    factors, equipment_class=kind, sub_class=sub
                )
                assert index.where(equipment_class=kind) == _linear_where(factors, equipment_class=kind)
                assert index.by_kind("equipment_class", kind, "sub_class", sub) == _linear_by_kind(
                    factors, "equipment_class", kind, "sub_class", sub
                )
    assert index.where(equipment_class="monitors") is not index.where(equipment_class="monitors")  # callers own it


class _Recording(Mapping[str, Any]):
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("factor_match must not iterate the row")

    def __len__(self) -> int:
        return len(self.data)


@pytest.mark.parametrize(
    "spec", [s for s in CATALOGUE.values() if s.factor_match is not None], ids=lambda s: str(int(s.det))
)
def test_factor_match_reads_only_the_factor_classification_columns(spec: DataEntryTypeSpec) -> None:
    assert spec.factor is not None
    assert spec.factor_match is not None
    allowed = {c.name for c in spec.factor.classification}
    data = {c.name: "x" for c in spec.columns}
    rows = [_Recording(dict(data)), _Recording({k: v for k, v in data.items() if k not in allowed})]
    factors = FactorIndex([factor(1, 1, {c.name: "x" for c in spec.factor.classification})])
    for row in rows:
        spec.factor_match(row, factors)
        assert row.read <= allowed
