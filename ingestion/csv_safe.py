"""Spreadsheet-formula neutralisation of CSV files served for download (CSV injection).

Decision (SPEC §4.2, bad input): a cell that starts like a spreadsheet formula (``=``, ``+``,
``-``, ``@``, tab or carriage return) is **stored verbatim** when it sits in a free-text column
(names, notes, ids: "-80 °C freezer" is a real equipment name) and refused as a row error in a
typed column (a number, a choice, a date: ``=1+1`` is not a number). Stored text is never
evaluated: the database and the JSON API carry it as a string, and the console puts it in the
page with ``textContent``.

The one place where a stored cell goes back to a spreadsheet is a CSV download
(``GET /api/v1/files/{path}``: the console's "download processed file", an earlier upload).
The uploader and the person who opens the download in a spreadsheet are often not the same
(a unit's principal uploads, the back office downloads), so the download neutralises every
such cell the OWASP way: a ``'`` is put before it, which makes a spreadsheet show the cell as
text instead of running it. Cells that are plain numbers (``-5``, ``+1.5e3``) are left alone.
Nothing else changes, byte for byte: delimiters, quoting, line endings and encoding (UTF-8
with or without BOM, invalid bytes kept as they are; UTF-16 with a BOM), so a file without
formula cells downloads exactly as it was uploaded. Cells are told apart as the csv module
does (a quote is special only at the start of a cell; a quoted cell may span lines).
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from typing import BinaryIO

FORMULA_PREFIXES = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# A line outside quotes whose cells all start harmlessly needs no work: the fast path.
_RISKY_CELL_START = re.compile(r'(?:^|,)[=+\-@\t\r"]')
_CHUNK = 1024 * 1024
_LINES_PER_WRITE = 4096


def _needs_quote(cell: str) -> bool:
    return bool(cell) and cell[0] in FORMULA_PREFIXES and _NUMBER.fullmatch(cell) is None


def _closing_quote(line: str, start: int) -> int:
    """Index of the quote closing a quoted cell whose content starts at START, or -1."""
    at = start
    while True:
        at = line.find('"', at)
        if at < 0 or at + 1 >= len(line) or line[at + 1] != '"':
            return at
        at += 2  # a doubled quote is a quote inside the cell


def neutralise_line(line: str, in_quotes: bool = False) -> tuple[str, bool]:
    """LINE (with its line ending) with formula cells prefixed by ``'``, and whether a quoted
    cell is still open at its end. IN_QUOTES: a quoted cell was open at its start (it continues
    the previous line's). Cells are read as the csv module reads them: a quote is special only
    at the start of a cell."""
    ending = 2 if line.endswith("\r\n") else 1 if line.endswith(("\n", "\r")) else 0
    body_end = len(line) - ending
    if not in_quotes and '"' not in line:
        if not _RISKY_CELL_START.search(line, 0, body_end):
            return line, False
        cells = line[:body_end].split(",")
        return ",".join("'" + c if _needs_quote(c) else c for c in cells) + line[body_end:], False
    out: list[str] = []
    at = 0
    if in_quotes:
        close = _closing_quote(line, 0)
        if close < 0:
            return line, True
        comma = line.find(",", close + 1, body_end)
        if comma < 0:
            return line, False
        out.append(line[: comma + 1])
        at = comma + 1
    while True:  # a cell starts at AT
        if at < body_end and line[at] == '"':
            close = _closing_quote(line, at + 1)
            if close < 0:  # continues on the next line: holds a line break, so never a number
                content = line[at + 1 :]
                out.append('"' + ("'" if content[:1] in FORMULA_PREFIXES and content else "") + content)
                return "".join(out), True
            content = line[at + 1 : close].replace('""', '"')
            out.append('"' + ("'" if _needs_quote(content) else "") + line[at + 1 : close + 1])
            comma = line.find(",", close + 1, body_end)
            if comma < 0:
                out.append(line[close + 1 :])
                return "".join(out), False
            out.append(line[close + 1 : comma + 1])
            at = comma + 1
            continue
        comma = line.find(",", at, body_end)
        cell = line[at : comma if comma >= 0 else body_end]
        out.append("'" + cell if _needs_quote(cell) else cell)
        if comma < 0:
            out.append(line[body_end:])
            return "".join(out), False
        out.append(",")
        at = comma + 1


def _codec(raw: BinaryIO) -> tuple[str, str, bytes]:
    """(codec, error handler, BOM to write back) to read RAW with, losing no byte.

    UTF-8 with or without BOM, any invalid byte kept as is (surrogateescape); UTF-16 with a
    BOM when it decodes (else read as bytes like the rest: it is no file our ingestion takes).
    Leaves RAW at its start.
    """
    head = raw.read(4)
    raw.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "surrogateescape", codecs.BOM_UTF8
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        decoder = codecs.getincrementaldecoder("utf-16")()
        try:
            for chunk in iter(lambda: raw.read(_CHUNK), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "utf-8", "surrogateescape", b""
        finally:
            raw.seek(0)
        return "utf-16", "strict", b""
    return "utf-8", "surrogateescape", b""


def neutralised_csv(raw: BinaryIO) -> Iterator[bytes]:
    """The bytes of the CSV file open in RAW (seekable) with its formula cells neutralised,
    streamed; RAW is closed at the end (or when the consumer stops early)."""
    try:
        codec, errors, bom = _codec(raw)
        encoder = codecs.getincrementalencoder("utf-8" if codec == "utf-8-sig" else codec)(errors)
        if bom:
            yield bom
        text = io.TextIOWrapper(raw, encoding=codec, errors=errors, newline="")
        in_quotes = False
        batch: list[str] = []
        for line in text:
            safe, in_quotes = neutralise_line(line, in_quotes)
            batch.append(safe)
            if len(batch) >= _LINES_PER_WRITE:
                yield encoder.encode("".join(batch))
                batch = []
        yield encoder.encode("".join(batch), final=True)
    finally:
        raw.close()
