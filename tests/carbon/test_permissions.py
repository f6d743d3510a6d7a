"""Roles and scopes: what each kind of user may see and do."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser

from carbon.choices import RoleName
from carbon.models import RoleAssignment, Unit, User
from carbon.permissions import access_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree() -> dict[str, Unit]:
    epfl = Unit.objects.create(
        institutional_code="1", institutional_id="100", name="EPFL", level=1, path_institutional_code="1"
    )
    enac = Unit.objects.create(
        institutional_code="2", institutional_id="200", name="ENAC", level=2, path_institutional_code="1 2"
    )
    lab_a = Unit.objects.create(
        institutional_code="3", institutional_id="300", name="A", level=4, path_institutional_code="1 2 3"
    )
    lab_b = Unit.objects.create(
        institutional_code="4", institutional_id="400", name="B", level=4, path_institutional_code="1 4"
    )
    return {"epfl": epfl, "enac": enac, "a": lab_a, "b": lab_b}  # fmt: skip


def user_with(*roles: tuple[str, Unit | None]) -> User:
    user = User.objects.create_user(username=f"u{User.objects.count()}", password="x")
    for role, unit in roles:
        RoleAssignment.objects.create(user=user, role=role, unit=unit)
    return user


def test_anonymous_and_standard_users_see_no_pipeline(tree: dict[str, Unit]) -> None:
    assert access_scope(AnonymousUser()).can_view_pipelines is False
    standard = access_scope(user_with((RoleName.STANDARD, tree["a"])))
    assert (standard.authenticated, standard.can_view_pipelines, standard.can_see_unit(tree["a"].pk)) == (
        True,
        False,
        False,
    )


def test_principal_sees_and_uploads_for_its_units_only(tree: dict[str, Unit]) -> None:
    scope = access_scope(user_with((RoleName.PRINCIPAL, tree["a"])))
    assert scope.can_view_pipelines
    assert scope.can_see_unit(tree["a"].pk)
    assert not scope.can_see_unit(tree["b"].pk)
    assert scope.can_see_unit(None)  # per-year pipelines are not pinned to a unit
    assert scope.can_upload_for_unit(tree["a"].pk)
    assert not scope.can_upload_for_unit(tree["b"].pk)
    assert (scope.can_configure, scope.can_operate_pipelines) == (False, False)
    assert scope.visible_unit_ids() == {tree["a"].pk}


def test_backoffice_on_a_unit_covers_its_subtree(tree: dict[str, Unit]) -> None:
    scope = access_scope(user_with((RoleName.BACKOFFICE, tree["enac"])))
    assert scope.visible_unit_ids() == {tree["enac"].pk, tree["a"].pk}
    assert not scope.can_see_unit(tree["b"].pk)
    assert not scope.can_upload_for_unit(tree["a"].pk)
    everywhere = access_scope(user_with((RoleName.BACKOFFICE, None)))
    assert everywhere.visible_unit_ids() is None


def test_superadmin_role_and_django_superuser_can_do_everything(tree: dict[str, Unit]) -> None:
    for user in (user_with((RoleName.SUPERADMIN, None)), User.objects.create_superuser(username="root", password="x")):
        scope = access_scope(user)
        assert (scope.can_configure, scope.can_operate_pipelines, scope.visible_unit_ids()) == (True, True, None)
        assert scope.can_upload_for_unit(tree["b"].pk)


def test_scope_is_one_query_for_non_backoffice_users(tree: dict[str, Unit], django_assert_num_queries: Any) -> None:
    user = user_with((RoleName.PRINCIPAL, tree["a"]), (RoleName.STANDARD, tree["b"]))
    with django_assert_num_queries(1):
        access_scope(user)


def test_staff_pipeline_permissions_open_the_console_scope(tree: dict[str, Unit]) -> None:
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user(username="viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pipeline"))
    scope = access_scope(User.objects.get(pk=viewer.pk))
    assert (scope.can_view_pipelines, scope.can_operate_pipelines, scope.visible_unit_ids()) == (True, False, None)
    operator = User.objects.create_user(username="operator", password="x", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="change_pipeline"))
    assert access_scope(User.objects.get(pk=operator.pk)).can_operate_pipelines
    # the permissions count only for staff (who can use the admin at all)
    outsider = User.objects.create_user(username="outsider", password="x")
    outsider.user_permissions.add(Permission.objects.get(codename="change_pipeline"))
    outsider_scope = access_scope(User.objects.get(pk=outsider.pk))
    assert (outsider_scope.can_view_pipelines, outsider_scope.can_operate_pipelines) == (False, False)
    assert not scope.can_configure
