"""GET /api/v1/health and the API schema/docs endpoints."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from pipelines.choices import WorkerKind
from pipelines.models import Worker

pytestmark = pytest.mark.django_db


def test_health_is_503_without_workers_and_200_with_live_ones(client: Client) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "workers": False, "reconciler": False}
    now = timezone.now()
    Worker.objects.create(id="worker:h:1", hostname="h", pid=1, version="0.1.0", git_sha="abc", last_heartbeat_at=now)
    Worker.objects.create(id="reconciler:h:2", kind=WorkerKind.RECONCILER, hostname="h", pid=2, last_heartbeat_at=now)
    body = client.get("/api/v1/health").json()
    assert (body["healthy"], body["live_workers"], body["worker_versions"]) == (True, 1, ["0.1.0@abc"])
    # a worker that stopped heartbeating is not live
    Worker.objects.filter(pk="worker:h:1").update(last_heartbeat_at=now - timedelta(hours=1))
    assert client.get("/api/v1/health").status_code == 503


def test_mixed_worker_versions_are_reported(client: Client) -> None:
    now = timezone.now()
    for pid, sha in ((1, "abc"), (2, "def")):
        Worker.objects.create(id=f"worker:h:{pid}", hostname="h", pid=pid, version="0.1.0", git_sha=sha,
                              last_heartbeat_at=now)  # fmt: skip
    assert client.get("/api/v1/health").json()["mixed_versions"] is True


def test_schema_and_docs_are_served_without_a_cdn(client: Client) -> None:
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/health" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn.jsdelivr" not in docs.content
    assert b"/static/drf_spectacular_sidecar/" in docs.content
