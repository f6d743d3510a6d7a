"""The building blocks of the module catalogue: columns, factor shapes, and one declaration
per data-entry type (SPEC §4.2, reference-domain §2–§4).

A declaration says everything the system needs to know about a data-entry type: the columns
of its data CSV (parsed and normalised here, so stored data is the validated value), the
columns of its factor CSV (classification first, then values), and ``compute``, which turns
one entry into emission rows given the factors of its year. Adding a data-entry type means
adding one declaration to a module file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from carbon.choices import DataEntryTypeId, ModuleTypeId

if TYPE_CHECKING:
    from carbon.compute import ComputeContext, FactorIndex, FactorRecord

ColumnKind = Literal["str", "float", "int", "choice", "date"]


class ColumnError(ValueError):
    """A value that does not fit its column; the message names the problem, not the row."""


# No text column stores U+0000: PostgreSQL refuses it in text and JSON (a COPY of it fails), and
# no real name or note holds one; a number, choice or date holding it is refused as not one.
_NUL_REASON = "must not contain a NUL character (U+0000)"


def normalise(value: Any) -> str:
    """The one normalisation used for matching, at upload and at recalculation alike:
    trimmed, inner whitespace collapsed, lower-cased (reference-domain §11.4)."""
    return " ".join(str(value).split()).lower()


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind = "str"
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # For kind="choice": the allowed normalised values, and spellings that map onto them.
    choices: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    default: Any = None
    # Keep the original case of a string (names, codes); matching normalises anyway.
    keep_case: bool = True

    def parse(self, raw: Any) -> Any:
        """RAW (text from a CSV, or a JSON value) → the stored value; None when empty.

        Raises ColumnError with a reason an operator can act on.
        """
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            if self.default is not None:
                return self.default
            if self.required:
                raise ColumnError("is required")
            return None
        if self.kind == "str":
            text = " ".join(str(raw).split())
            if "\x00" in text:
                raise ColumnError(_NUL_REASON)
            return text if self.keep_case else text.lower()
        if self.kind == "choice":
            key = normalise(raw)
            key = self.aliases.get(key, key)
            if key not in self.choices:
                raise ColumnError(f"must be one of {', '.join(self.choices)} (got {str(raw).strip()!r})")
            return key
        if self.kind == "date":
            return _parse_date(str(raw).strip())
        number = _parse_number(raw, integer=self.kind == "int")
        if self.minimum is not None and number < self.minimum:
            raise ColumnError(f"must be ≥ {_fmt(self.minimum)} (got {_fmt(number)})")
        if self.maximum is not None and number > self.maximum:
            raise ColumnError(f"must be ≤ {_fmt(self.maximum)} (got {_fmt(number)})")
        return number

    def compile(self) -> Callable[[str], Any]:
        """``parse`` specialised for text (a CSV value), with every branch settled once.

        The upload's hot path: for every string it returns what ``parse`` returns, or raises
        the same ColumnError (``tests/carbon/test_compiled_rows.py`` holds the two together).
        """
        default, required, keep_case = self.default, self.required, self.keep_case
        minimum, maximum, integer = self.minimum, self.maximum, self.kind == "int"

        def empty() -> Any:
            if default is not None:
                return default
            if required:
                raise ColumnError("is required")
            return None

        if self.kind == "str":

            def parse_str(raw: str) -> Any:
                text = " ".join(raw.split())
                if not text:
                    return empty()
                if "\x00" in text:
                    raise ColumnError(_NUL_REASON)
                return text if keep_case else text.lower()

            return parse_str
        if self.kind == "choice":
            allowed, aliases = frozenset(self.choices), dict(self.aliases)
            listed = ", ".join(self.choices)

            def parse_choice(raw: str) -> Any:
                key = " ".join(raw.split()).lower()
                if not key:
                    return empty()
                key = aliases.get(key, key)
                if key not in allowed:
                    raise ColumnError(f"must be one of {listed} (got {raw.strip()!r})")
                return key

            return parse_choice
        if self.kind == "date":

            def parse_date(raw: str) -> Any:
                text = raw.strip()
                return _parse_date(text) if text else empty()

            return parse_date

        def parse_number(raw: str) -> Any:
            text = raw.strip()
            if not text:
                return empty()
            try:
                value = float(text)
            except ValueError:
                hint = " (use a dot as the decimal separator)" if "," in text else ""
                raise ColumnError(f"must be a number{hint} (got {text!r})") from None
            if not math.isfinite(value):
                raise ColumnError("must be a finite number")
            number: float | int = value
            if integer:
                if not value.is_integer():
                    raise ColumnError(f"must be a whole number (got {_fmt(value)})")
                number = int(value)
            if minimum is not None and number < minimum:
                raise ColumnError(f"must be ≥ {_fmt(minimum)} (got {_fmt(number)})")
            if maximum is not None and number > maximum:
                raise ColumnError(f"must be ≤ {_fmt(maximum)} (got {_fmt(number)})")
            return number

        return parse_number


def _fmt(number: float) -> str:
    return f"{number:g}"


def _parse_number(raw: Any, *, integer: bool) -> float | int:
    if isinstance(raw, bool):
        raise ColumnError("must be a number")
    if isinstance(raw, int | float):
        number = float(raw)
    else:
        text = str(raw).strip()
        try:
            number = float(text)
        except ValueError:
            hint = " (use a dot as the decimal separator)" if "," in text else ""
            raise ColumnError(f"must be a number{hint} (got {text!r})") from None
    if math.isnan(number) or math.isinf(number):
        raise ColumnError("must be a finite number")
    if integer:
        if not number.is_integer():
            raise ColumnError(f"must be a whole number (got {_fmt(number)})")
        return int(number)
    return number


_DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ].*)?$")
_DATE_DMY = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def _parse_date(text: str) -> str:
    """YYYY-MM-DD, YYYY/MM/DD, an ISO datetime, or DD.MM.YYYY → YYYY-MM-DD."""
    ymd = _DATE.match(text)
    dmy = _DATE_DMY.match(text)
    try:
        if ymd:
            return date(int(ymd[1]), int(ymd[2]), int(ymd[3])).isoformat()
        if dmy:
            return date(int(dmy[3]), int(dmy[2]), int(dmy[1])).isoformat()
    except ValueError:
        pass
    raise ColumnError(f"must be a date like 2025-03-10 (got {text!r})")


@dataclass(frozen=True)
class FactorShape:
    """The factor CSV of a data-entry type (reference-domain §4.3)."""

    classification: tuple[Column, ...]
    values: tuple[Column, ...]
    # Module-level files carry a routing column naming the det of each row.
    routing: Column | None = None
    routes: Mapping[str, DataEntryTypeId] = field(default_factory=dict)
    # The emission type a factor row is stored under (reference-domain §4.2).
    emission_type: Callable[[Mapping[str, Any]], int | None] = lambda classification: None


@dataclass(frozen=True)
class EmissionRow:
    """One computed emission of one entry (before rollup)."""

    emission_type_id: int
    kg_co2eq: float
    factor_id: int | None = None
    # Physical quantity (km for travel and commuting, kg for food and waste), else None.
    additional_value: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def fixed_type(emission_type: int) -> Callable[[Mapping[str, Any]], int | None]:
    """A resolver that always answers EMISSION_TYPE: for a factor shape or an override type."""
    return lambda row: emission_type


class EntryError(Exception):
    """A per-entry problem at compute time (ambiguous factor…): recorded, the job goes on."""


Compute = Callable[[Mapping[str, Any], "ComputeContext"], list[EmissionRow]]


@dataclass(frozen=True)
class DataEntryTypeSpec:
    det: DataEntryTypeId
    module: ModuleTypeId
    columns: tuple[Column, ...]
    compute: Compute
    factor: FactorShape | None = None
    # Cross-column checks on a parsed row: [(column, reason)].
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = lambda data: []
    # Per-entry sum row appended when an entry yields more than one emission (60100, 40000).
    rollup_emission_type: int | None = None
    # The emission type a kg_co2eq override is recorded under (None: the first computed row's).
    override_type: Callable[[Mapping[str, Any]], int | None] = lambda data: None
    # An upload is refused when the year has no factor for this type (fail fast, §3.3).
    requires_factors: bool = False
    # False for types entered only in the UI (student, embodied energy).
    csv_upload: bool = True
    # For types that share a module-level data file (equipment, common purchases): the factor
    # a row would match. A row of such a file belongs to the one type whose factors match it.
    factor_match: Callable[[Mapping[str, Any], FactorIndex], FactorRecord | None] | None = None

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required and c.default is None]

    def row_parser(self, header: Sequence[str]) -> RowParser:
        """``parse_row`` compiled for one file's HEADER: each column read by its position and
        parsed by its compiled parser (``Column.compile``), columns the header lacks settled once.

        The returned function takes a row's values (at least ``len(header)`` of them: pad a
        short row with "") and returns what ``parse_row(dict(zip(header, values)))`` returns.
        """
        position = {name: index for index, name in enumerate(header)}
        steps: list[tuple[str, int, Callable[[str], Any]]] = []
        for column in self.columns:
            if column.name in position:
                steps.append((column.name, position[column.name], column.compile()))
                continue
            try:
                absent = column.parse(None)
            except ColumnError as exc:
                steps.append((column.name, 0, _raiser(str(exc))))
                continue
            if absent is not None:
                steps.append((column.name, 0, _constant(absent)))
        check = self.check

        def parse(values: Sequence[str]) -> tuple[dict[str, Any], list[tuple[str | None, str]]]:
            data: dict[str, Any] = {}
            errors: list[tuple[str | None, str]] = []
            for name, index, parse_value in steps:
                try:
                    value = parse_value(values[index])
                except ColumnError as exc:
                    errors.append((name, str(exc)))
                    continue
                if value is not None:
                    data[name] = value
            if not errors:
                errors.extend(check(data))
            return data, errors

        return parse

    def parse_row(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Parse every column of RAW; returns (data, errors). Empty optional values are dropped."""
        data: dict[str, Any] = {}
        errors: list[tuple[str, str]] = []
        for column in self.columns:
            try:
                value = column.parse(raw.get(column.name))
            except ColumnError as exc:
                errors.append((column.name, str(exc)))
                continue
            if value is not None:
                data[column.name] = value
        if not errors:
            errors.extend(self.check(data))
        return data, errors


# A compiled ``parse_row``: a row's values → (data, [(column, reason)]); the caller may add
# row-level problems (column None) to the list it gets.
RowParser = Callable[[Sequence[str]], tuple[dict[str, Any], list[tuple[str | None, str]]]]


def _constant(value: Any) -> Callable[[str], Any]:
    return lambda raw: value


def _raiser(reason: str) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        raise ColumnError(reason)

    return parse
