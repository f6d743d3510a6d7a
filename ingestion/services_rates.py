"""Loading the currency rates table from a CSV ``year,currency,rate_to_eur`` (see README)."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from carbon.catalogue.base import Column
from carbon.models import CurrencyRate
from ingestion.csvio import RowErrors, csv_open

COLUMNS = (
    Column("year", "int", required=True, minimum=2000, maximum=2100),
    Column("currency", "str", required=True, keep_case=False),
    Column("rate_to_eur", "float", required=True, minimum=0.000001),
)


def currency_rates_load(*, path: Path, source: str = "") -> tuple[int, RowErrors]:
    """Upsert every valid row (keyed on year and currency); all rows are checked first, and
    nothing is written if any is invalid — a half-loaded rate table would convert some
    purchases and not others."""
    errors = RowErrors(limit=100)
    rates: dict[tuple[int, str], float] = {}
    with csv_open(path, required=[c.name for c in COLUMNS]) as csv_file:
        for row_number, raw in csv_file.rows():
            values = {}
            for column in COLUMNS:
                try:
                    values[column.name] = column.parse(raw.get(column.name))
                except ValueError as exc:
                    errors.add(row_number, column.name, str(exc))
            currency = str(values.get("currency", ""))
            if row_number not in errors.rows and (len(currency) != 3 or not currency.isalpha()):
                errors.add(row_number, "currency", f"must be a 3-letter ISO code (got {currency!r})")
            if row_number not in errors.rows:
                rates[(int(values["year"]), currency)] = float(values["rate_to_eur"])
    if errors.count:
        return 0, errors
    with transaction.atomic():
        CurrencyRate.objects.bulk_create(
            [CurrencyRate(year=y, currency=c, rate_to_eur=r, source=source) for (y, c), r in rates.items()],
            update_conflicts=True,
            unique_fields=["year", "currency"],
            update_fields=["rate_to_eur", "source", "updated_at"],
        )
    return len(rates), errors
