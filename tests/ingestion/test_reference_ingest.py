"""Reference files (airports, stations, rooms): upserted on their natural identity, never
wiped, and followed by the recalculations of the entries they feed."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import LazySettings

from carbon.models import BuildingRoom, DataEntryEmission, Location
from ingestion.files import upload_store
from ingestion.handlers.reference import reference_ingest
from ingestion.services_reference import ReferenceIngestOutcome, locations_ingest, rooms_ingest
from pipelines.choices import EntityType, JobResult, JobType, PipelineStatus
from pipelines.models import IngestionJob, Pipeline
from pipelines.registry import handler_for
from pipelines.services import Scope, pipeline_create
from tests.carbon.conftest import make_entry, make_factor, make_year
from tests.pipelines.conftest import run_until_idle

DEMO = Path(__file__).resolve().parents[2] / "ingestion" / "demo" / "reference"
HEADER = "transport_mode,airport_size,name,latitude,longitude,continent,country_code,municipality,iata_code,keywords\n"
# The reference's own sample: one airport and one station in the same file.
MIXED = (
    HEADER + 'plane,large_airport,Geneva Cointrin International Airport,46.2381,6.1090,EU,CH,Geneva,GVA,"Genève,GVA"\n'
    "train,,Lausanne,46.5167,6.6291,EU,CH,Lausanne,,gare\n"
)
engine_db = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(autouse=True)
def files_root(settings: LazySettings, tmp_path: Path) -> Path:
    settings.FILES_ROOT = tmp_path / "files"
    settings.FILES_ROOT.mkdir()
    assert handler_for(JobType.REFERENCE_INGEST) is reference_ingest
    return settings.FILES_ROOT


def write(tmp_path: Path, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / "reference.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def planes(path: Path) -> ReferenceIngestOutcome:
    return locations_ingest(path=path, transport_mode="plane", max_row_errors=100)


def trains(path: Path) -> ReferenceIngestOutcome:
    return locations_ingest(path=path, transport_mode="train", max_row_errors=100)


def rooms(path: Path) -> ReferenceIngestOutcome:
    return rooms_ingest(path=path, max_row_errors=100)


@pytest.mark.django_db
def test_plane_sample_ingests() -> None:
    outcome = planes(DEMO / "locations_planes.csv")
    assert (outcome.created, outcome.updated, outcome.row_errors.count) == (5, 0, 0)
    assert sorted(Location.objects.values_list("natural_key", flat=True)) == [
        "plane:CDG",
        "plane:GVA",
        "plane:JFK",
        "plane:LHR",
        "plane:ZRH",
    ]
    jfk = Location.objects.get(iata_code="JFK")
    assert (jfk.latitude, jfk.longitude, jfk.country_code, jfk.continent) == (40.6398, -73.7789, "US", "NA")
    assert (jfk.airport_size, jfk.name_key) == ("large_airport", "john f. kennedy international airport")
    assert Location.objects.get(iata_code="GVA").keywords == "Genève,GVA"


@pytest.mark.django_db
def test_train_sample_ingests_with_normalised_keys() -> None:
    outcome = trains(DEMO / "locations_trains.csv")
    assert (outcome.created, outcome.row_errors.count) == (5, 0)
    zurich = Location.objects.get(name="Zürich HB")
    assert zurich.natural_key == "train:ch:zürich hb:47.3782:8.5402"
    assert (zurich.name_key, zurich.country_code, zurich.iata_code) == ("zürich hb", "CH", None)
    assert Location.objects.get(name_key="paris gare de lyon").country_code == "FR"


@pytest.mark.django_db
def test_rooms_sample_ingests() -> None:
    outcome = rooms(DEMO / "building_rooms.csv")
    assert (outcome.created, outcome.row_errors.count) == (7, 0)
    surfaces = dict(BuildingRoom.objects.values_list("room_name", "room_surface_square_meter"))
    assert surfaces["BC 150"] == 24.5
    # "-" and blank mean "unknown".
    assert surfaces["BC 410"] is None
    assert surfaces["CM 1 221"] is None
    lab = BuildingRoom.objects.get(building_name="CM", room_name="CM 2 104")
    assert (lab.building_location, lab.room_type, lab.room_surface_square_meter) == ("ECUBLENS", "laboratories", 85.5)


@pytest.mark.django_db
def test_location_re_upload_upserts_and_keeps_what_it_left_out(tmp_path: Path) -> None:
    planes(DEMO / "locations_planes.csv")
    ids = dict(Location.objects.values_list("natural_key", "id"))
    text = HEADER + "plane,large_airport,Genève Aéroport,46.2370,6.1092,EU,ch,Genève,gva,\n"
    outcome = planes(write(tmp_path, text))
    assert (outcome.created, outcome.updated) == (0, 1)
    assert dict(Location.objects.values_list("natural_key", "id")) == ids
    geneva = Location.objects.get(natural_key="plane:GVA")
    assert (geneva.name, geneva.latitude, geneva.country_code, geneva.keywords) == ("Genève Aéroport", 46.237, "CH", "")


@pytest.mark.django_db
def test_room_re_upload_upserts_on_building_and_room(tmp_path: Path) -> None:
    rooms(DEMO / "building_rooms.csv")
    ids = dict(BuildingRoom.objects.values_list("room_name", "id"))
    text = (
        "building_location,building_name,room_name,room_type,room_surface_square_meter\n"
        "ECUBLENS,BC,BC 150,Office,30\n"
        "ECUBLENS,CO,BC 150,office,12\n"
    )
    outcome = rooms(write(tmp_path, text))
    assert (outcome.created, outcome.updated) == (1, 1)
    assert BuildingRoom.objects.count() == 8
    updated = BuildingRoom.objects.get(building_name="BC", room_name="BC 150")
    assert (updated.pk, updated.room_surface_square_meter, updated.room_type) == (ids["BC 150"], 30.0, "office")
    # The same room name in another building is another room.
    assert BuildingRoom.objects.get(building_name="CO", room_name="BC 150").room_surface_square_meter == 12.0


@pytest.mark.django_db
def test_a_room_is_the_same_room_whatever_its_case(tmp_path: Path) -> None:
    rooms(DEMO / "building_rooms.csv")
    before = BuildingRoom.objects.get(building_name="BC", room_name="BC 150").pk
    header = "building_location,building_name,room_name,room_type,room_surface_square_meter\n"
    outcome = rooms(write(tmp_path, header + "ECUBLENS, bc ,bc  150,office,26\n"))
    assert (outcome.created, outcome.updated) == (0, 1)
    # Matched as at recalculation (case and spacing aside), updated in place, spelling kept.
    room = BuildingRoom.objects.get(pk=before)
    assert (room.building_name, room.room_name, room.room_surface_square_meter) == ("BC", "BC 150", 26.0)
    assert BuildingRoom.objects.count() == 7


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [1, 1000])
def test_counts_hold_across_batches(tmp_path: Path, batch_size: int) -> None:
    text = (DEMO / "locations_planes.csv").read_text() + "plane,large_airport,Genève,46.2381,6.1090,EU,CH,Geneva,GVA,\n"
    outcome = locations_ingest(
        path=write(tmp_path, text), transport_mode="plane", max_row_errors=100, batch_size=batch_size
    )
    assert (outcome.created, outcome.updated, outcome.rows_skipped) == (5, 0, 1)
    assert Location.objects.get(iata_code="GVA").name == "Genève"
    room_text = (DEMO / "building_rooms.csv").read_text() + "ECUBLENS,BC,bc 150,office,99\n"
    outcome = rooms_ingest(path=write(tmp_path, room_text), max_row_errors=100, batch_size=batch_size)
    assert (outcome.created, outcome.updated, outcome.rows_skipped) == (7, 0, 1)
    assert list(
        BuildingRoom.objects.filter(room_name__iexact="bc 150").values_list("room_surface_square_meter", flat=True)
    ) == [99.0]


@pytest.mark.django_db
def test_out_of_range_and_malformed_values_are_row_errors(tmp_path: Path) -> None:
    text = (
        HEADER + "plane,large_airport,North Pole,91,0,EU,CH,Nowhere,NPL,\n"
        "plane,large_airport,Far East,0,181,EU,CH,Nowhere,FEA,\n"
        "plane,large_airport,Bad Code,1,1,EU,Swiss,Nowhere,GV1,\n"
        "plane,large_airport,,1,1,EU,CH,Nowhere,NNN,\n"
        "bus,,Bus stop,1,1,EU,CH,Nowhere,,\n"
        "plane,large_airport,Geneva,46.2381,6.1090,EU,CH,Geneva,GVA,\n"
    )
    outcome = planes(write(tmp_path, text))
    assert [(e["row"], e["column"]) for e in outcome.row_errors.items] == [
        (2, "latitude"),
        (3, "longitude"),
        (4, "country_code"),
        (4, "iata_code"),
        (5, "name"),
        (6, "transport_mode"),
    ]
    assert outcome.row_errors.items[0]["reason"] == "must be ≤ 90 (got 91)"
    assert list(Location.objects.values_list("natural_key", flat=True)) == ["plane:GVA"]
    assert (outcome.rows_processed, outcome.rows_skipped, outcome.created) == (6, 5, 1)


@pytest.mark.django_db
def test_a_plane_file_ignores_train_rows_and_a_bom_is_accepted(tmp_path: Path) -> None:
    outcome = planes(write(tmp_path, MIXED, bom=True))
    assert (outcome.created, outcome.rows_other_mode, outcome.row_errors.count) == (1, 1, 0)
    assert list(Location.objects.values_list("natural_key", flat=True)) == ["plane:GVA"]
    outcome = trains(write(tmp_path, MIXED))
    assert (outcome.created, outcome.rows_other_mode) == (1, 1)
    assert Location.objects.get(transport_mode="train").natural_key == "train:ch:lausanne:46.5167:6.6291"


@pytest.mark.django_db
def test_bad_room_surface_and_missing_names_are_row_errors(tmp_path: Path) -> None:
    text = (
        "building_location,building_name,room_name,room_type,room_surface_square_meter\n"
        "ECUBLENS,BC,BC 150,office,abc\n"
        "ECUBLENS,BC,BC 151,office,-3\n"
        "ECUBLENS,,BC 152,office,10\n"
        "ECUBLENS,BC,BC 153,office, - \n"
        "ECUBLENS,bc,bc 153,office,20\n"
    )
    outcome = rooms(write(tmp_path, text))
    assert [(e["row"], e["column"]) for e in outcome.row_errors.items] == [
        (2, "room_surface_square_meter"),
        (3, "room_surface_square_meter"),
        (4, "building_name"),
        (5, None),
    ]
    assert outcome.row_errors.items[3]["reason"] == "duplicates row 6 (same identity); the later row is kept"
    assert list(BuildingRoom.objects.values_list("building_name", "room_name", "room_surface_square_meter")) == [
        ("bc", "bc 153", 20.0)
    ]


def reference_upload(text: str, det: int, module: int) -> tuple[Pipeline, list[IngestionJob]]:
    relative = upload_store(name="reference.csv", chunks=[text.encode()])
    pipeline, _ = pipeline_create(
        job_type=JobType.REFERENCE_INGEST,
        scope=Scope(
            entity_type=EntityType.GLOBAL_PER_YEAR,
            ingestion_method="csv",
            target_type="REFERENCE_DATA",
            module_type_id=module,
            data_entry_type_id=det,
        ),
        config={"file_path": relative},
    )
    run_until_idle()
    pipeline.refresh_from_db()
    return pipeline, list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))


@engine_db
def test_engine_airports_upload_recalculates_every_year_with_plane_entries(files_root: Path) -> None:
    entries = []
    for year in (2024, 2025):
        modules = make_year(units=1, year=year).modules
        band = {"ef_kg_co2eq_per_km": 0.2906, "rfi_adjustment": 1.35, "min_distance": 0, "max_distance": 2500}
        make_factor(20, 50200, {"category": "short_to_medium_haul", "cabin_class": "economy"}, year=year, **band)
        trip = {"origin_iata": "GVA", "destination_iata": "CDG", "user_institutional_id": "1", "cabin_class": "economy"}
        entries.append(make_entry(modules[(0, 2)], 20, trip))
    make_year(units=1, year=2023)
    pipeline, jobs = reference_upload((DEMO / "locations_planes.csv").read_text(), det=20, module=2)
    root = jobs[0]
    assert (root.result, root.status_message) == (
        JobResult.SUCCESS,
        "Processed 5 rows: 5 plane locations created, 0 updated, 0 skipped",
    )
    recalcs = [j for j in jobs if j.job_type == JobType.EMISSION_RECALC]
    assert sorted((j.module_type_id, j.data_entry_type_id, j.year) for j in recalcs) == [(2, 20, 2024), (2, 20, 2025)]
    assert all(j.result == JobResult.SUCCESS for j in jobs)
    assert pipeline.status == PipelineStatus.SUCCESS
    # The airports now exist, so the recalculations gave the trips their emissions.
    assert DataEntryEmission.objects.filter(data_entry__in=entries).count() == 2
    assert (files_root / root.meta["processed_file_path"]).is_file()


@engine_db
def test_engine_rooms_without_entries_chain_nothing() -> None:
    pipeline, jobs = reference_upload((DEMO / "building_rooms.csv").read_text(), det=30, module=3)
    assert [(j.job_type, j.result) for j in jobs] == [(JobType.REFERENCE_INGEST, JobResult.SUCCESS)]
    assert jobs[0].meta["stats"]["created"] == 7
    assert pipeline.status == PipelineStatus.SUCCESS


@engine_db
def test_engine_unsupported_type_and_empty_results_are_errors() -> None:
    _, jobs = reference_upload((DEMO / "building_rooms.csv").read_text(), det=31, module=3)
    assert (jobs[0].result, jobs[0].status_message) == (
        JobResult.ERROR,
        "data_entry_type_id=31 is not a supported reference type",
    )
    _, jobs = reference_upload(HEADER + "train,,Lausanne,46.5167,6.6291,EU,CH,Lausanne,,gare\n", det=20, module=2)
    assert (jobs[0].result, jobs[0].status_message) == (
        JobResult.ERROR,
        "No plane row in the file (rows of another transport mode: 1)",
    )
    _, jobs = reference_upload(HEADER + "plane,,Nowhere,95,0,,,,,\n", det=20, module=2)
    assert jobs[0].result == JobResult.ERROR
    assert "first error: row 2, column latitude: must be ≤ 90" in jobs[0].status_message
    assert not Location.objects.exists()
