"""manage.py api_token USERNAME [--rotate | --revoke] — the API token of a user.

Algorithm:
1. Without options, print the user's token (created on first use).
2. ``--rotate``: replace it with a new one (the old key stops working at once).
3. ``--revoke``: delete it (exit 1 if the user had none).
Unknown user: exit 2. Clients send it as ``Authorization: Token <key>``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from carbon.services_tokens import UnknownUser, api_token_issue, api_token_revoke


class Command(BaseCommand):
    help = "Print, rotate or revoke a user's API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--rotate", action="store_true", help="replace the token with a new one")
        group.add_argument("--revoke", action="store_true", help="delete the token")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        try:
            if options["revoke"]:
                if not api_token_revoke(username=username):
                    raise CommandError(f"{username} has no token", returncode=1)
                self.stdout.write(f"token of {username} revoked")
                return
            key, created = api_token_issue(username=username, rotate=options["rotate"])
        except UnknownUser as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(key)
        if created:
            self.stderr.write(f"new token for {username}")
