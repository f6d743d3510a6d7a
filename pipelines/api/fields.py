"""Serializer fields shared by every API of the project."""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pipelines.choices import REFERENCE_INT


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}]})
class NameOrReferenceIntField(serializers.Field):
    """An enum given by NAME (``"FACTORS"``) or by the reference system's integer (``1``).

    Names are case-insensitive; the value is always the stored name. Output is the name.
    """

    default_error_messages = {"invalid": "must be one of {names} (or their reference integers {ints})"}

    def __init__(self, choices: type[models.TextChoices], **kwargs: Any) -> None:
        self.enum = choices
        self.by_int = REFERENCE_INT.get(choices, {})
        self.by_name = {str(value).lower(): str(value) for value in choices.values}
        self.by_name.update({member.name.lower(): str(member.value) for member in choices})
        super().__init__(**kwargs)

    def _fail(self) -> None:
        self.fail("invalid", names=", ".join(self.enum.values), ints=", ".join(map(str, sorted(self.by_int))))

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool):
            self._fail()
        if isinstance(data, int) or (isinstance(data, str) and data.strip().lstrip("-").isdigit()):
            value = self.by_int.get(int(data))
            if value is None:
                self._fail()
            return str(value)
        if isinstance(data, str) and data.strip().lower() in self.by_name:
            return self.by_name[data.strip().lower()]
        self._fail()
        raise AssertionError("unreachable")

    def to_representation(self, value: Any) -> str:
        return str(value)


@extend_schema_field(OpenApiTypes.STR)
class CommaSeparatedIntegersField(serializers.Field):
    """``"1,2,3"`` → ``[1, 2, 3]`` (query parameters such as ``modules=``); blank → ``[]``."""

    default_error_messages = {"not_ints": "must be a comma-separated list of integers"}

    def to_internal_value(self, data: Any) -> list[int]:
        parts = [p.strip() for p in str(data).split(",") if p.strip()]
        try:
            return [int(p) for p in parts]
        except ValueError:
            self.fail("not_ints")
            raise AssertionError("unreachable") from None

    def to_representation(self, value: Any) -> str:
        return ",".join(str(v) for v in value)
