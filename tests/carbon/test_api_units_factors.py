"""Units and factors over the REST API: scoping, filters, pagination, fixed query counts."""

from __future__ import annotations

from typing import Any

import factory
import pytest
from django.utils import timezone

from carbon.models import Factor, Unit, User
from pipelines.choices import JobResult, JobState, JobType, TargetType
from tests.carbon.conftest import make_factor
from tests.factories import IngestionJobFactory, PipelineFactory, UnitFactory
from tests.roles import Roles

pytestmark = pytest.mark.django_db

UNITS = "/api/v1/units"
FACTORS = "/api/v1/factors"
STALE = "/api/v1/factors/stale"


def codes(response: Any) -> list[str]:
    return [unit["institutional_code"] for unit in response.json()["items"]]


# --- GET units ----------------------------------------------------------------------------------------


def test_unit_fields_with_their_principal(roles: Roles) -> None:
    boss = User.objects.create_user(username="boss", email="boss@example.org", display_name="The Boss")
    Unit.objects.filter(pk=roles.unit_a.pk).update(
        principal=boss,
        label_fr="Laboratoire A",
        label_en="Lab A",
        parent_institutional_code="900",
        parent_institutional_id="9000",
        path_name="SCHOOL LAB-A",
        unit_type_label="Laboratoire",
    )
    response = roles.client("principal_a").get(UNITS)
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "institutional_code": "901",
                "institutional_id": "9001",
                "name": "LAB-A",
                "label_fr": "Laboratoire A",
                "label_en": "Lab A",
                "level": 4,
                "parent_institutional_code": "900",
                "parent_institutional_id": "9000",
                "path_institutional_code": "900 901",
                "path_name": "SCHOOL LAB-A",
                "unit_type_label": "Laboratoire",
                "is_active": True,
                "principal": {"username": "boss", "email": "boss@example.org", "display_name": "The Boss"},
            }
        ],
        "total": 1,
        "limit": 50,
        "offset": 0,
    }


def test_each_role_sees_its_own_units(roles: Roles) -> None:
    UnitFactory(institutional_code="950", name="ELSEWHERE")
    seen = {role: codes(roles.client(role).get(UNITS)) for role in ("standard", "principal_a", "principal_b")}
    assert seen == {"standard": ["901"], "principal_a": ["901"], "principal_b": ["902"]}
    for role in ("backoffice", "superadmin"):
        assert codes(roles.client(role).get(UNITS)) == ["900", "901", "902", "950"]
    roleless = User.objects.create_user(username="nobody", password="pw-nobody-123")
    roles.users["nobody"] = roleless
    assert roles.client("nobody").get(UNITS).json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_unit_filters_and_pagination(roles: Roles) -> None:
    client = roles.client("backoffice")
    assert codes(client.get(UNITS, {"level": 4})) == ["901", "902"]
    assert codes(client.get(UNITS, {"q": "lab-b"})) == ["902"]
    assert codes(client.get(UNITS, {"q": "9001"})) == ["901"]  # cf
    assert codes(client.get(UNITS, {"q": "900"})) == ["900", "901", "902"]  # code (and cfs 9000…)
    Unit.objects.filter(pk__in=[roles.unit_a.pk, roles.unit_b.pk]).update(
        parent_institutional_code="900", parent_institutional_id="9000"
    )
    assert codes(client.get(UNITS, {"parent": "900"})) == ["901", "902"]
    assert codes(client.get(UNITS, {"parent": "9000"})) == ["901", "902"]
    page = client.get(UNITS, {"limit": 2, "offset": 1}).json()
    assert ([u["institutional_code"] for u in page["items"]], page["total"], page["limit"], page["offset"]) == (
        ["901", "902"],
        3,
        2,
        1,
    )


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": 201}, "limit: Ensure this value is less than or equal to 200."),
        ({"limit": 0}, "limit: Ensure this value is greater than or equal to 1."),
        ({"offset": -1}, "offset: Ensure this value is greater than or equal to 0."),
        ({"level": "x"}, "level: A valid integer is required."),
    ],
)
def test_unit_list_rejects_bad_parameters(roles: Roles, params: dict[str, Any], detail: str) -> None:
    response = roles.client("backoffice").get(UNITS, params)
    assert (response.status_code, response.json()["detail"]) == (400, detail)


def test_units_need_authentication(roles: Roles) -> None:
    assert roles.client("anonymous").get(UNITS).status_code == 401


@pytest.mark.parametrize("rows", [5, 50])
def test_unit_list_query_count_is_fixed(roles: Roles, rows: int, django_assert_num_queries: Any) -> None:
    principals = [User.objects.create_user(username=f"p{i}") for i in range(rows)]
    UnitFactory.create_batch(rows, principal=factory.Iterator(principals))
    client = roles.client("backoffice")
    # token, scope, count, page (principals joined)
    with django_assert_num_queries(4):
        response = client.get(UNITS, {"limit": 200})
    assert len(response.json()["items"]) == rows + 3
    assert sum(unit["principal"] is not None for unit in response.json()["items"]) == rows


# --- GET factors -----------------------------------------------------------------------------------------


