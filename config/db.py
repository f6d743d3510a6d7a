"""Model helpers shared by every app (no app imports another for these)."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q


def choices_check(
    field: str, choices: type[models.Choices], name: str, *, nullable: bool = False
) -> models.CheckConstraint:
    """A CHECK that keeps FIELD inside the enum: choices alone do not constrain the database."""
    condition = Q(**{f"{field}__in": choices.values})
    if nullable:
        condition |= Q(**{f"{field}__isnull": True})
    return models.CheckConstraint(condition=condition, name=name)


def empty_dict() -> dict[str, Any]:
    return {}


def empty_list() -> list[Any]:
    return []
