"""A data upload through the engine: dispatch → csv_ingest → emission_recalc → aggregation."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import LazySettings
from django.utils import timezone

from carbon.models import CarbonReportModule, DataEntry, DataEntryEmission, Unit, YearConfiguration
from ingestion.files import files_root, upload_store
from ingestion.services import DispatchInvalid, YearNotProvisioned, upload_dispatch
from pipelines.choices import JobResult, JobType, PipelineStatus, TargetType
from pipelines.models import IngestionJob, Pipeline
from tests.carbon.conftest import make_factor
from tests.pipelines.conftest import run_until_idle

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HEADER = (
    "unit_institutional_id,equipment_id,name,equipment_class,active_usage_hours_per_week,standby_usage_hours_per_week\n"
)


@pytest.fixture(autouse=True)
def year(settings: LazySettings, tmp_path: Path) -> None:
    settings.FILES_ROOT = tmp_path / "files"
    YearConfiguration.objects.create(year=2025, configuration_completed=timezone.now())
    Unit.objects.create(institutional_code="14270", institutional_id="7918", name="LAB", level=4)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=100, standby_power_w=10,
                active_usage_hours_per_week=40, standby_usage_hours_per_week=128, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip


def upload(text: str) -> Pipeline:
    relative = upload_store(name="equipment.csv", chunks=[text.encode()])
    pipeline, _ = upload_dispatch(target_type=TargetType.DATA_ENTRIES, year=2025, module_type_id=4, file_path=relative)
    run_until_idle()
    pipeline.refresh_from_db()
    return pipeline


def test_upload_runs_to_stats_and_files_the_upload() -> None:
    pipeline = upload(HEADER + "7918,B1,EIZO,Monitors,40,128\n7918,B2,EIZO,Monitors,40,128\n")
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))
    assert [(j.job_type, j.result) for j in jobs] == [
        (JobType.CSV_INGEST, JobResult.SUCCESS),
        (JobType.EMISSION_RECALC, JobResult.SUCCESS),
        (JobType.AGGREGATION, JobResult.SUCCESS),
    ]
    assert pipeline.status == PipelineStatus.SUCCESS
    stats = CarbonReportModule.objects.get(report__unit__institutional_id="7918", module_type_id=4).stats
    assert stats is not None
    assert stats["scope2"] == pytest.approx(2 * 27.456)
    root = jobs[0]
    assert root.meta["processed_file_path"] == f"processed/{root.pk}/equipment.csv"
    assert (files_root() / root.meta["processed_file_path"]).is_file()
    assert root.status_message == "Processed 2 rows: 2 inserted (2 with factors, 0 without), 0 skipped"


def test_an_all_invalid_reupload_keeps_the_previous_rows() -> None:
    upload(HEADER + "7918,B1,EIZO,Monitors,40,128\n")
    before = list(DataEntry.objects.values_list("id", flat=True))
    emissions = DataEntryEmission.objects.count()
    pipeline = upload(HEADER + "7918,B1,EIZO,Monitors,400,128\n9999,B2,EIZO,Monitors,1,1\n")
    (job,) = IngestionJob.objects.filter(pipeline=pipeline)
    assert (pipeline.status, job.result) == (PipelineStatus.FAILED, JobResult.ERROR)
    assert job.status_message == (
        "ERROR: 0 inserted, 2 skipped — first error: row 2, column active_usage_hours_per_week: must be ≤ 168 (got 400)"
    )
    assert job.meta["stats"]["row_errors_count"] == 2
    assert list(DataEntry.objects.values_list("id", flat=True)) == before
    assert DataEntryEmission.objects.count() == emissions


def test_a_file_error_fails_the_job_with_its_reason() -> None:
    pipeline = upload("unit_institutional_id;equipment_id\n7918;B1\n")
    (job,) = IngestionJob.objects.filter(pipeline=pipeline)
    assert job.result == JobResult.ERROR
    assert job.status_message == "The file uses ';' as its delimiter; save it with ',' between columns"


def test_dispatch_refuses_an_unprovisioned_year_and_paths_outside_uploads() -> None:
    relative = upload_store(name="x.csv", chunks=[b"a\n"])
    with pytest.raises(YearNotProvisioned, match="Year 2030 is not yet provisioned"):
        upload_dispatch(target_type=TargetType.DATA_ENTRIES, year=2030, module_type_id=4, file_path=relative)
    with pytest.raises(DispatchInvalid, match="must be relative"):
        upload_dispatch(target_type=TargetType.DATA_ENTRIES, year=2025, module_type_id=4, file_path="/etc/passwd")
    with pytest.raises(DispatchInvalid, match="must start with tmp/"):
        upload_dispatch(target_type=TargetType.DATA_ENTRIES, year=2025, module_type_id=4, file_path="processed/1/x")
    assert not Pipeline.objects.exists()
