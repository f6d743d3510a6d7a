"""Research-facility emissions against figures worked out by hand (reference-domain §2.3, §4.3, §4.5)."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.catalogue import research, spec_for
from carbon.compute import OVERRIDE_KEY, FactorRecord, entry_emissions
from tests.carbon.fakes import context, factor

SCITAS = factor(
    1,
    100300,
    {"researchfacility_id": "13057", "researchfacility_name": "SCITAS"},
    use_unit="hours",
    kg_co2eq_sum=250000,
    total_use=50000,
)
CIBM = factor(
    2,
    100100,
    {"researchfacility_id": "13101", "researchfacility_name": "CIBM-GE"},
    use_unit="hours",
    kg_co2eq_sum=80000,
    total_use=4000,
)
# As the reference's sample file has it: the computed-factor job has not filled the sum yet.
CIBM_UNCOMPUTED = factor(
    3, 100100, {"researchfacility_id": "13101", "researchfacility_name": "CIBM-GE"}, use_unit="hours", total_use=4000
)


def animal_factor(
    id: int,
    facility: str,
    name: str,
    kind: str,
    shares: tuple[float, ...],
    sums: tuple[float | None, ...],
    unit: str,
    total_use: float,
) -> FactorRecord:
    values: dict[str, Any] = {"use_unit": unit, "total_use": total_use}
    values.update({f"{src}_share": share for src, share in zip(research.SOURCES, shares, strict=True)})
    values.update(
        {f"kg_co2eq_sum_{src}": total for src, total in zip(research.SOURCES, sums, strict=True) if total is not None}
    )
    classification = {"researchfacility_id": facility, "researchfacility_name": name, "researchfacility_type": kind}
    return factor(id, research.ANIMAL_TYPE.get(kind, 100200), classification, **values)


CPG = animal_factor(
    10, "1321", "CPG", "mice", (1, 0.6, 0.6, 0.8, 1, 0.7), (0, 1200, 40000, 9000, 300, 5000), "housings", 2000
)
FISH = animal_factor(
    11, "1322", "FISH-F", "fish", (1, 0.5, 0.5, 0.5, 1, 0.5), (0, 800, 12000, 3000, 100, 2000), "tanks", 300
)


def entry(det: int, **raw: str) -> dict[str, Any]:
    data, errors = spec_for(det).parse_row(raw)
    assert errors == []
    return data


def facility(**raw: str) -> dict[str, Any]:
    return entry(
        70,
        **{
            "researchfacility_id": "13057",
            "researchfacility_name": "SCITAS",
            "use": "1200",
            "use_unit": "hours",
            **raw,
        },
    )


def test_reference_example_scitas_is_an_it_facility() -> None:
    # 1200 h / 50000 h × 250000 kg = 6000 kg
    (row,) = entry_emissions(spec_for(70), facility(), context(SCITAS, CIBM))
    assert (row.emission_type_id, row.factor_id) == (100300, 1)
    assert row.kg_co2eq == pytest.approx(6000.0)


def test_other_facilities_land_on_facilities() -> None:
    # 35 h / 4000 h × 80000 kg = 700 kg
    data = facility(researchfacility_id="13101", researchfacility_name="CIBM-GE", use="35", use_unit=" Hours")
    (row,) = entry_emissions(spec_for(70), data, context(SCITAS, CIBM))
    assert (row.emission_type_id, row.factor_id) == (100100, 2)
    assert row.kg_co2eq == pytest.approx(700.0)


@pytest.mark.parametrize(
    ("name", "emission_type"), [("SCITAS", 100300), ("rcp", 100300), (" Rcp ", 100300), ("CPG", 100100)]
)
def test_facility_name_picks_the_type(name: str, emission_type: int) -> None:
    assert research.facility_type({"researchfacility_name": name}) == emission_type
    assert research.FACTOR.emission_type({"researchfacility_name": name}) == emission_type


def test_a_sum_not_yet_computed_gives_no_row_and_a_warning() -> None:
    ctx = context(CIBM_UNCOMPUTED)
    data = facility(researchfacility_id="13101", researchfacility_name="CIBM-GE", use="35")
    assert entry_emissions(spec_for(70), data, ctx) == []
    assert ctx.warnings == ["research facility 13101: its kg_co2eq sums for 2025 are not computed yet; no emission"]


def test_a_different_use_unit_gives_no_row_and_a_warning() -> None:
    ctx = context(SCITAS)
    assert entry_emissions(spec_for(70), facility(use_unit="days"), ctx) == []
    assert "use_unit 'days' does not match the facility's 'hours'" in ctx.warnings[0]


def test_no_total_use_gives_zero() -> None:
    idle = factor(
        4,
        100100,
        {"researchfacility_id": "9", "researchfacility_name": "Idle"},
        use_unit="hours",
        kg_co2eq_sum=1000,
        total_use=0,
    )
    (row,) = entry_emissions(
        spec_for(70), facility(researchfacility_id="9", researchfacility_name="Idle"), context(idle)
    )
    assert (row.emission_type_id, row.kg_co2eq) == (100100, 0.0)


def test_unknown_facility_means_no_emission() -> None:
    assert entry_emissions(spec_for(70), facility(researchfacility_id="404"), context(SCITAS)) == []


def test_facility_override_lands_on_the_resolved_type() -> None:
    data = facility(researchfacility_id="404")
    data[OVERRIDE_KEY] = 321.0
    (row,) = entry_emissions(spec_for(70), data, context())
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (100300, 321.0, None)


@pytest.mark.parametrize(
    ("raw", "column", "reason"),
    [
        ({"use": "-3"}, "use", "must be ≥ 0 (got -3)"),
        ({"use": "1'200"}, "use", "must be a number"),
        ({"use_unit": ""}, "use_unit", "is required"),
        ({"researchfacility_name": ""}, "researchfacility_name", "is required"),
    ],
)
def test_bad_facility_values_name_their_column(raw: dict[str, str], column: str, reason: str) -> None:
    row = {"researchfacility_id": "13057", "researchfacility_name": "SCITAS", "use": "1200", "use_unit": "hours", **raw}
    _, errors = spec_for(70).parse_row(row)
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]


# Animal facilities (det 71): kg = Σ_src use × <src>_share / total_use × kg_co2eq_sum_<src>.


def animals(**raw: str) -> dict[str, Any]:
    return entry(
        71,
        **{
            "researchfacility_id": "1321",
            "researchfacility_name": "CPG",
            "researchfacility_type": "mice",
            "use": "258",
            "use_unit": "housings",
            **raw,
        },
    )


def test_reference_example_mice() -> None:
    # Σ share × sum = 1×0 + 0.6×1200 + 0.6×40000 + 0.8×9000 + 1×300 + 0.7×5000
    #               = 0 + 720 + 24000 + 7200 + 300 + 3500 = 35720 kg; × 258 / 2000 housings = 4607.88 kg
    (row,) = entry_emissions(spec_for(71), animals(), context(CPG, FISH))
    assert (row.emission_type_id, row.factor_id) == (10020001, 10)
    assert row.kg_co2eq == pytest.approx(4607.88)


def test_reference_example_fish() -> None:
    # Σ = 1×0 + 0.5×800 + 0.5×12000 + 0.5×3000 + 1×100 + 0.5×2000 = 400 + 6000 + 1500 + 100 + 1000 = 9000 kg;
    # × 40 / 300 tanks = 1200 kg
    data = animals(
        researchfacility_id="1322",
        researchfacility_name="FISH-F",
        researchfacility_type="Fish",
        use="40",
        use_unit="tanks",
    )
    (row,) = entry_emissions(spec_for(71), data, context(CPG, FISH))
    assert (row.emission_type_id, row.factor_id) == (10020002, 11)
    assert row.kg_co2eq == pytest.approx(1200.0)


def test_sources_without_a_sum_are_skipped() -> None:
    # Only building_rooms (0.6 × 40000 = 24000) and equipments (0.7 × 5000 = 3500) are known:
    # 27500 kg × 258 / 2000 = 3547.5 kg
    partial = animal_factor(
        12, "1321", "CPG", "mice", (1, 0.6, 0.6, 0.8, 1, 0.7), (None, None, 40000, None, None, 5000), "housings", 2000
    )
    (row,) = entry_emissions(spec_for(71), animals(), context(partial))
    assert row.kg_co2eq == pytest.approx(3547.5)


def test_no_source_sum_at_all_gives_no_row_and_a_warning() -> None:
    uncomputed = animal_factor(13, "1321", "CPG", "mice", (1, 0.6, 0.6, 0.8, 1, 0.7), (None,) * 6, "housings", 2000)
    ctx = context(uncomputed)
    assert entry_emissions(spec_for(71), animals(), ctx) == []
    assert "not computed yet" in ctx.warnings[0]


def test_animal_unit_mismatch_gives_no_row() -> None:
    ctx = context(CPG)
    assert entry_emissions(spec_for(71), animals(use_unit="cages"), ctx) == []
    assert len(ctx.warnings) == 1


def test_other_animals_land_on_the_animal_node() -> None:
    # 2 × 1.0 × 1000 / 10 = 200 kg (only the processemissions source is known)
    rats = animal_factor(
        14, "1400", "RAT-F", "rats", (1, 0, 0, 0, 0, 0), (1000, None, None, None, None, None), "cages", 10
    )
    data = animals(
        researchfacility_id="1400",
        researchfacility_name="RAT-F",
        researchfacility_type="rats",
        use="2",
        use_unit="cages",
    )
    (row,) = entry_emissions(spec_for(71), data, context(rats))
    assert (row.emission_type_id, row.kg_co2eq) == (100200, pytest.approx(200.0))
    assert research.ANIMAL_FACTOR.emission_type({"researchfacility_type": "rats"}) == 100200


def test_the_type_must_match_the_factors_type() -> None:
    assert entry_emissions(spec_for(71), animals(researchfacility_type="fish"), context(CPG)) == []


def test_animal_override_lands_on_the_resolved_type() -> None:
    data = animals(researchfacility_type="FISH")
    data[OVERRIDE_KEY] = 55.0
    (row,) = entry_emissions(spec_for(71), data, context())
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (10020002, 55.0, None)


def test_bad_animal_values_name_their_column() -> None:
    _, errors = spec_for(71).parse_row(
        {"researchfacility_id": "1321", "researchfacility_name": "CPG", "use": "258", "use_unit": "housings"}
    )
    assert errors == [("researchfacility_type", "is required")]
    assert spec_for(70).requires_factors
    assert spec_for(71).requires_factors
