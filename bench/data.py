"""The harness's data: a provisioned year of 2,231 units, equipment factors, per-year equipment
files, and a pipeline history built in SQL.

- Units: the EPFL-shaped directory of ``tests/ingestion/test_unit_sync.py`` (1 school, 10
  faculties, 100 institutes, labs; some without cf, some closed), written as the JSON file that
  ``UNIT_SOURCE_URL`` names, and loaded by a real ``unit_sync`` pipeline run in this process —
  which also opens year 2025 to uploads, as in production.
- Factors: six equipment classes over the three equipment types (IT 11, scientific 10,
  other 12), so a per-year file fans out into three ``emission_recalc`` children.
- Files: ``equipment_csv`` writes N rows spread over the units with a cf, every row valid
  (so the rows our ingest writes are exactly the file's rows and the ``\\copy`` ceiling loads
  the same number).
- History: ``history_insert`` adds finished pipelines with ``jobs_per_pipeline`` jobs each
  (root, emission recalcs, aggregation), statuses/kinds/modules/years/units spread like a
  busy year, with one ``INSERT … SELECT generate_series`` per table; ``active_insert`` adds
  RUNNING pipelines whose running job holds a live lease (the reconciler must look at them
  and heal nothing).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from bench.core import BenchEnv, log

YEAR = 2025
EQUIPMENT_MODULE = 4
# (class, data-entry type, emission type, active W, standby W)
EQUIPMENT_CLASSES = (
    ("Monitors", 11, 80200, 30.0, 0.5),
    ("Laptops", 11, 80200, 45.0, 1.0),
    ("Printers", 11, 80200, 250.0, 5.0),
    ("Spectrometers", 10, 80100, 900.0, 60.0),
    ("Centrifuges", 10, 80100, 1200.0, 20.0),
    ("Fridges", 12, 80300, 150.0, 150.0),
)
SUB_CLASSES = ("", "", "standard", "large")
CSV_HEADER = (
    "unit_institutional_id,equipment_id,name,equipment_class,sub_class,"
    "active_usage_hours_per_week,standby_usage_hours_per_week,note\n"
)
# The columns our ingest writes into carbon_dataentry (everything but the generated id).
ENTRY_COLUMNS = (
    "carbon_report_module_id",
    "data_entry_type_id",
    "module_type_id",
    "year",
    "unit_id",
    "data",
    "status",
    "source",
    "source_job_id",
    "created_by_id",
    "created_at",
    "updated_at",
)
EMISSION_COLUMNS = (
    "data_entry_id",
    "carbon_report_module_id",
    "emission_type_id",
    "primary_factor_id",
    "kg_co2eq",
    "additional_value",
    "scope",
    "is_rollup",
    "meta",
    "computed_at",
)
FAKE_OWNER = "worker:bench-history:0"


def units_file_write(env: BenchEnv, count: int) -> int:
    from tests.ingestion.test_unit_sync import directory_units

    units = directory_units(count)
    env.units_file.write_text(json.dumps({"units": units, "count": len(units)}), encoding="utf-8")
    return len(units)


def year_provision(env: BenchEnv, units: int) -> dict[str, Any]:
    """Migrate, then provision YEAR through a real ``unit_sync`` pipeline run here; returns timings."""
    from django.core.management import call_command

    from carbon.models import CarbonReportModule, Unit
    from carbon.services import year_configuration_create
    from pipelines.models import IngestionJob
    from pipelines.worker import WorkerLoop

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrated = time.perf_counter() - started
    units_file_write(env, units)
    _, pipeline = year_configuration_create(year=YEAR)
    loop = WorkerLoop(worker_id="worker:bench-setup:0", once=True)
    loop.register()
    try:
        ran = loop.step()
    finally:
        loop.waker.close()
    job = IngestionJob.objects.get(pipeline=pipeline, parent__isnull=True)
    if not ran or job.result not in ("SUCCESS", "WARNING"):
        raise RuntimeError(f"unit_sync did not succeed: {job.result} {job.status_message}")
    assert job.started_at is not None
    assert job.finished_at is not None
    modules = CarbonReportModule.objects.filter(module_type_id=EQUIPMENT_MODULE, report__year=YEAR).count()
    return {
        "migrate_seconds": round(migrated, 2),
        "unit_sync_seconds": round((job.finished_at - job.started_at).total_seconds(), 3),
        "units": Unit.objects.count(),
        "equipment_modules": modules,
    }


def factors_create() -> None:
    from tests.carbon.conftest import make_factor

    for name, det, emission_type, active_w, standby_w in EQUIPMENT_CLASSES:
        values = {
            "active_power_w": active_w,
            "standby_power_w": standby_w,
            "active_usage_hours_per_week": 40,
            "standby_usage_hours_per_week": 100,
            "ef_kg_co2eq_per_kwh": 0.125,
        }
        make_factor(det, emission_type, {"equipment_class": name}, year=YEAR, **values)


def superuser_create() -> Any:
    from carbon.models import User

    return User.objects.create_superuser(username="bench-admin", email="bench@example.org", password=None)


def unit_cfs() -> list[str]:
    """The cfs of the units that have a Calculator report of YEAR (what a per-year file names)."""
    from carbon.models import CarbonReport

    return sorted(
        cf
        for cf in CarbonReport.objects.filter(year=YEAR).values_list("unit__institutional_id", flat=True).distinct()
        if cf
    )


def equipment_csv(path: Path, rows: int, cfs: list[str], *, seed: int = 42) -> Path:
    """A valid per-year equipment file of ROWS rows over CFS (seeded, so runs are comparable)."""
    rng = random.Random(seed)
    classes = [c[0] for c in EQUIPMENT_CLASSES]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write(CSV_HEADER)
        lines: list[str] = []
        for i in range(rows):
            cf = cfs[i % len(cfs)]
            cls = classes[rng.randrange(len(classes))]
            active = rng.randrange(0, 80)
            standby = rng.randrange(0, 168 - active)
            sub = SUB_CLASSES[i % len(SUB_CLASSES)]
            note = "" if i % 7 else f"room BC {i % 400}"
            lines.append(f"{cf},INV-{i:08d},{cls} model {i % 97},{cls},{sub},{active},{standby},{note}\n")
            if len(lines) == 10_000:
                out.write("".join(lines))
                lines = []
        out.write("".join(lines))
    return path


def upload_prepare(env: BenchEnv, source: Path, name: str) -> str:
    """A hard link of SOURCE under FILES_ROOT/tmp/<name>/ (the ingest moves its upload away)."""
    folder = env.files_root / "tmp" / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    target.unlink(missing_ok=True)
    target.hardlink_to(source)
    return f"tmp/{name}/{source.name}"


def data_tables_truncate() -> None:
    """Empty the entries and emissions tables (the state every ingest measurement starts from)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE carbon_dataentryemission, carbon_dataentry")
        cursor.execute("CHECKPOINT")


