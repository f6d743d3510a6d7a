"""Activity-data CSV ingestion: the 13 formats, replace rules, and the edge-case matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from carbon.choices import DataEntrySource
from carbon.models import CarbonReport, CarbonReportModule, DataEntry, Location, Unit
from ingestion import demo_seed
from ingestion.csvio import CsvError
from ingestion.demo_seed import DATA_FILES
from ingestion.services_data import DataIngestOutcome, IngestRefused, data_csv_ingest
from tests.carbon.conftest import make_factor

pytestmark = pytest.mark.django_db

DEMO = demo_seed.DEMO / "data"

# (file, module, pinned det or None): the samples the demo loads
FORMATS = [(name, module, det) for name, (module, det) in DATA_FILES.items()]


@pytest.fixture
def unit() -> Unit:
    return Unit.objects.create(institutional_code="14270", institutional_id="7918", name="ENAC-IT4R", level=4)


@pytest.fixture
def factors() -> None:
    """One factor per type that the samples need (to route rows, or because the type requires one)."""
    make_factor(31, 60201, {"unit": "kWh", "name": "natural_gas"}, ef_kg_co2eq_per_unit=0.228)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=30, standby_power_w=0.5,
                active_usage_hours_per_week=40, standby_usage_hours_per_week=128, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    make_factor(10, 80100, {"equipment_class": "Spectrometers"}, active_power_w=250, standby_power_w=20,
                active_usage_hours_per_week=10, standby_usage_hours_per_week=158, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    make_factor(61, 90300, {"purchase_institutional_code": "43000000", "purchase_additional_code": "I",
                            "currency": "eur"}, ef_kg_co2eq_per_currency=0.5)  # fmt: skip
    make_factor(63, 90500, {"purchase_institutional_code": "51100000", "purchase_additional_code": "LA05",
                            "currency": "eur"}, ef_kg_co2eq_per_currency=0.41)  # fmt: skip
    make_factor(67, 90901, {"name": "ln2"}, ef_kg_co2eq_per_kg=0.43)
    make_factor(40, 110103, {"service_type": "storage", "provider": "AWS", "currency": "eur"},
                ef_kg_co2eq_per_currency=0.05)  # fmt: skip
    make_factor(41, 110202, {"provider": "Mistral AI", "usage_type": "text"}, ef_kg_co2eq_per_request=1.14)
    make_factor(50, 70200, {"category": "co2", "unit": "kg"}, ef_kg_co2eq_per_unit=1)
    make_factor(70, 100300, {"researchfacility_id": "13057", "researchfacility_name": "SCITAS"},
                use_unit="hours", total_use=50000, kg_co2eq_sum=250000)  # fmt: skip
    make_factor(71, 10020001, {"researchfacility_id": "1321", "researchfacility_name": "CPG",
                               "researchfacility_type": "mice"}, use_unit="housings", total_use=2000)  # fmt: skip


def ingest(path: Path, module: int, det: int | None = None, *, crm: int | None = None, **kw: Any) -> DataIngestOutcome:
    with transaction.atomic():
        return data_csv_ingest(
            path=path, module_type_id=module, year=2025, data_entry_type_id=det, carbon_report_module_id=crm,
            job_id=kw.pop("job_id", 1), max_row_errors=100, batch_size=kw.pop("batch_size", 1000), **kw,
        )  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "upload.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.usefixtures("factors")
@pytest.mark.parametrize(("name", "module", "det"), FORMATS, ids=[f[0] for f in FORMATS])
def test_every_sample_format_ingests(unit: Unit, name: str, module: int, det: int | None) -> None:
    outcome = ingest(DEMO / name, module, det)
    assert (outcome.rows_processed, outcome.rows_skipped) == (2, 0), outcome.row_errors.items
    entries = list(DataEntry.objects.filter(module_type_id=module).order_by("id"))
    assert len(entries) == 2
    assert {e.unit_id for e in entries} == {unit.pk}
    assert {e.source for e in entries} == {DataEntrySource.CSV_MODULE_PER_YEAR}
    # the unit had no 2025 report: it was created with its 8 modules
    report = CarbonReport.objects.get(unit=unit, year=2025)
    assert CarbonReportModule.objects.filter(report=report).count() == 8
    assert {e.carbon_report_module.report_id for e in entries} == {report.pk}


@pytest.mark.usefixtures("factors")
def test_shared_files_route_each_row_by_its_factor_and_store_normalised_values(unit: Unit) -> None:
    ingest(DEMO / "equipments.csv", 4)
    by_id = {e.data["equipment_id"]: e for e in DataEntry.objects.filter(module_type_id=4)}
    assert by_id["B006198"].data_entry_type_id == 11  # Monitors → IT
    assert by_id["B039072"].data_entry_type_id == 10  # Spectrometers → scientific
    assert by_id["B006198"].data["active_usage_hours_per_week"] == 40
    ingest(DEMO / "travel_planes.csv", 2, 20)
    plane = DataEntry.objects.filter(data_entry_type_id=20).order_by("id").first()
    assert plane is not None
    assert plane.data["cabin_class"] == "economy"
    assert plane.data["number_of_trips"] == 1


@pytest.mark.usefixtures("factors")
def test_counts_rows_with_and_without_factors(unit: Unit) -> None:
    outcome = ingest(DEMO / "external_clouds.csv", 7, 40)
    # storage/AWS has a factor; compute/GCP has none
    assert (outcome.rows_with_factors, outcome.rows_without_factors) == (1, 1)


def test_reupload_replaces_exactly_the_previous_per_year_rows(unit: Unit, tmp_path: Path) -> None:
    header = "unit_institutional_id,name,sius_code,user_institutional_id,fte\n"
    ingest(write(tmp_path, header + "7918,A,53,1,1\n7918,B,53,2,1\n"), 1, 1)
    manual_module = CarbonReportModule.objects.get(report__unit=unit, module_type_id=1)
    DataEntry.objects.create(
        carbon_report_module=manual_module,
        data_entry_type_id=1,
        module_type_id=1,
        year=2025,
        unit=unit,
        data={"user_institutional_id": "9"},
        source=DataEntrySource.USER_MANUAL,
    )
    outcome = ingest(write(tmp_path, header + "7918,C,53,3,0.5\n", "second.csv"), 1, 1, job_id=2)
    assert outcome.rows_deleted == 2
    names = sorted(
        DataEntry.objects.filter(source=DataEntrySource.CSV_MODULE_PER_YEAR).values_list("data__name", flat=True)
    )
    assert names == ["C"]
    assert DataEntry.objects.filter(source=DataEntrySource.USER_MANUAL).count() == 1  # manual rows are kept


def test_unit_specific_reupload_replaces_that_modules_rows_only(unit: Unit, tmp_path: Path) -> None:
    other = Unit.objects.create(institutional_code="2", institutional_id="8000", name="Other", level=4)
    header = "name,sius_code,user_institutional_id,fte\n"
    from ingestion.services_data import reports_ensure

    reports_ensure(unit_ids=[unit.pk, other.pk], year=2025)
    mine = CarbonReportModule.objects.get(report__unit=unit, module_type_id=1)
    theirs = CarbonReportModule.objects.get(report__unit=other, module_type_id=1)
    ingest(write(tmp_path, header + "A,53,1,1\n"), 1, 1, crm=theirs.pk)
    ingest(write(tmp_path, header + "A,53,1,1\nB,53,2,1\n"), 1, 1, crm=mine.pk)
    ingest(write(tmp_path, header + "A,53,1,1\nB,53,2,1\n"), 1, 1, crm=mine.pk)  # the same file again
    assert DataEntry.objects.filter(carbon_report_module=mine).count() == 2  # replaced, not duplicated
    assert DataEntry.objects.filter(carbon_report_module=theirs).count() == 1
    assert set(DataEntry.objects.filter(carbon_report_module=mine).values_list("unit_id", flat=True)) == {unit.pk}


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("7918,A,53,1,abc", "fte", "must be a number (got 'abc')"),
        ('7918,A,53,1,"1,5"', "fte", "use a dot as the decimal separator"),
        ("7918,A,53,1,1.5", "fte", "must be ≤ 1 (got 1.5)"),
        ("7918,A,55,1,1", "sius_code", "must be one of"),
        ("7918,,53,1,1", "name", "is required"),
        ("9999,A,53,1,1", "unit_institutional_id", "unknown unit '9999'"),
        (",A,53,1,1", "unit_institutional_id", "is required"),
        ("7918,A,53,1,1,extra", None, "has more values than the header has columns"),
    ],
)
def test_bad_rows_name_row_column_and_reason(
    unit: Unit, tmp_path: Path, row: str, column: str | None, reason: str
) -> None:
    header = "unit_institutional_id,name,sius_code,user_institutional_id,fte\n"
    outcome = ingest(write(tmp_path, header + "7918,Good,53,0,1\n" + row + "\n"), 1, 1)
    assert outcome.rows_processed == 1
    (error,) = outcome.row_errors.items
    assert (error["row"], error["column"]) == (3, column)
    assert reason in error["reason"]


def test_duplicate_member_in_the_file_is_a_row_error(unit: Unit, tmp_path: Path) -> None:
    header = "unit_institutional_id,name,sius_code,user_institutional_id,fte\n"
    outcome = ingest(write(tmp_path, header + "7918,A,53,42,1\n7918,B,53,42,1\n"), 1, 1)
    assert outcome.row_errors.items == [
        {"row": 3, "column": "user_institutional_id", "reason": "duplicates row 2 for the same unit"}
    ]


def test_a_bad_kg_override_is_a_row_error_and_a_good_one_is_kept(unit: Unit, tmp_path: Path) -> None:
    make_factor(31, 60201, {"unit": "kWh", "name": "natural_gas"}, ef_kg_co2eq_per_unit=0.228)
    header = "unit_institutional_id,name,quantity,kg_co2eq\n"
    outcome = ingest(write(tmp_path, header + "7918,natural_gas,10,5.5\n7918,natural_gas,10,lots\n"), 3, 31)
    assert outcome.row_errors.items == [{"row": 3, "column": "kg_co2eq", "reason": "must be a number (got 'lots')"}]
    assert DataEntry.objects.get().data["__kg_co2eq_override__"] == 5.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "The file is empty"),
        ("unit_institutional_id;name;sius_code;user_institutional_id;fte\n", "';' as its delimiter"),
        ("unit_institutional_id,name,fte\n7918,A,1\n", "Missing required columns: sius_code, user_institutional_id"),
    ],
)
def test_unreadable_files_fail_the_whole_upload(unit: Unit, tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(CsvError, match=message):
        ingest(write(tmp_path, content), 1, 1)


def test_a_header_only_file_inserts_nothing(unit: Unit, tmp_path: Path) -> None:
    header = "unit_institutional_id,name,sius_code,user_institutional_id,fte\n"
    with pytest.raises(IngestRefused, match="The file has a header but no data rows"):
        ingest(write(tmp_path, header), 1, 1)
    with pytest.raises(IngestRefused, match="No unit_institutional_id value in the file"):
        ingest(write(tmp_path, header + ",A,53,1,1\n"), 1, 1)


def test_extra_columns_are_ignored(unit: Unit, tmp_path: Path) -> None:
    text = "comment,unit_institutional_id,name,sius_code,user_institutional_id,fte,position\nx,7918,A,53,1,1,prof\n"
    ingest(write(tmp_path, text), 1, 1)
    assert DataEntry.objects.get().data == {"name": "A", "sius_code": "53", "user_institutional_id": "1", "fte": 1.0}


def test_fail_fast_without_factors(unit: Unit, tmp_path: Path) -> None:
    with pytest.raises(IngestRefused, match="No factors available for module=Building"):
        ingest(DEMO / "energy_combustion.csv", 3, 31)
    with pytest.raises(IngestRefused, match="tells its rows' data-entry type from the factor they match"):
        ingest(DEMO / "equipments.csv", 4)
    with pytest.raises(IngestRefused, match="has several data-entry types; pick one"):
        ingest(DEMO / "travel_planes.csv", 2)


def test_train_stations_are_resolved_and_ambiguity_is_a_row_error(unit: Unit, tmp_path: Path) -> None:
    for key, name in (
        ("train:ch:lausanne", "Lausanne"),
        ("train:ch:geneve:1", "Genève"),
        ("train:ch:geneve:2", "Genève"),
    ):
        Location.objects.create(transport_mode="train", name=name, name_key=name.lower(), country_code="CH",
                                latitude=46, longitude=6, natural_key=key)  # fmt: skip
    outcome = ingest(DEMO / "travel_trains.csv", 2, 21)
    assert outcome.row_errors.items == [
        {"row": 2, "column": "destination_name", "reason": "station 'genève' in CH is ambiguous: 2 matches"}
    ]
    # the second trip's Paris station is unknown: the entry is kept without its key
    (paris,) = DataEntry.objects.all()
    assert paris.data["origin_natural_key"] == "train:ch:lausanne"
    assert "destination_natural_key" not in paris.data
