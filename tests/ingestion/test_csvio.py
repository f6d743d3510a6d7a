"""CSV reading: file-level errors are clear, row numbers are spreadsheet rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.csvio import CsvError, RowErrors, csv_open


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    return path


def read_all(path: Path, required: tuple[str, ...] = ("a",)) -> list[tuple[int, dict[str, str]]]:
    with csv_open(path, required=required) as csv_file:
        return list(csv_file.rows())


def test_utf8_with_bom_crlf_quoted_newline_and_blank_rows(tmp_path: Path) -> None:
    path = write(tmp_path, '\ufeffA, b\r\n1,"x\r\ny"\r\n\r\n,\r\n2,é\r\n'.encode())
    assert read_all(path) == [(2, {"a": "1", "b": "x\r\ny"}), (6, {"a": "2", "b": "é"})]


def test_surplus_values_are_kept_for_the_caller_to_report(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, b"a,b\n1,2,3,4\n")) == [(2, {"a": "1", "b": "2", "": "3,4"})]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty"),
        (b"\n\n", "The file is empty"),
        (b"a;b\n1;2\n", "The file uses ';' as its delimiter"),
        (b"b,c\n1,2\n", "Missing required columns: a"),
        (b"a,a\n1,2\n", "Duplicate column: a"),
        ("a\nd\u00e9j\u00e0\n".encode("latin-1"), "Row 2: the file is not UTF-8 (byte 0xe9)"),
        ("a,\u00e9\n".encode("latin-1"), "Row 1: the file is not UTF-8"),
        ("a\n1\n".encode("utf-16"), "The file is UTF-16"),
        (b"a\n" + b"x" * (1024 * 1024 + 10) + b"\n", "Row 2: a field is too long (a field may hold at most 1024 KB)"),
        (b"a," + b"x" * (1024 * 1024 + 10) + b"\n1\n", "Row 1: a field is too long"),
        ("a,b\n1,2\n".encode("utf-16-le"), "The file looks like UTF-16 without a byte-order mark"),
        ("a,b\n1,2\n".encode("utf-16-be"), "The file looks like UTF-16 without a byte-order mark"),
        (b"\x00" * 100, "Row 1: the file holds a NUL byte (0x00), so it is binary"),
        (b"a,b\n1,2\nx\x00y,3\n", "Row 3: the file holds a NUL byte (0x00)"),
        (b"a\tb\n1\t2\n", "The file is tab-delimited; save it with ',' between columns"),
        (b"a,b\r1,2\r", "Row 1: a carriage return (CR) without a line feed after it"),
        (b"a,b\n1,2\n3,x\ry\n", "Row 3: a carriage return (CR) without a line feed after it"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_all(write(tmp_path, content))


def test_row_errors_keep_the_first_ones_and_count_all() -> None:
    errors = RowErrors(limit=2)
    for row in range(2, 7):
        errors.add(row, "fte", "must be a number")
    assert errors.count == 5
    assert [e["row"] for e in errors.items] == [2, 3]


def test_a_bad_byte_far_into_the_file_is_reported_on_its_own_line(tmp_path: Path) -> None:
    # The reader decodes in large blocks; the error still names the line of the bad byte.
    content = "\ufeffa,b\n".encode() + b"1,caf\xc3\xa9\n" * 30_000 + "2,d\u00e9j\u00e0\n".encode("latin-1") + b"3,x\n"
    with pytest.raises(CsvError, match=r"Row 30002: the file is not UTF-8 \(byte 0xe9\)"):
        read_all(write(tmp_path, content))


def test_records_give_values_by_position_and_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, b'a,b\n1\n\n2,"x\ny",9\n \t, \n3,4\r\n')
    with csv_open(path, required=("a",)) as csv_file:
        assert list(csv_file.records()) == [(2, ["1"]), (4, ["2", "x\ny", "9"]), (7, ["3", "4"])]


def test_blank_lines_before_the_header_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, b"\n , \r\na,b\n1,2\n")
    with csv_open(path, required=("a",)) as csv_file:
        assert csv_file.columns == ["a", "b"]
        assert list(csv_file.records()) == [(4, ["1", "2"])]


def test_a_nul_past_the_first_block_reaches_the_reader(tmp_path: Path) -> None:
    # Only the first block is sniffed (cheap); a NUL further in is the text column's to refuse.
    path = write(tmp_path, b"a,b\n1," + b"x" * (64 * 1024) + b"\x00\n")
    with csv_open(path, required=("a",)) as csv_file:
        assert [(row, values[1][-1]) for row, values in csv_file.records()] == [(2, "\x00")]
