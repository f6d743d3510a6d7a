"""Load the reference enumerations (module types, data-entry types, emission-type tree).

Idempotent: rows are upserted by id, so a later migration that appends ids to
``carbon.reference_data`` can call ``reference_rows_sync`` again.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def reference_rows_sync(apps: Any, schema_editor: Any) -> None:
    from carbon.choices import DataEntryTypeId, ModuleTypeId
    from carbon.reference_data import DATA_ENTRY_TYPE_MODULE, EMISSION_TYPES

    module_type = apps.get_model("carbon", "ModuleType")
    data_entry_type = apps.get_model("carbon", "DataEntryType")
    emission_type = apps.get_model("carbon", "EmissionType")
    for module in ModuleTypeId:
        module_type.objects.update_or_create(
            id=module.value, defaults={"code": module.name.lower(), "label": module.label}
        )
    for det in DataEntryTypeId:
        data_entry_type.objects.update_or_create(
            id=det.value,
            defaults={
                "code": det.name.lower(),
                "label": det.label,
                "module_type_id": DATA_ENTRY_TYPE_MODULE[det].value,
            },
        )
    # Parents come before their children in EMISSION_TYPES.
    for row in EMISSION_TYPES:
        emission_type.objects.update_or_create(
            id=row.id,
            defaults={
                "code": row.code,
                "parent_id": row.parent_id,
                "scope": row.scope.value if row.scope else None,
                "category": row.category.value if row.category else None,
                "is_rollup": row.is_rollup,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("carbon", "0001_initial")]

    operations = [migrations.RunPython(reference_rows_sync, migrations.RunPython.noop)]
