"""External cloud and AI (module 7): external_clouds 40, external_ai 41 (reference-domain §2.3).

Clouds: Strategy A on (provider, service_type); the emission type comes from the service type and
kg = the spent amount in the factor's currency × ``ef_kg_co2eq_per_currency`` (conversion as for
purchases, see ``carbon.catalogue.money``).

AI: Strategy A on (provider, usage_type); ONE emission per entry (fix §11.5: the reference wrote
the same kg under all six provider leaves), under the leaf of the resolved provider. The factor
is in grams per request in practice, so
kg = requests/day × 5 days × 46 weeks × fte_count × ef_kg_co2eq_per_request / 1000.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from carbon.catalogue.base import Column, DataEntryTypeSpec, EmissionRow, FactorShape, normalise
from carbon.catalogue.money import DEFAULT_FACTOR_CURRENCY, convert
from carbon.choices import DataEntryTypeId as D
from carbon.choices import ModuleTypeId as M

if TYPE_CHECKING:
    # Annotation only: carbon.compute imports the catalogue, so a runtime import would be circular.
    from carbon.compute import ComputeContext

CLOUD_CURRENCIES = ("chf", "eur", "usd")

CLOUD_EMISSION_TYPE = {"virtualisation": 110101, "compute": 110102, "storage": 110103}

CLOUD_COLUMNS = (
    # Not a choice: an unknown service type keeps the entry and yields no emission (§2.3).
    Column("service_type", required=True),
    Column("provider", required=True),
    Column("spent_amount", "float", required=True, minimum=0),
    Column("currency", "choice", choices=CLOUD_CURRENCIES, default="eur"),
    Column("note"),
)


def cloud_type(values: Mapping[str, Any]) -> int | None:
    service_type = values.get("service_type")
    return CLOUD_EMISSION_TYPE.get(normalise(service_type)) if service_type is not None else None


CLOUD_FACTOR = FactorShape(
    classification=(
        Column("service_type", required=True),
        Column("provider", required=True),
        Column("currency", "choice", required=True, choices=CLOUD_CURRENCIES),
    ),
    values=(Column("ef_kg_co2eq_per_currency", "float", required=True, minimum=0),),
    emission_type=cloud_type,
)


def _compute_cloud(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    emission_type = cloud_type(data)
    if emission_type is None:
        return []
    factor = ctx.factors.by_kind("provider", data.get("provider"), "service_type", data.get("service_type"))
    ef = factor.value("ef_kg_co2eq_per_currency") if factor else None
    if factor is None or ef is None:
        return []
    factor_currency = factor.classification.get("currency", DEFAULT_FACTOR_CURRENCY)
    amount = convert(data.get("spent_amount") or 0, data.get("currency") or "eur", factor_currency, ctx)
    return [
        EmissionRow(
            emission_type_id=emission_type,
            kg_co2eq=amount * ef,
            factor_id=factor.id,
            meta={"amount_in_factor_currency": amount, "factor_currency": factor_currency},
        )
    ]


DAYS_PER_WEEK = 5
WEEKS_PER_YEAR = 46
GRAMS_PER_KG = 1000

# Representative requests per user and day of each band.
REQUESTS_PER_DAY = {"1_5": 3.0, "5_20": 12.5, "20_100": 60.0, "gt_100": 100.0}

AI_EMISSION_TYPE = {
    "google": 110201,
    "mistral_ai": 110202,
    "anthropic": 110203,
    "openai": 110204,
    "cohere": 110205,
    "others": 110206,
}

# Names that reveal a provider inside a free-text label such as "ChatGPT (OpenAI)" or "Claude 3".
AI_PROVIDER_KEYWORDS = {
    "google": ("google", "gemini"),
    "mistral_ai": ("mistral",),
    "anthropic": ("anthropic", "claude"),
    "openai": ("openai", "chatgpt"),
    "cohere": ("cohere",),
}

AI_COLUMNS = (
    Column("provider", required=True),
    Column("usage_type", required=True),
    Column(
        "requests_per_user_per_day",
        "choice",
        required=True,
        choices=tuple(REQUESTS_PER_DAY),
        aliases={"1-5": "1_5", "5-20": "5_20", "20-100": "20_100", ">100": "gt_100"},
    ),
    Column("fte_count", "float", required=True, minimum=0.1),
    Column("note"),
)


def ai_provider(name: Any) -> str:
    """The provider leaf of a provider label (reference-domain §2.3, fix §11.5).

    1. Lower-cased with spaces → ``_``, an exact provider key wins ("Mistral AI" → mistral_ai).
    2. Else a label naming exactly one provider, by name or flagship product, is that provider
       ("ChatGPT (OpenAI)" → openai, the reference's own sample).
    3. Anything else, including a label naming two providers, is ``others``.
    """
    slug = normalise(name).replace(" ", "_")
    if slug in AI_EMISSION_TYPE:
        return slug
    named = {provider for provider, keywords in AI_PROVIDER_KEYWORDS.items() if any(k in slug for k in keywords)}
    return named.pop() if len(named) == 1 else "others"


def ai_type(values: Mapping[str, Any]) -> int | None:
    provider = values.get("provider")
    return AI_EMISSION_TYPE[ai_provider(provider)] if provider is not None else None


AI_FACTOR = FactorShape(
    classification=(Column("provider", required=True), Column("usage_type", required=True)),
    values=(Column("ef_kg_co2eq_per_request", "float", required=True, minimum=0),),
    emission_type=ai_type,
)


def _compute_ai(data: Mapping[str, Any], ctx: ComputeContext) -> list[EmissionRow]:
    emission_type = ai_type(data)
    factor = ctx.factors.by_kind("provider", data.get("provider"), "usage_type", data.get("usage_type"))
    ef = factor.value("ef_kg_co2eq_per_request") if factor else None
    per_day = REQUESTS_PER_DAY.get(data.get("requests_per_user_per_day") or "")
    if emission_type is None or factor is None or ef is None or per_day is None:
        return []
    requests = per_day * DAYS_PER_WEEK * WEEKS_PER_YEAR * (data.get("fte_count") or 0)
    return [
        EmissionRow(
            emission_type_id=emission_type,
            kg_co2eq=requests * ef / GRAMS_PER_KG,
            factor_id=factor.id,
            meta={"requests_per_year": requests},
        )
    ]


SPECS = [
    DataEntryTypeSpec(
        det=D.EXTERNAL_CLOUDS,
        module=M.EXTERNAL_CLOUD_AND_AI,
        columns=CLOUD_COLUMNS,
        compute=_compute_cloud,
        factor=CLOUD_FACTOR,
        override_type=cloud_type,
        requires_factors=True,
    ),
    DataEntryTypeSpec(
        det=D.EXTERNAL_AI,
        module=M.EXTERNAL_CLOUD_AND_AI,
        columns=AI_COLUMNS,
        compute=_compute_ai,
        factor=AI_FACTOR,
        override_type=ai_type,
        requires_factors=True,
    ),
]
