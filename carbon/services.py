"""Writes of the carbon domain. Keyword-only ``<noun>_<verb>`` functions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from carbon.models import User


@dataclass(frozen=True)
class AdminLogin:
    username: str
    # None when the account predates the file (its password is whatever was set then).
    password: str | None
    created: bool


def admin_user_ensure(*, username: str, password_file: Path) -> AdminLogin:
    """Make sure an embedded install has a superuser to log in with.

    1. If any superuser exists, create nothing; return the login remembered in
       ``password_file`` when it belongs to USERNAME, else the username without a password.
    2. Otherwise create USERNAME with a random password, write it to ``password_file``
       (mode 0600, outside the repository's tracked files) and return it.
    """
    remembered = password_file.read_text(encoding="utf-8").strip() if password_file.exists() else None
    with transaction.atomic():
        if User.objects.filter(is_superuser=True).exists():
            user = User.objects.filter(username=username, is_superuser=True).first()
            if user is not None and remembered and user.check_password(remembered):
                return AdminLogin(username=username, password=remembered, created=False)
            existing = user.username if user else User.objects.filter(is_superuser=True).order_by("id")[0].username
            return AdminLogin(username=existing, password=None, created=False)
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.write_text(password + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    return AdminLogin(username=username, password=password, created=True)
