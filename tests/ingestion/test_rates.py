"""The currency rates table loads from its CSV, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbon.models import CurrencyRate
from ingestion.services_rates import currency_rates_load

pytestmark = pytest.mark.django_db

DEMO_RATES = Path(__file__).resolve().parents[2] / "ingestion" / "demo" / "currency_rates.csv"


def test_demo_rates_load_and_reload_in_place() -> None:
    loaded, errors = currency_rates_load(path=DEMO_RATES)
    assert (loaded, errors.count) == (16, 0)
    assert CurrencyRate.objects.get(year=2025, currency="chf").rate_to_eur == 1.065
    currency_rates_load(path=DEMO_RATES)
    assert CurrencyRate.objects.count() == 16


def test_one_bad_row_loads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("year,currency,rate_to_eur\n2025,CHF,1.06\n2025,usd,-1\n2025,dollars,1\n", encoding="utf-8")
    loaded, errors = currency_rates_load(path=path)
    assert loaded == 0
    assert [(e["row"], e["column"]) for e in errors.items] == [(3, "rate_to_eur"), (4, "currency")]
    assert not CurrencyRate.objects.exists()
