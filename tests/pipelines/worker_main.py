"""Entry point of the worker/reconciler subprocesses the engine tests start.

``python -m tests.pipelines.worker_main run_worker [...]`` behaves like ``manage.py`` with the
test handlers registered (the real apps register none for the engine's tests).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import execute_from_command_line

    from tests.pipelines.engine_handlers import register_all

    register_all()
    execute_from_command_line([sys.argv[0], *sys.argv[1:]])
