"""What the engine gets from the domain, through settings (it imports no domain app).

- ``PIPELINES_ACCESS``: a function user → scope, obeying ``PipelineAccess`` (SPEC §6.3).
- ``PIPELINES_LABELS``: a function () → labels of module and data-entry-type ids.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

Labels = dict[str, dict[int, tuple[str, str]]]


class PipelineAccess(Protocol):
    """What the engine asks of a user's scope."""

    @property
    def authenticated(self) -> bool: ...

    @property
    def can_view_pipelines(self) -> bool: ...

    @property
    def can_operate_pipelines(self) -> bool: ...

    def can_see_unit(self, unit_id: int | None) -> bool: ...

    def visible_unit_ids(self) -> frozenset[int] | None: ...


@cache
def _access_function() -> Callable[[Any], PipelineAccess]:
    function: Callable[[Any], PipelineAccess] = import_string(settings.PIPELINES_ACCESS)
    return function


@cache
def _labels_function() -> Callable[[], Labels]:
    function: Callable[[], Labels] = import_string(settings.PIPELINES_LABELS)
    return function


def user_access(user: Any) -> PipelineAccess:
    """The scope of USER (one or two queries); inside a request prefer ``request_access``."""
    return _access_function()(user)


def domain_labels() -> Labels:
    """``{"module": {id: (name, title)}, "data_entry_type": {id: (name, title)}}``."""
    return _labels_function()()
