"""Labels of the domain's reference ids, handed to the engine through PIPELINES_LABELS.

Names are the reference system's enum names (``equipment``, ``scientific``), which its
frontend keys translations on; titles are for people. Built from the enumerations, so no query.
"""

from __future__ import annotations

from functools import cache

from carbon.choices import DataEntryTypeId, ModuleTypeId


@cache
def pipeline_labels() -> dict[str, dict[int, tuple[str, str]]]:
    """``{"module": {id: (name, title)}, "data_entry_type": {id: (name, title)}}``."""
    return {
        "module": {int(m): (m.name.lower(), str(m.label)) for m in ModuleTypeId},
        "data_entry_type": {int(d): (d.name.lower(), str(d.label)) for d in DataEntryTypeId},
    }
