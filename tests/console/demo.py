"""Pipelines that look like a real back office's day, run by the engine's test handlers.

Each one is dispatched through ``services.pipeline_create`` and executed by a real worker
process: the statuses, DAG edges, attempts, workers and status histories on screen are the
engine's own. Only the handlers' words (messages, stats, phases) are scripted, through the
test handler's config (``tests/pipelines/engine_handlers.py``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from carbon.models import User
from pipelines.choices import EntityType, IngestionMethod, JobResult, JobType, TargetType
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import Scope, pipeline_create

YEAR = 2025
EQUIPMENT_CSV = (
    "unit_institutional_id,equipment_id,name,equipment_class,active_usage_hours_per_week,standby_usage_hours_per_week\n"
    "7918,B1,EIZO FlexScan EV2795,Monitors,40,128\n"
    "7918,B2,Dell OptiPlex 7010,Desktops,45,123\n"
)


def per_year(module_type_id: int, *, target: str = TargetType.DATA_ENTRIES, method: str = IngestionMethod.CSV) -> Scope:
    return Scope(
        entity_type=EntityType.MODULE_PER_YEAR,
        ingestion_method=method,
        target_type=target,
        module_type_id=module_type_id,
        year=YEAR,
    )


def dispatch(job_type: str, scope: Scope, config: dict[str, Any], *, user: User | None = None) -> Pipeline:
    return pipeline_create(job_type=job_type, scope=scope, config=config, created_by=user)[0]


def recalc(det: int, message: str, **extra: Any) -> dict[str, Any]:
    """An emission_recalc child of the root, for data-entry type DET."""
    return {
        "job_type": JobType.EMISSION_RECALC,
        "det": det,
        "config": {"steps": 2, "step_seconds": 0.1, "message": message, **extra},
    }


def hold(path: Path, **config: Any) -> dict[str, Any]:
    """Config of a job that keeps running (and reporting progress) until PATH exists."""
    return {"hold_file": str(path), **config}


def phases(names: list[str]) -> list[dict[str, Any]]:
    start = timezone.now() - timedelta(seconds=len(names) * 3)
    out = []
    for i, name in enumerate(names):
        began = start + timedelta(seconds=3 * i)
        out.append(
            {
                "name": name,
                "state": "finished",
                "started_at": began.isoformat(),
                "finished_at": (began + timedelta(seconds=2.6)).isoformat(),
            }
        )
    return out


def finished_day(*, author: User, uploader: User) -> dict[str, Pipeline]:
    """Five pipelines that end SUCCESS, WARNING (a success with a warned job), FAILED and PARTIAL."""
    made: dict[str, Pipeline] = {}
    made["units"] = dispatch(
        JobType.UNIT_SYNC,
        Scope(
            entity_type=EntityType.GLOBAL_PER_YEAR, ingestion_method=IngestionMethod.API, target_type=None, year=YEAR
        ),
        {
            "steps": 4,
            "step_seconds": 0.15,
            "message": "2,231 units synced: 14 created, 2,198 updated, 19 closed; 2,231 carbon reports ensured",
            "meta": {"phases": phases(["fetch_units", "upsert_units", "create_reports", "ensure_modules"])},
        },
        user=author,
    )
    made["factors"] = dispatch(
        JobType.FACTOR_INGEST,
        per_year(3, target=TargetType.FACTORS),
        {
            "steps": 3,
            "step_seconds": 0.1,
            "message": "312 emission factors upserted (buildings, 2025)",
            "meta": {"stats": {"rows_processed": 312, "factors_upserted": 312, "rows_skipped": 0}},
            "chain": [
                recalc(30, "4,118 building entries recalculated"),
                recalc(31, "596 combustion entries recalculated"),
            ],
        },
        user=author,
    )
    with transaction.atomic():
        equipment = dispatch(
            JobType.CSV_INGEST,
            per_year(4),
            {
                "steps": 4,
                "step_seconds": 0.15,
                "result": JobResult.WARNING,
                "message": "3,412 rows inserted, 6 rows skipped: unknown equipment class "
                "(first: row 118, 'Cryostat XL')",
                "chain": [
                    recalc(10, "1,204 scientific equipment entries recalculated"),
                    recalc(11, "1,873 IT equipment entries recalculated"),
                    recalc(12, "335 other equipment entries recalculated"),
                ],
            },
            user=uploader,
        )
        root = IngestionJob.objects.get(pipeline=equipment, parent=None)
        processed = f"processed/{root.pk}/equipment-2025.csv"
        target = Path(settings.FILES_ROOT) / processed
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(EQUIPMENT_CSV, encoding="utf-8")
        config = root.meta["config"]
        config["meta"] = {
            "processed_file_path": processed,
            "stats": {"rows_processed": 3418, "inserted": 3412, "rows_skipped": 6, "row_errors_count": 6},
        }
        IngestionJob.objects.filter(pk=root.pk).update(meta={**root.meta, "config": config})
    made["equipment"] = equipment
    made["travel"] = dispatch(
        JobType.CSV_INGEST,
        Scope(
            entity_type=EntityType.MODULE_UNIT_SPECIFIC,
            ingestion_method=IngestionMethod.CSV,
            target_type=TargetType.DATA_ENTRIES,
            module_type_id=2,
            year=YEAR,
            unit_id=14270,
            unit_code="14270",
        ),
        {
            "steps": 2,
            "step_seconds": 0.1,
            "fail": "Row 14: departure 'XQZ' is not a known IATA airport code. 27 rows rejected; nothing was "
            "imported (a unit-specific upload is all or nothing).",
        },
        user=uploader,
    )
    made["purchases"] = dispatch(
        JobType.CSV_INGEST,
        per_year(5),
        {
            "steps": 3,
            "step_seconds": 0.1,
            "message": "8,904 purchase lines inserted",
            "chain": [
                recalc(60, "2,117 scientific equipment purchases recalculated"),
                recalc(
                    64,
                    "",
                    fail="No emission factor for classification 'Services > Catering' (year 2025): "
                    "212 entries left without emissions",
                ),
            ],
        },
        user=uploader,
    )
    return made
