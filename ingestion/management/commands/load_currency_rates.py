"""manage.py load_currency_rates FILE — upsert the currency rates table from a CSV.

The file has the columns ``year,currency,rate_to_eur`` (how many euros one unit of the
currency was worth on average that year). Every row is checked first; nothing is written
if any row is wrong (each is printed with its row number). Recalculate the affected modules
afterwards (``manage.py recalculate``) for existing purchases to use the new rates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingestion.csvio import CsvError
from ingestion.services_rates import currency_rates_load


class Command(BaseCommand):
    help = "Load currency rates (year,currency,rate_to_eur) into the rates table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            loaded, errors = currency_rates_load(path=options["file"], source=options["file"].name)
        except (CsvError, OSError) as exc:
            raise CommandError(str(exc)) from None
        if errors.count:
            for error in errors.items:
                self.stderr.write(f"row {error['row']}, column {error['column']}: {error['reason']}")
            raise CommandError(f"{errors.count} invalid rows; nothing was loaded")
        self.stdout.write(f"loaded {loaded} rates")
