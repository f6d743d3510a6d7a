"""Handler registry: ``job_type → handler``, filled by each app's ``AppConfig.ready()``.

A handler is a plain function ``handler(ctx: JobContext) -> HandlerResult | None``. The runner
has already claimed the job and opened the data transaction; the handler does its domain
writes on the default connection, reports progress through ``ctx.progress`` (where it can be
cancelled), chains children through ``ctx.chain`` (inside the same transaction, so a handler
that fails leaves none), and returns its outcome. It must not write the job row itself.
Raising ends the job FINISHED/ERROR with the exception's text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.choices import JobResult, JobType

if TYPE_CHECKING:
    from pipelines.models import IngestionJob


class JobCancelled(Exception):
    """Abort was requested: the handler's data transaction is rolled back, result CANCELLED."""


class LeaseLost(Exception):
    """Another worker (or the reconciler) owns the job now: roll back, write nothing."""


class ReleaseRequested(Exception):
    """The worker is shutting down and the job will not end within its lease: give it back."""


class UnknownJobType(LookupError):
    pass


@dataclass
class HandlerResult:
    result: str = JobResult.SUCCESS
    message: str = "Success"
    # Merged into the job's meta (stats, row errors, phases…).
    meta: dict[str, Any] = field(default_factory=dict)
    # For fan-in members (emission_recalc): what the fan-in job (aggregation) needs to know,
    # merged across siblings into its config (lists are unioned).
    fan_in: dict[str, Any] | None = None


class JobContext(Protocol):
    """What a handler may use (implemented by the runner)."""

    job: IngestionJob
    worker_id: str

    @property
    def config(self) -> dict[str, Any]: ...

    def progress(
        self,
        message: str,
        *,
        processed: int | None = None,
        total: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None: ...

    def check(self) -> None: ...

    def chain(
        self,
        job_type: str,
        *,
        data_entry_type_id: int | None = None,
        module_type_id: int | None = None,
        year: int | None = None,
        config: dict[str, Any] | None = None,
    ) -> IngestionJob | None: ...


Handler = Callable[[JobContext], "HandlerResult | None"]

_handlers: dict[str, Handler] = {}


def register(job_type: str) -> Callable[[Handler], Handler]:
    """Decorator registering a handler; a second, different handler for a type is an error."""
    if job_type not in JobType.values:
        raise ValueError(f"unknown job type {job_type!r}; add it to pipelines.choices.JobType first")

    def decorator(handler: Handler) -> Handler:
        existing = _handlers.get(job_type)
        if existing is not None and existing is not handler:
            where = f"{existing.__module__}.{existing.__qualname__}"
            raise ValueError(f"a handler for {job_type!r} is already registered: {where}")
        _handlers[job_type] = handler
        return handler

    return decorator


def handler_for(job_type: str) -> Handler:
    try:
        return _handlers[job_type]
    except KeyError:
        raise UnknownJobType(f"No handler registered for job type {job_type!r}") from None


def registered_types() -> list[str]:
    return sorted(_handlers)


@contextmanager
def handlers_replaced(mapping: dict[str, Handler], *, exclusive: bool = False) -> Iterator[None]:
    """Swap handlers for the duration of a block (tests, one-off tools); EXCLUSIVE drops the others."""
    saved = dict(_handlers)
    if exclusive:
        _handlers.clear()
    _handlers.update(mapping)
    try:
        yield
    finally:
        _handlers.clear()
        _handlers.update(saved)


def handlers_replace_all(mapping: dict[str, Handler]) -> None:
    """Replace every handler for the life of the process (the engine's test workers)."""
    _handlers.clear()
    _handlers.update(mapping)
