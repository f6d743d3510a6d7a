"""Reading CSV uploads: streaming, strict about what makes a file unreadable, precise about
what makes a row wrong.

File-level problems (encoding, binary content, delimiter, line endings, empty, header) raise
``CsvError`` with a message an operator can act on. Row numbers are spreadsheet rows: the header
is row 1, the first data row is row 2, and a row spanning several lines (quoted newlines) keeps
its first line's number. Blank lines before the header are skipped but counted, as blank rows
further down are (the header is then row 2 or later).
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
# The first block of a file, looked at (as bytes) for NUL bytes before it is read as text.
SNIFF_BYTES = 64 * 1024
csv.field_size_limit(MAX_FIELD_BYTES)
_SAVE_AS_UTF8 = "save it as UTF-8 (with or without BOM)"


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
        except csv.Error as exc:
            # START is where the failing row began (the reader may be lines further on).
            raise _parse_error(start + 1, exc) from None

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


def _csv_error(reason: str, *, row: int | None = None) -> CsvError:
    """The error for an unreadable file: REASON, prefixed by the spreadsheet ROW it was found on."""
    return CsvError(reason if row is None else f"Row {row}: {reason}")


def _parse_error(row: int, exc: csv.Error) -> CsvError:
    """The error for what the csv module refused in the row starting at line ROW.

    The module raises one exception class for all its refusals, told apart only by message; with
    the default dialect (not strict) these two are the ones a file can cause, any other is passed on."""
    message = str(exc)
    if "field limit" in message:
        return _csv_error(f"a field is too long (a field may hold at most {MAX_FIELD_BYTES // 1024} KB)", row=row)
    if "new-line" in message:
        # Lines end at LF only (see csv_open), so a CR followed by anything else is either a
        # file with classic-Mac (CR-only) line endings or an unquoted value holding a CR.
        return _csv_error(
            "a carriage return (CR) without a line feed after it (CR-only line endings, or an unquoted value "
            "holding a line break); save the file with LF or CRLF line endings",
            row=row,
        )
    return _csv_error(f"the file is not valid CSV ({message})", row=row)


def _sniffed_error(block: bytes) -> CsvError | None:
    """The error for a file whose first BLOCK holds NUL bytes, which no CSV text holds (and which
    PostgreSQL cannot store in text): UTF-16 saved without a byte-order mark, or a binary file.

    UTF-16 text of the mostly-ASCII kind a CSV holds has a NUL as every other byte: at odd
    positions in little-endian, at even ones in big-endian, and (almost) none at the others."""
    first = block.find(b"\x00")
    if first < 0:
        return None
    even, odd = block[0::2].count(b"\x00"), block[1::2].count(b"\x00")
    half = len(block) // 2
    if max(even, odd) * 2 >= half and min(even, odd) * 10 <= max(even, odd):
        return _csv_error(
            f"The file looks like UTF-16 without a byte-order mark (NUL bytes between its characters); {_SAVE_AS_UTF8}"
        )
    return _csv_error(
        "the file holds a NUL byte (0x00), so it is binary or damaged, not CSV text; save it as CSV (UTF-8)",
        row=block.count(b"\n", 0, first) + 1,
    )


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
                return _csv_error(f"the file is not UTF-8 (byte 0x{chunk[exc.start]:02x}); {_SAVE_AS_UTF8}", row=line)
    return _csv_error(f"The file is not UTF-8; {_SAVE_AS_UTF8}")


def csv_open(path: Path, *, required: Iterable[str]) -> CsvFile:
    """Open PATH as a comma-separated UTF-8 file (BOM accepted) and check its header.

    1. Empty file, UTF-16 (with a BOM, or without one: NULs between the characters), NUL bytes
       in the first block (a binary file), or not UTF-8 → CsvError.
    2. Blank lines before the header are skipped; a header that is one ';'-separated or
       tab-separated column → CsvError asking for commas.
    3. Duplicate column names, or missing REQUIRED columns (named) → CsvError.
    Columns are trimmed and lower-cased; extra columns are allowed (ignored by callers).
    Lines end at ``\n`` only (a ``\r`` before it belongs to the line, as the csv module expects;
    a ``\r`` elsewhere outside quotes is refused, naming its row).
    """
    with path.open("rb") as raw:
        block = raw.read(SNIFF_BYTES)
    if not block:
        raise _csv_error("The file is empty")
    if block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _csv_error(f"The file is UTF-16; {_SAVE_AS_UTF8}")
    sniffed = _sniffed_error(block)
    if sniffed is not None:
        raise sniffed
    # Block decoding in C (utf-8-sig drops a leading BOM); newline="\n" splits lines exactly
    # where a binary readline would, so row numbers are physical line numbers.
    stream = path.open("r", encoding="utf-8-sig", errors="strict", newline="\n", buffering=READ_BUFFER)
    reader = csv.reader(stream)
    row = 1
    try:
        header = next(reader, None)
        while header is not None and not "".join(header).strip():
            row = reader.line_num + 1
            header = next(reader, None)
        columns = _checked_header(header, required)
    except UnicodeDecodeError:
        stream.close()
        raise _utf8_error(path) from None
    except csv.Error as exc:
        stream.close()
        raise _parse_error(row, exc) from None
    except CsvError:
        stream.close()
        raise
    return CsvFile(path=path, columns=columns, _reader=reader, _stream=stream)


def _checked_header(header: list[str] | None, required: Iterable[str]) -> list[str]:
    if header is None:
        raise _csv_error("The file is empty")
    columns = [h.strip().lower() for h in header]
    if len(columns) == 1 and ";" in columns[0]:
        raise _csv_error("The file uses ';' as its delimiter; save it with ',' between columns")
    if len(columns) == 1 and "\t" in columns[0]:
        raise _csv_error("The file is tab-delimited; save it with ',' between columns")
    seen: set[str] = set()
    for column in columns:
        if column in seen and column:
            raise _csv_error(f"Duplicate column: {column}")
        seen.add(column)
    missing = [c for c in required if c not in seen]
    if missing:
        raise _csv_error(f"Missing required columns: {', '.join(missing)}")
    return columns
