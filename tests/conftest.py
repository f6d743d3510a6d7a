"""Suite-wide fixtures and the PostgreSQL gate.

Tests marked ``postgres`` need PostgreSQL behaviour (advisory locks, SKIP LOCKED, immediate
foreign keys). On SQLite they are skipped, and the run ends with a loud banner saying how
many and how to run them. ``.ci/run`` runs the suite a second time on PostgreSQL and fails if
PostgreSQL is unreachable, so in CI nothing is skipped for good.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import LazySettings, settings
from django.db import connection

from carbon.models import User
from tests.roles import Roles, roles_create

_skipped_for_postgres: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # The SQLite test database is a file under var/ (worker subprocesses open it by path); a
    # fresh clone has no var/ until something creates it.
    Path(settings.BASE_DIR, "var").mkdir(exist_ok=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    reason = "needs PostgreSQL: runs in the PostgreSQL pass (make test-pg, or DATABASE_URL=postgres://…)"
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.skip(reason=reason))
            _skipped_for_postgres.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _skipped_for_postgres:
        return
    terminalreporter.section("PostgreSQL tests NOT RUN", sep="!", yellow=True, bold=True)
    terminalreporter.write_line(
        f"{len(_skipped_for_postgres)} tests need PostgreSQL and were skipped on {connection.vendor}. "
        "Run them with `make test-pg` (CI runs both passes).",
        yellow=True,
        bold=True,
    )
    if os.environ.get("CI") == "true" and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        # Cannot happen (the vendor would be postgresql), but if it ever did it must not pass.
        terminalreporter.write_line("CI=true with a PostgreSQL DATABASE_URL yet tests were skipped", red=True)


@pytest.fixture
def files_area(settings: LazySettings, tmp_path: Path) -> Path:
    """A FILES_ROOT of this test's own (uploads, processing/, processed/)."""
    root = tmp_path / "files"
    root.mkdir()
    settings.FILES_ROOT = root
    return root


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Each test starts with an empty cache: cached counters are keyed by row timestamps, which
    a rolled-back test and the next one may happen to share."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _reference_rows(request: pytest.FixtureRequest) -> None:
    """Reference enumerations, as migration 0002 loads them.

    Transactional tests end by flushing every table, migration-loaded rows included; the
    next test that touches the database gets them back here (one query when present).
    """
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.apps import apps

    from carbon.models import EmissionType
    from carbon.reference_data import EMISSION_TYPES, reference_rows_sync

    if EmissionType.objects.count() != len(EMISSION_TYPES):
        reference_rows_sync(apps)


@pytest.fixture
def superuser(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_superuser(username="root", email="root@example.org", password="pw-root-123")


@pytest.fixture
def roles(db: None) -> Roles:
    """Labs A and B and one API caller per role (see tests/roles.py)."""
    return roles_create()
