"""Reading CSV uploads: streaming, strict about what makes a file unreadable, precise about
what makes a row wrong.

File-level problems (encoding, delimiter, empty, header) raise ``CsvError`` with a message an
operator can act on. Row numbers are spreadsheet rows: the header is row 1, the first data
row is row 2, and a row spanning several lines (quoted newlines) keeps its first line's number.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

MAX_FIELD_BYTES = 1024 * 1024
csv.field_size_limit(MAX_FIELD_BYTES)


class CsvError(ValueError):
    """The file cannot be read as the expected CSV (the job fails, nothing is written)."""


@dataclass
class RowErrors:
    """Row errors of one file: the first LIMIT kept, the count always exact."""

    limit: int
    items: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    rows: set[int] = field(default_factory=set)

    def add(self, row: int, column: str | None, reason: str) -> None:
        self.count += 1
        self.rows.add(row)
        if len(self.items) < self.limit:
            self.items.append({"row": row, "column": column, "reason": reason})


@dataclass
class CsvFile:
    path: Path
    columns: list[str]
    _reader: Iterator[list[str]]
    _lines: _LineCounter
    _stream: BinaryIO

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(row number, {column: value}) for every non-blank row. A row with more values than
        columns yields its surplus under the key ``""`` so the caller can report it."""
        width = len(self.columns)
        try:
            start = self._lines.line
            for values in self._reader:
                row_number = start + 1
                start = self._lines.line
                if not any(v.strip() for v in values):
                    continue
                record = dict(zip(self.columns, values, strict=False))
                if len(values) > width:
                    record[""] = ",".join(values[width:])
                yield row_number, record
        except _NotUtf8 as exc:
            raise exc.as_csv_error() from None
        except csv.Error:
            raise CsvError(
                f"Row {self._lines.line}: a field is too long (a field may hold at most {MAX_FIELD_BYTES // 1024} KB)"
            ) from None


class _NotUtf8(Exception):
    def __init__(self, line: int, byte: int) -> None:
        super().__init__(line, byte)
        self.line = line
        self.byte = byte

    def as_csv_error(self) -> CsvError:
        return CsvError(
            f"Row {self.line}: the file is not UTF-8 (byte 0x{self.byte:02x}); save it as UTF-8 (with or without BOM)"
        )


class _LineCounter:
    """Feeds the csv module one decoded physical line at a time, counting lines, so that an
    encoding error is reported on the line where it is (a buffered decoder would blame the
    first line of its buffer)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.line = 0

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        data = self.raw.readline()
        if not data:
            raise StopIteration
        self.line += 1
        if self.line == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _NotUtf8(self.line, data[exc.start]) from None


def csv_open(path: Path, *, required: Iterable[str]) -> CsvFile:
    """Open PATH as a comma-separated UTF-8 file (BOM accepted) and check its header.

    1. Empty file, or one that is not UTF-8 → CsvError.
    2. A header that is one ';'-separated column → CsvError asking for commas.
    3. Duplicate column names, or missing REQUIRED columns (named) → CsvError.
    Columns are trimmed and lower-cased; extra columns are allowed (ignored by callers).
    """
    raw = path.open("rb")
    head = raw.read(4)
    raw.seek(0)
    if not head:
        raw.close()
        raise CsvError("The file is empty")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raw.close()
        raise CsvError("The file is UTF-16; save it as UTF-8 (with or without BOM)")
    lines = _LineCounter(raw)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        columns = _checked_header(header, required)
    except _NotUtf8 as exc:
        raw.close()
        raise exc.as_csv_error() from None
    except CsvError:
        raw.close()
        raise
    return CsvFile(path=path, columns=columns, _reader=reader, _lines=lines, _stream=raw)


def _checked_header(header: list[str] | None, required: Iterable[str]) -> list[str]:
    if header is None or not any(h.strip() for h in header):
        raise CsvError("The file is empty")
    columns = [h.strip().lower() for h in header]
    if len(columns) == 1 and ";" in columns[0]:
        raise CsvError("The file uses ';' as its delimiter; save it with ',' between columns")
    seen: set[str] = set()
    for column in columns:
        if column in seen and column:
            raise CsvError(f"Duplicate column: {column}")
        seen.add(column)
    missing = [c for c in required if c not in seen]
    if missing:
        raise CsvError(f"Missing required columns: {', '.join(missing)}")
    return columns
