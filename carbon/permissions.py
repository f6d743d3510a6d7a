"""Who may do what (SPEC §6.3, reference-domain §8), decided from role assignments.

``AccessScope`` is computed once per request (one query) and answers every check without
touching the database. The pipelines engine reaches it through the PIPELINES_ACCESS setting,
so the engine itself imports nothing from this app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carbon.choices import RoleName
from carbon.models import RoleAssignment, Unit


@dataclass(frozen=True)
class AccessScope:
    authenticated: bool = False
    # Django superusers hold every role everywhere.
    superadmin: bool = False
    # Back office: reporting and reading pipelines; on a unit = that unit's subtree, global = all.
    backoffice_global: bool = False
    backoffice_unit_ids: frozenset[int] = field(default_factory=frozenset)
    principal_unit_ids: frozenset[int] = field(default_factory=frozenset)
    standard_unit_ids: frozenset[int] = field(default_factory=frozenset)
    # Staff granted the pipelines model permissions in Django admin (the operations console's
    # gate): view → every pipeline, change → pipeline operations. Roles stay the API's model;
    # these let an admin-managed operator use the console without a directory role.
    admin_view_pipelines: bool = False
    admin_operate_pipelines: bool = False

    @property
    def can_configure(self) -> bool:
        """Year configuration, factor/reference/per-year uploads, unit sync, manual recalcs."""
        return self.superadmin

    @property
    def can_operate_pipelines(self) -> bool:
        """Abort, retry, recover: pipeline operations are the superadmin's (or a console operator's)."""
        return self.superadmin or self.admin_operate_pipelines

    @property
    def can_view_pipelines(self) -> bool:
        """The pipeline lists and streams (unit-pinned ones are still filtered per unit)."""
        return (
            self.superadmin
            or self.admin_view_pipelines
            or self.backoffice_global
            or bool(self.backoffice_unit_ids)
            or bool(self.principal_unit_ids)
        )

    @property
    def can_view_configuration(self) -> bool:
        """Years not yet open to end users, stale factors, recalculation status."""
        return self.superadmin or self.backoffice_global or bool(self.backoffice_unit_ids)

    @property
    def can_upload_somewhere(self) -> bool:
        """May store an upload (temp-upload): configurers, and principals for their units."""
        return self.superadmin or bool(self.principal_unit_ids)

    @property
    def can_view_reports(self) -> bool:
        """Reports and their stats, for the units in ``visible_unit_ids``."""
        return self.sees_all_units or bool(self.backoffice_unit_ids) or bool(self.principal_unit_ids)

    @property
    def sees_all_units(self) -> bool:
        return self.superadmin or self.backoffice_global or self.admin_view_pipelines

    def can_see_unit(self, unit_id: int | None) -> bool:
        """A pipeline or job pinned to UNIT_ID is visible (None: not unit-pinned)."""
        if unit_id is None:
            return self.can_view_pipelines
        return self.sees_all_units or unit_id in self.backoffice_unit_ids or unit_id in self.principal_unit_ids

    def can_upload_for_unit(self, unit_id: int) -> bool:
        return self.superadmin or unit_id in self.principal_unit_ids

    def visible_unit_ids(self) -> frozenset[int] | None:
        """The units whose pinned pipelines this user sees; None means every unit."""
        if self.sees_all_units:
            return None
        return self.backoffice_unit_ids | self.principal_unit_ids


ANONYMOUS = AccessScope()


def access_scope(user: Any) -> AccessScope:
    """The scope of USER from its role assignments (one query; back-office subtrees one more).

    Back office on a unit covers the unit's subtree (its code as a token of the descendants'
    ``path_institutional_code``). Staff users also bring their Django permissions on pipelines
    (two more queries, staff only).
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    if user.is_superuser:
        return AccessScope(authenticated=True, superadmin=True, backoffice_global=True)
    roles = list(RoleAssignment.objects.filter(user_id=user.pk).values_list("role", "unit_id"))
    by_role: dict[str, set[int | None]] = {}
    for role, unit_id in roles:
        by_role.setdefault(role, set()).add(unit_id)
    backoffice = by_role.get(RoleName.BACKOFFICE, set())
    anchors = [u for u in backoffice if u is not None]
    perms = user.get_all_permissions() if user.is_staff else set()
    return AccessScope(
        authenticated=True,
        admin_view_pipelines="pipelines.view_pipeline" in perms or "pipelines.change_pipeline" in perms,
        admin_operate_pipelines="pipelines.change_pipeline" in perms,
        superadmin=RoleName.SUPERADMIN in by_role,
        backoffice_global=None in backoffice,
        backoffice_unit_ids=frozenset(_subtree_ids(anchors)) if anchors else frozenset(),
        principal_unit_ids=frozenset(u for u in by_role.get(RoleName.PRINCIPAL, set()) if u is not None),
        standard_unit_ids=frozenset(u for u in by_role.get(RoleName.STANDARD, set()) if u is not None),
    )


def _subtree_ids(anchor_ids: list[int]) -> set[int]:
    codes = list(Unit.objects.filter(id__in=anchor_ids).values_list("institutional_code", flat=True))
    ids = set(anchor_ids)
    for unit_id, path in Unit.objects.exclude(path_institutional_code="").values_list("id", "path_institutional_code"):
        tokens = set(path.split())
        if any(code in tokens for code in codes):
            ids.add(unit_id)
    return ids
