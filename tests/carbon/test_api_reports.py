"""Carbon reports over the REST API: reference-shaped stats, unit scoping, fixed query counts."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.choices import CarbonReportType, ModuleStatus, ModuleTypeId
from carbon.models import CarbonProject, CarbonReport, CarbonReportModule, Unit
from carbon.services import reports_recompute
from tests.carbon.conftest import make_year
from tests.roles import Roles

pytestmark = pytest.mark.django_db

LIST = "/api/v1/carbon-reports"

MODULE_STATS = {
    "scope1": 0.0,
    "scope2": 27.5,
    "scope3": 0.0,
    "total": 27.5,
    "by_emission_type": {"80000": 27.5, "80200": 27.5},
    "by_additional_value": {},
    "entry_count": 2,
    "computed_at": "2025-06-01T10:00:00+00:00",
    "it_kg": 27.5,
}


def report_for(unit: Unit, year: int = 2025, report_type: str = CarbonReportType.CALCULATOR) -> CarbonReport:
    project, _ = CarbonProject.objects.get_or_create(unit=unit, report_type=report_type)
    report = CarbonReport.objects.create(project=project, unit=unit, year=year)
    CarbonReportModule.objects.bulk_create(
        [CarbonReportModule(report=report, module_type_id=int(m)) for m in ModuleTypeId]
    )
    return report


def ids(response: Any) -> list[int]:
    return [item["id"] for item in response.json()["items"]]


@pytest.fixture
def reports(roles: Roles) -> dict[str, CarbonReport]:
    made = {"a": report_for(roles.unit_a), "b": report_for(roles.unit_b), "b2024": report_for(roles.unit_b, 2024)}
    CarbonReportModule.objects.filter(report=made["a"], module_type_id=4).update(
        stats=MODULE_STATS, status=ModuleStatus.VALIDATED
    )
    reports_recompute(report_ids=[made["a"].pk])
    return made


def test_report_list_item_has_the_reference_shape(roles: Roles, reports: dict[str, CarbonReport]) -> None:
    response = roles.client("principal_a").get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (1, 50, 0)
    item = body["items"][0]
    assert item["last_updated"] is not None
    assert item["stats"].pop("computed_at")
    assert {**item, "last_updated": None} == {
        "id": reports["a"].pk,
        "year": 2025,
        "unit": {"institutional_code": "901", "institutional_id": "9001", "name": "LAB-A"},
        "overall_status": "IN_PROGRESS",
        "completion_progress": "1/8",
        "stats": {
            "scope1": 0.0,
            "scope2": 27.5,
            "scope3": 0.0,
            "total": 27.5,
            "by_emission_type": {"80000": 27.5, "80200": 27.5},
            "by_additional_value": {},
            "entry_count": 2,
            "it_total_kg": 27.5,
            "highest_category_module_id": 4,
        },
        "last_updated": None,
    }


def test_report_detail_lists_its_modules(roles: Roles, reports: dict[str, CarbonReport]) -> None:
    response = roles.client("principal_a").get(f"{LIST}/{reports['a'].pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == reports["a"].pk
    assert body["unit"]["institutional_id"] == "9001"
    assert [m["module_type_id"] for m in body["modules"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [m["module_label"] for m in body["modules"]][:4] == [
        "headcount",
        "professional_travel",
        "buildings",
        "equipment",
    ]
    equipment = body["modules"][3]
    assert equipment == {
        "module_type_id": 4,
        "module_label": "equipment",
        "status": "VALIDATED",
        "stats": {k: v for k, v in MODULE_STATS.items() if k != "it_kg"},  # the rollup's helper is not shown
        "last_updated": None,
    }
    assert body["modules"][0] == {
        "module_type_id": 1,
        "module_label": "headcount",
        "status": "NOT_STARTED",
        "stats": None,
        "last_updated": None,
    }


def test_a_principal_sees_only_its_units_reports(roles: Roles, reports: dict[str, CarbonReport]) -> None:
    assert ids(roles.client("principal_a").get(LIST)) == [reports["a"].pk]
    assert ids(roles.client("principal_b").get(LIST)) == [reports["b2024"].pk, reports["b"].pk]
    response = roles.client("principal_a").get(f"{LIST}/{reports['b'].pk}")
    assert (response.status_code, response.json()["detail"]) == (404, f"Carbon report {reports['b'].pk} not found")
    # filtering on someone else's unit drops its rows, it does not refuse
    assert roles.client("principal_a").get(LIST, {"unit": "9002"}).json()["total"] == 0


def test_back_office_sees_every_report_and_filters_them(roles: Roles, reports: dict[str, CarbonReport]) -> None:
    client = roles.client("backoffice")
    assert ids(client.get(LIST)) == [reports["b2024"].pk, reports["a"].pk, reports["b"].pk]
    assert ids(client.get(LIST, {"year": 2025})) == [reports["a"].pk, reports["b"].pk]
    assert ids(client.get(LIST, {"unit": "9002"})) == [reports["b2024"].pk, reports["b"].pk]  # cf
    assert ids(client.get(LIST, {"unit": "902", "year": "2024"})) == [reports["b2024"].pk]  # directory code
    assert ids(client.get(LIST, {"limit": 1, "offset": 2})) == [reports["b"].pk]
    assert client.get(f"{LIST}/{reports['b'].pk}").status_code == 200


def test_simulator_reports_are_not_listed(roles: Roles, reports: dict[str, CarbonReport]) -> None:
    simulation = report_for(roles.unit_a, report_type=CarbonReportType.SIMULATOR_PLAN)
    assert simulation.pk not in ids(roles.client("backoffice").get(LIST))


def test_unknown_report_is_404(roles: Roles, reports: dict[str, CarbonReport]) -> None:
    response = roles.client("superadmin").get(f"{LIST}/999999")
    assert (response.status_code, response.json()["detail"]) == (404, "Carbon report 999999 not found")


@pytest.mark.parametrize(("role", "code"), [("anonymous", 401), ("standard", 403)])
def test_reports_need_a_reporting_role(roles: Roles, reports: dict[str, CarbonReport], role: str, code: int) -> None:
    assert roles.client(role).get(LIST).status_code == code
    response = roles.client(role).get(f"{LIST}/{reports['a'].pk}")
    assert response.status_code == code
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"year": "x"}, "year: A valid integer is required."),
        ({"limit": 500}, "limit: Ensure this value is less than or equal to 200."),
    ],
)
def test_report_list_rejects_bad_parameters(roles: Roles, params: dict[str, str | int], detail: str) -> None:
    response = roles.client("backoffice").get(LIST, params)
    assert (response.status_code, response.json()["detail"]) == (400, detail)


@pytest.mark.parametrize("rows", [5, 50])
def test_report_list_query_count_is_fixed(roles: Roles, rows: int, django_assert_num_queries: Any) -> None:
    make_year(units=rows)
    client = roles.client("backoffice")
    # token, scope, count, page (units joined)
    with django_assert_num_queries(4):
        response = client.get(LIST, {"limit": 200})
    assert len(response.json()["items"]) == rows


@pytest.mark.parametrize("rows", [5, 50])
def test_report_detail_query_count_is_fixed(roles: Roles, rows: int, django_assert_num_queries: Any) -> None:
    year = make_year(units=rows)
    client = roles.client("superadmin")
    # token, scope, report (unit joined), its modules
    with django_assert_num_queries(4):
        response = client.get(f"{LIST}/{year.reports[-1].pk}")
    assert len(response.json()["modules"]) == 8
