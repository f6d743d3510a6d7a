"""Reads of the carbon domain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Max, Q

from carbon.catalogue import specs_for_module
from carbon.choices import TransportMode
from carbon.compute import FactorIndex, FactorRecord
from carbon.models import BuildingRoom, CurrencyRate, Factor, Location, YearConfiguration
from carbon.reference_data import MODULE_DATA_ENTRY_TYPES
from pipelines.choices import JobResult, JobState, JobType
from pipelines.models import IngestionJob


def factor_index(*, data_entry_type_id: int, year: int) -> FactorIndex:
    """All factors of (det, year), one query. Classifications are stored normalised."""
    rows = Factor.objects.filter(data_entry_type_id=data_entry_type_id, year=year).values_list(
        "id", "emission_type_id", "classification", "values"
    )
    return FactorIndex(
        FactorRecord(id=pk, emission_type_id=emission_type_id, classification=classification, values=values)
        for pk, emission_type_id, classification, values in rows
    )


class DbLookups:
    """Reference data for one year's compute, read lazily and cached for the whole slice."""

    def __init__(self, *, year: int) -> None:
        self.year = year
        self._airports: dict[str, tuple[float, float] | None] = {}
        self._stations: dict[str, tuple[float, float] | None] = {}
        self._rooms: dict[tuple[str, str], float | None] | None = None
        self._rates: dict[str, float] | None = None

    def airport(self, iata: str) -> tuple[float, float] | None:
        code = iata.strip().upper()
        if code not in self._airports:
            row = (
                Location.objects.filter(transport_mode=TransportMode.PLANE, iata_code=code)
                .values_list("latitude", "longitude")
                .first()
            )
            self._airports[code] = (row[0], row[1]) if row else None
        return self._airports[code]

    def station(self, natural_key: str) -> tuple[float, float] | None:
        if natural_key not in self._stations:
            row = Location.objects.filter(natural_key=natural_key).values_list("latitude", "longitude").first()
            self._stations[natural_key] = (row[0], row[1]) if row else None
        return self._stations[natural_key]

    def room_surface(self, building: str, room: str) -> float | None:
        if self._rooms is None:
            # One read of the whole table: rooms number in the thousands, entries far more.
            self._rooms = {
                (b.lower(), r.lower()): surface
                for b, r, surface in BuildingRoom.objects.values_list(
                    "building_name", "room_name", "room_surface_square_meter"
                )
            }
        return self._rooms.get((building.strip().lower(), room.strip().lower()))

    def rate_to_eur(self, currency: str) -> float | None:
        if self._rates is None:
            self._rates = dict(CurrencyRate.objects.filter(year=self.year).values_list("currency", "rate_to_eur"))
            self._rates.setdefault("eur", 1.0)
        return self._rates.get(currency.strip().lower())


def year_provisioned(*, year: int) -> bool:
    """The upload gate: a year accepts uploads once a unit_sync has completed for it."""
    return YearConfiguration.objects.filter(year=year, configuration_completed__isnull=False).exists()


@dataclass(frozen=True)
class RecalculationStatus:
    module_type_id: int
    data_entry_type_id: int
    last_factor_job_id: int | None
    last_recalc_job_id: int | None
    last_recalc_result: str | None

    @property
    def needs_recalculation(self) -> bool:
        """Factors changed since the last recalculation, or the last one failed (§4.4).

        Module-level factor uploads (equipment, purchases: det NULL) count for every det of the
        module — the reference missed them.
        """
        if self.last_factor_job_id is None:
            return False
        if self.last_recalc_job_id is None or self.last_recalc_result == JobResult.ERROR:
            return True
        return self.last_factor_job_id > self.last_recalc_job_id


def recalculation_status(*, year: int) -> list[RecalculationStatus]:
    """Per (module, det) of a year: latest successful factor upload vs latest recalculation. Two queries."""
    finished_ok = Q(state=JobState.FINISHED) & ~Q(result__in=(JobResult.ERROR, JobResult.CANCELLED))
    factor_jobs = (
        IngestionJob.objects.filter(finished_ok, job_type=JobType.FACTOR_INGEST, year=year)
        .values("module_type_id", "data_entry_type_id")
        .annotate(last=Max("id"))
    )
    by_det: dict[int, int] = {}
    by_module: dict[int, int] = {}
    for row in factor_jobs:
        if row["data_entry_type_id"] is not None:
            by_det[row["data_entry_type_id"]] = max(by_det.get(row["data_entry_type_id"], 0), row["last"])
        elif row["module_type_id"] is not None:
            by_module[row["module_type_id"]] = max(by_module.get(row["module_type_id"], 0), row["last"])
    recalcs: dict[int, tuple[int, str | None]] = {}
    # A module recalculation counts for each type it ran (a type that failed in it, as ERROR).
    for pk, job_type, det, result, meta in (
        IngestionJob.objects.filter(
            job_type__in=(JobType.EMISSION_RECALC, JobType.MODULE_EMISSION_RECALC), year=year, state=JobState.FINISHED
        )
        .order_by("id")
        .values_list("id", "job_type", "data_entry_type_id", "result", "meta")
    ):
        if job_type == JobType.EMISSION_RECALC and det is not None:
            recalcs[det] = (pk, result)
        elif job_type == JobType.MODULE_EMISSION_RECALC:
            for det_key, outcome in ((meta or {}).get("per_det") or {}).items():
                recalcs[int(det_key)] = (pk, JobResult.ERROR if outcome.get("fatal") else result)
    statuses = []
    for module, dets in MODULE_DATA_ENTRY_TYPES.items():
        for det in dets:
            candidates = [v for v in (by_det.get(det), by_module.get(module)) if v is not None]
            recalc = recalcs.get(det)
            statuses.append(
                RecalculationStatus(
                    module_type_id=module,
                    data_entry_type_id=det,
                    last_factor_job_id=max(candidates) if candidates else None,
                    last_recalc_job_id=recalc[0] if recalc else None,
                    last_recalc_result=recalc[1] if recalc else None,
                )
            )
    return statuses


def stale_factors(*, year: int) -> list[dict[str, Any]]:
    """Factors the latest successful upload covering their (det, year) did not carry (§4.1, §4.4).

    Uploads never delete factors (entries may still point at them); a factor left out of the
    newest file is kept but reported stale so an operator can review it. A module-level file
    (equipment, purchases: det NULL) covers every det its routing column can name.
    """
    uploads = (
        IngestionJob.objects.filter(
            job_type=JobType.FACTOR_INGEST,
            year=year,
            state=JobState.FINISHED,
            result__in=(JobResult.SUCCESS, JobResult.WARNING),
        )
        .values("module_type_id", "data_entry_type_id")
        .annotate(last=Max("id"))
    )
    covering: dict[int, int] = {}
    for row in uploads:
        if row["data_entry_type_id"] is not None:
            dets = [row["data_entry_type_id"]]
        elif row["module_type_id"] is not None:
            dets = [s.det for s in specs_for_module(row["module_type_id"]) if s.factor and s.factor.routing]
        else:
            dets = []
        for det in dets:
            covering[det] = max(covering.get(det, 0), row["last"])
    stale: list[dict[str, Any]] = []
    for det, job_id in sorted(covering.items()):
        rows = (
            Factor.objects.filter(data_entry_type_id=det, year=year)
            .exclude(last_seen_job_id=job_id)
            .values("id", "data_entry_type_id", "emission_type_id", "classification", "last_seen_job_id")
        )
        stale.extend(dict(row) for row in rows)
    return stale
