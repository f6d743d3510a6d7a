"""Paths from outside can never leave FILES_ROOT; uploads are size-limited."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import LazySettings

from ingestion.files import FilePathError, UploadTooLarge, job_file_claim, job_file_done, path_resolve, upload_store


@pytest.fixture(autouse=True)
def files_root(settings: LazySettings, tmp_path: Path) -> Path:
    settings.FILES_ROOT = tmp_path / "files"
    (tmp_path / "files").mkdir()
    return tmp_path / "files"


@pytest.mark.parametrize(
    "bad",
    ["", "/etc/passwd", "../secret", "tmp/../../x", "tmp/a\x00b", "tmp\\..\\x", "processed/1/f.csv"],
)
def test_paths_outside_or_off_prefix_are_refused(bad: str) -> None:
    with pytest.raises(FilePathError):
        path_resolve(bad, prefixes=("tmp/",))


def test_a_symlink_out_of_the_root_is_refused(files_root: Path, tmp_path: Path) -> None:
    (files_root / "tmp").mkdir()
    (files_root / "tmp" / "link").symlink_to(tmp_path)
    with pytest.raises(FilePathError, match="leaves the files area"):
        path_resolve("tmp/link/anything", prefixes=("tmp/",))


def test_upload_then_claim_then_done(files_root: Path) -> None:
    relative = upload_store(name="../../My File (1).csv", chunks=[b"a,b\n", b"1,2\n"])
    assert relative.startswith("tmp/")
    assert relative.endswith("/My_File_1_.csv")
    processing = job_file_claim(relative=relative, job_id=7)
    assert processing == files_root / "processing" / "7" / "My_File_1_.csv"
    assert job_file_claim(relative=relative, job_id=7) == processing  # a retry finds it
    assert job_file_done(job_id=7, path=processing) == "processed/7/My_File_1_.csv"
    assert (files_root / "processed" / "7" / "My_File_1_.csv").read_bytes() == b"a,b\n1,2\n"


def test_an_upload_one_byte_over_the_limit_is_refused_and_removed(files_root: Path) -> None:
    with pytest.raises(UploadTooLarge, match="larger than the 1 MB upload limit"):
        upload_store(name="big.csv", chunks=[b"x" * (1024 * 1024), b"y"], max_bytes=1024 * 1024)
    assert list((files_root / "tmp").iterdir()) == []
    assert upload_store(name="ok.csv", chunks=[b"x" * (1024 * 1024)], max_bytes=1024 * 1024)
