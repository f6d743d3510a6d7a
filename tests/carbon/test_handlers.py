"""The carbon handlers run by the engine: recalc → aggregation, in one pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.models import CarbonReportModule
from pipelines.choices import JobResult, JobType, PipelineStatus
from pipelines.models import IngestionJob
from pipelines.services import Scope, pipeline_create
from tests.carbon.conftest import make_entry, make_factor, make_year
from tests.pipelines.conftest import run_until_idle

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MONITOR: dict[str, Any] = {
    "active_power_w": 100,
    "standby_power_w": 10,
    "active_usage_hours_per_week": 40,
    "standby_usage_hours_per_week": 128,
    "ef_kg_co2eq_per_kwh": 0.1,
}


def test_manual_recalc_chains_one_aggregation_that_writes_the_stats() -> None:
    year = make_year(units=3)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR)
    for unit in range(2):
        make_entry(year.modules[(unit, 4)], 11, {"equipment_id": "1", "name": "m", "equipment_class": "Monitors"})
    pipeline, _ = pipeline_create(
        job_type=JobType.EMISSION_RECALC, scope=Scope(module_type_id=4, data_entry_type_id=11, year=2025)
    )
    run_until_idle()
    pipeline.refresh_from_db()
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))
    assert [(j.job_type, j.result) for j in jobs] == [
        (JobType.EMISSION_RECALC, JobResult.SUCCESS),
        (JobType.AGGREGATION, JobResult.SUCCESS),
    ]
    assert pipeline.status == PipelineStatus.SUCCESS
    # only the two modules that have entries were re-aggregated
    assert sorted(jobs[1].meta["config"]["affected_module_ids"]) == sorted(
        [year.modules[(0, 4)].pk, year.modules[(1, 4)].pk]
    )
    assert jobs[1].meta["modules_refreshed"] == 2
    stats = CarbonReportModule.objects.get(pk=year.modules[(0, 4)].pk).stats
    assert stats is not None
    assert stats["scope2"] == pytest.approx(27.456)
    assert CarbonReportModule.objects.get(pk=year.modules[(2, 4)].pk).stats is None
    assert jobs[0].meta["recalculation"]["recalculated"] == 2


def test_recalc_without_a_year_fails_clearly() -> None:
    pipeline, job = pipeline_create(
        job_type=JobType.AGGREGATION, scope=Scope(module_type_id=4, data_entry_type_id=None, year=2025)
    )
    IngestionJob.objects.filter(pk=job.pk).update(year=None)
    run_until_idle()
    job.refresh_from_db()
    assert job.result == JobResult.ERROR
    assert job.status_message == "aggregation needs a year; the job has none"


def test_module_recalc_runs_each_type_and_aggregates() -> None:
    year = make_year(units=1)
    make_factor(11, 80200, {"equipment_class": "Monitors"}, **MONITOR)
    make_entry(year.modules[(0, 4)], 11, {"equipment_id": "1", "name": "m", "equipment_class": "Monitors"})
    pipeline, _ = pipeline_create(job_type=JobType.MODULE_EMISSION_RECALC, scope=Scope(module_type_id=4, year=2025))
    run_until_idle()
    pipeline.refresh_from_db()
    jobs = list(IngestionJob.objects.filter(pipeline=pipeline).order_by("id"))
    assert [j.job_type for j in jobs] == [JobType.MODULE_EMISSION_RECALC, JobType.AGGREGATION]
    assert set(jobs[0].meta["per_det"]) == {"10", "11", "12"}
    assert pipeline.status == PipelineStatus.SUCCESS


def test_module_recalc_of_only_stale_types_with_none_stale_does_nothing() -> None:
    pipeline, _ = pipeline_create(
        job_type=JobType.MODULE_EMISSION_RECALC, scope=Scope(module_type_id=4, year=2025), config={"only_stale": True}
    )
    run_until_idle()
    (job,) = IngestionJob.objects.filter(pipeline=pipeline)
    assert (job.result, job.status_message) == (
        JobResult.SUCCESS,
        "Nothing to recalculate: no data-entry type of the module is stale",
    )
