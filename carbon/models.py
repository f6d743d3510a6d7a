"""Domain model of the carbon calculator (reference-domain §1, SPEC §4.1).

Naming: every constraint and index is named ``<table-ish>_<what>`` and carries a comment with
the query or invariant that needs it. Foreign keys switch off Django's anonymous index
(``db_index=False``) and get a named one in ``Meta`` instead.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q

from carbon.choices import (
    GLOBAL_ONLY_ROLES,
    UNIT_SCOPED_ROLES,
    CarbonReportType,
    DataEntrySource,
    DataEntryStatus,
    EmissionCategory,
    ModuleStatus,
    RoleName,
    Scope,
    TransportMode,
)
from config.db import choices_check, empty_dict

# --- Reference enumerations (rows loaded by migration 0002) ----------------------------------


class ModuleType(models.Model):
    id = models.PositiveSmallIntegerField(primary_key=True)
    code = models.CharField(max_length=64)
    label = models.CharField(max_length=128)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["code"], name="module_type_unique_code")]

    def __str__(self) -> str:
        return self.label


class DataEntryType(models.Model):
    id = models.PositiveSmallIntegerField(primary_key=True)
    code = models.CharField(max_length=64)
    label = models.CharField(max_length=128)
    module_type = models.ForeignKey(
        ModuleType, on_delete=models.PROTECT, related_name="data_entry_types", db_index=False
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            # Module → its data-entry types (fan-out of a module-level upload or recalc).
            models.Index(fields=["module_type"], name="det_module_type_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["code"], name="det_unique_code")]

    def __str__(self) -> str:
        return self.label


class EmissionType(models.Model):
    id = models.PositiveIntegerField(primary_key=True)
    code = models.CharField(max_length=128)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", db_index=False
    )
    scope = models.PositiveSmallIntegerField(choices=Scope.choices, null=True, blank=True)
    category = models.CharField(max_length=64, choices=EmissionCategory.choices, null=True, blank=True)
    # Per-entry sums (60100 rooms, 40000 headcount): never added into totals.
    is_rollup = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Subtree walks in module statistics (children of a node).
            models.Index(fields=["parent"], name="emission_type_parent_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="emission_type_unique_code"),
            choices_check("scope", Scope, "emission_type_scope_valid", nullable=True),
            choices_check("category", EmissionCategory, "emission_type_category_valid", nullable=True),
            # A rollup row is a sum of other rows: giving it a scope would count it twice.
            models.CheckConstraint(
                condition=Q(is_rollup=False) | Q(scope__isnull=True), name="emission_type_rollup_has_no_scope"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.code}"


# --- Units, users and roles ------------------------------------------------------------------


class Unit(models.Model):
    """An organisational unit from the unit directory (reference-domain §6.1)."""

    institutional_code = models.CharField(max_length=32)  # directory id
    institutional_id = models.CharField(max_length=32, null=True, blank=True)  # "cf"
    name = models.CharField(max_length=255)
    label_fr = models.CharField(max_length=512, blank=True, default="")
    label_en = models.CharField(max_length=512, blank=True, default="")
    level = models.PositiveSmallIntegerField()
    # Soft keys as the directory sends them; ``parent`` is resolved from them after each sync
    # (a page may deliver a child before its parent).
    parent_institutional_code = models.CharField(max_length=32, null=True, blank=True)
    parent_institutional_id = models.CharField(max_length=32, null=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children", db_index=False
    )
    # Space-separated codes from the root to this unit, self included: subtree = token match.
    path_institutional_code = models.CharField(max_length=512, blank=True, default="")
    path_institutional_id = models.CharField(max_length=512, blank=True, default="")
    path_name = models.CharField(max_length=1024, blank=True, default="")
    unit_type_id = models.IntegerField(null=True, blank=True)
    unit_type_label = models.CharField(max_length=128, blank=True, default="")
    principal_user_institutional_id = models.CharField(max_length=32, null=True, blank=True)
    principal = models.ForeignKey(
        "carbon.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="principal_of", db_index=False
    )
    is_active = models.BooleanField(default=True)
    # Which unit directory last wrote the row (URL or file path).
    source = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["institutional_code"]
        indexes = [
            # Unit pickers and the units API: list by level, search by name.
            models.Index(fields=["level", "name"], name="unit_level_name_idx"),
            models.Index(fields=["parent"], name="unit_parent_idx"),
            models.Index(fields=["parent_institutional_code"], name="unit_parent_code_idx"),
            models.Index(fields=["principal"], name="unit_principal_idx"),
        ]
        constraints = [
            # Upsert key of unit_sync (ON CONFLICT).
            models.UniqueConstraint(fields=["institutional_code"], name="unit_unique_code"),
            # CSV rows, roles and scopes name units by cf (NULLs are distinct).
            models.UniqueConstraint(fields=["institutional_id"], name="unit_unique_institutional_id"),
            # "0" is the directory's "no cf": it must be stored as NULL or every such unit collides.
            models.CheckConstraint(
                condition=~Q(institutional_id="") & ~Q(institutional_id="0"), name="unit_institutional_id_not_blank"
            ),
            models.CheckConstraint(condition=Q(level__gte=1) & Q(level__lte=10), name="unit_level_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.institutional_id or self.institutional_code})"


class User(AbstractUser):
    """A person: staff logging in to admin, API callers, unit principals from the directory."""

    # Personal number in the directory (SCIPER); principals are matched to units on it.
    institutional_id = models.CharField(max_length=32, null=True, blank=True)
    display_name = models.CharField(max_length=255, blank=True, default="")

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            # Principals from the unit directory are upserted on it.
            models.UniqueConstraint(fields=["institutional_id"], name="user_unique_institutional_id"),
            models.CheckConstraint(condition=~Q(institutional_id=""), name="user_institutional_id_not_blank"),
        ]


class RoleAssignment(models.Model):
    """One role of one user, on one unit or global (reference-domain §8, SPEC §6.3)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments", db_index=False)
    role = models.CharField(max_length=64, choices=RoleName.choices)
    # NULL = global. Back office on a unit covers its subtree.
    unit = models.ForeignKey(
        Unit, null=True, blank=True, on_delete=models.CASCADE, related_name="role_assignments", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id", "role"]
        indexes = [
            # Scope filters: "which units can this user see" on every scoped request.
            models.Index(fields=["user", "role"], name="role_user_role_idx"),
            # "Who is principal of this unit" (unit_sync, admin).
            models.Index(fields=["unit", "role"], name="role_unit_role_idx"),
        ]
        constraints = [
            choices_check("role", RoleName, "role_name_valid"),
            models.UniqueConstraint(
                fields=["user", "role", "unit"], condition=Q(unit__isnull=False), name="role_unique_on_unit"
            ),
            # NULLs are distinct in a unique index: a second constraint for the global rows.
            models.UniqueConstraint(fields=["user", "role"], condition=Q(unit__isnull=True), name="role_unique_global"),
            models.CheckConstraint(
                condition=~Q(role__in=sorted(UNIT_SCOPED_ROLES)) | Q(unit__isnull=False),
                name="role_unit_scoped_needs_unit",
            ),
            models.CheckConstraint(
                condition=~Q(role__in=sorted(GLOBAL_ONLY_ROLES)) | Q(unit__isnull=True), name="role_global_has_no_unit"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} {self.unit or 'global'}"


# --- Years, projects, reports, modules -------------------------------------------------------


class YearConfiguration(models.Model):
    """One reporting year. ``configuration_completed`` is stamped by a successful unit_sync."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    is_started = models.BooleanField(default=False)
    configuration_completed = models.DateTimeField(null=True, blank=True)
    config = models.JSONField(default=empty_dict, blank=True)
    # The unit directory (URL or file) that provisioned the year.
    unit_source = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-year"]
        constraints = [
            models.CheckConstraint(condition=Q(year__gte=2000) & Q(year__lte=2100), name="year_config_year_range"),
        ]

    def __str__(self) -> str:
        return str(self.year)


class CarbonProject(models.Model):
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="carbon_projects", db_index=False)
    report_type = models.CharField(max_length=32, choices=CarbonReportType.choices, default=CarbonReportType.CALCULATOR)
    name = models.CharField(max_length=255, blank=True, default="")
    start_year = models.PositiveSmallIntegerField(null=True, blank=True)
    end_year = models.PositiveSmallIntegerField(null=True, blank=True)
    is_viewable_by_unit_members = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["unit_id", "report_type"]
        constraints = [
            choices_check("report_type", CarbonReportType, "project_report_type_valid"),
            # One project per unit and type: unit_sync finds-or-creates the Calculator project.
            models.UniqueConstraint(fields=["unit", "report_type"], name="project_unique_unit_type"),
            models.CheckConstraint(
                condition=Q(start_year__isnull=True) | Q(end_year__isnull=True) | Q(start_year__lte=F("end_year")),
                name="project_years_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit} {self.report_type}"


class CarbonReport(models.Model):
    """A unit's report for one year; always has the 8 modules."""

    project = models.ForeignKey(CarbonProject, on_delete=models.PROTECT, related_name="reports", db_index=False)
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="carbon_reports", db_index=False)
    year = models.PositiveSmallIntegerField()
    reference_year = models.PositiveSmallIntegerField(null=True, blank=True)
    overall_status = models.PositiveSmallIntegerField(choices=ModuleStatus.choices, default=ModuleStatus.NOT_STARTED)
    completion_progress = models.CharField(max_length=8, blank=True, default="")  # "k/8"
    stats = models.JSONField(null=True, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["year", "unit_id"]
        indexes = [
            # Reports of a year (aggregation rollup, reporting list) and a unit's reports.
            models.Index(fields=["year", "unit"], name="report_year_unit_idx"),
            models.Index(fields=["unit", "year"], name="report_unit_year_idx"),
        ]
        constraints = [
            choices_check("overall_status", ModuleStatus, "report_overall_status_valid"),
            # ON CONFLICT target of unit_sync's report provisioning.
            models.UniqueConstraint(fields=["project", "year"], name="report_unique_project_year"),
        ]

    def __str__(self) -> str:
        return f"{self.unit} {self.year}"


class CarbonReportModule(models.Model):
    report = models.ForeignKey(CarbonReport, on_delete=models.CASCADE, related_name="modules", db_index=False)
    module_type = models.ForeignKey(ModuleType, on_delete=models.PROTECT, related_name="+", db_index=False)
    status = models.PositiveSmallIntegerField(choices=ModuleStatus.choices, default=ModuleStatus.NOT_STARTED)
    stats = models.JSONField(null=True, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["report_id", "module_type_id"]
        indexes = [
            # Aggregation of one (module, year): every report module of that type.
            models.Index(fields=["module_type", "report"], name="crm_module_report_idx"),
        ]
        constraints = [
            choices_check("status", ModuleStatus, "crm_status_valid"),
            # Also serves "the modules of a report" (leading column).
            models.UniqueConstraint(fields=["report", "module_type"], name="crm_unique_report_module"),
        ]

    def __str__(self) -> str:
        return f"{self.report} / {self.module_type_id}"


# --- Activity data and emissions -------------------------------------------------------------


class DataEntry(models.Model):
    """One activity row. ``data`` holds the validated, normalised values of its columns."""

    carbon_report_module = models.ForeignKey(
        CarbonReportModule, on_delete=models.PROTECT, related_name="data_entries", db_index=False
    )
    data_entry_type = models.ForeignKey(DataEntryType, on_delete=models.PROTECT, related_name="+", db_index=False)
    # Denormalised from the report module so that a per-year replace and a recalc slice are
    # single-table range scans.
    module_type = models.ForeignKey(ModuleType, on_delete=models.PROTECT, related_name="+", db_index=False)
    year = models.PositiveSmallIntegerField()
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="+", db_index=False)
    data = models.JSONField(default=empty_dict)
    status = models.PositiveSmallIntegerField(choices=DataEntryStatus.choices, default=DataEntryStatus.PENDING)
    source = models.PositiveSmallIntegerField(choices=DataEntrySource.choices)
    # Soft reference to the ingestion job that wrote the row (no FK: jobs may be pruned
    # while their data stays).
    source_job_id = models.BigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "data entries"
        indexes = [
            # Per-year replace of one source: DELETE … WHERE module_type, year, source (+det).
            models.Index(fields=["module_type", "year", "source", "data_entry_type"], name="entry_replace_idx"),
            # emission_recalc slice: entries of one (year, det), streamed by id.
            models.Index(fields=["year", "data_entry_type", "id"], name="entry_recalc_slice_idx"),
            # Module pages and unit-specific replace: entries of one report module.
            models.Index(fields=["carbon_report_module", "data_entry_type"], name="entry_crm_det_idx"),
            models.Index(fields=["unit", "year"], name="entry_unit_year_idx"),
            # Deleting a user nulls created_by: only manual entries carry one.
            models.Index(fields=["created_by"], condition=Q(created_by__isnull=False), name="entry_created_by_idx"),
        ]
        constraints = [
            choices_check("status", DataEntryStatus, "entry_status_valid"),
            choices_check("source", DataEntrySource, "entry_source_valid"),
        ]

    def __str__(self) -> str:
        return f"entry {self.pk} det {self.data_entry_type_id}"


class DataEntryEmission(models.Model):
    """One computed emission of an entry: one per emission-type leaf and factor, plus rollups."""

    data_entry = models.ForeignKey(DataEntry, on_delete=models.CASCADE, related_name="emissions", db_index=False)
    # Denormalised so that aggregation sums emissions per report module without joining entries.
    carbon_report_module = models.ForeignKey(
        CarbonReportModule, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    emission_type = models.ForeignKey(EmissionType, on_delete=models.PROTECT, related_name="+", db_index=False)
    # Factors are never deleted; SET_NULL (not the reference's CASCADE) keeps figures if one is.
    primary_factor = models.ForeignKey(
        "carbon.Factor", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    kg_co2eq = models.FloatField()
    additional_value = models.FloatField(null=True, blank=True)
    scope = models.PositiveSmallIntegerField(choices=Scope.choices, null=True, blank=True)
    is_rollup = models.BooleanField(default=False)
    meta = models.JSONField(default=empty_dict)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [
            # Recalc deletes an entry's emissions before re-inserting them.
            models.Index(fields=["data_entry"], name="emission_entry_idx"),
            # Aggregation: SUM(kg) GROUP BY (report module, emission type) over non-rollup rows.
            models.Index(
                fields=["carbon_report_module", "emission_type"],
                condition=Q(is_rollup=False),
                name="emission_crm_type_idx",
            ),
            models.Index(fields=["primary_factor"], name="emission_factor_idx"),
        ]
        constraints = [
            choices_check("scope", Scope, "emission_scope_valid", nullable=True),
            models.CheckConstraint(
                condition=Q(is_rollup=False) | Q(scope__isnull=True), name="emission_rollup_has_no_scope"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kg_co2eq} kg ({self.emission_type_id})"


class Factor(models.Model):
    """A year-scoped coefficient. Identity: (det, year, emission type, normalised classification)."""

    data_entry_type = models.ForeignKey(DataEntryType, on_delete=models.PROTECT, related_name="+", db_index=False)
    emission_type = models.ForeignKey(EmissionType, on_delete=models.PROTECT, related_name="+", db_index=False)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    classification = models.JSONField(default=empty_dict)
    # The one normalisation of ``classification`` used for matching at upload and at recalc
    # (sorted keys, trimmed lower-case values), so identity and lookup agree on every database.
    classification_key = models.CharField(max_length=1024)
    values = models.JSONField(default=empty_dict)
    # The last upload that carried this factor: a factor not seen by the latest upload of its
    # (det, year) is stale. Soft reference; jobs live in the engine.
    last_seen_job_id = models.BigIntegerField(null=True, blank=True)
    is_computed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["data_entry_type_id", "year", "id"]
        indexes = [
            # Factor matching and the factors API: all factors of one (det, year).
            models.Index(fields=["data_entry_type", "year", "classification_key"], name="factor_det_year_idx"),
            # Stale factors of a year: last_seen_job_id <> the latest upload's job.
            models.Index(fields=["year", "last_seen_job_id"], name="factor_year_seen_idx"),
            models.Index(fields=["emission_type"], name="factor_emission_type_idx"),
        ]
        constraints = [
            # Upsert targets of factor_ingest (NULLs are distinct: one constraint per case).
            models.UniqueConstraint(
                fields=["data_entry_type", "year", "emission_type", "classification_key"],
                condition=Q(year__isnull=False),
                name="factor_identity",
            ),
            models.UniqueConstraint(
                fields=["data_entry_type", "emission_type", "classification_key"],
                condition=Q(year__isnull=True),
                name="factor_identity_no_year",
            ),
        ]

    def __str__(self) -> str:
        return f"factor {self.pk} det {self.data_entry_type_id} {self.year} {self.classification_key}"


# --- Reference data (global, not per year) ---------------------------------------------------


class Location(models.Model):
    """An airport or a train station."""

    transport_mode = models.CharField(max_length=8, choices=TransportMode.choices)
    name = models.CharField(max_length=255)
    airport_size = models.CharField(max_length=32, blank=True, default="")
    latitude = models.FloatField()
    longitude = models.FloatField()
    continent = models.CharField(max_length=2, blank=True, default="")
    country_code = models.CharField(max_length=2, blank=True, default="")
    iata_code = models.CharField(max_length=3, null=True, blank=True)
    municipality = models.CharField(max_length=255, blank=True, default="")
    keywords = models.CharField(max_length=255, blank=True, default="")
    # plane:<IATA>, or <mode>:<cc>:<normalised name>:<lat>:<lon>; the upsert key.
    natural_key = models.CharField(max_length=500)
    # lower(trim(name)) with whitespace collapsed: train stations are matched on it per country.
    name_key = models.CharField(max_length=255, default="")

    class Meta:
        ordering = ["transport_mode", "name"]
        indexes = [
            # Plane pre-compute: airports by IATA code.
            models.Index(fields=["transport_mode", "iata_code"], name="location_mode_iata_idx"),
            # Train CSV enrichment: stations by (country, normalised name).
            models.Index(fields=["transport_mode", "country_code", "name_key"], name="location_station_idx"),
        ]
        constraints = [
            # Upsert key of reference_ingest.
            models.UniqueConstraint(fields=["natural_key"], name="location_unique_natural_key"),
            choices_check("transport_mode", TransportMode, "location_mode_valid"),
            models.CheckConstraint(
                condition=Q(latitude__gte=-90) & Q(latitude__lte=90), name="location_latitude_range"
            ),
            models.CheckConstraint(
                condition=Q(longitude__gte=-180) & Q(longitude__lte=180), name="location_longitude_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transport_mode} {self.name}"


class BuildingRoom(models.Model):
    building_location = models.CharField(max_length=255, blank=True, default="")
    building_name = models.CharField(max_length=255)
    room_name = models.CharField(max_length=255)
    room_type = models.CharField(max_length=64, blank=True, default="")
    room_surface_square_meter = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["building_name", "room_name"]
        constraints = [
            # Rooms are matched by (building, room) — the reference matched by room name alone
            # and picked an arbitrary building's room (reference-domain §11). Also the upsert key.
            models.UniqueConstraint(fields=["building_name", "room_name"], name="room_unique_building_room"),
            models.CheckConstraint(
                condition=Q(room_surface_square_meter__isnull=True) | Q(room_surface_square_meter__gte=0),
                name="room_surface_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.building_name} {self.room_name}"


class CurrencyRate(models.Model):
    """How many euros one unit of a currency was worth in a year (loaded by the operator).

    Purchases and cloud spending are converted with it at compute time; nothing is fetched
    from the network then. EUR is implicit (1.0).
    """

    year = models.PositiveSmallIntegerField()
    currency = models.CharField(max_length=3)  # ISO 4217, lower-case
    rate_to_eur = models.FloatField()
    source = models.CharField(max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["year", "currency"]
        constraints = [
            # Upsert key of the rates upload, and the lookup of a recalc slice (year's rates).
            models.UniqueConstraint(fields=["year", "currency"], name="currency_rate_unique_year_currency"),
            models.CheckConstraint(condition=Q(rate_to_eur__gt=0), name="currency_rate_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[a-z]{3}$"), name="currency_rate_code_format"),
        ]

    def __str__(self) -> str:
        return f"{self.year} {self.currency} = {self.rate_to_eur} EUR"
