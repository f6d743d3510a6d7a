"""Browser fixtures: Debian's headless Chromium (Playwright), a daphne web process and a worker.

Why real processes: the console is only right if a change committed by a worker reaches the
page through the websocket without a reload. So the page talks to daphne (ASGI, websockets)
serving this test's database, and a worker subprocess runs the jobs with the engine's test
handlers (``tests.pipelines.worker_main``: jobs that hold, step and fail on request). No
channel layer is shared (no REDIS_URL): the web process learns of the worker's changes
through its database relay (``pipelines.relay``), as in the embedded mode.

The browser is never downloaded (``playwright install`` is never run): Playwright drives
``/usr/bin/chromium``, which ``.ci/run`` installs with apt-get when it is missing. Every test
fails if the page requested anything from another host.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import LazySettings
from django.db import connections

from carbon.models import User
from tests.pipelines.conftest import Processes, wait_for, worker_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASGI_APP = "config.asgi:application"
PASSWORD = "correct-horse-battery-staple-42"
# The README's pictures are rewritten only on request (UPDATE_SCREENSHOTS=1); other runs
# keep theirs under var/ so a test run leaves the work tree clean.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = (
    _ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else _ROOT / "var" / "screenshots"
)
TEST_HANDLERS = ("-m", "tests.pipelines.worker_main")
# Playwright's waits: generous for a 2-core CI machine running daphne, a worker and Chromium.
UI_TIMEOUT_MS = 20_000
# What the test workers report as their code (the workers panel shows it).
GIT_SHA = "3f9c2e1d7a4b8c90e1f2a3b4c5d6e7f8091a2b3c"
APP_VERSION = "1.4.2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Console:
    """The running site: its URL, its processes, and a folder for hold files."""

    base: str
    port: int
    procs: Processes
    hold_dir: Path
    web: Any = None
    workers: list[Any] = field(default_factory=list)

    def hold_file(self, name: str) -> Path:
        return self.hold_dir / f"{name}.release"

    def start_web(self) -> None:
        self.procs.entry = ("-m", "daphne")
        self.web = self.procs.start("-b", "127.0.0.1", "-p", str(self.port), ASGI_APP)
        wait_for(self.answering, timeout=60, what="daphne to answer")

    def stop_web(self) -> None:
        self.web.terminate()
        self.web.wait(timeout=20)

    def start_worker(self, worker_id: str = "worker:lab-ops-01:1", **env: str) -> Any:
        self.procs.entry = TEST_HANDLERS
        worker = self.procs.worker(worker_id=worker_id, env={"GIT_SHA": GIT_SHA, "APP_VERSION": APP_VERSION, **env})
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: Any) -> None:
        worker.terminate()
        worker.wait(timeout=20)

    def answering(self) -> bool:
        try:
            return requests.get(f"{self.base}/admin/login/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False


@pytest.fixture
def browser(console: Console, monkeypatch: pytest.MonkeyPatch, settings: LazySettings) -> Iterator[Any]:
    """Chromium, for one test.

    Not session-wide: between calls, Playwright's sync API leaves its event loop marked as
    running on this thread, which Django's async-safety check takes for "called from a
    coroutine". So Playwright starts after the database fixtures and stops before the flush,
    and, while it runs, that check is lifted for this test: its ORM calls are plain
    synchronous code between Playwright calls, never inside the loop.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # This process's services publish their events to its own in-memory layer, which nobody
    # listens to (the page hears daphne), and ``async_to_sync`` refuses to run beside
    # Playwright's loop: no layer here, so ``pipelines.events`` skips the send.
    settings.CHANNEL_LAYERS = {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # Django's connections are context-local, and under Playwright the test's code ran in
            # a context of its own: close the connections it opened, or the test database cannot
            # be dropped at the end of the run ("being accessed by other users").
            connections.close_all()


@pytest.fixture
def console(settings: LazySettings, tmp_path: Path) -> Iterator[Console]:
    """Daphne on this test's database; tests start the workers they need (``start_worker``)."""
    settings.FILES_ROOT = tmp_path / "files"
    (tmp_path / "files").mkdir()
    hold_dir = tmp_path / "hold"
    hold_dir.mkdir()
    # Plain HTTP on 127.0.0.1: the session cookie must not be Secure (the default without DEBUG).
    env = worker_env(WORKER_HEARTBEAT_SECONDS="2", JOB_LEASE_SECONDS="30", SECURE_COOKIES="false")
    procs = Processes(env, tmp_path, TEST_HANDLERS)
    port = free_port()
    site = Console(base=f"http://127.0.0.1:{port}", port=port, procs=procs, hold_dir=hold_dir)
    try:
        site.start_web()
        yield site
    finally:
        for hold in hold_dir.iterdir():
            hold.unlink()
        procs.stop_all()
        sys.stdout.write(procs.logs())  # shown by pytest only when the test fails


@pytest.fixture
def operator(django_user_model: type[User]) -> User:
    """The person at the console: a superuser with a real password (the login form is used)."""
    return django_user_model.objects.create_superuser(
        username="camille.rochat",
        email="camille.rochat@example.org",
        password=PASSWORD,
        first_name="Camille",
        last_name="Rochat",
    )


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """A fresh browser context allowed to use the clipboard; fails the test on any foreign request."""
    context = browser.new_context(
        base_url=console.base,
        viewport={"width": 1600, "height": 1000},
        locale="en-GB",
        timezone_id="Europe/Zurich",
        color_scheme="light",
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.base)
    context.set_default_timeout(UI_TIMEOUT_MS)
    foreign: list[str] = []

    def only_this_site(route: Any) -> None:
        url = route.request.url
        if url.startswith((console.base + "/", console.base.replace("http", "ws") + "/", "data:", "blob:")):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context.route("**/*", only_this_site)
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert foreign == [], f"the console requested other hosts: {foreign}"
    assert errors == [], f"uncaught errors in the page: {errors}"


def login(page: Any, user: User, *, next_path: str = "/admin/") -> None:
    """Through the admin's login form, as a person would."""
    page.goto(f"/admin/login/?next={next_path}")
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{next_path}")


def screenshot(page: Any, name: str, **options: Any) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), **options)
