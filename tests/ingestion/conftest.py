"""Fixtures shared by the ingestion tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import LazySettings


@pytest.fixture
def files_area(settings: LazySettings, tmp_path: Path) -> Path:
    """A FILES_ROOT of this test's own (uploads, processing/, processed/)."""
    root = tmp_path / "files"
    root.mkdir()
    settings.FILES_ROOT = root
    return root
