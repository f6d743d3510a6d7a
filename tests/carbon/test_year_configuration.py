"""Year configuration: default config, create (→ unit_sync pipeline), patch rules, the gate."""

from __future__ import annotations

import pytest
from django.utils import timezone

from carbon.models import YearConfiguration
from carbon.selectors import year_provisioned
from carbon.services import (
    ConfigInvalid,
    YearConfigurationExists,
    year_configuration_create,
    year_configuration_default_config,
    year_configuration_patch,
)
from pipelines.choices import EntityType, JobType
from pipelines.models import IngestionJob


def test_default_config_lists_every_module_and_type() -> None:
    config = year_configuration_default_config()
    assert sorted(config["modules"], key=int) == [str(m) for m in range(1, 9)]
    assert set(config["modules"]["4"]["submodules"]) == {"10", "11", "12"}
    assert config["modules"]["2"]["submodules"]["20"] == {"enabled": True, "threshold": None}
    assert config["reduction_objectives"]["files"] == {
        "institutional_footprint": None,
        "population_projections": None,
        "unit_scenarios": None,
    }


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_create_starts_a_unit_sync_pipeline_and_refuses_a_second_time() -> None:
    configuration, pipeline = year_configuration_create(year=2026)
    job = IngestionJob.objects.get(pipeline=pipeline)
    assert (pipeline.kind, pipeline.year, pipeline.entity_type) == (JobType.UNIT_SYNC, 2026, EntityType.GLOBAL_PER_YEAR)
    assert job.meta["config"] == {"target_year": 2026}
    assert configuration.configuration_completed is None
    assert not year_provisioned(year=2026)
    with pytest.raises(YearConfigurationExists):
        year_configuration_create(year=2026)
    YearConfiguration.objects.filter(year=2026).update(configuration_completed=timezone.now())
    assert year_provisioned(year=2026)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"modules": {"1": {"submodules": {"1": {"threshold": 10}}}}}, "modules.1.submodules.1.threshold"),
        ({"modules": {"2": {"submodules": {"20": {"threshold": -1}}}}}, "modules.2.submodules.20.threshold"),
        ({"modules": {"2": {"submodules": {"31": {"enabled": False}}}}}, "modules.2.submodules.31"),
        ({"modules": {"9": {"enabled": True}}}, "modules.9"),
        ({"modules": {"3": {"uncertainty_tag": "huge"}}}, "modules.3.uncertainty_tag"),
        ({"modules": {"3": {"enabled": "yes"}}}, "modules.3.enabled"),
    ],
)
def test_patch_rejects_invalid_config_naming_the_field(change: dict[str, object], field: str) -> None:
    YearConfiguration.objects.create(year=2027, config=year_configuration_default_config())
    with pytest.raises(ConfigInvalid) as excinfo:
        year_configuration_patch(year=2027, config=change)
    assert excinfo.value.field == field
    # nothing changed
    assert YearConfiguration.objects.get(year=2027).config == year_configuration_default_config()


@pytest.mark.django_db
def test_patch_deep_merges_and_opens_the_year() -> None:
    YearConfiguration.objects.create(year=2027, config=year_configuration_default_config())
    year_configuration_patch(
        year=2027, is_started=True, config={"modules": {"2": {"submodules": {"20": {"threshold": 1500.5}}}}}
    )
    configuration = YearConfiguration.objects.get(year=2027)
    assert configuration.is_started is True
    assert configuration.config["modules"]["2"]["submodules"]["20"] == {"enabled": True, "threshold": 1500.5}
    assert configuration.config["modules"]["2"]["submodules"]["21"] == {"enabled": True, "threshold": None}
