"""The travel API import: mapping, filters, row errors, replace-on-rerun, failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import LazySettings

from carbon.choices import DataEntrySource
from carbon.models import DataEntry, DataEntryEmission, Unit
from ingestion.services_data import reports_ensure
from pipelines.choices import IngestionMethod, JobResult, JobType, PipelineStatus
from pipelines.models import IngestionJob, Pipeline
from pipelines.services import Scope, pipeline_create
from tests.pipelines.conftest import run_until_idle

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

TOKEN = "s3cret-token"


def flight(**overrides: Any) -> dict[str, Any]:
    row = {
        "OUT_CO2_CORRECTED": 120.5,
        "OUT_DISTANCE_CORRECTED": 503,
        "SCIPER": "123456",
        "Centre financier": "F7918",
        "IN_Departure date": "2025-03-10",
        "IN_Segment class": "AIR ECONOMY CLASS",
        "IN_Segment destination airport code": "CDG",
        "IN_Segment origin airport code": "GVA",
        "IN_Supplier": "Swiss",
        "IN_Ticket number": "724-1",
        "PASSENGER_TYPE": "employee",
        "ROUND_TRIP": "true",
        "TRANSPORT_TYPE": "air",
        "Number of trips": 1,
    }
    row.update(overrides)
    return row


class TravelApi:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.status = 200
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def travel_api(settings: LazySettings) -> Iterator[TravelApi]:
    api = TravelApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            api.requests.append({"body": body, "auth": self.headers.get("Authorization")})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(api.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"data": api.rows}).encode())

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.TRAVEL_API_URL = f"http://127.0.0.1:{server.server_port}/travel"
    settings.TRAVEL_API_TOKEN = TOKEN
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def units() -> None:
    lab = Unit.objects.create(institutional_code="14270", institutional_id="7918", name="LAB", level=4)
    other = Unit.objects.create(institutional_code="14271", institutional_id="8000", name="NOREPORT", level=4)
    reports_ensure(unit_ids=[lab.pk], year=2025)
    assert other.pk


def run_import() -> tuple[Pipeline, IngestionJob]:
    pipeline, job = pipeline_create(
        job_type=JobType.API_INGEST,
        scope=Scope(module_type_id=2, data_entry_type_id=20, year=2025, ingestion_method=IngestionMethod.API),
    )
    run_until_idle()
    pipeline.refresh_from_db()
    job.refresh_from_db()
    return pipeline, job


@pytest.mark.usefixtures("units")
def test_flights_are_imported_filtered_and_replaced_on_rerun(travel_api: TravelApi) -> None:
    travel_api.rows = [
        flight(),
        flight(**{"SCIPER": "123457", "OUT_CO2_CORRECTED": 0, "IN_Segment class": "AIR BUSINESS CLASS"}),
        flight(**{"IN_Departure date": "2024-12-30"}),  # another year: dropped
        flight(SCIPER=""),  # no person: dropped
        flight(**{"Centre financier": ""}),  # row error
        flight(**{"Centre financier": "8000"}),  # unit without a 2025 report: row error
    ]
    pipeline, job = run_import()
    assert travel_api.requests[0]["body"] == {"year": 2025}
    assert (pipeline.status, job.result) == (PipelineStatus.SUCCESS, JobResult.WARNING)
    stats = job.meta["stats"]
    assert (stats["rows_processed"], stats["rows_dropped_other_year"], stats["rows_dropped_incomplete"]) == (2, 1, 1)
    assert stats["rows_missing_centre_financier"] == 1
    assert [(e["row"], e["column"]) for e in stats["row_errors"]] == [(5, "Centre financier"), (6, "Centre financier")]
    entries = list(DataEntry.objects.filter(source=DataEntrySource.EXTERNAL_INTEGRATION).order_by("id"))
    assert [e.data["cabin_class"] for e in entries] == ["economy", "business"]
    assert entries[0].data["round_trip"] is True
    # the corrected CO2 is the emission, and 0 is a real figure
    kg = [DataEntryEmission.objects.get(data_entry=e).kg_co2eq for e in entries]
    assert kg == [120.5, 0.0]
    # when: the import runs again, the year's API rows are replaced, not duplicated
    travel_api.rows = [flight(OUT_CO2_CORRECTED=99)]
    run_import()
    assert DataEntry.objects.filter(source=DataEntrySource.EXTERNAL_INTEGRATION).count() == 1


@pytest.mark.usefixtures("units")
def test_a_failing_api_keeps_the_previous_import(travel_api: TravelApi) -> None:
    travel_api.rows = [flight()]
    run_import()
    travel_api.status = 500
    pipeline, job = run_import()
    assert (pipeline.status, job.result) == (PipelineStatus.FAILED, JobResult.ERROR)
    assert job.status_message == "travel API answered HTTP 500 Internal Server Error"
    assert DataEntry.objects.filter(source=DataEntrySource.EXTERNAL_INTEGRATION).count() == 1


@pytest.mark.usefixtures("units")
def test_a_changed_api_fails_loudly(travel_api: TravelApi) -> None:
    row = flight()
    del row["SCIPER"]
    travel_api.rows = [row]
    _, job = run_import()
    assert job.result == JobResult.ERROR
    assert job.status_message == "row 1 lacks the captions SCIPER: has the API changed?"