def test_factor_list_of_a_year_and_type(roles: Roles) -> None:
    plane = make_factor(20, 50101, {"category": "short_haul"}, ef_kg_co2eq_per_km=0.2)
    make_factor(21, 50102, {"country_code": "CH"}, ef_kg_co2eq_per_km=0.0075)
    make_factor(20, 50101, {"category": "short_haul"}, year=2024, ef_kg_co2eq_per_km=0.3)
    response = roles.client("standard").get(FACTORS, {"year": 2025, "data_entry_type_id": 20})
    assert response.status_code == 200
    plane.refresh_from_db()
    assert response.json() == {
        "items": [
            {
                "id": plane.pk,
                "data_entry_type_id": 20,
                "emission_type_id": 50101,
                "year": 2025,
                "classification": {"category": "short_haul"},
                "values": {"ef_kg_co2eq_per_km": 0.2},
                "is_computed": False,
                "last_seen_job_id": None,
                "updated_at": plane.updated_at.isoformat().replace("+00:00", "Z"),
            }
        ],
        "total": 1,
        "limit": 50,
        "offset": 0,
    }
    everything = roles.client("standard").get(FACTORS, {"year": 2025}).json()
    assert [f["data_entry_type_id"] for f in everything["items"]] == [20, 21]


def test_factor_list_needs_a_year(roles: Roles) -> None:
    response = roles.client("backoffice").get(FACTORS)
    assert (response.status_code, response.json()["detail"]) == (400, "year: This field is required.")
    assert roles.client("anonymous").get(FACTORS, {"year": 2025}).status_code == 401


@pytest.mark.parametrize("rows", [5, 50])
def test_factor_list_query_count_is_fixed(roles: Roles, rows: int, django_assert_num_queries: Any) -> None:
    for index in range(rows):
        make_factor(21, 50102, {"country_code": f"C{index}"}, ef_kg_co2eq_per_km=0.01)
    client = roles.client("standard")
    # token, count, page (any authenticated user: no scope needed)
    with django_assert_num_queries(3):
        response = client.get(FACTORS, {"year": 2025, "limit": 200})
    assert response.json()["total"] == rows


# --- GET factors/stale -------------------------------------------------------------------------------------


def factor_upload(*, module: int, det: int | None) -> int:
    pipeline = PipelineFactory.create(kind=JobType.FACTOR_INGEST, module_type_id=module, target_type=TargetType.FACTORS)
    job = IngestionJobFactory.create(
        pipeline=pipeline,
        data_entry_type_id=det,
        state=JobState.FINISHED,
        result=JobResult.SUCCESS,
        finished_at=timezone.now(),
    )
    return int(job.pk)


def test_stale_factors_are_those_the_latest_upload_left_out(roles: Roles) -> None:
    first = factor_upload(module=2, det=21)
    kept = make_factor(21, 50102, {"country_code": "CH"}, ef_kg_co2eq_per_km=0.0075)
    dropped = make_factor(21, 50102, {"country_code": "FR"}, ef_kg_co2eq_per_km=0.01)
    never_seen = make_factor(11, 80200, {"equipment_class": "Monitors"}, active_power_w=1)
    Factor.objects.filter(pk__in=[kept.pk, dropped.pk]).update(last_seen_job_id=first)
    second = factor_upload(module=2, det=21)
    common = factor_upload(module=4, det=None)  # equipment's common file covers det 11
    Factor.objects.filter(pk=kept.pk).update(last_seen_job_id=second)
    response = roles.client("backoffice").get(STALE, {"year": 2025})
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": never_seen.pk,
            "data_entry_type_id": 11,
            "emission_type_id": 80200,
            "classification": {"equipment_class": "monitors"},
            "last_seen_job_id": None,
        },
        {
            "id": dropped.pk,
            "data_entry_type_id": 21,
            "emission_type_id": 50102,
            "classification": {"country_code": "fr"},
            "last_seen_job_id": first,
        },
    ]
    assert common > second


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("standard", 403), ("principal_a", 403)])
def test_stale_factors_need_configuration_view(roles: Roles, role: str, code: int) -> None:
    assert roles.client(role).get(STALE, {"year": 2025}).status_code == code


def test_stale_factors_need_a_year(roles: Roles) -> None:
    response = roles.client("backoffice").get(STALE, {"year": "soon"})
    assert (response.status_code, response.json()["detail"]) == (400, "year: A valid integer is required.")


@pytest.mark.parametrize("rows", [5, 50])
def test_stale_factor_query_count_is_fixed(roles: Roles, rows: int, django_assert_num_queries: Any) -> None:
    for det, module in ((20, 2), (21, 2), (30, 3), (None, 4)):
        factor_upload(module=module, det=det)
    for index in range(rows):
        make_factor(20 + index % 2, 50101, {"category": f"c{index}"}, ef_kg_co2eq_per_km=0.1)
    client = roles.client("backoffice")
    # token, scope, latest uploads, stale factors
    with django_assert_num_queries(4):
        response = client.get(STALE, {"year": 2025})
    assert len(response.json()) == rows
