"""Files under FILES_ROOT: uploads land in ``tmp/``, a job moves its file to
``processing/<job>/`` while it runs and to ``processed/<job>/`` once its data committed.

Every path that comes from outside (API, commands, job config) goes through ``path_resolve``:
relative, no ``..``, no NUL, inside FILES_ROOT even after symlinks are resolved.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from django.conf import settings

UPLOAD_PREFIXES = ("tmp/",)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class FilePathError(ValueError):
    """A path that is not allowed (outside FILES_ROOT, wrong prefix, traversal)."""


class UploadTooLarge(ValueError):
    pass


def files_root() -> Path:
    return Path(settings.FILES_ROOT).resolve()


def path_resolve(relative: str, *, prefixes: Iterable[str] | None = None) -> Path:
    """The absolute path of RELATIVE inside FILES_ROOT, or FilePathError saying why not.

    With PREFIXES, the path must start with one of them both as written and once symlinks are
    resolved: a link under ``tmp/`` to another job's ``processed/`` file is refused, not taken.
    """
    text = str(relative or "")
    if not text or "\x00" in text or "\\" in text:
        raise FilePathError(f"file_path {text!r} is not a valid relative path")
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts:
        raise FilePathError(f"file_path {text!r} must be relative to the files area, without '..'")
    allowed = tuple(prefixes) if prefixes is not None else None
    if allowed is not None and not any(text.startswith(p) for p in allowed):
        raise FilePathError(f"file_path {text!r} must start with {' or '.join(allowed)}")
    root = files_root()
    resolved = (root / pure).resolve()
    if not resolved.is_relative_to(root):
        raise FilePathError(f"file_path {text!r} leaves the files area")
    if allowed is not None and not any(resolved.is_relative_to(root / p.strip("/")) for p in allowed):
        raise FilePathError(f"file_path {text!r} leads out of {' or '.join(allowed)}")
    return resolved


def relative_to_root(path: Path) -> str:
    return path.resolve().relative_to(files_root()).as_posix()


def safe_name(name: str) -> str:
    """A file name that is safe on every filesystem (keeps the extension)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = _SAFE_NAME.sub("_", base).strip("._") or "upload"
    return cleaned[:120]


def upload_store(*, name: str, chunks: Iterable[bytes], max_bytes: int | None = None) -> str:
    """Stream an upload to ``tmp/<stamp>/<name>``; refuse (and delete) it past MAX_BYTES."""
    limit = max_bytes if max_bytes is not None else settings.FILES_MAX_SIZE_MB * 1024 * 1024
    directory = files_root() / "tmp" / f"{time.time_ns()}"
    directory.mkdir(parents=True, exist_ok=False)
    target = directory / safe_name(name)
    written = 0
    try:
        with target.open("wb") as handle:
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(f"{name}: larger than the {limit // (1024 * 1024)} MB upload limit")
                handle.write(chunk)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return relative_to_root(target)


def job_file_claim(*, relative: str, job_id: int) -> Path:
    """Move a job's upload into ``processing/<job>/`` (idempotent: a retried job finds it there)."""
    name = PurePosixPath(relative).name
    processing = files_root() / "processing" / str(job_id) / name
    if processing.exists():
        return processing
    source = path_resolve(relative, prefixes=UPLOAD_PREFIXES)
    if not source.is_file():
        raise FileNotFoundError(f"file {relative} not found (it may have been processed already)")
    processing.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), processing)
    return processing


def job_file_done(*, job_id: int, path: Path) -> str:
    """Move a processed file to ``processed/<job>/`` (called once the job's data committed)."""
    target = files_root() / "processed" / str(job_id) / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.move(str(path), target)
    return relative_to_root(target)
