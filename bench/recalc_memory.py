"""Peak memory and speed of one emission_recalc over N entries (default 100,000).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/carbon_bench_recalc python bench/recalc_memory.py [N]

Expects an empty database in DATABASE_URL. Seeds 200 units with N equipment entries and one
matching factor, then recalculates them in one transaction in a fresh process, so the peak
RSS it prints is the recalculation's own. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghij")


def main() -> None:
    import django

    django.setup()
    if sys.argv[1:2] == ["--recalc-only"]:
        recalc()
        return
    seed(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    subprocess.run([sys.executable, __file__, "--recalc-only"], check=True)


def seed(entries: int) -> None:
    from django.core.management import call_command

    from carbon.choices import CarbonReportType, DataEntrySource
    from carbon.compute import classification_key
    from carbon.models import CarbonProject, CarbonReport, CarbonReportModule, DataEntry, Factor, Unit

    call_command("migrate", verbosity=0)
    units = Unit.objects.bulk_create(
        [Unit(institutional_code=f"b{i}", institutional_id=f"bcf{i}", name=f"B{i}", level=4) for i in range(200)]
    )
    projects = CarbonProject.objects.bulk_create(
        [CarbonProject(unit=u, report_type=CarbonReportType.CALCULATOR) for u in units]
    )
    reports = CarbonReport.objects.bulk_create(
        [CarbonReport(project=p, unit=u, year=2025) for p, u in zip(projects, units, strict=True)]
    )
    modules = CarbonReportModule.objects.bulk_create([CarbonReportModule(report=r, module_type_id=4) for r in reports])
    Factor.objects.create(
        data_entry_type_id=11, emission_type_id=80200, year=2025, classification={"equipment_class": "monitors"},
        classification_key=classification_key({"equipment_class": "monitors"}),
        values={"active_power_w": 100, "standby_power_w": 10, "active_usage_hours_per_week": 40,
                "standby_usage_hours_per_week": 128, "ef_kg_co2eq_per_kwh": 0.1},
    )  # fmt: skip
    batch = []
    for i in range(entries):
        crm = modules[i % len(modules)]
        data = {"equipment_id": str(i), "name": "EIZO", "equipment_class": "Monitors"}
        batch.append(
            DataEntry(carbon_report_module=crm, data_entry_type_id=11, module_type_id=4, year=2025, data=data,
                      unit_id=units[i % len(units)].pk, source=DataEntrySource.CSV_MODULE_PER_YEAR)
        )  # fmt: skip
        if len(batch) == 10_000:
            DataEntry.objects.bulk_create(batch)
            batch = []
    DataEntry.objects.bulk_create(batch)


def recalc() -> None:
    from django.db import connection, transaction

    from carbon.services import emissions_recalculate

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with transaction.atomic():
        stats = emissions_recalculate(data_entry_type_id=11, year=2025)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "vendor": connection.vendor, "entries": stats.recalculated, "emissions": stats.emissions,
        "seconds": round(elapsed, 2), "entries_per_s": round(stats.recalculated / elapsed),
        "peak_rss_mb_before_recalc": round(before / 1024, 1), "peak_rss_mb_after_recalc": round(peak / 1024, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