# --- Pipeline history in SQL ------------------------------------------------------------------

_PIPELINES_SQL = """
INSERT INTO pipelines_pipeline (
    id, kind, job_types, status, unit_code, expected_recalc, job_count, error_count, has_errors, last_error,
    created_by_id, cancel_requested_at, created_at, started_at, finished_at, updated_at,
    entity_type, target_type, ingestion_method, module_type_id, data_entry_type_id, year, unit_id
)
SELECT
    md5('bench-pipeline-' || i)::uuid,
    CASE WHEN i %% 25 = 0 THEN 'factor_ingest' WHEN i %% 25 = 1 THEN 'module_emission_recalc'
         WHEN i %% 250 = 2 THEN 'unit_sync' ELSE 'csv_ingest' END,
    -- the kinds' bits (rules.JOB_TYPE_BITS) with those of the children _JOBS_SQL gives each
    %(children_bits)s | CASE WHEN i %% 25 = 0 THEN %(bit_factor_ingest)s
         WHEN i %% 25 = 1 THEN %(bit_module_emission_recalc)s
         WHEN i %% 250 = 2 THEN %(bit_unit_sync)s ELSE %(bit_csv_ingest)s END,
    CASE WHEN i %% 100 < 85 THEN 'SUCCESS' WHEN i %% 100 < 93 THEN 'FAILED'
         WHEN i %% 100 < 97 THEN 'PARTIAL' ELSE 'CANCELLED' END,
    CASE WHEN i %% 10 = 0 THEN (40000 + i %% 2000)::text ELSE '' END,
    %(recalcs)s, %(jobs)s,
    CASE WHEN i %% 100 BETWEEN 85 AND 96 THEN 1 ELSE 0 END,
    i %% 100 BETWEEN 85 AND 96,
    CASE WHEN i %% 100 BETWEEN 85 AND 92
         THEN 'Row ' || (2 + i %% 5000) || ': unit_institutional_id: unknown unit ''' || (40000 + i %% 3000) || ''''
         ELSE '' END,
    NULL, NULL,
    %(origin)s::timestamptz + i * %(step)s * interval '1 minute',
    %(origin)s::timestamptz + i * %(step)s * interval '1 minute' + interval '1 second',
    %(origin)s::timestamptz + i * %(step)s * interval '1 minute' + interval '90 seconds',
    %(origin)s::timestamptz + i * %(step)s * interval '1 minute' + interval '90 seconds',
    CASE WHEN i %% 10 = 0 THEN 'MODULE_UNIT_SPECIFIC' ELSE 'MODULE_PER_YEAR' END,
    'DATA_ENTRIES', 'csv', 1 + i %% 8, NULL, 2019 + (i / 7) %% 8,
    CASE WHEN i %% 10 = 0 THEN 1 + i %% 2000 ELSE NULL END
FROM generate_series(%(first)s, %(last)s) AS i
"""

