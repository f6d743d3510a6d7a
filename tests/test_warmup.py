"""config.warmup: a web process freezes its loaded application out of the collector's scans."""

from __future__ import annotations

import gc
import subprocess
import sys

from django.conf import settings

from config.warmup import application_freeze


def test_freezing_parks_the_loaded_objects_and_collections_skip_them() -> None:
    try:
        frozen = application_freeze()
        assert frozen == gc.get_freeze_count() > 10_000  # Django, the apps, every view
        assert len(gc.get_objects(generation=2)) < frozen
    finally:
        gc.unfreeze()


def test_the_wsgi_entry_point_freezes_once_loaded() -> None:
    code = "import gc, config.wsgi; print(gc.get_freeze_count())"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) > 10_000
