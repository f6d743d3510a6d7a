"""Factor files: every reference format ingests; uploads upsert in place, never delete, and
chain the recalculations of the types they touched."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.conf import LazySettings

from carbon.models import CarbonProject, CarbonReport, Factor, Unit
from carbon.selectors import stale_factors
from ingestion.files import upload_store
from ingestion.handlers.factors import factor_ingest
from ingestion.services_factors import FactorIngestOutcome, factors_ingest
from pipelines.choices import JobResult, JobType, PipelineStatus
from pipelines.models import IngestionJob, Pipeline
from pipelines.registry import handler_for
from pipelines.services import Scope, pipeline_create
from tests.pipelines.conftest import run_until_idle

DEMO = Path(__file__).resolve().parents[2] / "ingestion" / "demo" / "factors"
YEAR = 2025
engine_db = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(autouse=True)
def files_root(settings: LazySettings, tmp_path: Path) -> Path:
    settings.FILES_ROOT = tmp_path / "files"
    settings.FILES_ROOT.mkdir()
    assert handler_for(JobType.FACTOR_INGEST) is factor_ingest
    return settings.FILES_ROOT


def write(tmp_path: Path, text: str, *, name: str = "factors.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def ingest(path: Path, module: int, det: int | None, *, job_id: int = 1, **kwargs: Any) -> FactorIngestOutcome:
    return factors_ingest(
        path=path,
        module_type_id=module,
        data_entry_type_id=det,
        year=YEAR,
        job_id=job_id,
        max_row_errors=100,
        **kwargs,
    )


def stored(det: int | None = None) -> list[Factor]:
    factors = Factor.objects.filter(year=YEAR)
    return list(factors.filter(data_entry_type_id=det) if det is not None else factors)


def upload(text: str, *, module: int, det: int | None, method: str = "csv") -> tuple[Pipeline, list[IngestionJob]]:
    """Run one factor upload through the engine, to the end of its chain."""
    relative = upload_store(name="factors.csv", chunks=[text.encode()])
    pipeline, _ = pipeline_create(
        job_type=JobType.FACTOR_INGEST,
        scope=Scope(
            module_type_id=module, data_entry_type_id=det, year=YEAR, ingestion_method=method, target_type="FACTORS"
        ),
        config={"file_path": relative},
    )
    run_until_idle()
    pipeline.refresh_from_db()
    return pipeline, list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))


# (file, module, pinned det, {(det, emission type): count})
SAMPLES = [
    ("headcount_member", 1, 1, {(1, t): 1 for t in (10001, 10002, 30004, 30005, 2000401, 20001)}),
    ("headcount_students", 1, 2, {(2, t): 1 for t in (10001, 10002, 30004, 30002, 2000401)}),
    ("travel_planes", 2, 20, {(20, 50200): 5}),
    ("travel_trains", 2, 21, {(21, 50100): 5}),
    ("building_rooms", 3, 30, {(30, 60100): 4}),
    ("building_energycombustions", 3, 31, {(31, 60201): 1, (31, 60204): 1, (31, 60202): 1, (31, 60203): 1}),
    ("buildings_greyenergy", 3, 32, {(32, 60300): 3}),
    ("equipments", 4, None, {(10, 80100): 2, (11, 80200): 2, (12, 80300): 1}),
    ("purchases_common", 5, None, {(61, 90300): 2, (63, 90500): 1, (62, 90400): 1, (64, 90600): 1}),
    ("purchases_additional", 5, 67, {(67, 90901): 1, (67, 90900): 2}),
    ("external_clouds", 7, 40, {(40, 110103): 1, (40, 110102): 1, (40, 110101): 1}),
    ("external_ai", 7, 41, {(41, 110202): 1, (41, 110204): 1, (41, 110203): 1}),
    ("processemissions", 8, 50, {(50, 70200): 1, (50, 70400): 2, (50, 70100): 1, (50, 70300): 1}),
    ("researchfacilities_common", 6, 70, {(70, 100300): 1, (70, 100100): 1}),
    ("researchfacilities_animals", 6, 71, {(71, 10020001): 1, (71, 10020002): 1}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "module", "det", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_every_reference_sample_ingests(name: str, module: int, det: int | None, expected: dict[Any, int]) -> None:
    outcome = ingest(DEMO / f"{name}.csv", module, det)
    assert outcome.row_errors.items == []
    factors = stored()
    assert Counter((f.data_entry_type_id, f.emission_type_id) for f in factors) == expected
    assert outcome.factors_created == len(factors) == outcome.rows_processed
    assert outcome.dets_touched == {d for d, _ in expected}
    assert {f.last_seen_job_id for f in factors} == {1}


@pytest.mark.django_db
def test_classifications_are_normalised_and_values_typed() -> None:
    ingest(DEMO / "travel_trains.csv", 2, 21)
    row = Factor.objects.get(classification_key="country_code=row")
    assert row.classification == {"country_code": "row"}
    assert row.values == {"ef_kg_co2eq_per_km": 0.035}
    ingest(DEMO / "building_rooms.csv", 3, 30)
    auditorium = Factor.objects.get(data_entry_type_id=30, classification_key="building_name=cm|room_type=auditoriums")
    # "elec" is stored as the normalised "electric"; the blank conversion factor as its default.
    assert auditorium.values["energy_type"] == "electric"
    assert auditorium.values["conversion_factor"] == 1.0
    ingest(DEMO / "equipments.csv", 4, None)
    monitors = Factor.objects.get(data_entry_type_id=11, classification_key="equipment_class=monitors")
    assert monitors.classification == {"equipment_class": "monitors"}
    assert monitors.values["active_usage_hours_per_week"] == 40
    assert isinstance(monitors.values["active_usage_hours_per_week"], int)
    ingest(DEMO / "researchfacilities_common.csv", 6, 70)
    cibm = Factor.objects.get(data_entry_type_id=70, classification__researchfacility_id="13101")
    assert cibm.classification == {"researchfacility_id": "13101", "researchfacility_name": "cibm-ge"}
    # An empty optional value is absent, not stored as "" or null.
    assert cibm.values == {"use_unit": "hours", "total_use": 4000.0}


@pytest.mark.django_db
def test_re_upload_updates_in_place_and_stamps_the_job(tmp_path: Path) -> None:
    ingest(DEMO / "travel_trains.csv", 2, 21, job_id=1)
    before = {f.classification_key: f.pk for f in stored(21)}
    text = "country_code,ef_kg_co2eq_per_km\n ch ,0.009\nRoW,0.035\nFR,0.0037\nDE,0.032\nIT,0.028\n"
    outcome = ingest(write(tmp_path, text), 2, 21, job_id=2)
    assert (outcome.factors_created, outcome.factors_updated) == (0, 5)
    after = stored(21)
    assert {f.classification_key: f.pk for f in after} == before
    assert {f.last_seen_job_id for f in after} == {2}
    assert Factor.objects.get(pk=before["country_code=ch"]).values == {"ef_kg_co2eq_per_km": 0.009}


@pytest.mark.django_db
def test_a_factor_left_out_is_kept(tmp_path: Path) -> None:
    ingest(DEMO / "travel_trains.csv", 2, 21, job_id=1)
    outcome = ingest(write(tmp_path, "country_code,ef_kg_co2eq_per_km\nCH,0.0075\n"), 2, 21, job_id=2)
    assert (outcome.factors_created, outcome.factors_updated) == (0, 1)
    assert Factor.objects.filter(data_entry_type_id=21).count() == 5
    assert Factor.objects.filter(data_entry_type_id=21, last_seen_job_id=1).count() == 4


@pytest.mark.django_db
def test_a_bom_is_accepted(tmp_path: Path) -> None:
    outcome = ingest(write(tmp_path, (DEMO / "travel_trains.csv").read_text(), bom=True), 2, 21)
    assert outcome.row_errors.count == 0
    assert outcome.factors_created == 5


@pytest.mark.django_db
def test_a_bad_number_is_a_row_error_naming_row_and_column(tmp_path: Path) -> None:
    text = 'country_code,ef_kg_co2eq_per_km\nCH,0.0075\nFR,"0,0037"\nDE,-1\n'
    outcome = ingest(write(tmp_path, text), 2, 21)
    comma = "must be a number (use a dot as the decimal separator) (got '0,0037')"
    assert outcome.row_errors.items == [
        {"row": 3, "column": "ef_kg_co2eq_per_km", "reason": comma},
        {"row": 4, "column": "ef_kg_co2eq_per_km", "reason": "must be ≥ 0 (got -1)"},
    ]
    assert (outcome.rows_processed, outcome.factors_created, outcome.rows_skipped) == (3, 1, 2)


@pytest.mark.django_db
def test_a_classification_without_emission_type_is_a_row_error(tmp_path: Path) -> None:
    text = (
        "headcount_category,headcount_class,headcount_subclass,unit,number_of_unit_per_fte,ef_kg_co2eq_per_unit\n"
        "food,vegetarian,,meal,100,1.2\n"
        "holidays,beach,,day,5,10\n"
    )
    outcome = ingest(write(tmp_path, text), 1, 1)
    [error] = outcome.row_errors.items
    assert error["row"] == 3
    assert "headcount_category='holidays'" in error["reason"]
    assert "headcount_class='beach'" in error["reason"]
    assert outcome.factors_created == 1


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [1, 1000])
def test_the_later_duplicate_wins(tmp_path: Path, batch_size: int) -> None:
    text = "country_code,ef_kg_co2eq_per_km\nCH,0.1\nFR,0.2\nch,0.3\nCH ,0.4\n"
    outcome = ingest(write(tmp_path, text), 2, 21, batch_size=batch_size)
    assert [(e["row"], e["reason"]) for e in outcome.row_errors.items] == [
        (2, "duplicates row 4 (same identity); the later row is kept"),
        (4, "duplicates row 5 (same identity); the later row is kept"),
    ]
    assert Factor.objects.get(classification_key="country_code=ch").values == {"ef_kg_co2eq_per_km": 0.4}
    assert (outcome.factors_created, outcome.factors_updated, outcome.rows_skipped) == (2, 0, 2)


@pytest.mark.django_db
def test_module_level_rows_are_routed_and_checked(tmp_path: Path) -> None:
    header = (DEMO / "equipments.csv").read_text().splitlines()[0]
    text = f"{header}\nit,Monitors,,30,0.5,40,128,0.1\nlab,Scopes,,1,1,1,1,0.1\n,Fridges,,1,1,1,1,0.1\n"
    outcome = ingest(write(tmp_path, text), 4, None)
    assert [(e["row"], e["column"]) for e in outcome.row_errors.items] == [
        (3, "equipment_category"),
        (4, "equipment_category"),
    ]
    assert [(f.data_entry_type_id, f.emission_type_id) for f in stored()] == [(11, 80200)]


@pytest.mark.django_db
def test_a_pinned_type_refuses_rows_routed_elsewhere(tmp_path: Path) -> None:
    outcome = ingest(DEMO / "equipments.csv", 4, 11)
    assert {f.data_entry_type_id for f in stored()} == {11}
    assert outcome.factors_created == 2
    assert {e["row"] for e in outcome.row_errors.items} == {3, 4, 6}


@pytest.mark.django_db
def test_uploads_without_a_factor_shape_are_refused(tmp_path: Path) -> None:
    path = DEMO / "external_ai.csv"
    with pytest.raises(ValueError, match="no module-level factor file"):
        ingest(path, 7, None)
    with pytest.raises(ValueError, match="does not belong to module"):
        ingest(path, 3, 41)
    with pytest.raises(ValueError, match="not a module"):
        ingest(path, 42, None)
    # A module with a single factor type needs no pinned type.
    assert ingest(DEMO / "processemissions.csv", 8, None).factors_created == 5


@engine_db
def test_engine_upload_chains_one_recalc_per_touched_type(files_root: Path) -> None:
    pipeline, jobs = upload((DEMO / "equipments.csv").read_text(), module=4, det=None)
    root = jobs[0]
    assert (root.job_type, root.result) == (JobType.FACTOR_INGEST, JobResult.SUCCESS)
    assert root.status_message == "Processed 5 rows: 5 factors created, 0 updated, 0 skipped"
    recalcs = [j for j in jobs if j.job_type == JobType.EMISSION_RECALC]
    assert sorted((j.data_entry_type_id, j.module_type_id, j.year, j.parent_id) for j in recalcs) == [
        (10, 4, YEAR, root.pk),
        (11, 4, YEAR, root.pk),
        (12, 4, YEAR, root.pk),
    ]
    assert [j.job_type for j in jobs].count(JobType.AGGREGATION) == 1
    assert pipeline.status == PipelineStatus.SUCCESS
    assert pipeline.expected_recalc == 3
    stats = root.meta["stats"]
    assert (stats["factors_created"], stats["row_errors_count"], root.meta["inserted"]) == (5, 0, 5)
    processed = root.meta["processed_file_path"]
    assert processed == f"processed/{root.pk}/factors.csv"
    assert (files_root / processed).is_file()
    assert {f.last_seen_job_id for f in stored()} == {root.pk}


@engine_db
def test_engine_re_upload_keeps_ids_and_reports_what_it_left_out() -> None:
    _, first = upload((DEMO / "travel_trains.csv").read_text(), module=2, det=21)
    ids = {f.classification_key: f.pk for f in stored(21)}
    _, second = upload("country_code,ef_kg_co2eq_per_km\nCH,0.008\nRoW,0.035\nFR,0.0037\nDE,0.032\n", module=2, det=21)
    assert second[0].result == JobResult.SUCCESS
    assert second[0].status_message == "Processed 4 rows: 0 factors created, 4 updated, 0 skipped"
    assert {f.classification_key: f.pk for f in stored(21)} == ids
    [stale] = stale_factors(year=YEAR)
    assert stale["id"] == ids["country_code=it"]
    assert stale["last_seen_job_id"] == first[0].pk
    assert Factor.objects.get(pk=ids["country_code=ch"]).last_seen_job_id == second[0].pk


@engine_db
def test_engine_all_invalid_file_is_an_error_and_writes_nothing(files_root: Path) -> None:
    pipeline, jobs = upload("country_code,ef_kg_co2eq_per_km\nCH,abc\nFR,\n", module=2, det=21)
    [root] = jobs
    assert root.result == JobResult.ERROR
    assert root.status_message.startswith(
        "ERROR: 0 inserted, 2 skipped — first error: row 2, column ef_kg_co2eq_per_km"
    )
    assert root.meta["stats"]["row_errors_count"] == 2
    assert pipeline.status == PipelineStatus.FAILED
    assert not Factor.objects.exists()
    assert not (files_root / "processed").exists()


@engine_db
def test_engine_partial_file_is_a_warning() -> None:
    _, jobs = upload("country_code,ef_kg_co2eq_per_km\nCH,0.0075\nFR,x\n", module=2, det=21)
    assert jobs[0].result == JobResult.WARNING
    assert jobs[0].status_message == "Processed 2 rows: 1 factors created, 0 updated, 1 skipped"
    assert [j.job_type for j in jobs[1:]] == [JobType.EMISSION_RECALC, JobType.AGGREGATION]


@engine_db
def test_engine_missing_header_or_year_fails_clearly() -> None:
    _, jobs = upload("country,ef\nCH,1\n", module=2, det=21)
    assert jobs[0].result == JobResult.ERROR
    assert "Missing required columns: country_code, ef_kg_co2eq_per_km" in jobs[0].status_message
    _, job = pipeline_create(
        job_type=JobType.FACTOR_INGEST,
        scope=Scope(module_type_id=2, data_entry_type_id=21, ingestion_method="csv", target_type="FACTORS"),
        config={"file_path": upload_store(name="f.csv", chunks=[b"country_code,ef_kg_co2eq_per_km\nCH,1\n"])},
    )
    run_until_idle()
    job.refresh_from_db()
    assert (job.result, job.status_message) == (
        JobResult.ERROR,
        "year is required for a factor upload (factors are per year)",
    )


@engine_db
def test_engine_computed_research_facility_sums() -> None:
    unit = Unit.objects.create(institutional_code="CIBM", institutional_id="13101", name="CIBM-GE", level=4)
    project = CarbonProject.objects.create(unit=unit)
    CarbonReport.objects.create(
        project=project, unit=unit, year=YEAR, stats={"by_emission_type": {"70000": 100.0, "60000": 50.0}}
    )
    upload((DEMO / "researchfacilities_common.csv").read_text(), module=6, det=70)
    pipeline, _ = pipeline_create(
        job_type=JobType.FACTOR_INGEST,
        scope=Scope(
            module_type_id=6, data_entry_type_id=70, year=YEAR, ingestion_method="computed", target_type="FACTORS"
        ),
    )
    run_until_idle()
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))
    # SCITAS has no report (an error), CIBM-GE gets its sum.
    assert jobs[0].result == JobResult.WARNING
    assert [j.job_type for j in jobs[1:]] == [JobType.EMISSION_RECALC, JobType.AGGREGATION]
    cibm = Factor.objects.get(data_entry_type_id=70, classification__researchfacility_id="13101")
    assert cibm.values["kg_co2eq_sum"] == 150.0
    assert cibm.is_computed


@engine_db
def test_engine_computed_needs_a_research_facility_type() -> None:
    pipeline, job = pipeline_create(
        job_type=JobType.FACTOR_INGEST,
        scope=Scope(
            module_type_id=2, data_entry_type_id=21, year=YEAR, ingestion_method="computed", target_type="FACTORS"
        ),
    )
    run_until_idle()
    job.refresh_from_db()
    assert job.result == JobResult.ERROR
    assert "computed factors exist only for data_entry_type_id 70, 71" in job.status_message
