"""Domain enumerations.

Integer ids are the reference system's (reference-domain §1.1): files and API payloads written
for it stay valid here, so values are append-only — never renumber a member.
"""

from __future__ import annotations

from django.db import models


class ModuleTypeId(models.IntegerChoices):
    HEADCOUNT = 1, "Headcount"
    PROFESSIONAL_TRAVEL = 2, "Professional travel"
    BUILDINGS = 3, "Buildings"
    EQUIPMENT = 4, "Equipment"
    PURCHASE = 5, "Purchase"
    RESEARCH_FACILITIES = 6, "Research facilities"
    EXTERNAL_CLOUD_AND_AI = 7, "External cloud and AI"
    PROCESS_EMISSIONS = 8, "Process emissions"


class DataEntryTypeId(models.IntegerChoices):
    MEMBER = 1, "Member"
    STUDENT = 2, "Student"
    SCIENTIFIC = 10, "Scientific equipment"
    IT = 11, "IT equipment"
    OTHER = 12, "Other equipment"
    PLANE = 20, "Plane"
    TRAIN = 21, "Train"
    BUILDING = 30, "Building"
    ENERGY_COMBUSTION = 31, "Energy combustion"
    BUILDING_EMBODIED_ENERGY = 32, "Building embodied energy"
    EXTERNAL_CLOUDS = 40, "External clouds"
    EXTERNAL_AI = 41, "External AI"
    PROCESS_EMISSIONS = 50, "Process emissions"
    SCIENTIFIC_EQUIPMENT = 60, "Scientific equipment purchases"
    IT_EQUIPMENT = 61, "IT equipment purchases"
    CONSUMABLE_ACCESSORIES = 62, "Consumables and accessories"
    BIOLOGICAL_CHEMICAL_GASEOUS_PRODUCT = 63, "Biological, chemical and gaseous products"
    SERVICES = 64, "Services"
    VEHICLES = 65, "Vehicles"
    OTHER_PURCHASES = 66, "Other purchases"
    ADDITIONAL_PURCHASES = 67, "Additional purchases"
    RESEARCH_FACILITIES = 70, "Research facilities"
    MICE_AND_FISH_ANIMAL_FACILITIES = 71, "Mice and fish animal facilities"


class Scope(models.IntegerChoices):
    SCOPE1 = 1, "Scope 1"
    SCOPE2 = 2, "Scope 2"
    SCOPE3 = 3, "Scope 3"


class EmissionCategory(models.TextChoices):
    PROCESS_EMISSIONS = "process_emissions", "Process emissions"
    BUILDINGS_ENERGY_COMBUSTION = "buildings_energy_combustion", "Buildings energy combustion"
    BUILDINGS_ROOM = "buildings_room", "Buildings rooms"
    EQUIPMENT = "equipment", "Equipment"
    EXTERNAL_CLOUD_AND_AI = "external_cloud_and_ai", "External cloud and AI"
    PURCHASES = "purchases", "Purchases"
    RESEARCH_FACILITIES = "research_facilities", "Research facilities"
    PROFESSIONAL_TRAVEL = "professional_travel", "Professional travel"
    COMMUTING = "commuting", "Commuting"
    FOOD = "food", "Food"
    WASTE = "waste", "Waste"
    EMBODIED_ENERGY = "embodied_energy", "Embodied energy"


class DataEntryStatus(models.IntegerChoices):
    PENDING = 0, "Pending"
    VALIDATED = 1, "Validated"
    REJECTED = 2, "Rejected"


class DataEntrySource(models.IntegerChoices):
    USER_MANUAL = 0, "Manual entry"
    CSV_MODULE_PER_YEAR = 1, "CSV, per year"
    CSV_MODULE_UNIT_SPECIFIC = 2, "CSV, unit-specific"
    API_MODULE_PER_YEAR = 3, "API, per year"
    API_MODULE_UNIT_SPECIFIC = 4, "API, unit-specific"
    EXTERNAL_INTEGRATION = 5, "External integration"


class ModuleStatus(models.IntegerChoices):
    NOT_STARTED = 0, "Not started"
    IN_PROGRESS = 1, "In progress"
    VALIDATED = 2, "Validated"


class CarbonReportType(models.TextChoices):
    CALCULATOR = "Calculator", "Calculator"
    SIMULATOR_EXPLORE = "Simulator_Explore", "Simulator (explore)"
    SIMULATOR_PLAN = "Simulator_Plan", "Simulator (plan)"


class TransportMode(models.TextChoices):
    PLANE = "plane", "Plane"
    TRAIN = "train", "Train"


class RoleName(models.TextChoices):
    """Role names as the unit directory's authorizations spell them (reference-domain §8)."""

    STANDARD = "calco2.user.standard", "Standard user"
    PRINCIPAL = "calco2.user.principal", "Unit principal"
    BACKOFFICE = "calco2.backoffice.metier", "Back office"
    SUPERADMIN = "calco2.backoffice.admin", "Super administrator"


# Roles that act on one unit (and, for back office, its subtree); the others are global.
UNIT_SCOPED_ROLES = frozenset({RoleName.STANDARD, RoleName.PRINCIPAL})
GLOBAL_ONLY_ROLES = frozenset({RoleName.SUPERADMIN})
