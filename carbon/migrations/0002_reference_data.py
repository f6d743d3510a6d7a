"""Load the reference enumerations (module types, data-entry types, emission-type tree).

Idempotent: rows are upserted by id, so a later migration that appends ids to
``carbon.reference_data`` calls ``reference_rows_sync`` again.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def forwards(apps: Any, schema_editor: Any) -> None:
    from carbon.reference_data import reference_rows_sync

    reference_rows_sync(apps)


class Migration(migrations.Migration):
    dependencies = [("carbon", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
