"""API tokens: issued, rotated and revoked by ``manage.py api_token``, honoured by the API."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.roles import Roles

pytestmark = pytest.mark.django_db


def token_of(username: str, *options: str) -> str:
    out = StringIO()
    call_command("api_token", username, *options, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def status_with(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/sync/workers").status_code


def test_issue_is_stable_rotate_replaces_and_revoke_cuts_access(roles: Roles) -> None:
    first = token_of("backoffice")
    assert token_of("backoffice") == first
    assert status_with(first) == 200
    second = token_of("backoffice", "--rotate")
    assert second != first
    assert status_with(first) == 401
    assert status_with(second) == 200
    call_command("api_token", "backoffice", "--revoke", stdout=StringIO())
    assert status_with(second) == 401


def test_unknown_user_and_revoking_nothing_fail(roles: Roles) -> None:
    with pytest.raises(CommandError, match="no user named 'nobody'") as unknown:
        token_of("nobody")
    assert unknown.value.returncode == 2
    with pytest.raises(CommandError, match="has no token") as none:
        call_command("api_token", "standard", "--revoke", stdout=StringIO())
    assert none.value.returncode == 1
