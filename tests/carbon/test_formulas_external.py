"""External cloud and AI emissions against figures worked out by hand (reference-domain §2.3, fixes §11.5–§11.6)."""

from __future__ import annotations

from typing import Any

import pytest

from carbon.catalogue import external, spec_for
from carbon.catalogue.base import EntryError
from carbon.compute import OVERRIDE_KEY, entry_emissions
from tests.carbon.fakes import FakeLookups, context, factor

RATES = FakeLookups(rates={"chf": 1.05, "usd": 0.92})

AWS_STORAGE = factor(
    1, 110103, {"service_type": "storage", "provider": "AWS", "currency": "eur"}, ef_kg_co2eq_per_currency=0.05
)
GCP_COMPUTE = factor(
    2, 110102, {"service_type": "compute", "provider": "GCP", "currency": "usd"}, ef_kg_co2eq_per_currency=0.08
)
AZURE_VMS = factor(
    3, 110101, {"service_type": "virtualisation", "provider": "Azure", "currency": "usd"}, ef_kg_co2eq_per_currency=0.08
)

MISTRAL = factor(10, 110202, {"provider": "Mistral AI", "usage_type": "text"}, ef_kg_co2eq_per_request=1.14)
CHATGPT = factor(11, 110204, {"provider": "ChatGPT (OpenAI)", "usage_type": "code"}, ef_kg_co2eq_per_request=4.32)


def entry(det: int, **raw: str) -> dict[str, Any]:
    data, errors = spec_for(det).parse_row(raw)
    assert errors == []
    return data


def test_reference_example_storage_in_eur() -> None:
    # 6192 EUR × 0.05 kg/EUR = 309.6 kg
    data = entry(40, service_type="storage", provider="AWS", spent_amount="6192", currency="eur")
    (row,) = entry_emissions(spec_for(40), data, context(AWS_STORAGE, GCP_COMPUTE))
    assert (row.emission_type_id, row.factor_id) == (110103, 1)
    assert row.kg_co2eq == pytest.approx(309.6)


def test_reference_example_compute_in_usd_against_a_per_usd_factor() -> None:
    # 1543.5 USD × 0.08 kg/USD = 123.48 kg (same currency: no rate needed)
    data = entry(40, service_type="compute", provider="GCP", spent_amount="1543.5", currency="usd")
    (row,) = entry_emissions(spec_for(40), data, context(AWS_STORAGE, GCP_COMPUTE))
    assert (row.emission_type_id, row.factor_id) == (110102, 2)
    assert row.kg_co2eq == pytest.approx(123.48)


def test_cloud_amount_is_converted_into_the_factors_currency() -> None:
    # 1000 CHF × 1.05 EUR/CHF / 0.92 EUR/USD = 1141.304348 USD; × 0.08 kg/USD = 91.304348 kg
    data = entry(40, service_type="Virtualisation", provider="azure", spent_amount="1000", currency="CHF")
    (row,) = entry_emissions(spec_for(40), data, context(AZURE_VMS, lookups=RATES))
    assert row.emission_type_id == 110101
    assert row.kg_co2eq == pytest.approx(91.3043478)


def test_cloud_currency_defaults_to_eur_and_a_missing_rate_is_an_entry_error() -> None:
    data = entry(40, service_type="virtualisation", provider="Azure", spent_amount="10")
    assert data["currency"] == "eur"
    with pytest.raises(EntryError, match="No exchange rate to EUR for USD in 2025"):
        entry_emissions(spec_for(40), data, context(AZURE_VMS))


def test_cloud_matching_is_trimmed_and_case_insensitive() -> None:
    data = entry(40, service_type=" STORAGE", provider="aws ", spent_amount="100", currency="eur")
    (row,) = entry_emissions(spec_for(40), data, context(AWS_STORAGE))
    assert row.kg_co2eq == pytest.approx(5.0)  # 100 EUR × 0.05 = 5 kg


def test_unknown_service_type_means_no_emission_even_with_a_factor() -> None:
    backup = factor(
        4, 110100, {"service_type": "backup", "provider": "AWS", "currency": "eur"}, ef_kg_co2eq_per_currency=0.05
    )
    data = entry(40, service_type="backup", provider="AWS", spent_amount="100", currency="eur")
    ctx = context(backup)
    assert entry_emissions(spec_for(40), data, ctx) == []
    data[OVERRIDE_KEY] = 3.0
    assert entry_emissions(spec_for(40), data, ctx) == []
    assert ctx.warnings == ["kg_co2eq override ignored: no emission type could be resolved for the entry"]


def test_cloud_override_lands_on_the_service_type() -> None:
    data = entry(40, service_type="storage", provider="Unknown cloud", spent_amount="1", currency="eur")
    data[OVERRIDE_KEY] = 12.5
    (row,) = entry_emissions(spec_for(40), data, context(AWS_STORAGE))
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (110103, 12.5, None)


@pytest.mark.parametrize(
    ("raw", "column", "reason"),
    [
        ({"currency": "gbp"}, "currency", "must be one of chf, eur, usd (got 'gbp')"),
        ({"spent_amount": "abc"}, "spent_amount", "must be a number (got 'abc')"),
        ({"spent_amount": "-0.5"}, "spent_amount", "must be ≥ 0 (got -0.5)"),
        ({"provider": ""}, "provider", "is required"),
    ],
)
def test_bad_cloud_values_name_their_column(raw: dict[str, str], column: str, reason: str) -> None:
    _, errors = spec_for(40).parse_row({"service_type": "storage", "provider": "AWS", "spent_amount": "6192", **raw})
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]


