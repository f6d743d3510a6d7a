"""Typed readers for the environment.

django-environ does the parsing; these wrappers exist so that a bad value fails at start-up
with ``ImproperlyConfigured`` naming the variable, instead of a bare ``ValueError`` deep in a
cast, and so that numeric settings carry their allowed range next to their default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()


def _raw(name: str) -> str | None:
    """The value of NAME, or of the file named by NAME_FILE (for secrets mounted as files)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name!r}: {exc}") from exc
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None) -> str | None:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false/1/0/yes/no/on/off), got {value!r}")


def env_int(name: str, default: int, *, min_value: int | None = None, max_value: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        number = default
    else:
        try:
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: expected an integer, got {value!r}") from None
    if min_value is not None and number < min_value:
        raise ImproperlyConfigured(f"{name}: must be >= {min_value}, got {number}")
    if max_value is not None and number > max_value:
        raise ImproperlyConfigured(f"{name}: must be <= {max_value}, got {number}")
    return number


def env_float(name: str, default: float, *, min_value: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        number = default
    else:
        try:
            number = float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: expected a number, got {value!r}") from None
    if min_value is not None and number < min_value:
        raise ImproperlyConfigured(f"{name}: must be >= {min_value}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name}: expected a URL starting with {allowed}, got {value!r}")
    return value


def env_database(name: str, default: str) -> dict[str, Any]:
    value = _raw(name) or default
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"{name}: expected sqlite:///path or postgres://user@host:port/db, got {value!r}")
    try:
        config: dict[str, Any] = env.db_url_config(value)
    except Exception as exc:  # django-environ raises assorted errors for malformed URLs
        raise ImproperlyConfigured(f"{name}: cannot parse {value!r}: {exc}") from exc
    if scheme != "sqlite" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{name}: the PostgreSQL URL names no database: {value!r}")
    return config
