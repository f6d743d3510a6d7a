"""The demo year: units, reference data, factors and activity data, loaded through real pipelines.

The bundled files under ``ingestion/demo/`` are the reference system's samples; the activity
data is spread over every lab of the demo unit directory so the console and the reports have
something to show.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from carbon.models import Unit
from ingestion.files import upload_store
from ingestion.services import upload_dispatch
from ingestion.services_rates import currency_rates_load
from pipelines.choices import TargetType
from pipelines.models import Pipeline

DEMO = Path(__file__).resolve().parent / "demo"

# file → (module, data-entry type or None for a module-level file)
FACTOR_FILES: dict[str, tuple[int, int | None]] = {
    "headcount_member.csv": (1, 1),
    "headcount_students.csv": (1, 2),
    "travel_planes.csv": (2, 20),
    "travel_trains.csv": (2, 21),
    "building_rooms.csv": (3, 30),
    "building_energycombustions.csv": (3, 31),
    "buildings_greyenergy.csv": (3, 32),
    "equipments.csv": (4, None),
    "purchases_common.csv": (5, None),
    "purchases_additional.csv": (5, 67),
    "external_clouds.csv": (7, 40),
    "external_ai.csv": (7, 41),
    "processemissions.csv": (8, 50),
    "researchfacilities_common.csv": (6, 70),
    "researchfacilities_animals.csv": (6, 71),
}
REFERENCE_FILES: dict[str, tuple[int, int | None]] = {
    "locations_planes.csv": (2, 20),
    "locations_trains.csv": (2, 21),
    "building_rooms.csv": (3, 30),
}
DATA_FILES: dict[str, tuple[int, int | None]] = {
    "headcount_member.csv": (1, 1),
    "travel_planes.csv": (2, 20),
    "travel_trains.csv": (2, 21),
    "building_rooms.csv": (3, 30),
    "energy_combustion.csv": (3, 31),
    "equipments.csv": (4, None),
    "purchases_common.csv": (5, None),
    "purchases_additional.csv": (5, 67),
    "external_clouds.csv": (7, 40),
    "external_ai.csv": (7, 41),
    "processemissions.csv": (8, 50),
    "researchfacilities_common.csv": (6, 70),
    "researchfacilities_animals.csv": (6, 71),
}

Wait = Callable[[Pipeline], str]


def demo_uploads(*, year: int, wait: Wait) -> list[Pipeline]:
    """Reference data, then factors, then activity data — each waited for, so the data finds
    its factors and stations (the engine would run them correctly in any order, but the
    fail-fast guards refuse data whose factors are not there yet)."""
    currency_rates_load(path=DEMO / "currency_rates.csv", source="demo")
    pipelines = []
    for name, (module, det) in REFERENCE_FILES.items():
        pipelines.append(_upload(DEMO / "reference" / name, TargetType.REFERENCE_DATA, year, module, det, wait))
    for name, (module, det) in FACTOR_FILES.items():
        pipelines.append(_upload(DEMO / "factors" / name, TargetType.FACTORS, year, module, det, wait))
    labs = [cf for cf in Unit.objects.filter(level=4).values_list("institutional_id", flat=True) if cf]
    for name, (module, det) in DATA_FILES.items():
        spread = spread_over_units(DEMO / "data" / name, labs)
        relative = upload_store(name=name, chunks=[spread.encode()])
        pipeline, _ = upload_dispatch(
            target_type=TargetType.DATA_ENTRIES, year=year, module_type_id=module, data_entry_type_id=det,
            file_path=relative,
        )  # fmt: skip
        wait(pipeline)
        pipelines.append(pipeline)
    return pipelines


def _upload(path: Path, target: str, year: int, module: int, det: int | None, wait: Wait) -> Pipeline:
    relative = upload_store(name=path.name, chunks=[path.read_bytes()])
    pipeline, _ = upload_dispatch(
        target_type=target, year=year, module_type_id=module, data_entry_type_id=det, file_path=relative
    )
    wait(pipeline)
    return pipeline


def spread_over_units(path: Path, cfs: list[str], *, tag: str = "", digits: int = 3) -> str:
    """The sample's rows repeated for every unit of CFS, with per-unit person and equipment ids
    (suffixed TAG and the unit's index) so that members and equipment stay unique."""
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for index, cf in enumerate(cfs):
        number = f"{index:0{digits}d}"
        for row in rows:
            copy = {**row, "unit_institutional_id": cf}
            if "user_institutional_id" in copy:
                copy["user_institutional_id"] = f"{copy['user_institutional_id']}{tag}{number}"
            if "equipment_id" in copy:
                copy["equipment_id"] = "-".join(part for part in (copy["equipment_id"], tag, number) if part)
            writer.writerow(copy)
    return out.getvalue()
