"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env as config_env

ROOT = Path(__file__).resolve().parent.parent
PRINT_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'debug': s.DEBUG, "
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'lease': s.JOB_LEASE_SECONDS, "
    "'max_mb': s.FILES_MAX_SIZE_MB, 'batch': s.INGEST_COPY_BATCH_SIZE}))"
)


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start Django in a fresh interpreter with exactly the given project variables."""
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_are_the_embedded_mode() -> None:
    result = _start({})
    assert result.returncode == 0, result.stderr
    assert '"engine": "django.db.backends.sqlite3"' in result.stdout
    assert '"debug": true' in result.stdout
    assert "InMemoryChannelLayer" in result.stdout
    assert '"lease": 30' in result.stdout
    assert '"max_mb": 100' in result.stdout
    assert '"batch": 50000' in result.stdout


def test_redis_url_selects_the_redis_channel_layer() -> None:
    result = _start({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert result.returncode == 0, result.stderr
    assert "RedisChannelLayer" in result.stdout


def test_postgres_url_means_production_and_needs_a_secret_key() -> None:
    result = _start({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    ok = _start({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x", "SECRET_KEY": "k" * 40})
    assert ok.returncode == 0, ok.stderr
    assert '"engine": "django.db.backends.postgresql"' in ok.stdout
    assert '"debug": false' in ok.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOB_LEASE_SECONDS", "thirty"),
        ("JOB_LEASE_SECONDS", "3"),  # not above the heartbeat
        ("WORKER_POLL_SECONDS", "0"),
        ("WORKER_HEARTBEAT_SECONDS", "-1"),
        ("JOB_MAX_ATTEMPTS", "1.5"),
        ("PIPELINE_RECONCILER_INTERVAL_SECONDS", "x"),
        ("MAX_ROW_ERRORS", "0"),
        ("INGEST_COPY_BATCH_SIZE", "many"),
        ("FILES_MAX_SIZE_MB", "0"),
        ("DEBUG", "perhaps"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("TRAVEL_API_URL", "ftp://example.org/travel"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_invalid_value_fails_at_start_up_naming_the_variable(variable: str, value: str) -> None:
    result = _start({variable: value, "SECRET_KEY": "k" * 40})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{variable}:" in result.stderr


def test_secret_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-from-file\n", encoding="utf-8")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret))
    assert config_env.env_str("SOME_SECRET", None) == "s3cr3t-from-file"


def test_unreadable_secret_file_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECRET_FILE", "/nonexistent/secret")
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET_FILE"):
        config_env.env_str("SOME_SECRET", None)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("OFF", False), ("false", False)])
def test_env_bool_spellings(raw: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A_FLAG", raw)
    assert config_env.env_bool("A_FLAG", not expected) is expected


def test_env_int_range_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A_NUMBER", "11")
    with pytest.raises(ImproperlyConfigured, match=r"A_NUMBER: must be <= 10, got 11"):
        config_env.env_int("A_NUMBER", 1, max_value=10)
