"""Database-level invariants of the engine's tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import RestrictedError
from django.utils import timezone

from pipelines.choices import JobResult, JobState, JobType
from pipelines.models import IngestionJob, Pipeline
from tests.factories import IngestionJobFactory, PipelineFactory


def _job_fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "job_type": JobType.CSV_INGEST,
        "entity_type": "MODULE_PER_YEAR",
        "ingestion_method": "csv",
        "module_type_id": 4,
        "year": 2025,
    }
    fields.update(overrides)
    return fields


# --- FK ordering: pipeline row first, always --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_job_without_its_pipeline_row_is_rejected() -> None:
    # when: a job names a pipeline that was never inserted (the reference's FK-ordering bug)
    with pytest.raises(IntegrityError), transaction.atomic():
        IngestionJob.objects.create(pipeline_id=uuid.uuid4(), **_job_fields())
    # then: nothing was written
    assert IngestionJob.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_pipeline_first_then_job_succeeds() -> None:
    with transaction.atomic():
        pipeline = PipelineFactory.create()
        job = IngestionJob.objects.create(pipeline=pipeline, **_job_fields())
    assert IngestionJob.objects.get(pk=job.pk).pipeline_id == pipeline.pk


@pytest.mark.django_db(transaction=True)
def test_deleting_a_pipeline_with_jobs_fails_in_orm_and_in_database() -> None:
    job = IngestionJobFactory.create()
    pipeline = job.pipeline
    # ORM: on_delete=RESTRICT
    with pytest.raises(RestrictedError):
        pipeline.delete()
    # Database: a raw DELETE that bypasses the ORM's collector is refused too.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM pipelines_pipeline WHERE id = %s", [pipeline.pk.hex])
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()
    assert IngestionJob.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_deleting_jobs_then_pipeline_succeeds() -> None:
    job = IngestionJobFactory.create()
    pipeline = job.pipeline
    with transaction.atomic():
        IngestionJob.objects.filter(pipeline=pipeline).delete()
        pipeline.delete()
    assert not Pipeline.objects.filter(pk=pipeline.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_job_pipeline_fk_is_immediate_restrict() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT confdeltype, condeferrable FROM pg_constraint WHERE conname = 'job_pipeline_fk'"
            " AND conrelid = 'pipelines_ingestionjob'::regclass"
        )
        assert cursor.fetchall() == [("r", False)]
    # The INSERT itself fails, not the COMMIT: the error surfaces inside the open transaction.
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic():  # savepoint
            IngestionJob.objects.create(pipeline_id=uuid.uuid4(), **_job_fields())
        assert connection.in_atomic_block
    assert IngestionJob.objects.count() == 0


# --- Partial unique constraints ---------------------------------------------------------------


@pytest.mark.django_db
def test_second_active_aggregation_for_module_year_is_rejected() -> None:
    IngestionJobFactory.create(job_type=JobType.AGGREGATION, module_type_id=4, year=2025)
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        IngestionJobFactory.create(job_type=JobType.AGGREGATION, module_type_id=4, year=2025)
    # PostgreSQL names the index; SQLite names its columns.
    expected = (
        "job_one_active_aggregation"
        if connection.vendor == "postgresql"
        else "pipelines_ingestionjob.module_type_id, pipelines_ingestionjob.year"
    )
    assert expected in str(excinfo.value)


@pytest.mark.django_db
def test_running_aggregation_blocks_a_new_one() -> None:
    now = timezone.now()
    IngestionJobFactory.create(
        job_type=JobType.AGGREGATION,
        state=JobState.RUNNING,
        lease_owner="host:1",
        lease_expires_at=now + timedelta(seconds=30),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        IngestionJobFactory.create(job_type=JobType.AGGREGATION)


@pytest.mark.django_db
def test_finished_aggregation_does_not_block() -> None:
    IngestionJobFactory.create(
        job_type=JobType.AGGREGATION, state=JobState.FINISHED, result=JobResult.SUCCESS, finished_at=timezone.now()
    )
    IngestionJobFactory.create(job_type=JobType.AGGREGATION)
    assert IngestionJob.objects.filter(job_type=JobType.AGGREGATION).count() == 2


@pytest.mark.django_db
def test_aggregations_of_other_scopes_do_not_block() -> None:
    IngestionJobFactory.create(job_type=JobType.AGGREGATION, module_type_id=4, year=2025)
    IngestionJobFactory.create(job_type=JobType.AGGREGATION, module_type_id=5, year=2025)
    IngestionJobFactory.create(job_type=JobType.AGGREGATION, module_type_id=4, year=2026)
    assert IngestionJob.objects.count() == 3


@pytest.mark.django_db
def test_second_active_emission_recalc_for_module_det_year_is_rejected() -> None:
    IngestionJobFactory.create(job_type=JobType.EMISSION_RECALC, data_entry_type_id=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        IngestionJobFactory.create(job_type=JobType.EMISSION_RECALC, data_entry_type_id=10)
    # another det of the same module is a different scope
    IngestionJobFactory.create(job_type=JobType.EMISSION_RECALC, data_entry_type_id=11)


@pytest.mark.django_db
def test_finished_emission_recalc_does_not_block() -> None:
    IngestionJobFactory.create(
        job_type=JobType.EMISSION_RECALC,
        data_entry_type_id=10,
        state=JobState.FINISHED,
        result=JobResult.ERROR,
        finished_at=timezone.now(),
    )
    IngestionJobFactory.create(job_type=JobType.EMISSION_RECALC, data_entry_type_id=10)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "job_type", [JobType.CSV_INGEST, JobType.FACTOR_INGEST, JobType.MODULE_EMISSION_RECALC, JobType.UNIT_SYNC]
)
def test_other_job_types_are_not_deduplicated(job_type: JobType) -> None:
    for _ in range(3):
        IngestionJobFactory.create(job_type=job_type, data_entry_type_id=10, module_type_id=4, year=2025)
    assert IngestionJob.objects.filter(job_type=job_type).count() == 3


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_partial_unique_indexes_exist_with_their_predicates() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'pipelines_ingestionjob'"
            " AND indexname IN ('job_one_active_aggregation', 'job_one_active_emission_recalc')"
        )
        definitions = dict(cursor.fetchall())
    assert set(definitions) == {"job_one_active_aggregation", "job_one_active_emission_recalc"}
    for definition in definitions.values():
        assert definition.startswith("CREATE UNIQUE INDEX")
        assert "WHERE" in definition
        assert "NOT_STARTED" in definition
        assert "RUNNING" in definition


# --- Check constraints back the enums and the state machine ---------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"state": "QUEUED"}, "job_state_valid"),
        ({"job_type": "nightly_cleanup"}, "job_type_valid"),
        ({"result": JobResult.SUCCESS}, "job_result_iff_finished"),
        ({"state": JobState.FINISHED}, "job_result_iff_finished"),
        ({"state": JobState.RUNNING}, "job_lease_iff_running"),
        ({"lease_owner": "host:1"}, "job_lease_iff_running"),
        ({"max_attempts": 0}, "job_max_attempts_positive"),
        ({"entity_type": "1"}, "job_entity_type_valid"),
    ],
)
def test_job_check_constraints(fields: dict[str, object], constraint: str) -> None:
    pipeline = PipelineFactory.create()
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        IngestionJob.objects.create(pipeline=pipeline, **_job_fields(**fields))
    assert constraint in str(excinfo.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"status": "DONE"}, "pipeline_status_valid"),
        ({"status": "SUCCESS"}, "pipeline_finished_at_iff_terminal"),
        ({"finished_at": timezone.now()}, "pipeline_finished_at_iff_terminal"),
        ({"kind": "shell"}, "pipeline_kind_valid"),
        ({"error_count": 2, "job_count": 1}, "pipeline_error_count_le_jobs"),
    ],
)
def test_pipeline_check_constraints(fields: dict[str, object], constraint: str) -> None:
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        PipelineFactory.create(**fields)
    assert constraint in str(excinfo.value)