# External AI (det 41): kg = requests/day × 5 × 46 × fte_count × g/request / 1000.


def test_reference_example_mistral_gives_one_row() -> None:
    # 12.5 requests/day × 5 × 46 × 3 FTE = 8625 requests; × 1.14 g = 9832.5 g = 9.8325 kg
    data = entry(41, provider="Mistral AI", usage_type="text", requests_per_user_per_day="5_20", fte_count="3")
    (row,) = entry_emissions(spec_for(41), data, context(MISTRAL, CHATGPT))
    assert (row.emission_type_id, row.factor_id) == (110202, 10)
    assert row.kg_co2eq == pytest.approx(9.8325)
    assert row.meta["requests_per_year"] == pytest.approx(8625)


def test_chatgpt_is_openai_and_yields_one_row_not_six() -> None:
    # 100 requests/day × 5 × 46 × 0.8 FTE = 18400 requests; × 4.32 g = 79488 g = 79.488 kg.
    # The reference wrote this row under all six provider leaves (6 × 79.488 kg in the module total).
    data = entry(
        41, provider="ChatGPT (OpenAI)", usage_type="code", requests_per_user_per_day="gt_100", fte_count="0.8"
    )
    rows = entry_emissions(spec_for(41), data, context(MISTRAL, CHATGPT))
    assert len(rows) == 1
    assert rows[0].emission_type_id == 110204
    assert sum(r.kg_co2eq for r in rows) == pytest.approx(79.488)


@pytest.mark.parametrize(
    ("band", "kg"),
    [("1_5", 0.69), ("5_20", 2.875), ("20_100", 13.8), ("gt_100", 23.0), ("20-100", 13.8)],
)
def test_request_bands(band: str, kg: float) -> None:
    # 1 FTE at 1 g/request: 3 / 12.5 / 60 / 100 requests × 230 days = 690 / 2875 / 13800 / 23000 g
    one_gram = factor(12, 110201, {"provider": "Google", "usage_type": "text"}, ef_kg_co2eq_per_request=1)
    data = entry(41, provider="google", usage_type="Text", requests_per_user_per_day=band, fte_count="1")
    (row,) = entry_emissions(spec_for(41), data, context(one_gram))
    assert row.emission_type_id == 110201
    assert row.kg_co2eq == pytest.approx(kg)


@pytest.mark.parametrize(
    ("label", "provider"),
    [
        ("Google", "google"),
        ("Mistral AI", "mistral_ai"),
        ("mistral_ai", "mistral_ai"),
        (" ANTHROPIC ", "anthropic"),
        ("OpenAI", "openai"),
        ("Cohere", "cohere"),
        ("ChatGPT (OpenAI)", "openai"),
        ("Claude 3.5", "anthropic"),
        ("Gemini", "google"),
        ("Llama (Meta)", "others"),
        ("Others", "others"),
        ("OpenAI via Google Vertex", "others"),
    ],
)
def test_provider_resolver(label: str, provider: str) -> None:
    assert external.ai_provider(label) == provider


def test_ai_factor_rows_are_stored_under_the_resolved_provider() -> None:
    assert external.AI_FACTOR.emission_type({"provider": "ChatGPT (OpenAI)"}) == 110204
    assert external.AI_FACTOR.emission_type({"provider": "DeepSeek"}) == 110206


def test_ai_without_a_factor_for_the_usage_type_means_no_emission() -> None:
    data = entry(41, provider="Mistral AI", usage_type="image", requests_per_user_per_day="1_5", fte_count="1")
    assert entry_emissions(spec_for(41), data, context(MISTRAL)) == []


def test_ai_override_lands_on_the_resolved_provider() -> None:
    data = entry(41, provider="ChatGPT (OpenAI)", usage_type="chat", requests_per_user_per_day="1_5", fte_count="1")
    data[OVERRIDE_KEY] = 3.0
    (row,) = entry_emissions(spec_for(41), data, context())
    assert (row.emission_type_id, row.kg_co2eq, row.factor_id) == (110204, 3.0, None)


@pytest.mark.parametrize(
    ("raw", "column", "reason"),
    [
        ({"fte_count": "0.05"}, "fte_count", "must be ≥ 0.1 (got 0.05)"),
        (
            {"requests_per_user_per_day": "often"},
            "requests_per_user_per_day",
            "must be one of 1_5, 5_20, 20_100, gt_100",
        ),
        ({"usage_type": ""}, "usage_type", "is required"),
    ],
)
def test_bad_ai_values_name_their_column(raw: dict[str, str], column: str, reason: str) -> None:
    row = {"provider": "Mistral AI", "usage_type": "text", "requests_per_user_per_day": "5_20", "fte_count": "3", **raw}
    _, errors = spec_for(41).parse_row(row)
    assert len(errors) == 1
    assert errors[0][0] == column
    assert reason in errors[0][1]


def test_both_types_require_factors() -> None:
    assert spec_for(40).requires_factors
    assert spec_for(41).requires_factors
