"""The data ingest's fast paths: rows streamed into COPY batch by batch, progress and
cancellation inside a batch, values that need escaping, and the row shapes the compiled
reader handles by position (short rows, blank header cells, surplus values)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import LazySettings
from django.db import transaction
from django.utils import timezone

from carbon.models import DataEntry, Unit, YearConfiguration
from ingestion import services_data
from ingestion.files import upload_store
from ingestion.services import upload_dispatch
from ingestion.services_data import DataIngestOutcome, data_csv_ingest
from pipelines.choices import JobResult, JobType, TargetType
from pipelines.models import IngestionJob
from tests.carbon.conftest import make_factor
from tests.pipelines.conftest import run_until_idle

HEADER = "unit_institutional_id,equipment_id,name,equipment_class,active_usage_hours_per_week,note\n"


def monitors() -> None:
    make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=30, standby_power_w=0.5,
                active_usage_hours_per_week=40, standby_usage_hours_per_week=128, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    make_factor(10, 80100, {"equipment_class": "Spectrometers"}, active_power_w=250, standby_power_w=20,
                active_usage_hours_per_week=10, standby_usage_hours_per_week=158, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip


def ingest(path: Path, det: int | None = None, **kw: Any) -> DataIngestOutcome:
    with transaction.atomic():
        return data_csv_ingest(
            path=path, module_type_id=4, year=2025, data_entry_type_id=det, job_id=kw.pop("job_id", 1),
            max_row_errors=100, batch_size=kw.pop("batch_size", 1000), **kw,
        )  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "upload.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows(count: int, start: int = 0) -> str:
    classes = ("Monitors", "Spectrometers")
    return "".join(f"7918,E{i},Device {i},{classes[i % 2]},{i % 40},\n" for i in range(start, start + count))


@pytest.fixture
def unit(db: None) -> Unit:
    return Unit.objects.create(institutional_code="14270", institutional_id="7918", name="LAB", level=4)


def test_the_copy_fills_every_column_of_an_entry() -> None:
    fields = {f.column for f in DataEntry._meta.concrete_fields if not f.primary_key and f.column}
    columns = services_data._copy_columns()
    assert sorted(columns) == sorted(fields)
    assert len(columns) == len(set(columns))


@pytest.mark.django_db
def test_many_batches_store_every_row_once_and_report_progress(
    unit: Unit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitors()
    monkeypatch.setattr(services_data, "PROGRESS_EVERY", 5)
    seen: list[int] = []
    outcome = ingest(write(tmp_path, HEADER + rows(25)), batch_size=4, progress=seen.append)
    assert (outcome.rows_read, outcome.rows_processed, outcome.batches) == (25, 25, 7)
    assert seen == [5, 10, 15, 20, 25]
    assert (outcome.rows_with_factors, outcome.rows_without_factors) == (25, 0)
    stored = {e.data["equipment_id"]: e for e in DataEntry.objects.all()}
    assert sorted(stored) == sorted(f"E{i}" for i in range(25))
    assert {e.data_entry_type_id for k, e in stored.items() if int(k[1:]) % 2} == {10}
    assert stored["E3"].data == {"equipment_id": "E3", "name": "Device 3", "equipment_class": "Spectrometers",
                                 "active_usage_hours_per_week": 3}  # fmt: skip
    entry = stored["E3"]
    assert (entry.module_type_id, entry.year, entry.source, entry.source_job_id, entry.status) == (4, 2025, 1, 1, 0)
    assert entry.created_at is not None
    assert entry.updated_at is not None


class Cancelled(Exception):
    pass


@pytest.mark.django_db
def test_a_cancellation_inside_a_batch_changes_nothing(
    unit: Unit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitors()
    ingest(write(tmp_path, HEADER + rows(3)))
    before = sorted(DataEntry.objects.values_list("id", "data"))
    monkeypatch.setattr(services_data, "PROGRESS_EVERY", 5)

    def cancel(done: int) -> None:
        if done == 10:  # inside the third batch of 4, while its COPY is open on PostgreSQL
            raise Cancelled

    with pytest.raises(Cancelled):
        ingest(write(tmp_path, HEADER + rows(12, start=100), "second.csv"), batch_size=4, progress=cancel, job_id=2)
    assert sorted(DataEntry.objects.values_list("id", "data")) == before  # the replace was rolled back too


@pytest.mark.django_db
def test_values_that_need_escaping_are_stored_as_read(unit: Unit, tmp_path: Path) -> None:
    monitors()
    name = 'Say "hi" \\ back\\slash \\N é ü 漢 \\t'
    quoted = '"' + name.replace('"', '""') + '"'
    text = HEADER + f'7918,E1,{quoted},Monitors,1,"multi\nline\tnote"\n'
    outcome = ingest(write(tmp_path, text))
    assert outcome.row_errors.items == []
    (entry,) = DataEntry.objects.all()
    assert entry.data["name"] == name
    assert entry.data["note"] == "multi line note"  # whitespace collapsed, as parse does


@pytest.mark.django_db
def test_short_rows_blank_header_cells_and_surplus_values(unit: Unit, tmp_path: Path) -> None:
    monitors()
    text = (
        "unit_institutional_id,equipment_id,name,equipment_class,,note\n"
        "7918,E1,A,Monitors,,\n"  # the blank-named column is empty: fine
        "7918,E2,B,Monitors,x,\n"  # a value under the blank header cell is reported
        "7918,E3,C,Monitors,,,y\n"  # a surplus value too
        "7918,E4,D,Monitors,,,\n"  # an empty surplus value is not
        "7918,E5,E\n"  # a short row: its missing values are empty
        "7918,E6,F,Monitors\n"
    )
    outcome = ingest(write(tmp_path, text))
    assert outcome.row_errors.items == [
        {"row": 3, "column": None, "reason": "has more values than the header has columns (extra: 'x')"},
        {"row": 4, "column": None, "reason": "has more values than the header has columns (extra: 'y')"},
        {"row": 6, "column": "equipment_class", "reason": "is required"},
    ]
    assert sorted(DataEntry.objects.values_list("data__equipment_id", flat=True)) == ["E1", "E4", "E6"]


@pytest.mark.django_db
def test_overrides_must_be_finite_numbers(unit: Unit, tmp_path: Path) -> None:
    monitors()
    text = "unit_institutional_id,equipment_id,name,equipment_class,kg_co2eq\n"
    text += "7918,E1,A,Monitors, 12.5 \n7918,E2,B,Monitors,nan\n7918,E3,C,Monitors,-inf\n7918,E4,D,Monitors,\n"
    outcome = ingest(write(tmp_path, text))
    assert outcome.row_errors.items == [
        {"row": 3, "column": "kg_co2eq", "reason": "must be a finite number (got 'nan')"},
        {"row": 4, "column": "kg_co2eq", "reason": "must be a finite number (got '-inf')"},
    ]
    data = {e.data["equipment_id"]: e.data for e in DataEntry.objects.all()}
    assert data["E1"]["__kg_co2eq_override__"] == 12.5
    assert "__kg_co2eq_override__" not in data["E4"]


@pytest.mark.django_db
def test_routing_is_remembered_per_kind_but_messages_name_each_row(unit: Unit, tmp_path: Path) -> None:
    monitors()
    text = HEADER + "7918,E1,A,Toasters,1,\n7918,E2,B,toasters,2,\n7918,E3,C,Monitors,3,\n7918,E4,D,MONITORS ,4,\n"
    outcome = ingest(write(tmp_path, text))
    assert [e["reason"] for e in outcome.row_errors.items] == [
        "no factor of 2025 matches this row (equipment_id=E1, equipment_class=Toasters, "
        "active_usage_hours_per_week=1), so its data-entry type is unknown",
        "no factor of 2025 matches this row (equipment_id=E2, equipment_class=toasters, "
        "active_usage_hours_per_week=2), so its data-entry type is unknown",
    ]
    assert sorted(DataEntry.objects.values_list("data_entry_type_id", flat=True)) == [11, 11]


@pytest.mark.django_db
def test_a_pinned_type_counts_rows_by_the_factor_they_match(unit: Unit, tmp_path: Path) -> None:
    monitors()
    outcome = ingest(write(tmp_path, HEADER + "7918,E1,A,Monitors,1,\n7918,E2,B,Toasters,1,\n"), det=11)
    assert (outcome.rows_processed, outcome.rows_with_factors, outcome.rows_without_factors) == (2, 1, 1)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_progress_through_the_engine_while_batches_stream(
    settings: LazySettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the progress write goes through the jobs connection while the data
    connection is inside a batch's COPY; on SQLite it goes between rows."""
    settings.FILES_ROOT = tmp_path / "files"
    settings.INGEST_COPY_BATCH_SIZE = 4
    monkeypatch.setattr(services_data, "PROGRESS_EVERY", 3)
    YearConfiguration.objects.create(year=2025, configuration_completed=timezone.now())
    Unit.objects.create(institutional_code="14270", institutional_id="7918", name="LAB", level=4)
    monitors()
    relative = upload_store(name="equipment.csv", chunks=[(HEADER + rows(10)).encode()])
    pipeline, _ = upload_dispatch(target_type=TargetType.DATA_ENTRIES, year=2025, module_type_id=4, file_path=relative)
    run_until_idle()
    job = IngestionJob.objects.get(pipeline=pipeline, job_type=JobType.CSV_INGEST)
    assert job.result == JobResult.SUCCESS
    assert job.meta["stats"]["batches_processed"] == 3
    assert [h["message"] for h in job.status_history if h["message"].startswith("Read ")] == [
        "Read 3 rows",
        "Read 6 rows",
        "Read 9 rows",
    ]
    assert DataEntry.objects.count() == 10
