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
from typing import Any, TextIO

MAX_FIELD_BYTES = 1024 * 1024
READ_BUFFER = 1024 * 1024
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
    _reader: Any  # a csv reader (its ``line_num`` counts the physical lines read so far)
    _stream: TextIO

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(row number, values) for every non-blank row, values as read: a row may hold fewer
        values than there are columns (the missing ones are empty) or more (the surplus is the
        caller's to report). The fast path of ``rows``: no dict per row."""
        reader = self._reader
        try:
            start = reader.line_num
            for values in reader:
                row_number = start + 1
                start = reader.line_num
                # Blank = every value empty or whitespace (a cheap test first: most rows start filled).
                if not (values and values[0].strip()) and "".join(values).strip() == "":
                    continue
                yield row_number, values
        except UnicodeDecodeError:
            raise _utf8_error(self.path) from None
        except csv.Error:
            raise CsvError(
                f"Row {reader.line_num}: a field is too long (a field may hold at most {MAX_FIELD_BYTES // 1024} KB)"
            ) from None

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(row number, {column: value}) for every non-blank row. A row with more values than
        columns yields its surplus under the key ``""`` so the caller can report it."""
        columns = self.columns
        width = len(columns)
        for row_number, values in self.records():
            record = dict(zip(columns, values, strict=False))
            if len(values) > width:
                record[""] = ",".join(values[width:])
            yield row_number, record


def _utf8_error(path: Path) -> CsvError:
    """The error for a file that is not UTF-8, naming the line of its first bad byte.

    The reader decodes in blocks (fast), so a decoding error surfaces at the start of its block;
    the file is read again line by line to name the very line (a newline byte never occurs
    inside a UTF-8 sequence, so line-by-line decoding fails on the same byte)."""
    with path.open("rb") as raw:
        for line, data in enumerate(raw, start=1):
            chunk = data[len(codecs.BOM_UTF8) :] if line == 1 and data.startswith(codecs.BOM_UTF8) else data
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                return CsvError(
                    f"Row {line}: the file is not UTF-8 (byte 0x{chunk[exc.start]:02x}); "
                    "save it as UTF-8 (with or without BOM)"
                )
    return CsvError("The file is not UTF-8; save it as UTF-8 (with or without BOM)")


def csv_open(path: Path, *, required: Iterable[str]) -> CsvFile:
    """Open PATH as a comma-separated UTF-8 file (BOM accepted) and check its header.

    1. Empty file, or one that is not UTF-8 → CsvError.
    2. A header that is one ';'-separated column → CsvError asking for commas.
    3. Duplicate column names, or missing REQUIRED columns (named) → CsvError.
    Columns are trimmed and lower-cased; extra columns are allowed (ignored by callers).
    Lines end at ``\n`` only (a ``\r`` before it belongs to the line, as the csv module expects).
    """
    with path.open("rb") as raw:
        head = raw.read(4)
    if not head:
        raise CsvError("The file is empty")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvError("The file is UTF-16; save it as UTF-8 (with or without BOM)")
    # Block decoding in C (utf-8-sig drops a leading BOM); newline="\n" splits lines exactly
    # where a binary readline would, so row numbers are physical line numbers.
    stream = path.open("r", encoding="utf-8-sig", errors="strict", newline="\n", buffering=READ_BUFFER)
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        columns = _checked_header(header, required)
    except UnicodeDecodeError:
        stream.close()
        raise _utf8_error(path) from None
    except (CsvError, csv.Error):
        stream.close()
        raise
    return CsvFile(path=path, columns=columns, _reader=reader, _stream=stream)


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
