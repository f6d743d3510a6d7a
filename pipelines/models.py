"""The engine's tables: pipelines (aggregate root), their jobs (a DAG), and live workers.

The engine is generic: scope columns hold the domain's ids (module type, data-entry type,
year, unit) as plain integers, so this app imports nothing from ``carbon``/``ingestion``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone

from config.db import choices_check, empty_dict, empty_list
from pipelines.choices import (
    ACTIVE_JOB_STATES,
    ACTIVE_PIPELINE_STATUSES,
    TERMINAL_PIPELINE_STATUSES,
    EntityType,
    IngestionMethod,
    JobResult,
    JobState,
    JobType,
    PipelineStatus,
    TargetType,
    WorkerKind,
)


class ScopedModel(models.Model):
    """What a pipeline or job is about. Domain ids are plain integers: the engine imports no app."""

    entity_type = models.CharField(max_length=24, choices=EntityType.choices)
    target_type = models.CharField(max_length=24, choices=TargetType.choices, null=True, blank=True)
    ingestion_method = models.CharField(max_length=16, choices=IngestionMethod.choices)
    module_type_id = models.PositiveSmallIntegerField(null=True, blank=True)
    data_entry_type_id = models.PositiveSmallIntegerField(null=True, blank=True)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    # Unit of a unit-specific run: a soft reference (no FK into the domain app).
    unit_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


# PostgreSQL-only indexes, built by migration 0005 (raw SQL: Django cannot declare a GIN index
# that SQLite would skip): the trigram index for the list's q, a substring search the selector
# sends as UPPER(col::text) LIKE UPPER('%…%'). (index name, table, column)
TRIGRAM_INDEXES = (("pipeline_search_text_trgm_idx", "pipelines_pipeline", "search_text"),)


class Pipeline(ScopedModel):
    """One upload or trigger: a root job and everything it chained. Status is derived from jobs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=JobType.choices)  # the root job's type
    # Every job type the pipeline holds, as ``rules.JOB_TYPE_BITS`` (written with its status):
    # the list's job_type filter reads it from the covering index instead of probing the jobs.
    job_types = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=PipelineStatus.choices, default=PipelineStatus.NOT_STARTED)
    # The unit's code at creation, for lists and scope checks without a join.
    unit_code = models.CharField(max_length=64, blank=True, default="")
    # Number of emission_recalc children, written by the root when it chains them.
    expected_recalc = models.PositiveIntegerField(null=True, blank=True)
    job_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    # True as soon as any job ends in ERROR, before the pipeline is terminal.
    has_errors = models.BooleanField(default=False)
    last_error = models.TextField(blank=True, default="")
    # Its jobs' messages (rules.pipeline_search_text), written with its status: the list's ``q``
    # reads one trigram-indexed column of the pipelines instead of probing a million jobs.
    # A database default too: rows inserted in SQL (the bench's history, a restore) start empty.
    search_text = models.TextField(blank=True, default="", db_default="", editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Console / GET /sync/pipelines default order, and keyset (cursor) pagination on it.
            # Covering (PostgreSQL): the per-status counters and the OFFSET walk of the list,
            # whatever the filters but q, are index-only scans of it (100k rows: milliseconds).
            models.Index(
                fields=["-created_at", "-id"],
                include=["status", "kind", "job_types", "module_type_id", "year", "has_errors", "unit_id"],
                name="pipeline_list_cover_idx",
            ),
            # Same list filtered by status, by kind, by (module, year).
            models.Index(fields=["status", "-created_at"], name="pipeline_status_created_idx"),
            models.Index(fields=["kind", "-created_at"], name="pipeline_kind_created_idx"),
            models.Index(fields=["module_type_id", "year", "-created_at"], name="pipeline_module_year_idx"),
            # "Errors only" filter.
            models.Index(fields=["-created_at"], condition=Q(has_errors=True), name="pipeline_errors_idx"),
            # Reconciler sweep: non-terminal pipelines only, so its cost follows active work.
            models.Index(
                fields=["created_at"], condition=Q(status__in=ACTIVE_PIPELINE_STATUSES), name="pipeline_active_idx"
            ),
            # A principal's view: pipelines pinned to their units.
            models.Index(
                fields=["unit_id", "-created_at"], condition=Q(unit_id__isnull=False), name="pipeline_unit_idx"
            ),
            models.Index(fields=["created_by"], name="pipeline_created_by_idx"),
            # q's unit-code term: unit_code__iexact, i.e. UPPER(unit_code::text) = UPPER(%s).
            models.Index(Upper("unit_code"), name="pipeline_unit_code_upper_idx"),
            # Live-event relay (pipelines.relay, no Redis): rows changed since its high-water mark,
            # WHERE updated_at > %s ORDER BY updated_at DESC LIMIT n, every relay tick (0.1 s).
            models.Index(fields=["updated_at"], name="pipeline_updated_idx"),
        ]
        constraints = [
            choices_check("kind", JobType, "pipeline_kind_valid"),
            choices_check("status", PipelineStatus, "pipeline_status_valid"),
            choices_check("entity_type", EntityType, "pipeline_entity_type_valid"),
            choices_check("target_type", TargetType, "pipeline_target_type_valid", nullable=True),
            choices_check("ingestion_method", IngestionMethod, "pipeline_method_valid"),
            # A terminal pipeline knows when it ended; an active one has not ended.
            models.CheckConstraint(
                condition=(~Q(status__in=sorted(TERMINAL_PIPELINE_STATUSES)) | Q(finished_at__isnull=False))
                & (~Q(status__in=ACTIVE_PIPELINE_STATUSES) | Q(finished_at__isnull=True)),
                name="pipeline_finished_at_iff_terminal",
            ),
            models.CheckConstraint(
                condition=Q(error_count__lte=models.F("job_count")), name="pipeline_error_count_le_jobs"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_PIPELINE_STATUSES


class IngestionJob(ScopedModel):
    """One node of a pipeline's DAG. State writes are compare-and-set on (id, lease owner, RUNNING)."""

    # RESTRICT (not CASCADE): a pipeline's history is only removed deliberately, jobs first.
    # On PostgreSQL migration 0002 also makes the constraint immediate (not deferred), so a job
    # inserted before its pipeline row fails at the INSERT — the reference's FK-ordering bug.
    pipeline = models.ForeignKey(Pipeline, on_delete=models.RESTRICT, related_name="jobs", db_index=False)
    # The DAG edge: the job that chained this one (NULL for the root).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.RESTRICT, related_name="children", db_index=False
    )
    job_type = models.CharField(max_length=32, choices=JobType.choices)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.NOT_STARTED)
    result = models.CharField(max_length=16, choices=JobResult.choices, null=True, blank=True)
    status_message = models.TextField(blank=True, default="")
    # [{"ts", "message", "state", "result"?}], append-only, last 50 kept, terminal one included.
    status_history = models.JSONField(default=empty_list, blank=True)
    # config (handler input), stats, row_errors, phases, progress.
    meta = models.JSONField(default=empty_dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    lease_owner = models.CharField(max_length=255, null=True, blank=True)  # worker id (host:pid)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by abort; a running handler stops at its next progress write. The reconciler forces
    # a job that has not stopped one lease later.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    run_after = models.DateTimeField(null=True, blank=True)
    # This job settled its fan-in group (chained, requeued or coalesced into the aggregation).
    closed_fan_in = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The pipeline's jobs: status recompute, snapshots, console row expand.
            models.Index(fields=["pipeline", "id"], name="job_pipeline_idx"),
            models.Index(fields=["parent"], name="job_parent_idx"),
            # Worker claim: SELECT … WHERE state = NOT_STARTED ORDER BY id FOR UPDATE SKIP LOCKED.
            models.Index(fields=["id"], condition=Q(state=JobState.NOT_STARTED), name="job_claimable_idx"),
            # Reconciler: RUNNING jobs whose lease expired.
            models.Index(fields=["lease_expires_at"], condition=Q(state=JobState.RUNNING), name="job_lease_idx"),
            # Reconciler: aborted jobs that did not stop.
            models.Index(
                fields=["cancel_requested_at"],
                condition=Q(state=JobState.RUNNING, cancel_requested_at__isnull=False),
                name="job_cancel_pending_idx",
            ),
            # The list's q over the live messages of queued and running jobs (the finished ones
            # are in Pipeline.search_text): a few rows, whatever the history's size.
            models.Index(fields=["pipeline"], condition=Q(state__in=ACTIVE_JOB_STATES), name="job_active_pipeline_idx"),
            # Active pipelines / recalculation status of a (module, year).
            models.Index(fields=["module_type_id", "year", "job_type"], name="job_scope_idx"),
            # Live-event relay (pipelines.relay, no Redis): jobs changed since its high-water mark,
            # WHERE updated_at > %s ORDER BY updated_at DESC LIMIT n, every relay tick (0.1 s).
            models.Index(fields=["updated_at"], name="job_updated_idx"),
        ]
        constraints = [
            choices_check("job_type", JobType, "job_type_valid"),
            choices_check("state", JobState, "job_state_valid"),
            choices_check("result", JobResult, "job_result_valid", nullable=True),
            choices_check("entity_type", EntityType, "job_entity_type_valid"),
            choices_check("target_type", TargetType, "job_target_type_valid", nullable=True),
            choices_check("ingestion_method", IngestionMethod, "job_method_valid"),
            # A result exists exactly when the job is FINISHED, and then it has an end time.
            models.CheckConstraint(
                condition=(Q(state=JobState.FINISHED) & Q(result__isnull=False) & Q(finished_at__isnull=False))
                | (~Q(state=JobState.FINISHED) & Q(result__isnull=True)),
                name="job_result_iff_finished",
            ),
            # Only a RUNNING job has a lease; every other state has none to compare-and-set on.
            models.CheckConstraint(
                condition=(Q(state=JobState.RUNNING) & Q(lease_owner__isnull=False) & Q(lease_expires_at__isnull=False))
                | (~Q(state=JobState.RUNNING) & Q(lease_owner__isnull=True) & Q(lease_expires_at__isnull=True)),
                name="job_lease_iff_running",
            ),
            models.CheckConstraint(condition=Q(max_attempts__gte=1), name="job_max_attempts_positive"),
            # One active aggregation per (module, year): the safety net behind coalescing.
            models.UniqueConstraint(
                fields=["module_type_id", "year"],
                condition=Q(job_type=JobType.AGGREGATION, state__in=ACTIVE_JOB_STATES),
                name="job_one_active_aggregation",
            ),
            # One active emission_recalc per (module, det, year): back-to-back uploads dedup on it.
            # NULLs are distinct, so the scope must be complete for the rule to hold.
            models.UniqueConstraint(
                fields=["module_type_id", "data_entry_type_id", "year"],
                condition=Q(
                    job_type=JobType.EMISSION_RECALC,
                    state__in=ACTIVE_JOB_STATES,
                    module_type_id__isnull=False,
                    data_entry_type_id__isnull=False,
                    year__isnull=False,
                ),
                name="job_one_active_emission_recalc",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_type} #{self.pk}"


class Worker(models.Model):
    """A live worker (or reconciler) process, registered at start, heartbeated, removed on clean exit."""

    id = models.CharField(max_length=255, primary_key=True)  # kind:host:pid
    kind = models.CharField(max_length=16, choices=WorkerKind.choices, default=WorkerKind.WORKER)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    git_sha = models.CharField(max_length=64, blank=True, default="")
    version = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(default=timezone.now)
    current_job = models.ForeignKey(
        IngestionJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            # Workers panel and health: workers seen in the last few heartbeats.
            models.Index(fields=["-last_heartbeat_at"], name="worker_heartbeat_idx"),
            models.Index(fields=["current_job"], name="worker_current_job_idx"),
        ]
        constraints = [choices_check("kind", WorkerKind, "worker_kind_valid")]

    def __str__(self) -> str:
        return self.id
