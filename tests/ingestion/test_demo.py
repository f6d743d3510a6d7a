"""The demo year end to end: every sample format reaches emissions and report stats."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.conf import LazySettings
from django.core.management import call_command
from django.db.models import Count

from carbon.catalogue import CATALOGUE
from carbon.models import CarbonReport, DataEntry, DataEntryEmission, Factor
from pipelines.choices import PipelineStatus
from pipelines.models import Pipeline

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_seed_demo_loads_every_format_through_real_pipelines(settings: LazySettings, tmp_path: Path) -> None:
    settings.FILES_ROOT = tmp_path / "files"
    call_command("seed_demo", "--run-here", stdout=StringIO())
    assert set(Pipeline.objects.values_list("status", flat=True)) == {PipelineStatus.SUCCESS}
    # every factor format was loaded (the common-purchase sample has no row for three categories)
    factor_dets = set(Factor.objects.values_list("data_entry_type_id", flat=True))
    assert {int(d) for d in CATALOGUE} - factor_dets == {60, 65, 66}
    uploaded = {int(s.det) for s in CATALOGUE.values() if s.csv_upload}
    with_data = set(DataEntry.objects.values_list("data_entry_type_id", flat=True))
    assert uploaded - with_data == {12, 60, 62, 64, 65, 66}  # the samples hold no row of these types
    # and every type with data has emissions
    emitting = dict(
        DataEntryEmission.objects.values("data_entry__data_entry_type_id")
        .annotate(n=Count("id"))
        .values_list("data_entry__data_entry_type_id", "n")
    )
    assert with_data - set(emitting) == set(), with_data - set(emitting)
    labs = CarbonReport.objects.filter(year=2025, unit__level=4, unit__is_active=True)
    assert labs.exists()
    for report in labs:
        assert report.stats is not None
        assert report.stats["total"] > 0
