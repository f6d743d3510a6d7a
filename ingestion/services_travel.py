"""Professional travel from the travel-booking API (``api_ingest``; SPEC §4.4, reference-domain §3.8).

The API answers ``POST {TRAVEL_API_URL}`` (bearer token, body ``{"year": Y}``) with
``{"data": [rows]}``, each row keyed by the booking tool's captions. Every flight becomes a
plane entry (det 20) with the tool's corrected CO2 as its kg override. Re-running a year
REPLACES that year's API rows (the reference appended them again).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carbon.catalogue import spec_for
from carbon.choices import CarbonReportType, DataEntrySource, DataEntryTypeId, ModuleTypeId
from carbon.compute import OVERRIDE_KEY
from carbon.models import CarbonReportModule, DataEntry, DataEntryEmission
from config.bulk import rows_delete
from ingestion.csvio import RowErrors

CAPTIONS = (
    "OUT_CO2_CORRECTED",
    "OUT_DISTANCE_CORRECTED",
    "SCIPER",
    "Centre financier",
    "IN_Departure date",
    "IN_Segment class",
    "IN_Segment destination airport code",
    "IN_Segment origin airport code",
    "IN_Supplier",
    "IN_Ticket number",
    "PASSENGER_TYPE",
    "ROUND_TRIP",
    "TRANSPORT_TYPE",
    "Number of trips",
)
CLASSES = {"AIR ECONOMY CLASS": "economy", "AIR BUSINESS CLASS": "business", "AIR FIRST CLASS": "first"}
_CF = re.compile(r"^[A-Za-z](\d+)$")


class TravelApiError(Exception):
    """The API could not be read (the job fails with this message, nothing is written)."""


def travel_api_fetch(*, url: str, token: str | None, year: int, timeout: float = 60) -> list[dict[str, Any]]:
    """POST {"year": YEAR} with the bearer token; the rows, or TravelApiError saying why."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"year": year}).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as exc:
        raise TravelApiError(f"travel API answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise TravelApiError(f"travel API unreachable: {exc}") from None
    except json.JSONDecodeError as exc:
        raise TravelApiError(f"travel API did not answer JSON: {exc}") from None
    rows = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise TravelApiError('travel API answer has no "data" list')
    return rows


@dataclass
class TravelOutcome:
    row_errors: RowErrors
    rows_read: int = 0
    rows_processed: int = 0
    rows_dropped_other_year: int = 0
    rows_dropped_incomplete: int = 0
    rows_missing_centre_financier: int = 0
    rows_deleted: int = 0
    module_ids: set[int] = field(default_factory=set)

    def stats(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_processed": self.rows_processed,
            "rows_skipped": len(self.row_errors.rows),
            "rows_dropped_other_year": self.rows_dropped_other_year,
            "rows_dropped_incomplete": self.rows_dropped_incomplete,
            "rows_missing_centre_financier": self.rows_missing_centre_financier,
            "rows_deleted": self.rows_deleted,
            "row_errors": self.row_errors.items,
            "row_errors_count": self.row_errors.count,
        }


def travel_rows_ingest(
    *, rows: Iterable[Mapping[str, Any]], year: int, job_id: int, max_row_errors: int
) -> TravelOutcome:
    """Replace the year's API plane entries with ROWS, inside the caller's transaction.

    1. Every row must carry every caption (a missing caption fails the whole job: the API
       changed, and partial data would be wrong).
    2. Rows of another departure year, without SCIPER or without an airport code are dropped
       (counted); a row without Centre financier, or for a unit without a report that year,
       is a row error (reports are not created from travel data).
    3. Delete the year's previous API rows, insert the new ones (plane entries, the corrected
       CO2 as kg override).
    """
    outcome = TravelOutcome(row_errors=RowErrors(limit=max_row_errors))
    spec = spec_for(DataEntryTypeId.PLANE)
    modules = _plane_modules(year)
    entries: list[DataEntry] = []
    for index, row in enumerate(rows, start=1):
        outcome.rows_read += 1
        missing = [c for c in CAPTIONS if c not in row]
        if missing:
            raise TravelApiError(f"row {index} lacks the captions {', '.join(missing)}: has the API changed?")
        entry = _entry(index, row, year, spec, modules, outcome, job_id)
        if entry is not None:
            entries.append(entry)
    previous = DataEntry.objects.filter(
        year=year, data_entry_type_id=DataEntryTypeId.PLANE, source=DataEntrySource.EXTERNAL_INTEGRATION
    )
    outcome.module_ids |= set(previous.values_list("carbon_report_module_id", flat=True))
    DataEntryEmission.objects.filter(data_entry__in=previous).delete()
    outcome.rows_deleted = rows_delete(previous)
    DataEntry.objects.bulk_create(entries, batch_size=5000)
    outcome.rows_processed = len(entries)
    return outcome


def _plane_modules(year: int) -> dict[str, tuple[int, int]]:
    rows = CarbonReportModule.objects.filter(
        module_type_id=ModuleTypeId.PROFESSIONAL_TRAVEL,
        report__year=year,
        report__project__report_type=CarbonReportType.CALCULATOR,
        report__unit__institutional_id__isnull=False,
    ).values_list("report__unit__institutional_id", "id", "report__unit_id")
    return {cf: (crm, unit) for cf, crm, unit in rows if cf}


def _entry(
    index: int,
    row: Mapping[str, Any],
    year: int,
    spec: Any,
    modules: dict[str, tuple[int, int]],
    outcome: TravelOutcome,
    job_id: int,
) -> DataEntry | None:
    departure = str(row["IN_Departure date"] or "").strip()
    origin = str(row["IN_Segment origin airport code"] or "").strip()
    destination = str(row["IN_Segment destination airport code"] or "").strip()
    sciper = str(row["SCIPER"] or "").strip()
    if not departure.startswith(str(year)):
        outcome.rows_dropped_other_year += 1
        return None
    if not sciper or not origin or not destination:
        outcome.rows_dropped_incomplete += 1
        return None
    cf = str(row["Centre financier"] or "").strip()
    match = _CF.match(cf)
    cf = match[1] if match else cf
    if not cf:
        outcome.rows_missing_centre_financier += 1
        outcome.row_errors.add(index, "Centre financier", "Missing Centre financier (no matching SAP expense report)")
        return None
    if cf not in modules:
        outcome.row_errors.add(index, "Centre financier", f"No {year} report for unit {cf}")
        return None
    data, problems = spec.parse_row(
        {
            "origin_iata": origin.upper(),
            "destination_iata": destination.upper(),
            "user_institutional_id": sciper,
            "departure_date": departure[:10],
            "number_of_trips": row["Number of trips"] or 1,
            "cabin_class": CLASSES.get(str(row["IN_Segment class"] or "").strip().upper(), "economy"),
        }
    )
    for column, reason in problems:
        outcome.row_errors.add(index, column, reason)
    if problems:
        return None
    data.update(
        {
            "supplier": row["IN_Supplier"],
            "ticket_number": row["IN_Ticket number"],
            "transport_type": row["TRANSPORT_TYPE"],
            "round_trip": str(row["ROUND_TRIP"]).strip().lower() in {"1", "true", "yes", "y"},
            "passenger_type": row["PASSENGER_TYPE"],
            "distance_km": _number(row["OUT_DISTANCE_CORRECTED"]),
        }
    )
    kg = _number(row["OUT_CO2_CORRECTED"])
    if kg is not None:
        data[OVERRIDE_KEY] = kg  # 0 is a real figure (a cancelled flight), not a missing one
    crm_id, unit_id = modules[cf]
    outcome.module_ids.add(crm_id)
    return DataEntry(
        carbon_report_module_id=crm_id,
        data_entry_type_id=DataEntryTypeId.PLANE,
        module_type_id=ModuleTypeId.PROFESSIONAL_TRAVEL,
        year=year,
        unit_id=unit_id,
        data=data,
        source=DataEntrySource.EXTERNAL_INTEGRATION,
        source_job_id=job_id,
    )


def _number(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None
