"""Recalculation status, stale factors, computed research-facility factors."""

from __future__ import annotations

import pytest
from django.utils import timezone

from carbon.models import CarbonReport, Factor
from carbon.selectors import recalculation_status, stale_factors
from carbon.services import research_facility_factors_compute
from pipelines.choices import JobResult, JobState, JobType
from pipelines.services import Scope, pipeline_create
from tests.carbon.conftest import make_factor, make_year

pytestmark = pytest.mark.django_db


def finished_job(job_type: str, *, module: int, det: int | None, year: int = 2025, result: str = JobResult.SUCCESS,
                 meta: dict[str, object] | None = None) -> int:  # fmt: skip
    _, job = pipeline_create(job_type=JobType.CSV_INGEST, scope=Scope(module_type_id=module, year=year))
    job.job_type = job_type
    job.data_entry_type_id = det
    job.state = JobState.FINISHED
    job.result = result
    job.finished_at = timezone.now()
    job.meta = meta or {}
    job.save()
    return job.pk


def status_of(det: int) -> bool:
    return next(s for s in recalculation_status(year=2025) if s.data_entry_type_id == det).needs_recalculation


def test_needs_recalculation_follows_factor_uploads_and_recalcs() -> None:
    assert status_of(20) is False  # no factors yet
    finished_job(JobType.FACTOR_INGEST, module=2, det=20)
    assert status_of(20) is True
    finished_job(JobType.EMISSION_RECALC, module=2, det=20)
    assert status_of(20) is False
    finished_job(JobType.EMISSION_RECALC, module=2, det=20, result=JobResult.ERROR)
    assert status_of(20) is True  # the last recalculation failed


def test_a_module_level_factor_upload_counts_for_every_routed_type() -> None:
    # the reference ignored det-less (module-level) factor jobs, so equipment never showed stale
    finished_job(JobType.FACTOR_INGEST, module=4, det=None)
    assert [status_of(d) for d in (10, 11, 12)] == [True, True, True]
    finished_job(JobType.MODULE_EMISSION_RECALC, module=4, det=None,
                 meta={"per_det": {"10": {"errors": 0}, "11": {"fatal": True}, "12": {"errors": 0}}})  # fmt: skip
    assert [status_of(d) for d in (10, 11, 12)] == [False, True, False]


def test_factors_left_out_of_the_latest_upload_are_stale() -> None:
    first = finished_job(JobType.FACTOR_INGEST, module=2, det=21)
    kept = make_factor(21, 50102, {"country_code": "CH"}, ef_kg_co2eq_per_km=0.0075)
    dropped = make_factor(21, 50102, {"country_code": "FR"}, ef_kg_co2eq_per_km=0.01)
    Factor.objects.filter(pk__in=[kept.pk, dropped.pk]).update(last_seen_job_id=first)
    assert stale_factors(year=2025) == []
    second = finished_job(JobType.FACTOR_INGEST, module=2, det=21)
    Factor.objects.filter(pk=kept.pk).update(last_seen_job_id=second)
    assert [f["id"] for f in stale_factors(year=2025)] == [dropped.pk]


def test_research_facility_factors_are_computed_from_the_facility_report() -> None:
    year = make_year(units=2)
    facility = year.units[1]
    by_type = {"70000": 100.0, "60000": 50.0, "60100": 30.0, "60200": 20.0, "80000": 7.0, "90000": 40.0, "90900": 4.0}
    CarbonReport.objects.filter(unit=facility).update(stats={"by_emission_type": by_type})
    common = make_factor(70, 100100, {"researchfacility_id": facility.institutional_id, "researchfacility_name": "X"},
                         use_unit="hours", total_use=10)  # fmt: skip
    preset = make_factor(70, 100100, {"researchfacility_id": facility.institutional_id, "researchfacility_name": "Y"},
                         use_unit="hours", total_use=10, kg_co2eq_sum=5)  # fmt: skip
    orphan = make_factor(70, 100100, {"researchfacility_id": "no-such-unit", "researchfacility_name": "Z"},
                         use_unit="hours", total_use=10)  # fmt: skip
    stats = research_facility_factors_compute(data_entry_type_id=70, year=2025)
    assert (stats.updated, stats.skipped, stats.errors) == (1, 1, 1)
    assert stats.error_details[0]["factor_id"] == orphan.pk
    # 100 process + 50 buildings + 7 equipment + 40 purchases = 197 kg
    assert Factor.objects.get(pk=common.pk).values["kg_co2eq_sum"] == 197
    assert Factor.objects.get(pk=preset.pk).values["kg_co2eq_sum"] == 5
    animal = make_factor(71, 100200, {"researchfacility_id": facility.institutional_id, "researchfacility_name": "A",
                                      "researchfacility_type": "mice"}, use_unit="housings", total_use=2)  # fmt: skip
    research_facility_factors_compute(data_entry_type_id=71, year=2025)
    values = Factor.objects.get(pk=animal.pk).values
    assert values["kg_co2eq_sum_processemissions"] == 100
    assert values["kg_co2eq_sum_building_rooms"] == 30
    assert values["kg_co2eq_sum_building_energycombustions"] == 20
    assert values["kg_co2eq_sum_purchases_common"] == 36  # 40 purchases − 4 additional
    assert values["kg_co2eq_sum_purchases_additional"] == 4
    assert values["kg_co2eq_sum_equipments"] == 7
