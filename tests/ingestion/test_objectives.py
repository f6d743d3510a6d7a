"""Reduction objectives: the synchronous all-or-nothing upload and the asynchronous job."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import LazySettings
from django.utils import timezone

from carbon.models import YearConfiguration
from carbon.services import year_configuration_default_config
from ingestion.files import upload_store
from ingestion.services import upload_dispatch
from ingestion.services_objectives import ObjectivesInvalid, objectives_upload
from pipelines.choices import JobResult, TargetType
from pipelines.models import IngestionJob
from tests.pipelines.conftest import run_until_idle


@pytest.fixture
def configured() -> None:
    YearConfiguration.objects.create(
        year=2025, configuration_completed=timezone.now(), config=year_configuration_default_config()
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "objectives.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
def test_synchronous_upload_replaces_the_category(tmp_path: Path) -> None:
    path = write(tmp_path, "year,category,co2\n2019,energy,12345.5\n2019,travel,8000\n")
    assert objectives_upload(year=2025, category="footprint", path=path, file_path="x") == 2
    objectives = YearConfiguration.objects.get(year=2025).config["reduction_objectives"]
    assert objectives["institutional_footprint"] == [
        {"year": 2019, "category": "energy", "co2": 12345.5},
        {"year": 2019, "category": "travel", "co2": 8000.0},
    ]
    assert objectives["files"]["institutional_footprint"]["rows_processed"] == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
def test_synchronous_upload_is_all_or_nothing_with_row_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "scenario,year,reduction_percentage\nbase,2030,0.2\nwild,2030,1.5\n")
    with pytest.raises(ObjectivesInvalid) as excinfo:
        objectives_upload(year=2025, category="scenarios", path=path, file_path="x")
    assert excinfo.value.errors == ["Row 3, field 'reduction_percentage': must be ≤ 1 (got 1.5)"]
    assert YearConfiguration.objects.get(year=2025).config["reduction_objectives"]["unit_scenarios"] == []


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.usefixtures("configured")
def test_the_job_keeps_valid_rows_and_reports_the_others(settings: LazySettings, tmp_path: Path) -> None:
    settings.FILES_ROOT = tmp_path / "files"
    relative = upload_store(name="pop.csv", chunks=[b"year,pop\n2024,17500\n2030,-3\n2031,19000\n"])
    pipeline, _ = upload_dispatch(target_type=TargetType.REDUCTION_OBJECTIVES, year=2025, module_type_id=None,
                                  file_path=relative, config={"reduction_objective_type_id": 1})  # fmt: skip
    run_until_idle()
    (job,) = IngestionJob.objects.filter(pipeline=pipeline)
    assert job.result == JobResult.WARNING
    assert job.meta["stats"]["row_errors"] == [{"row": 3, "column": "pop", "reason": "must be ≥ 0 (got -3)"}]
    assert YearConfiguration.objects.get(year=2025).config["reduction_objectives"]["population_projections"] == [
        {"year": 2024, "pop": 17500},
        {"year": 2031, "pop": 19000},
    ]
