"""Spent amounts into the currency of an emission factor (reference-domain §2.3, fix §11.6).

A factor's ``ef_kg_co2eq_per_currency`` is kg CO2eq per one unit of the currency named by the
factor's classification ``currency`` (C); the reference multiplied by a rate that was never
stored, so in practice it read every EF as per-EUR. Here kg = amount_in_C × ef, and the entry's
amount (in its own currency E) is brought into C through EUR with the year's rates, where
``rate_to_eur(X)`` is the EUR value of one X:

    amount_in_C = amount_in_E × rate_to_eur(E) / rate_to_eur(C)

Same currency on both sides needs no rate at all. A rate missing for the year is an entry
error (the job goes on and reports it) rather than a silent 0 kg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carbon.catalogue.base import EntryError, normalise

if TYPE_CHECKING:
    # Annotation only: carbon.compute imports the catalogue, so a runtime import would be circular.
    from carbon.compute import ComputeContext

# What a factor without a currency is read as: the reference's fallback.
DEFAULT_FACTOR_CURRENCY = "eur"


def rate_to_eur(currency: str, ctx: ComputeContext) -> float:
    """The EUR value of one unit of CURRENCY in the slice's year; EntryError when unknown."""
    rate = ctx.lookups.rate_to_eur(normalise(currency))
    if rate is None or rate <= 0:
        raise EntryError(f"No exchange rate to EUR for {normalise(currency).upper()} in {ctx.year}")
    return rate


def convert(amount: float, from_currency: str, to_currency: str, ctx: ComputeContext) -> float:
    """AMOUNT in FROM_CURRENCY expressed in TO_CURRENCY (see the module docstring)."""
    if normalise(from_currency) == normalise(to_currency):
        return amount
    return amount * rate_to_eur(from_currency, ctx) / rate_to_eur(to_currency, ctx)
