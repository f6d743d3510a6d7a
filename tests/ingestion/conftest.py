"""Fixtures shared by the ingestion tests (FILES_ROOT: ``files_area`` in tests/conftest.py)."""
