"""Schemathesis against the OpenAPI schema: no 5xx and no response outside the schema.

Every operation of ``/api/schema/`` gets generated requests (valid and invalid), sent through
the WSGI app as each authenticated role of ``tests.roles`` in ``FUZZED_ROLES``: the superadmin
(the role that reaches every code path), and the standard user, a unit principal and the back
office, whose requests take the refusal and scoping paths (403, 404, filtered lists) instead.
The database holds a provisioned year, units, reports and pipelines in several states, one of
them pinned to the principal's unit. Checks, the same for every role: no server error; status
codes, content types and bodies as documented.

``SCHEMATHESIS_MAX_EXAMPLES`` (default 10) sets the examples per operation and role (31
operations × 4 roles × 10 ≈ 1,200 requests, about 1.5 minutes on a 2-core machine); the
closing run of the API issue used 50.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from carbon.models import YearConfiguration
from tests.pipelines.api_helpers import DONE_OK, FAILED, RUNNING, pipeline_build
from tests.roles import Roles

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
# Every authenticated kind of caller but principal_b (principal_a covers the principal's paths).
FUZZED_ROLES = ("superadmin", "standard", "principal_a", "backoffice")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# Loaded once at collection (the schema view needs no database).
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    # Like Django's test client: a request must not close the test's connection (and with it
    # the transaction that isolates the test).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture(params=FUZZED_ROLES)
def token(request: pytest.FixtureRequest, roles: Roles) -> str:
    """The API token of the role under test, on the shared data set."""
    YearConfiguration.objects.create(year=2025, configuration_completed=timezone.now(), is_started=True)
    for outcomes in (DONE_OK, RUNNING, FAILED):
        pipeline_build(outcomes)
    pipeline_build(DONE_OK, unit=roles.unit_a)
    pipeline_build(DONE_OK, unit=roles.unit_b, module_type_id=1)
    return str(Token.objects.create(user=roles.users[request.param]).key)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_documented(case: Any, token: str) -> None:
    # /health answers 503 by design when no worker runs (documented, with its body).
    checks = CHECKS[1:] if case.operation.path == "/api/v1/health" else CHECKS
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=checks)
