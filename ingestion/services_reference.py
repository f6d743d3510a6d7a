"""Reference-data CSV ingestion (``reference_ingest``; reference-domain §5, §11.9–§11.10).

Locations (airports, train stations) and building rooms are global, not per year. Both are
UPSERTED on their natural identity — a location's ``natural_key``, a room's (building, room)
— and never replaced wholesale: the reference deleted a whole mode (or every room) before
inserting, so a partial file silently dropped what entries still pointed at. Here a location
or room absent from the new file is kept; one the file carries takes the file's values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models

from carbon.catalogue.base import Column, ColumnError, normalise
from carbon.choices import TransportMode
from carbon.models import BuildingRoom, Location
from ingestion.csvio import RowErrors, csv_open
from ingestion.services_factors import (
    LOOKUP_CHUNK,
    WRITE_CHUNK,
    LaterRowWins,
    Progress,
    char_limit,
    chunks,
    duplicate_reason,
)

PROGRESS_EVERY = 10_000

# A room as rooms are matched: (building, room), each trimmed, whitespace collapsed, lower-cased.
RoomKey = tuple[str, str]

LOCATION_REQUIRED = ("transport_mode", "name", "latitude", "longitude")
LOCATION_OPTIONAL = ("airport_size", "continent", "country_code", "municipality", "iata_code", "keywords")
ROOM_REQUIRED = ("building_location", "building_name", "room_name")

_LATITUDE = Column("latitude", "float", required=True, minimum=-90, maximum=90)
_LONGITUDE = Column("longitude", "float", required=True, minimum=-180, maximum=180)
_SURFACE = Column("room_surface_square_meter", "float", minimum=0)
# ISO 3166-1 alpha-2 country, continent code (EU, NA…), IATA airport code.
_CODE_PATTERNS = {
    "country_code": (re.compile(r"^[A-Z]{2}$"), "a 2-letter country code such as CH"),
    "continent": (re.compile(r"^[A-Z]{2}$"), "a 2-letter continent code such as EU"),
    "iata_code": (re.compile(r"^[A-Z]{3}$"), "a 3-letter IATA code such as GVA"),
}
_LOCATION_UPDATE_FIELDS = [
    "transport_mode",
    "name",
    "name_key",
    "airport_size",
    "latitude",
    "longitude",
    "continent",
    "country_code",
    "iata_code",
    "municipality",
    "keywords",
]


@dataclass
class ReferenceIngestOutcome:
    row_errors: RowErrors
    rows_processed: int = 0
    # Location files only: rows of the other transport mode, left alone (not errors).
    rows_other_mode: int = 0
    created: int = 0
    updated: int = 0
    batches_processed: int = 0

    @property
    def rows_skipped(self) -> int:
        return len(self.row_errors.rows)

    @property
    def written(self) -> int:
        return self.created + self.updated

    def stats(self) -> dict[str, Any]:
        return {
            "rows_processed": self.rows_processed,
            "rows_other_mode": self.rows_other_mode,
            "created": self.created,
            "updated": self.updated,
            "rows_skipped": self.rows_skipped,
            "batches_processed": self.batches_processed,
            "row_errors": self.row_errors.items,
            "row_errors_count": self.row_errors.count,
        }


def location_natural_key(
    *, transport_mode: str, name: str, country_code: str, iata_code: str | None, latitude: float, longitude: float
) -> str:
    """``plane:<IATA>`` for an airport with a code, else ``<mode>:<cc>:<name>:<lat>:<lon>``
    (country lower-cased, name normalised: trimmed, whitespace collapsed, lower-cased)."""
    if transport_mode == TransportMode.PLANE and iata_code:
        return f"plane:{iata_code}"
    return f"{transport_mode}:{country_code.lower()}:{normalise(name)}:{latitude}:{longitude}"


def locations_ingest(
    *,
    path: Path,
    transport_mode: str,
    max_row_errors: int,
    progress: Progress | None = None,
    batch_size: int | None = None,
) -> ReferenceIngestOutcome:
    """Upsert the TRANSPORT_MODE locations of PATH on their natural key.

    1. Open the file, requiring transport_mode, name, latitude and longitude.
    2. Per row: a row of the other mode is counted (``rows_other_mode``) and left alone; an
       unknown mode, a missing name, an out-of-range coordinate or a malformed code is a row
       error naming its column. Codes are upper-cased, the name's whitespace collapsed.
    3. A later row with the same natural key replaces an earlier one (a row error).
    4. Every BATCH_SIZE locations: insert or update on ``natural_key``. A location missing
       from the file is kept — entries may still point at it.
    """
    if transport_mode not in TransportMode.values:
        raise ValueError(f"transport_mode={transport_mode!r} is not one of {', '.join(TransportMode.values)}")
    limit = batch_size or settings.INGEST_COPY_BATCH_SIZE
    outcome = ReferenceIngestOutcome(row_errors=RowErrors(limit=max_row_errors))
    holders = LaterRowWins()
    pending: dict[str, Location] = {}
    # Keys a previous batch already wrote and counted: rewritten, not counted again.
    rewritten: set[str] = set()
    with csv_open(path, required=LOCATION_REQUIRED) as csv_file:
        for row_number, raw in csv_file.rows():
            outcome.rows_processed += 1
            location = _location_row(row_number, raw, transport_mode, outcome)
            if location is not None:
                earlier = holders.claim(location.natural_key, row_number)
                if earlier is not None:
                    outcome.row_errors.add(earlier, None, duplicate_reason(row_number))
                    if location.natural_key not in pending:
                        rewritten.add(location.natural_key)
                pending[location.natural_key] = location
            if len(pending) >= limit:
                _locations_write(pending, rewritten, outcome)
            if progress is not None and outcome.rows_processed % PROGRESS_EVERY == 0:
                progress(outcome.rows_processed)
    _locations_write(pending, rewritten, outcome)
    return outcome


def _location_row(
    row_number: int, raw: Mapping[str, str], transport_mode: str, outcome: ReferenceIngestOutcome
) -> Location | None:
    errors = outcome.row_errors
    mode = normalise(raw.get("transport_mode", ""))
    if mode not in TransportMode.values:
        reason = "is required" if not mode else f"must be one of {', '.join(TransportMode.values)} (got {mode!r})"
        errors.add(row_number, "transport_mode", reason)
        return None
    if mode != transport_mode:
        outcome.rows_other_mode += 1
        return None
    ok = not _surplus(row_number, raw, errors)
    text = {name: _text(row_number, raw, name, Location, errors) for name in ("name", *LOCATION_OPTIONAL)}
    codes = {name: _code(row_number, text[name], name, errors) for name in _CODE_PATTERNS}
    coordinates = []
    for column in (_LATITUDE, _LONGITUDE):
        try:
            coordinates.append(float(column.parse(raw.get(column.name))))
        except ColumnError as exc:
            errors.add(row_number, column.name, str(exc))
    name = text["name"]
    if name == "":
        errors.add(row_number, "name", "is required")
    if not ok or not name or len(coordinates) != 2 or None in text.values() or None in codes.values():
        return None
    latitude, longitude = coordinates
    iata = codes["iata_code"] or None
    country = codes["country_code"] or ""
    return Location(
        transport_mode=mode,
        name=name,
        name_key=normalise(name),
        airport_size=normalise(text["airport_size"] or ""),
        latitude=latitude,
        longitude=longitude,
        continent=codes["continent"] or "",
        country_code=country,
        iata_code=iata,
        municipality=text["municipality"] or "",
        keywords=text["keywords"] or "",
        natural_key=location_natural_key(
            transport_mode=mode, name=name, country_code=country, iata_code=iata, latitude=latitude, longitude=longitude
        ),
    )


def _surplus(row_number: int, raw: Mapping[str, str], errors: RowErrors) -> bool:
    if raw.get(""):
        errors.add(row_number, None, "has more values than the header has columns")
        return True
    return False


def _text(
    row_number: int, raw: Mapping[str, str], name: str, model: type[models.Model], errors: RowErrors
) -> str | None:
    """RAW[NAME] trimmed, whitespace collapsed ("" when absent); None (reported) when too long."""
    value = " ".join(str(raw.get(name) or "").split())
    limit = char_limit(model, name)
    if len(value) > limit:
        errors.add(row_number, name, f"must be at most {limit} characters (got {len(value)})")
        return None
    return value


def _code(row_number: int, value: str | None, name: str, errors: RowErrors) -> str | None:
    """An upper-cased code ("" when absent); None (reported) when malformed."""
    if value is None:
        return None
    code = value.upper()
    pattern, expected = _CODE_PATTERNS[name]
    if code and not pattern.match(code):
        errors.add(row_number, name, f"must be {expected} (got {value!r})")
        return None
    return code


def _locations_write(pending: dict[str, Location], rewritten: set[str], outcome: ReferenceIngestOutcome) -> None:
    """Insert or update PENDING on the natural key (a plain unique constraint, so
    ``bulk_create(update_conflicts=True)`` targets it on PostgreSQL and SQLite alike), then
    empty PENDING and REWRITTEN."""
    if not pending:
        return
    stored = sum(Location.objects.filter(natural_key__in=chunk).count() for chunk in chunks(pending, LOOKUP_CHUNK))
    Location.objects.bulk_create(
        list(pending.values()),
        batch_size=WRITE_CHUNK,
        update_conflicts=True,
        unique_fields=["natural_key"],
        update_fields=_LOCATION_UPDATE_FIELDS,
    )
    outcome.updated += stored - len(rewritten)
    outcome.created += len(pending) - stored
    outcome.batches_processed += 1
    pending.clear()
    rewritten.clear()


def rooms_ingest(
    *,
    path: Path,
    max_row_errors: int,
    progress: Progress | None = None,
    batch_size: int | None = None,
) -> ReferenceIngestOutcome:
    """Upsert the building rooms of PATH on (building_name, room_name), compared normalised.

    1. Read the ids of the stored rooms by normalised (building, room): rooms are matched that
       way at recalculation, so ``bc 150`` in a new file is the stored ``BC 150``, not a
       second row that would make the lookup ambiguous. The table is small (thousands).
    2. Open the file, requiring building_location, building_name and room_name.
    3. Per row: a missing required value is a row error; ``room_surface_square_meter`` blank
       or ``-`` is unknown (NULL), non-numeric or negative is a row error naming the column;
       ``room_type`` is normalised (trimmed, lower-cased).
    4. A later row for the same room replaces an earlier one (a row error).
    5. Every BATCH_SIZE rooms: update the stored ones (keeping their spelling), create the
       others. Rooms missing from the file are kept: the reference's full-table delete made a
       partial file wipe every other building.
    """
    limit = batch_size or settings.INGEST_COPY_BATCH_SIZE
    outcome = ReferenceIngestOutcome(row_errors=RowErrors(limit=max_row_errors))
    stored = _room_ids()
    holders = LaterRowWins()
    pending: dict[RoomKey, BuildingRoom] = {}
    rewritten: set[RoomKey] = set()
    with csv_open(path, required=ROOM_REQUIRED) as csv_file:
        for row_number, raw in csv_file.rows():
            outcome.rows_processed += 1
            room = _room_row(row_number, raw, outcome.row_errors)
            if room is not None:
                key = room_key(room.building_name, room.room_name)
                earlier = holders.claim(key, row_number)
                if earlier is not None:
                    outcome.row_errors.add(earlier, None, duplicate_reason(row_number))
                    if key not in pending:
                        rewritten.add(key)
                pending[key] = room
            if len(pending) >= limit:
                _rooms_write(pending, rewritten, stored, outcome)
            if progress is not None and outcome.rows_processed % PROGRESS_EVERY == 0:
                progress(outcome.rows_processed)
    _rooms_write(pending, rewritten, stored, outcome)
    return outcome


def room_key(building_name: str, room_name: str) -> RoomKey:
    return (normalise(building_name), normalise(room_name))


def _room_ids() -> dict[RoomKey, list[int]]:
    ids: dict[RoomKey, list[int]] = {}
    for pk, building_name, room_name in BuildingRoom.objects.values_list("id", "building_name", "room_name"):
        ids.setdefault(room_key(building_name, room_name), []).append(pk)
    return ids


def _room_row(row_number: int, raw: Mapping[str, str], errors: RowErrors) -> BuildingRoom | None:
    ok = not _surplus(row_number, raw, errors)
    text = {name: _text(row_number, raw, name, BuildingRoom, errors) for name in (*ROOM_REQUIRED, "room_type")}
    for name in ROOM_REQUIRED:
        if text[name] == "":
            errors.add(row_number, name, "is required")
            ok = False
    surface: float | None = None
    raw_surface = str(raw.get("room_surface_square_meter") or "").strip()
    if raw_surface not in ("", "-"):
        try:
            surface = float(_SURFACE.parse(raw_surface))
        except ColumnError as exc:
            errors.add(row_number, _SURFACE.name, str(exc))
            ok = False
    if not ok or None in text.values():
        return None
    return BuildingRoom(
        building_location=text["building_location"] or "",
        building_name=text["building_name"] or "",
        room_name=text["room_name"] or "",
        room_type=normalise(text["room_type"] or ""),
        room_surface_square_meter=surface,
    )


def _rooms_write(
    pending: dict[RoomKey, BuildingRoom],
    rewritten: set[RoomKey],
    stored: dict[RoomKey, list[int]],
    outcome: ReferenceIngestOutcome,
) -> None:
    """Update the stored rooms of PENDING by id, create the others (recording their ids in
    STORED for later batches), then empty PENDING and REWRITTEN."""
    if not pending:
        return
    updates: list[BuildingRoom] = []
    creates: list[tuple[RoomKey, BuildingRoom]] = []
    for key, room in pending.items():
        ids = stored.get(key)
        if not ids:
            creates.append((key, room))
            continue
        # Every stored spelling of the room (the table may predate this rule) gets the file's values.
        updates += [
            BuildingRoom(
                pk=pk,
                building_location=room.building_location,
                room_type=room.room_type,
                room_surface_square_meter=room.room_surface_square_meter,
            )
            for pk in ids
        ]
        if key not in rewritten:
            outcome.updated += 1
    BuildingRoom.objects.bulk_update(
        updates, ["building_location", "room_type", "room_surface_square_meter"], batch_size=WRITE_CHUNK
    )
    # ON CONFLICT: a concurrent upload that inserted the same room first is updated, not an error.
    created = BuildingRoom.objects.bulk_create(
        [room for _, room in creates],
        batch_size=WRITE_CHUNK,
        update_conflicts=True,
        unique_fields=["building_name", "room_name"],
        update_fields=["building_location", "room_type", "room_surface_square_meter"],
    )
    for (key, _), room in zip(creates, created, strict=True):
        if room.pk is not None:
            stored[key] = [room.pk]
    outcome.created += len(creates)
    outcome.batches_processed += 1
    pending.clear()
    rewritten.clear()
