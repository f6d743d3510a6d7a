"""manage.py serve — the embedded all-in-one.

Algorithm:
1. Apply migrations.
2. Ensure an admin login exists (created with a random password on first run, remembered in
   ``var/admin-login.txt``) and print it with the URL.
3. Start the web server (daphne, HTTP + websockets), a worker and the reconciler as child
   processes, in the project directory (daphne imports ``config.asgi`` from there, wherever
   ``manage.py`` was called from). They share no channel layer (no Redis): the web process
   relays the others' changes from the database to the console (``pipelines.relay``).
4. With ``--seed-demo`` and an empty database, load the demo year (``seed_demo``) through
   those services, in the background.
5. Wait; on Ctrl-C / SIGTERM stop every child and exit; if a service dies, stop the others
   and exit with its code.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.urls import NoReverseMatch, reverse

from carbon.models import YearConfiguration
from carbon.services import admin_user_ensure


class Command(BaseCommand):
    help = "Migrate, ensure an admin login, run the web server, a worker and the reconciler (all-in-one)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
        parser.add_argument("--no-migrate", action="store_true", help="skip applying migrations")
        parser.add_argument(
            "--seed-demo", action="store_true", help="load the demo year once the services are up (if not loaded yet)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        login = admin_user_ensure(username="admin", password_file=settings.BASE_DIR / "var" / "admin-login.txt")
        url = f"http://{options['host']}:{options['port']}/admin/"
        self.stdout.write(self.style.SUCCESS(f"carbon-pipeline on {url}"))
        with contextlib.suppress(NoReverseMatch):
            console = reverse("admin:pipelines_console")
            self.stdout.write(f"  operations console: http://{options['host']}:{options['port']}{console}")
        if login.password:
            self.stdout.write(f"  login: {login.username} / {login.password}  (kept in var/admin-login.txt)")
        else:
            self.stdout.write(f"  login: {login.username} (password set earlier; `manage.py changepassword` resets it)")
        manage = str(settings.BASE_DIR / "manage.py")
        commands = [
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                options["host"],
                "-p",
                str(options["port"]),
                "config.asgi:application",
            ],
            [sys.executable, manage, "run_worker"],
            [sys.executable, manage, "reconcile_pipelines"],
        ]
        # Own sessions: Ctrl-C reaches only this supervisor, which stops each child once
        # (a second signal would make a worker drop its job instead of finishing it).
        root = settings.BASE_DIR
        children = [subprocess.Popen(argv, start_new_session=True, cwd=root) for argv in commands]
        # The demo loader ends by itself; its exit does not stop the services.
        oneshots = []
        if options["seed_demo"] and not YearConfiguration.objects.exists():
            oneshots.append(subprocess.Popen([sys.executable, manage, "seed_demo"], start_new_session=True, cwd=root))
        self._supervise(children, oneshots)

    def _supervise(self, children: list[subprocess.Popen[bytes]], oneshots: list[subprocess.Popen[bytes]]) -> None:
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            dead = [child for child in children if child.poll() is not None]
            if dead:
                exit_code = dead[0].returncode or 1
                self.stderr.write(f"a child process exited with code {dead[0].returncode}; stopping")
                break
            time.sleep(0.2)
        for child in oneshots + children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in oneshots + children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if exit_code:
            sys.exit(exit_code)
