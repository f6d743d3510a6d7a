"""Test handlers for the engine, driven by the job's config (no domain logic).

Config keys (all optional):
    tag            prefix of the rows written (default "t")
    write          rows to insert (Location rows keyed <tag>:<job>:<attempt>:<i>)
    started_file   path touched when the handler starts ({job} is replaced by the job id)
    steps          progress writes to make
    step_seconds   pause between progress writes (simulated work)
    hold_file      keep reporting progress until this file exists (lets a test act mid-job)
    fail           raise RuntimeError with this text
    fail_if_file   raise while this file exists
    integrity      insert a duplicate key (poisons the data transaction)
    chain          [{"job_type", "det"?, "config"?}] children to chain
    result/message/meta/fan_in   returned as the HandlerResult
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from carbon.models import Location
from pipelines.choices import JobResult, JobType
from pipelines.registry import HandlerResult, JobContext, handlers_replace_all


def _touch(template: str | None, job_id: int) -> None:
    if template:
        Path(template.replace("{job}", str(job_id))).touch()


def _row(key: str) -> Location:
    return Location(natural_key=key, name=key, transport_mode="plane", latitude=0, longitude=0)


def generic_handler(ctx: JobContext) -> HandlerResult:
    cfg: dict[str, Any] = ctx.config
    job = ctx.job
    tag = cfg.get("tag", "t")
    _touch(cfg.get("started_file"), job.pk)
    Location.objects.bulk_create([_row(f"{tag}:{job.pk}:{job.attempts}:{i}") for i in range(cfg.get("write", 0))])
    steps = int(cfg.get("steps", 0))
    for step in range(steps):
        ctx.progress(f"step {step + 1} of {steps}", processed=step + 1, total=steps)
        time.sleep(float(cfg.get("step_seconds", 0)))
    hold = cfg.get("hold_file")
    while hold and not Path(hold).exists():
        ctx.progress("holding")
        time.sleep(0.05)
    if cfg.get("fail"):
        raise RuntimeError(cfg["fail"])
    if cfg.get("fail_if_file") and Path(cfg["fail_if_file"]).exists():
        raise RuntimeError(f"failing while {cfg['fail_if_file']} exists")
    if cfg.get("integrity"):
        # The second insert violates the unique natural key: the transaction is poisoned.
        Location.objects.bulk_create([_row(f"dup:{job.pk}")])
        Location.objects.bulk_create([_row(f"dup:{job.pk}")])
    for child in cfg.get("chain", []):
        ctx.chain(child["job_type"], data_entry_type_id=child.get("det"), config=child.get("config"))
    return HandlerResult(
        result=cfg.get("result", JobResult.SUCCESS),
        message=cfg.get("message", "Success"),
        meta=dict(cfg.get("meta", {})),
        fan_in=cfg.get("fan_in"),
    )


ALL_HANDLERS = dict.fromkeys(JobType.values, generic_handler)


def register_all() -> None:
    """Make the generic handler the only one (replacing the apps' real handlers)."""
    handlers_replace_all(dict(ALL_HANDLERS))