_JOBS_SQL = """
INSERT INTO pipelines_ingestionjob (
    id, pipeline_id, parent_id, job_type, state, result, status_message, status_history, meta,
    attempts, max_attempts, lease_owner, lease_expires_at, cancel_requested_at, run_after,
    closed_fan_in, created_at, started_at, finished_at, updated_at,
    entity_type, target_type, ingestion_method, module_type_id, data_entry_type_id, year, unit_id
)
SELECT
    %(base)s + i * %(jobs)s + j,
    p.id,
    CASE WHEN j = 0 THEN NULL WHEN j = %(jobs)s - 1 THEN %(base)s + i * %(jobs)s + j - 1
         ELSE %(base)s + i * %(jobs)s END,
    CASE WHEN j = 0 THEN p.kind WHEN j = %(jobs)s - 1 THEN 'aggregation' ELSE 'emission_recalc' END,
    'FINISHED',
    CASE WHEN j = 0 AND p.status = 'FAILED' THEN 'ERROR' WHEN j = 1 AND p.status = 'PARTIAL' THEN 'ERROR'
         WHEN p.status = 'CANCELLED' THEN 'CANCELLED' ELSE 'SUCCESS' END,
    CASE WHEN j = 0 AND p.status = 'FAILED' THEN p.last_error
         WHEN j = 0 THEN 'Processed ' || (1000 + i %% 9000) || ' rows: ' || (1000 + i %% 9000) || ' inserted'
         WHEN j = %(jobs)s - 1 THEN 'Aggregation completed: ' || (1 + i %% 300) || ' modules refreshed'
         ELSE 'Emission recalculation completed' END,
    jsonb_build_array(
        jsonb_build_object('ts', p.created_at, 'kind', 'created', 'message', 'Created by system'),
        jsonb_build_object('ts', p.started_at, 'kind', 'claim', 'message', 'Claimed by worker:host:1 (attempt 1 of 3)'),
        jsonb_build_object('ts', p.finished_at, 'kind', 'terminal', 'message', 'Done', 'state', 'FINISHED')
    ),
    CASE WHEN j = 0
         THEN jsonb_build_object('config', jsonb_build_object('file_path', 'tmp/x/equipment.csv'),
                                 'stats', jsonb_build_object('rows_processed', 1000 + i %% 9000, 'rows_skipped', 0))
         ELSE jsonb_build_object('config', '{}'::jsonb) END,
    1, 3, NULL, NULL, NULL, NULL,
    j = %(jobs)s - 2,
    p.created_at, p.started_at + j * interval '1 second', p.finished_at, p.finished_at,
    p.entity_type, p.target_type, p.ingestion_method, p.module_type_id,
    CASE WHEN j BETWEEN 1 AND %(jobs)s - 2 THEN 10 + j ELSE NULL END, p.year, p.unit_id
FROM generate_series(%(first)s, %(last)s) AS i
JOIN pipelines_pipeline p ON p.id = md5('bench-pipeline-' || i)::uuid
CROSS JOIN generate_series(0, %(jobs)s - 1) AS j
"""

