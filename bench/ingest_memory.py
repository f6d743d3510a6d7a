"""Peak memory and speed of a per-year equipment upload of N rows (default 1,000,000).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/carbon_bench_ingest python bench/ingest_memory.py [N]

Expects an empty database. Seeds 2,231 units with their 2025 reports and the equipment
factors, writes an N-row equipment file spread over the units, then ingests it twice in a
fresh process (the second upload replaces the first's rows; the peak RSS printed is the
ingest's own). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghij")

UNITS = 2231
CLASSES = ("Monitors", "Laptops", "Printers", "Spectrometers", "Centrifuges")


def main() -> None:
    import django

    django.setup()
    if sys.argv[1:2] == ["--ingest-only"]:
        ingest(Path(sys.argv[2]))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    path = seed(rows)
    subprocess.run([sys.executable, __file__, "--ingest-only", str(path)], check=True)


def seed(rows: int) -> Path:
    from django.core.management import call_command

    from carbon.models import Unit
    from ingestion.services_data import reports_ensure
    from tests.carbon.conftest import make_factor

    call_command("migrate", verbosity=0)
    units = Unit.objects.bulk_create(
        [Unit(institutional_code=f"u{i}", institutional_id=f"{10000 + i}", name=f"U{i}", level=4) for i in range(UNITS)]
    )
    reports_ensure(unit_ids=[u.pk for u in units], year=2025)
    for index, name in enumerate(CLASSES):
        det, emission_type = (11, 80200) if index < 3 else (10, 80100)
        values: dict[str, Any] = {"active_power_w": 50 + index, "standby_power_w": 1, "active_usage_hours_per_week": 40,
                  "standby_usage_hours_per_week": 100, "ef_kg_co2eq_per_kwh": 0.1}  # fmt: skip
        make_factor(det, emission_type, {"equipment_class": name}, **values)
    handle, name = tempfile.mkstemp(suffix=".csv")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("unit_institutional_id,equipment_id,name,equipment_class,active_usage_hours_per_week,"
                  "standby_usage_hours_per_week,note\n")  # fmt: skip
        for i in range(rows):
            out.write(f"{10000 + i % UNITS},E{i},Device {i},{CLASSES[i % 5]},{i % 60},{(i * 7) % 100},\n")
    return Path(name)


def ingest(path: Path) -> None:
    from django.conf import settings
    from django.db import connection, transaction

    from ingestion.services_data import data_csv_ingest

    timings = []
    for _ in range(2):  # the second upload replaces the first one's rows
        started = time.perf_counter()
        with transaction.atomic():
            outcome = data_csv_ingest(
                path=path, module_type_id=4, year=2025, job_id=1, max_row_errors=100,
                batch_size=settings.INGEST_COPY_BATCH_SIZE,
            )  # fmt: skip
        timings.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "vendor": connection.vendor, "rows": outcome.rows_processed, "skipped": outcome.rows_skipped,
        "replaced": outcome.rows_deleted, "seconds_first": round(timings[0], 1),
        "seconds_replace": round(timings[1], 1), "rows_per_s": round(outcome.rows_processed / timings[0]),
        "peak_rss_mb": round(peak / 1024, 1), "file_mb": round(path.stat().st_size / 1e6, 1),
    }))  # fmt: skip
    path.unlink()


if __name__ == "__main__":
    main()
