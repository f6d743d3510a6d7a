"""The ingest command: a progress line and exit 0 on success; exit 1 with the job's error."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.conf import LazySettings
from django.core.management import CommandError, call_command
from django.utils import timezone

from carbon.models import Unit, YearConfiguration
from tests.carbon.conftest import make_factor

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

DEMO = Path(__file__).resolve().parents[2] / "ingestion" / "demo" / "data"


@pytest.fixture(autouse=True)
def provisioned(settings: LazySettings, tmp_path: Path) -> None:
    settings.FILES_ROOT = tmp_path / "files"
    YearConfiguration.objects.create(year=2025, configuration_completed=timezone.now())
    Unit.objects.create(institutional_code="14270", institutional_id="7918", name="LAB", level=4)
    make_factor(31, 60201, {"unit": "kWh", "name": "natural_gas"}, ef_kg_co2eq_per_unit=0.228)


def test_ingest_shows_progress_and_exits_zero() -> None:
    out = StringIO()
    call_command("ingest", str(DEMO / "energy_combustion.csv"), "--module", "3", "--det", "31", "--year", "2025",
                 "--run-here", stdout=out)  # fmt: skip
    text = out.getvalue()
    assert "[########################] SUCCESS" in text
    assert "emission_recalc" in text
    assert text.splitlines()[-4].startswith("pipeline ")


def test_ingest_of_a_bad_file_exits_one_and_prints_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("unit_institutional_id,name,quantity\n7918,natural_gas,lots\n", encoding="utf-8")
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("ingest", str(bad), "--module", "3", "--det", "31", "--year", "2025", "--run-here", stdout=out)
    assert excinfo.value.returncode == 1
    assert "ended FAILED" in str(excinfo.value)
    assert (
        "ERROR: 0 inserted, 1 skipped — first error: row 2, column quantity: must be a number (got 'lots')"
        in out.getvalue()
    )


def test_sync_units_provisions_a_new_year_from_the_demo_directory() -> None:
    out = StringIO()
    call_command("sync_units", "--year", "2026", "--run-here", stdout=out)
    assert "SUCCESS — Unit sync completed" in out.getvalue()
    assert YearConfiguration.objects.get(year=2026).configuration_completed is not None


def test_recalculate_refuses_while_one_is_active_and_runs_otherwise() -> None:
    from pipelines.choices import JobType
    from pipelines.services import Scope, pipeline_create

    pipeline_create(job_type=JobType.EMISSION_RECALC, scope=Scope(module_type_id=3, data_entry_type_id=31, year=2025))
    with pytest.raises(CommandError) as excinfo:
        call_command("recalculate", "--module", "3", "--det", "31", "--year", "2025", stdout=StringIO())
    assert excinfo.value.returncode == 2
    assert "already active" in str(excinfo.value)
    call_command("recalculate", "--module", "3", "--year", "2025", "--run-here", stdout=StringIO())
