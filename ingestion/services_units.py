"""Provisioning a year from a unit-directory read (the write side of ``unit_sync``).

Everything runs inside the caller's transaction (the runner's data transaction), so a failure
anywhere leaves nothing behind. Every step is a fixed number of set-based statements — bulk
inserts are split only in batches of BATCH_SIZE rows (and of SQLite's 999 parameters), never
per unit. Lookups read whole small tables (units, linked users, calculator projects, one
year's reports) instead of sending thousands of keys in an ``IN`` list.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import reduce

from django.contrib.auth.hashers import make_password
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from carbon.choices import CarbonReportType, ModuleTypeId, RoleName
from carbon.models import CarbonProject, CarbonReport, CarbonReportModule, RoleAssignment, Unit, User, YearConfiguration
from carbon.services import year_configuration_default_config
from ingestion.unit_directory import PrincipalRecord, UnitRecord

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
PHASE_UPSERT = "upsert_units_and_users"
PHASE_REPORTS = "create_carbon_reports"
PHASE_MODULES = "ensure_modules"

# Told the name of each phase as it starts.
PhaseCallback = Callable[[str], None]

_UNIT_UPDATE_FIELDS = [
    "institutional_id",
    "name",
    "label_fr",
    "label_en",
    "level",
    "parent_institutional_code",
    "parent_institutional_id",
    "path_institutional_code",
    "path_institutional_id",
    "path_name",
    "unit_type_id",
    "unit_type_label",
    "principal_user_institutional_id",
    "principal",
    "is_active",
    "source",
    "updated_at",
]
# The upsert leaves the cf (``institutional_id``, a unique column) alone: PostgreSQL locks every
# row an ON CONFLICT DO UPDATE touches FOR UPDATE when the update list names a unique column,
# whether its value changes or not, and FOR UPDATE conflicts with the FOR KEY SHARE locks that
# a concurrent upload's foreign-key checks take on the units it references: a unit_sync and a
# data upload deadlocked on ``carbon_unit`` (tests/test_concurrency_matrix.py). The cfs that
# did change are then set by a plain UPDATE, which locks FOR UPDATE only the rows whose cf changes.
_UNIT_UPSERT_FIELDS = [name for name in _UNIT_UPDATE_FIELDS if name != "institutional_id"]


def principal_username(principal: PrincipalRecord) -> str:
    """Login name of a principal created from the directory: ``p<SCIPER>``."""
    return f"p{principal.institutional_id}"


def units_sync(
    *,
    year: int,
    records: Sequence[UnitRecord],
    principals: Sequence[PrincipalRecord],
    source: str = "",
    progress: PhaseCallback | None = None,
) -> dict[str, int]:
    """Write a directory read: units, principals and their role, and YEAR's reports and modules.

    Phase ``upsert_units_and_users``:
    1. Keep the last record of each unit code; when two units claim one cf, the active one
       (else the first) keeps it and the others are stored without a cf.
    2. Upsert the principals keyed on ``User.institutional_id`` (a user already named
       ``p<SCIPER>`` without one is adopted instead of colliding on the username).
    3. Free the cfs that moved to another unit, then upsert the units keyed on
       ``institutional_code`` (ON CONFLICT DO UPDATE: ids are kept), principal included, and
       set the cfs that changed (see ``_UNIT_UPSERT_FIELDS``).
    4. Resolve every ``Unit.parent`` from ``parent_institutional_code`` in one UPDATE.
    5. Give each principal the principal role on its unit; take it back from the previous
       principal of a unit whose principal changed.
    Phase ``create_carbon_reports``:
    6. Find or create each unit's Calculator project; create its report for YEAR if missing.
    Phase ``ensure_modules``:
    7. Create the missing of the 8 modules of every report of YEAR that lacks some.
    Finally stamp ``YearConfiguration.configuration_completed`` (creating the row if missing),
    which opens the year to uploads.
    """
    now = timezone.now()
    _phase(progress, PHASE_UPSERT)
    units, cf_conflicts = _records_dedupe(records)
    principal_by_sciper = _principals_upsert(principals)
    before = {
        code: (pk, cf, principal)
        for pk, code, cf, principal in Unit.objects.values_list(
            "pk", "institutional_code", "institutional_id", "principal_id"
        )
    }
    cfs_released = _cfs_release(units, before)
    Unit.objects.bulk_create(
        [_unit(record, principal_by_sciper, source, now) for record in units],
        update_conflicts=True,
        unique_fields=["institutional_code"],
        update_fields=_UNIT_UPSERT_FIELDS,
        batch_size=BATCH_SIZE,
    )
    stored = {
        code: (pk, cf) for code, pk, cf in Unit.objects.values_list("institutional_code", "pk", "institutional_id")
    }
    unit_pk = {code: pk for code, (pk, _) in stored.items()}
    moved = [
        Unit(pk=stored[r.institutional_code][0], institutional_id=r.institutional_id)
        for r in units
        if stored[r.institutional_code][1] != r.institutional_id
    ]
    Unit.objects.bulk_update(moved, ["institutional_id"], batch_size=BATCH_SIZE)
    Unit.objects.update(
        parent=Subquery(Unit.objects.filter(institutional_code=OuterRef("parent_institutional_code")).values("pk")[:1])
    )
    new_principal = {
        unit_pk[r.institutional_code]: principal_by_sciper.get(r.principal_user_institutional_id or "") for r in units
    }
    old_principal = {row[0]: row[2] for row in before.values()}
    roles_revoked, roles_granted = _principal_roles_sync(new_principal, old_principal)

    _phase(progress, PHASE_REPORTS)
    synced_unit_pks = [unit_pk[r.institutional_code] for r in units]
    names = {unit_pk[r.institutional_code]: r.name for r in units}
    project_by_unit, projects_created = _projects_ensure(synced_unit_pks, names)
    reports_created = _reports_ensure(year, project_by_unit, synced_unit_pks)

    _phase(progress, PHASE_MODULES)
    modules_created = _modules_ensure(year)
    _year_stamp(year, source)
    return {
        "units_synced": len(units),
        "users_synced": len({p.institutional_id for p in principals}),
        "carbon_reports_created": reports_created,
        "modules_created": modules_created,
        "projects_created": projects_created,
        "principal_roles_granted": roles_granted,
        "principal_roles_revoked": roles_revoked,
        "units_inactive": sum(1 for r in units if not r.is_active),
        "cf_conflicts": cf_conflicts,
        "cfs_released": cfs_released,
    }


def _phase(progress: PhaseCallback | None, name: str) -> None:
    if progress is not None:
        progress(name)


def _records_dedupe(records: Iterable[UnitRecord]) -> tuple[list[UnitRecord], int]:
    """One record per unit code (the last read wins), and each cf on one unit only."""
    by_code = {record.institutional_code: record for record in records}
    holder: dict[str, UnitRecord] = {}
    for record in by_code.values():
        cf = record.institutional_id
        if cf is None:
            continue
        current = holder.get(cf)
        if current is None or (record.is_active and not current.is_active):
            holder[cf] = record
    units: list[UnitRecord] = []
    conflicts = 0
    for record in by_code.values():
        cf = record.institutional_id
        if cf is not None and holder[cf] is not record:
            conflicts += 1
            logger.warning(
                "unit %s: cf %s is also carried by unit %s; stored without a cf",
                record.institutional_code,
                cf,
                holder[cf].institutional_code,
            )
            record = replace(record, institutional_id=None)
        units.append(record)
    return units, conflicts


def _principals_upsert(principals: Sequence[PrincipalRecord]) -> dict[str, int]:
    """Upsert PRINCIPALS; returns SCIPER → user id for every directory-linked user."""
    distinct = list({p.institutional_id: p for p in principals}.values())
    if distinct:
        by_username = {principal_username(p): p for p in distinct}
        # Users without a SCIPER are the few local accounts: scanning them beats an IN list
        # of every principal's name.
        orphans = [
            user
            for user in User.objects.filter(institutional_id__isnull=True).only("pk", "username")
            if user.username in by_username
        ]
        for user in orphans:
            user.institutional_id = by_username[user.username].institutional_id
        if orphans:
            User.objects.bulk_update(orphans, ["institutional_id"], batch_size=BATCH_SIZE)
        User.objects.bulk_create(
            [
                User(
                    username=principal_username(p),
                    # Principals sign in through the institution, never with a local password.
                    password=make_password(None),
                    institutional_id=p.institutional_id,
                    email=p.email,
                    first_name=p.first_name,
                    last_name=p.last_name,
                    display_name=p.display_name[:255],
                )
                for p in distinct
            ],
            update_conflicts=True,
            unique_fields=["institutional_id"],
            update_fields=["email", "first_name", "last_name", "display_name"],
            batch_size=BATCH_SIZE,
        )
    return {
        sciper: pk
        for sciper, pk in User.objects.filter(institutional_id__isnull=False).values_list("institutional_id", "pk")
        if sciper is not None
    }


def _cfs_release(units: Sequence[UnitRecord], before: Mapping[str, tuple[int, str | None, int | None]]) -> int:
    """Clear the cf of stored units that lose it to another unit of this read.

    Without this a cf that moved (a unit renumbered, two units swapping cfs) would collide
    with the unique cf constraint in the middle of the upsert.
    """
    wanted = {r.institutional_id: r.institutional_code for r in units if r.institutional_id is not None}
    losers = [pk for code, (pk, cf, _) in before.items() if cf is not None and cf in wanted and wanted[cf] != code]
    if losers:
        Unit.objects.filter(pk__in=losers).update(institutional_id=None)
    return len(losers)


def _unit(record: UnitRecord, principal_by_sciper: dict[str, int], source: str, now: datetime) -> Unit:
    return Unit(
        institutional_code=record.institutional_code,
        institutional_id=record.institutional_id,
        name=record.name,
        label_fr=record.label_fr,
        label_en=record.label_en,
        level=record.level,
        parent_institutional_code=record.parent_institutional_code,
        parent_institutional_id=record.parent_institutional_id,
        path_institutional_code=record.path_institutional_code[:512],
        path_institutional_id=record.path_institutional_id[:512],
        path_name=record.path_name,
        unit_type_id=record.unit_type_id,
        unit_type_label=record.unit_type_label,
        principal_user_institutional_id=record.principal_user_institutional_id,
        principal_id=principal_by_sciper.get(record.principal_user_institutional_id or ""),
        is_active=record.is_active,
        source=source[:512],
        created_at=now,
        updated_at=now,
    )


def _principal_roles_sync(new: Mapping[int, int | None], old: Mapping[int, int | None]) -> tuple[int, int]:
    """Grant the principal role of each unit in NEW (unit → user); revoke the previous
    principal's where it changed. Returns (revoked, granted).

    Only the previous principal named by the directory loses the role: other principal
    assignments (made in admin, e.g. a deputy) are left alone.
    """
    changed = [(user, unit) for unit, user in old.items() if unit in new and user is not None and new[unit] != user]
    revoked = 0
    if changed:
        pairs = reduce(operator.or_, (Q(user_id=user, unit_id=unit) for user, unit in changed))
        revoked, _ = RoleAssignment.objects.filter(pairs, role=RoleName.PRINCIPAL).delete()
    existing = set(
        RoleAssignment.objects.filter(role=RoleName.PRINCIPAL, unit__isnull=False).values_list("user_id", "unit_id")
    )
    missing = [(user, unit) for unit, user in new.items() if user is not None and (user, unit) not in existing]
    RoleAssignment.objects.bulk_create(
        [RoleAssignment(user_id=user, unit_id=unit, role=RoleName.PRINCIPAL) for user, unit in missing],
        # A principal added in admin meanwhile is not an error.
        ignore_conflicts=True,
        batch_size=BATCH_SIZE,
    )
    return revoked, len(missing)


def _projects_ensure(unit_pks: Sequence[int], names: dict[int, str]) -> tuple[dict[int, int], int]:
    """Find or create the Calculator project of each unit; returns (unit → project, created)."""
    projects = CarbonProject.objects.filter(report_type=CarbonReportType.CALCULATOR)
    by_unit = dict(projects.values_list("unit_id", "pk"))
    missing = [pk for pk in unit_pks if pk not in by_unit]
    if missing:
        CarbonProject.objects.bulk_create(
            [CarbonProject(unit_id=pk, report_type=CarbonReportType.CALCULATOR, name=names[pk]) for pk in missing],
            ignore_conflicts=True,
            batch_size=BATCH_SIZE,
        )
        by_unit = dict(projects.values_list("unit_id", "pk"))
    return by_unit, len(missing)


def _reports_ensure(year: int, project_by_unit: dict[int, int], unit_pks: Sequence[int]) -> int:
    """Create YEAR's report of each unit's Calculator project where missing; returns how many.

    Uploads of YEAR are refused until the year is provisioned, and other unit_syncs wait on
    the global lock, so nothing else creates these reports meanwhile; ``ignore_conflicts``
    still makes a late one harmless.
    """
    existing = set(CarbonReport.objects.filter(year=year).values_list("project_id", flat=True))
    missing = [(unit, project_by_unit[unit]) for unit in unit_pks if project_by_unit[unit] not in existing]
    CarbonReport.objects.bulk_create(
        [CarbonReport(project_id=project, unit_id=unit, year=year) for unit, project in missing],
        ignore_conflicts=True,
        batch_size=BATCH_SIZE,
    )
    return len(missing)


def _modules_ensure(year: int) -> int:
    """Create the missing modules of every report of YEAR that has fewer than 8; returns how many."""
    module_types = [int(m) for m in ModuleTypeId]
    lacking = CarbonReport.objects.filter(year=year).annotate(module_count=Count("modules")).filter(module_count__lt=8)
    report_ids = list(lacking.values_list("pk", flat=True))
    if not report_ids:
        return 0
    present = set(
        CarbonReportModule.objects.filter(report__in=lacking.values("pk")).values_list("report_id", "module_type_id")
    )
    missing = [(report, module) for report in report_ids for module in module_types if (report, module) not in present]
    CarbonReportModule.objects.bulk_create(
        [CarbonReportModule(report_id=report, module_type_id=module) for report, module in missing],
        ignore_conflicts=True,
        batch_size=BATCH_SIZE,
    )
    return len(missing)


def _year_stamp(year: int, source: str) -> None:
    """Mark YEAR provisioned (uploads open); a year created outside the API gets its row here."""
    YearConfiguration.objects.get_or_create(
        year=year, defaults={"config": year_configuration_default_config(), "unit_source": source[:512]}
    )
    now = timezone.now()
    YearConfiguration.objects.filter(year=year).update(
        configuration_completed=now, unit_source=source[:512], updated_at=now
    )
