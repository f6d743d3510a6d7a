"""The frontend's path over real HTTP: upload, dispatch, follow the SSE stream, read, download.

A real daphne process serves the ASGI app (the stream goes through the Channels consumer) and
a real worker process runs the pipeline with the real handlers, both on this test's database.
No channel layer is shared between them (no REDIS_URL): the stream sees the worker's progress
through its polling, which is the guarantee a client gets whatever the layer does.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import LazySettings
from django.utils import timezone

from carbon.models import Unit, YearConfiguration
from tests.carbon.conftest import make_factor
from tests.pipelines.conftest import REAL_HANDLERS_ENTRY, Processes, wait_for, worker_env
from tests.roles import Roles

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.slow]

CSV = (
    "unit_institutional_id,equipment_id,name,equipment_class,active_usage_hours_per_week,standby_usage_hours_per_week\n"
    "7918,B1,EIZO,Monitors,40,128\n"
    "7918,B2,EIZO,Monitors,40,128\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(settings: LazySettings, tmp_path: Path) -> Iterator[str]:
    """A daphne web process and a worker process on this test's database; yields the base URL."""
    settings.FILES_ROOT = tmp_path / "files"
    procs = Processes(worker_env(WORKER_HEARTBEAT_SECONDS="5", JOB_LEASE_SECONDS="30"), tmp_path, REAL_HANDLERS_ENTRY)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        procs.start("run_worker", "--worker-id", "worker:e2e:1")
        procs.entry = ("-m", "daphne")
        procs.start("-b", "127.0.0.1", "-p", str(port), "config.asgi:application")

        def answering() -> bool:
            try:
                return requests.get(f"{base}/api/v1/health", timeout=2).status_code in (200, 503)
            except requests.ConnectionError:
                return False

        wait_for(answering, timeout=30, what="daphne to answer")
        yield base
    finally:
        procs.stop_all()
        sys.stdout.write(procs.logs())  # shown by pytest only when the test fails


def sse_events(response: requests.Response) -> Iterator[dict[str, Any]]:
    """The data of each ``pipeline-update`` event of an open event stream."""
    name = ""
    for raw in response.iter_lines():
        line = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name == "pipeline-update":
            yield json.loads(line[len("data: ") :])


def test_upload_dispatch_stream_read_download_over_http(server: str, roles: Roles) -> None:
    YearConfiguration.objects.create(year=2025, configuration_completed=timezone.now())
    Unit.objects.create(institutional_code="14270", institutional_id="7918", name="LAB", level=4)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=100, standby_power_w=10,
                active_usage_hours_per_week=40, standby_usage_hours_per_week=128, ef_kg_co2eq_per_kwh=0.1)  # fmt: skip
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=roles.users["superadmin"])
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token.key}"

    upload = http.post(
        f"{server}/api/v1/files/temp-upload", files={"files": ("equipment.csv", CSV.encode(), "text/csv")}, timeout=10
    )
    assert upload.status_code in (200, 201), upload.text
    file_path = upload.json()["files"][0]["path"]
    assert file_path.startswith("tmp/")

    dispatched = http.post(
        f"{server}/api/v1/sync/dispatch",
        json={"ingestion_method": 1, "target_type": 0, "year": 2025, "file_path": file_path,
              "config": {"module_type_id": 4}},
        timeout=10,
    )  # fmt: skip
    assert dispatched.status_code == 200, dispatched.text
    pipeline_id = dispatched.json()["pipeline_id"]

    started = time.monotonic()
    with http.get(f"{server}/api/v1/sync/pipelines/{pipeline_id}/stream", stream=True, timeout=60) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = list(sse_events(stream))  # ends when the server closes the stream
    assert time.monotonic() - started < 60
    assert events, "no event received"
    assert [e["stream_closed"] for e in events] == [False] * (len(events) - 1) + [True]
    final = events[-1]
    assert final["status"] == "SUCCESS"
    assert [j["job_type"] for j in final["jobs"]] == ["csv_ingest", "emission_recalc", "aggregation"]

    detail = http.get(f"{server}/api/v1/sync/pipelines/{pipeline_id}", timeout=10).json()
    assert (detail["status"], detail["job_count"]) == ("SUCCESS", 3)
    processed = detail["jobs"][0]["meta"]["processed_file_path"]
    assert processed == f"processed/{detail['jobs'][0]['job_id']}/equipment.csv"

    download = http.get(f"{server}/api/v1/files/{processed}", params={"d": "true"}, timeout=10)
    assert download.status_code == 200
    assert download.content == CSV.encode()
    assert download.headers["Content-Disposition"].startswith("attachment")