_ACTIVE_PIPELINES_SQL = """
INSERT INTO pipelines_pipeline (
    id, kind, job_types, status, unit_code, expected_recalc, job_count, error_count, has_errors, last_error,
    created_at, started_at, finished_at, updated_at,
    entity_type, target_type, ingestion_method, module_type_id, data_entry_type_id, year, unit_id
)
SELECT md5('bench-active-' || i)::uuid, 'csv_ingest', %(bit_csv_ingest)s | %(bit_emission_recalc)s,
       'RUNNING', '', %(recalcs)s, %(jobs)s - 1, 0, false, '',
       now() - interval '10 minutes' + i * interval '1 second', now() - interval '10 minutes', NULL, now(),
       'MODULE_PER_YEAR', 'DATA_ENTRIES', 'csv', 1 + i %% 8, NULL, 2024, NULL
FROM generate_series(1, %(count)s) AS i
"""

_ACTIVE_JOBS_SQL = """
INSERT INTO pipelines_ingestionjob (
    id, pipeline_id, parent_id, job_type, state, result, status_message, status_history, meta,
    attempts, max_attempts, lease_owner, lease_expires_at, closed_fan_in,
    created_at, started_at, finished_at, updated_at,
    entity_type, target_type, ingestion_method, module_type_id, data_entry_type_id, year, unit_id
)
SELECT %(base)s + i * %(jobs)s + j, p.id,
       CASE WHEN j = 0 THEN NULL ELSE %(base)s + i * %(jobs)s END,
       CASE WHEN j = 0 THEN 'csv_ingest' ELSE 'emission_recalc' END,
       CASE WHEN j = %(jobs)s - 2 THEN 'RUNNING' ELSE 'FINISHED' END,
       CASE WHEN j = %(jobs)s - 2 THEN NULL ELSE 'SUCCESS' END,
       CASE WHEN j = %(jobs)s - 2 THEN 'Recalculating emissions… 10/100' ELSE 'Done' END,
       '[]'::jsonb, '{"config": {}}'::jsonb, 1, 3,
       CASE WHEN j = %(jobs)s - 2 THEN %(owner)s END,
       CASE WHEN j = %(jobs)s - 2 THEN now() + interval '1 day' END,
       false, p.created_at, p.started_at, CASE WHEN j = %(jobs)s - 2 THEN NULL ELSE p.started_at END, now(),
       p.entity_type, p.target_type, p.ingestion_method, p.module_type_id, NULL, p.year, NULL
FROM generate_series(1, %(count)s) AS i
JOIN pipelines_pipeline p ON p.id = md5('bench-active-' || i)::uuid
CROSS JOIN generate_series(0, %(jobs)s - 2) AS j
"""

