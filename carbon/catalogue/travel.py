"""Professional travel (module 2): plane 20 and train 21 (reference-domain §2.3).

One factor file per type. The distance is the great-circle distance between the two
endpoints' coordinates (airports by IATA code, stations by the natural key set at upload),
corrected for the way each mode really travels; the cabin class picks the emission leaf.
Plane factors are matched on (haul band, cabin class), train factors on a country code
with a RoW fallback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, EntryError, FactorShape, fixed_type, normalise
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M

if TYPE_CHECKING:
    # Types only: carbon.compute imports the catalogue package at load time.
    from carbon.compute import ComputeContext, FactorRecord

EARTH_RADIUS_KM = 6371
# Take-off and landing detours that a great circle misses.
FLIGHT_APPROACH_KM = 95
# Rails do not follow great circles.
TRAIN_ROUTING_FACTOR = 1.2
HOME_COUNTRY = "CH"
REST_OF_WORLD = "RoW"

PLANE_CABINS = {"first": 50201, "business": 50202, "economy": 50203}
TRAIN_CLASSES = {"first": 50101, "second": 50102}

Point = tuple[float, float]


def haversine_km(origin: Point, destination: Point) -> float:
    """Great-circle distance between two (latitude, longitude) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*origin, *destination))
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def train_country(origin: str | None, destination: str | None) -> str:
    """The country whose rail factor applies: a trip abroad is charged at the foreign
    country's rate (the destination's first), a domestic one at the home rate."""
    origin_cc = (origin or "").strip().upper()
    destination_cc = (destination or "").strip().upper()
    if origin_cc == destination_cc == HOME_COUNTRY:
        return HOME_COUNTRY
    if destination_cc and destination_cc != HOME_COUNTRY:
        return destination_cc
    if origin_cc and origin_cc != HOME_COUNTRY:
        return origin_cc
    return REST_OF_WORLD


def _class_leaf(classes: Mapping[str, int]) -> Callable[[Mapping[str, Any]], int | None]:
    def resolve(data: Mapping[str, Any]) -> int | None:
        cabin = data.get("cabin_class")
        return classes.get(normalise(cabin)) if cabin is not None else None

    return resolve


plane_type = _class_leaf(PLANE_CABINS)
train_type = _class_leaf(TRAIN_CLASSES)


def _endpoints(
    data: Mapping[str, Any], ctx: ComputeContext, keys: tuple[str, str], find: Callable[[str], Point | None]
) -> tuple[Point, Point] | None:
    """Both endpoints' coordinates, or None (with a warning: the entry stays, without emission)."""
    points = []
    for key in keys:
        value = data.get(key)
        point = find(str(value)) if value else None
        if point is None:
            problem = f"{value!r} has no known coordinates" if value else "is missing"
            ctx.warnings.append(f"{key} {problem}: no emission")
            return None
        points.append(point)
    return points[0], points[1]


def _trips(data: Mapping[str, Any]) -> int:
    return int(data.get("number_of_trips") or 1)


def _distance_rows(
    emission_type: int,
    distance_km: float,
    factors: list[FactorRecord],
    meta: Mapping[str, Any],
    rfi_key: str | None = None,
) -> list[EmissionRow]:
    rows = []
    for factor in factors:
        ef = factor.value("ef_kg_co2eq_per_km")
        if ef is None:
            continue
        # Radiative forcing: the extra warming of emissions at altitude (1 when not given).
        rfi = factor.value(rfi_key) if rfi_key else None
        weighted_km = distance_km * (1.0 if rfi is None else rfi)
        rows.append(
            EmissionRow(
                emission_type_id=emission_type,
                kg_co2eq=weighted_km * ef,
                factor_id=factor.id,
                additional_value=weighted_km,
                meta=meta,
            )
        )
    return rows


def _known_class(
    data: Mapping[str, Any], ctx: ComputeContext, resolve: Callable[[Mapping[str, Any]], int | None]
) -> int | None:
    emission_type = resolve(data)
    if emission_type is None:
        ctx.warnings.append(f"unknown cabin_class {data.get('cabin_class')!r}: no emission")
    return emission_type


