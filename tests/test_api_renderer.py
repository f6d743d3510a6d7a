"""config.renderers.FastJSONRenderer writes what DRF's JSONRenderer writes, and rendered fragments."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from config.renderers import FastJSONRenderer
from pipelines.choices import JobState

SAMPLE = {
    "text": "naïve “quotes” \u2028 and \u2029 line ends, <script>",
    "when": datetime(2026, 12, 1, 12, 0, 0, 5, tzinfo=UTC),
    "day": date(2026, 12, 1),
    "span": timedelta(seconds=90),
    "amount": Decimal("12.50"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "lazy": gettext_lazy("Pipelines"),
    "choice": JobState.RUNNING,
    "ints": {1: "one"},
    "tuple": (1, 2.5, None, True),
    "nested": [{"a": [1, {"b": None}]}],
}


def test_the_bytes_are_drfs() -> None:
    assert FastJSONRenderer().render(SAMPLE) == JSONRenderer().render(SAMPLE)


def test_indented_output_is_drfs() -> None:
    context = {"indent": 2}
    assert FastJSONRenderer().render(SAMPLE, renderer_context=context) == JSONRenderer().render(
        SAMPLE, renderer_context=context
    )


def test_a_fragment_is_written_as_it_is() -> None:
    body = FastJSONRenderer().render({"jobs": orjson.Fragment('[{"job_id":1}]'), "n": 1})
    assert body == b'{"jobs":[{"job_id":1}],"n":1}'
    indented = FastJSONRenderer().render({"jobs": orjson.Fragment("[1]")}, renderer_context={"indent": 1})
    assert json.loads(indented) == {"jobs": [1]}


def test_nothing_renders_as_an_empty_body() -> None:
    assert FastJSONRenderer().render(None) == b""
