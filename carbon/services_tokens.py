"""API tokens (``Authorization: Token <key>``): issue, rotate, revoke.

One token per user (DRF's authtoken model). Rotating deletes the old key in the same
transaction that creates the new one, so at no point do two keys work for one user.
"""

from __future__ import annotations

from django.db import transaction
from rest_framework.authtoken.models import Token

from carbon.models import User


class UnknownUser(LookupError):
    pass


def _user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(f"no user named {username!r}")
    return user


def api_token_issue(*, username: str, rotate: bool = False) -> tuple[str, bool]:
    """The user's token key, and whether it is new.

    1. Lock the user's token row (if any) so two concurrent calls cannot both create one.
    2. Keep the existing key, unless ROTATE: then delete it and create a new one.
    """
    with transaction.atomic():
        user = _user(username)
        existing = Token.objects.select_for_update().filter(user=user).first()
        if existing is not None and not rotate:
            return existing.key, False
        if existing is not None:
            existing.delete()
        return Token.objects.create(user=user).key, True


def api_token_revoke(*, username: str) -> bool:
    """Delete the user's token; True when there was one. Requests with it get 401 from then on."""
    deleted, _ = Token.objects.filter(user=_user(username)).delete()
    return deleted > 0