def haul_category(ctx: ComputeContext, one_trip_km: float) -> str | None:
    """The band [min_distance, max_distance) of the year's plane factors holding ONE_TRIP_KM."""
    bands = {
        factor.classification["category"]
        for factor in ctx.factors.factors
        if "category" in factor.classification and _in_band(factor, one_trip_km)
    }
    if len(bands) > 1:
        raise EntryError(f"plane factors overlap at {one_trip_km:g} km: {', '.join(sorted(bands))}")
    return next(iter(bands), None)


def _in_band(factor: FactorRecord, km: float) -> bool:
    low = factor.value("min_distance")
    high = factor.value("max_distance")
    return low is not None and high is not None and low <= km < high


def _plane(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    emission_type = _known_class(data, ctx, plane_type)
    if emission_type is None:
        return []
    ends = _endpoints(data, ctx, ("origin_iata", "destination_iata"), lambda code: ctx.lookups.airport(code.upper()))
    if ends is None:
        return []
    one_trip_km = round(haversine_km(*ends)) + FLIGHT_APPROACH_KM
    haul = haul_category(ctx, one_trip_km)
    if haul is None:
        ctx.warnings.append(f"no plane factor band holds {one_trip_km} km: no emission")
        return []
    distance_km = one_trip_km * _trips(data)
    factors = ctx.factors.where(category=haul, cabin_class=data["cabin_class"])
    meta = {"distance_km": distance_km, "haul_category": haul}
    return _distance_rows(emission_type, distance_km, factors, meta, rfi_key="rfi_adjustment")


def _train(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    emission_type = _known_class(data, ctx, train_type)
    if emission_type is None:
        return []
    ends = _endpoints(data, ctx, ("origin_natural_key", "destination_natural_key"), ctx.lookups.station)
    if ends is None:
        return []
    distance_km = round(round(haversine_km(*ends)) * TRAIN_ROUTING_FACTOR) * _trips(data)
    country = train_country(data.get("origin_country_code"), data.get("destination_country_code"))
    factors = ctx.factors.where(country_code=country) or ctx.factors.where(country_code=REST_OF_WORLD)
    meta = {"distance_km": distance_km, "country_code": country}
    return _distance_rows(emission_type, distance_km, factors, meta)


TRIP_COLUMNS = (
    Column("departure_date", "date"),
    Column("number_of_trips", "int", minimum=1, default=1),
    Column("note"),
)

PLANE_COLUMNS = (
    Column("origin_iata", required=True),
    Column("destination_iata", required=True),
    Column("user_institutional_id", required=True),
    Column("cabin_class", "choice", required=True, choices=tuple(PLANE_CABINS)),
    *TRIP_COLUMNS,
)

TRAIN_COLUMNS = (
    Column("user_institutional_id", required=True),
    Column("origin_name", required=True),
    Column("origin_country_code", required=True),
    Column("destination_name", required=True),
    Column("destination_country_code", required=True),
    # Set by the upload's station lookup (or by the UI's station picker), never typed by hand.
    Column("origin_natural_key"),
    Column("destination_natural_key"),
    Column("cabin_class", "choice", required=True, choices=tuple(TRAIN_CLASSES)),
    *TRIP_COLUMNS,
)

PLANE_FACTOR = FactorShape(
    classification=(
        Column("category", required=True),
        Column("cabin_class", "choice", required=True, choices=tuple(PLANE_CABINS)),
    ),
    values=(
        Column("ef_kg_co2eq_per_km", "float", required=True, minimum=0),
        Column("rfi_adjustment", "float", required=True, minimum=0),
        Column("min_distance", "float", required=True, minimum=0),
        Column("max_distance", "float", required=True, minimum=0),
    ),
    emission_type=fixed_type(50200),
)

TRAIN_FACTOR = FactorShape(
    classification=(Column("country_code", required=True),),
    values=(Column("ef_kg_co2eq_per_km", "float", required=True, minimum=0),),
    emission_type=fixed_type(50100),
)

SPECS = [
    DataEntryTypeSpec(
        det=D.PLANE,
        module=M.PROFESSIONAL_TRAVEL,
        columns=PLANE_COLUMNS,
        compute=_plane,
        factor=PLANE_FACTOR,
        override_type=plane_type,
    ),
    DataEntryTypeSpec(
        det=D.TRAIN,
        module=M.PROFESSIONAL_TRAVEL,
        columns=TRAIN_COLUMNS,
        compute=_train,
        factor=TRAIN_FACTOR,
        override_type=train_type,
    ),
]
