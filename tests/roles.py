"""The six kinds of API caller of SPEC §6.3, for endpoint and matrix tests.

``roles`` (fixture in tests/conftest.py) builds two labs A and B under one school, one user per
role (principals on A and on B), and hands out API clients that authenticate with real tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from carbon.choices import RoleName
from carbon.models import RoleAssignment, Unit, User

ROLES = ("anonymous", "standard", "principal_a", "principal_b", "backoffice", "superadmin")


@dataclass
class Roles:
    school: Unit
    unit_a: Unit
    unit_b: Unit
    users: dict[str, User] = field(default_factory=dict)

    def client(self, role: str) -> APIClient:
        """An API client acting as ROLE (``anonymous`` sends no credentials)."""
        client = APIClient()
        if role != "anonymous":
            token, _ = Token.objects.get_or_create(user=self.users[role])
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client


def roles_create() -> Roles:
    school = Unit.objects.create(
        institutional_code="900", institutional_id="9000", name="SCHOOL", level=2, path_institutional_code="900"
    )
    unit_a = Unit.objects.create(
        institutional_code="901", institutional_id="9001", name="LAB-A", level=4,
        path_institutional_code="900 901", parent=school,
    )  # fmt: skip
    unit_b = Unit.objects.create(
        institutional_code="902", institutional_id="9002", name="LAB-B", level=4,
        path_institutional_code="900 902", parent=school,
    )  # fmt: skip
    roles = Roles(school=school, unit_a=unit_a, unit_b=unit_b)
    grants: dict[str, list[tuple[str, Unit | None]]] = {
        "standard": [(RoleName.STANDARD, unit_a)],
        "principal_a": [(RoleName.PRINCIPAL, unit_a)],
        "principal_b": [(RoleName.PRINCIPAL, unit_b)],
        "backoffice": [(RoleName.BACKOFFICE, None)],
        "superadmin": [(RoleName.SUPERADMIN, None)],
    }
    for name, assignments in grants.items():
        # No password (tokens authenticate): hashing one costs ~0.3 s per user and test.
        user = User.objects.create_user(username=name, email=f"{name}@example.org", password=None)
        for role, unit in assignments:
            RoleAssignment.objects.create(user=user, role=role, unit=unit)
        roles.users[name] = user
    return roles
