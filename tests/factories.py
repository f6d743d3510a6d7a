"""factory_boy factories for the model graphs tests need."""

from __future__ import annotations

import factory

from carbon.choices import CarbonReportType, DataEntrySource
from carbon.models import CarbonProject, CarbonReport, CarbonReportModule, DataEntry, Unit
from pipelines.choices import EntityType, IngestionMethod, JobType, TargetType
from pipelines.models import IngestionJob, Pipeline


class UnitFactory(factory.django.DjangoModelFactory[Unit]):
    class Meta:
        model = Unit

    institutional_code = factory.Sequence(lambda n: str(10_000 + n))
    institutional_id = factory.Sequence(lambda n: str(7_000 + n))
    name = factory.Sequence(lambda n: f"UNIT-{n}")
    level = 4


class CarbonProjectFactory(factory.django.DjangoModelFactory[CarbonProject]):
    class Meta:
        model = CarbonProject

    unit = factory.SubFactory(UnitFactory)
    report_type = CarbonReportType.CALCULATOR


class CarbonReportFactory(factory.django.DjangoModelFactory[CarbonReport]):
    class Meta:
        model = CarbonReport

    project = factory.SubFactory(CarbonProjectFactory)
    unit = factory.SelfAttribute("project.unit")
    year = 2025


class CarbonReportModuleFactory(factory.django.DjangoModelFactory[CarbonReportModule]):
    class Meta:
        model = CarbonReportModule

    report = factory.SubFactory(CarbonReportFactory)
    module_type_id = 4


class DataEntryFactory(factory.django.DjangoModelFactory[DataEntry]):
    class Meta:
        model = DataEntry

    carbon_report_module = factory.SubFactory(CarbonReportModuleFactory)
    data_entry_type_id = 10
    module_type_id = factory.SelfAttribute("carbon_report_module.module_type_id")
    year = factory.SelfAttribute("carbon_report_module.report.year")
    unit = factory.SelfAttribute("carbon_report_module.report.unit")
    source = DataEntrySource.CSV_MODULE_PER_YEAR
    data = factory.LazyFunction(dict)


class PipelineFactory(factory.django.DjangoModelFactory[Pipeline]):
    class Meta:
        model = Pipeline

    kind = JobType.CSV_INGEST
    entity_type = EntityType.MODULE_PER_YEAR
    target_type = TargetType.DATA_ENTRIES
    ingestion_method = IngestionMethod.CSV
    module_type_id = 4
    year = 2025


class IngestionJobFactory(factory.django.DjangoModelFactory[IngestionJob]):
    class Meta:
        model = IngestionJob

    pipeline = factory.SubFactory(PipelineFactory)
    job_type = factory.SelfAttribute("pipeline.kind")
    entity_type = factory.SelfAttribute("pipeline.entity_type")
    target_type = factory.SelfAttribute("pipeline.target_type")
    ingestion_method = factory.SelfAttribute("pipeline.ingestion_method")
    module_type_id = factory.SelfAttribute("pipeline.module_type_id")
    year = factory.SelfAttribute("pipeline.year")