# Each generated pipeline's search_text from its jobs, as rules.pipeline_search_text writes it
# (every message once, in job order); history_insert checks a sample against the rule.
_SEARCH_TEXT_SQL = """
UPDATE pipelines_pipeline p SET search_text = m.text
FROM (
    SELECT pipeline_id, string_agg(status_message, %(separator)s ORDER BY first_id) AS text
    FROM (
        SELECT pipeline_id, status_message, min(id) AS first_id
        FROM pipelines_ingestionjob
        WHERE id BETWEEN %(base)s + %(first)s * %(jobs)s AND %(base)s + %(last)s * %(jobs)s + %(jobs)s - 1
          AND status_message <> ''
        GROUP BY 1, 2
    ) d
    GROUP BY 1
) m
WHERE p.id = m.pipeline_id
"""

# Job ids of the generated rows start far above the ids real pipelines use.
HISTORY_JOB_BASE = 100_000_000
ACTIVE_JOB_BASE = 90_000_000
HISTORY_ORIGIN = "2025-01-01T00:00:00+00:00"
HISTORY_STEP_MINUTES = 5  # between two generated pipelines (see _PIPELINES_SQL)


def history_insert(*, first: int, last: int, jobs_per_pipeline: int) -> float:
    """Finished pipelines FIRST..LAST (inclusive) with their jobs; returns the seconds it took."""
    from django.db import connection, transaction

    from pipelines import rules
    from pipelines.choices import JobType

    params: dict[str, Any] = {
        "first": first,
        "last": last,
        "jobs": jobs_per_pipeline,
        "recalcs": jobs_per_pipeline - 2,
        "base": HISTORY_JOB_BASE,
        "separator": rules.SEARCH_SEPARATOR,
        "origin": HISTORY_ORIGIN,
        "step": HISTORY_STEP_MINUTES,
        **_job_type_bits(),
        "children_bits": rules.job_types_mask(
            [JobType.EMISSION_RECALC] * (jobs_per_pipeline > 2) + [JobType.AGGREGATION] * (jobs_per_pipeline > 1)
        ),
    }
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # Generated rows are consistent by construction: skip their FK triggers (set-up, not a
        # measurement; the indexes are maintained as usual). Local to this transaction.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(_PIPELINES_SQL, params)
        cursor.execute(_JOBS_SQL, params)
        cursor.execute(_SEARCH_TEXT_SQL, params)
    _search_text_check(first, last)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE pipelines_pipeline")
        cursor.execute("ANALYZE pipelines_ingestionjob")
    elapsed = time.perf_counter() - started
    log(f"history: pipelines {first}..{last} inserted in {elapsed:.1f}s")
    return elapsed


def _search_text_check(first: int, last: int) -> None:
    """The generated search_text of a few pipelines equals what the engine would write."""
    from pipelines import rules
    from pipelines.models import Pipeline
    from pipelines.selectors import job_views

    for i in sorted({first, (first + last) // 2, last}):
        pipeline = Pipeline.objects.get(
            pk=uuid.UUID(hashlib.md5(f"bench-pipeline-{i}".encode(), usedforsecurity=False).hexdigest())
        )
        expected = rules.pipeline_search_text(job_views(pipeline.jobs.all()))
        if pipeline.search_text != expected:
            raise RuntimeError(f"generated pipeline {i}: search_text {pipeline.search_text!r}, expected {expected!r}")


def _job_type_bits() -> dict[str, int]:
    from pipelines.rules import JOB_TYPE_BITS

    return {f"bit_{job_type}": bit for job_type, bit in JOB_TYPE_BITS.items()}


def active_insert(*, count: int, jobs_per_pipeline: int) -> None:
    """COUNT RUNNING pipelines, each with one RUNNING recalc holding a lease valid for a day."""
    from django.db import connection, transaction

    params: dict[str, Any] = {
        "count": count,
        "jobs": jobs_per_pipeline,
        "recalcs": jobs_per_pipeline - 2,
        "base": ACTIVE_JOB_BASE,
        "owner": FAKE_OWNER,
        **_job_type_bits(),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_ACTIVE_PIPELINES_SQL, params)
        cursor.execute(_ACTIVE_JOBS_SQL, params)


def vacuum_analyze(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")
