"""The console page itself, without a browser: who may open it, what it is handed, what it loads.

The page is a shell (``pipelines.console``); its data comes from the API, whose permissions
are tested with the API. Here: the admin's login gate, the pipelines view permission, the
action buttons' flag, the links from the admin index and the changelist, and that nothing it
loads (HTML, scripts, stylesheets) points at another host — the console works with no CDN.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from carbon.models import User

pytestmark = pytest.mark.django_db

CONSOLE = "/admin/pipelines/console/"
# XML namespace names are identifiers that look like URLs; nothing is ever fetched from them.
NAMESPACE_NAMES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml", "http://www.w3.org/1999/xlink"}
URL_RE = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+(?::\d+)?[^\s"'<>)]*""")
ASSET_RE = re.compile(r"""(?:src|href)="([^"]+\.(?:js|css))(?:\?[^"]*)?\"""")


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username=username, email=f"{username}@example.org", password="pw-123-staff")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="pipelines", codename__in=codenames))
    return user


def config_of(html: str) -> dict[str, object]:
    match = re.search(r'<script id="pc-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries its configuration as json_script"
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_the_console_is_routed_inside_the_admin() -> None:
    assert reverse("admin:pipelines_console") == CONSOLE


def test_anonymous_is_sent_to_the_admin_login(client: Client) -> None:
    response = client.get(CONSOLE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert "next=/admin/pipelines/console/" in response["Location"]


def test_staff_without_the_view_permission_is_refused(client: Client) -> None:
    client.force_login(staff("clerk"))
    assert client.get(CONSOLE).status_code == 403


def test_a_non_staff_user_is_sent_to_the_login_even_with_the_permission(client: Client) -> None:
    user = staff("outsider", "view_pipeline")
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    assert client.get(CONSOLE).status_code == 302


@pytest.mark.parametrize(
    ("codenames", "can_operate"),
    [(("view_pipeline",), False), (("change_pipeline",), True), (("view_pipeline", "change_pipeline"), True)],
)
def test_the_view_permission_opens_it_and_the_change_permission_enables_actions(
    client: Client, codenames: tuple[str, ...], can_operate: bool
) -> None:
    client.force_login(staff("operator", *codenames))
    response = client.get(CONSOLE)
    assert response.status_code == 200
    assert config_of(response.content.decode())["can_operate"] is can_operate


def test_a_superuser_gets_the_shell_with_endpoints_and_filter_choices(client: Client, superuser: User) -> None:
    client.force_login(superuser)
    response = client.get(CONSOLE)
    assert response.status_code == 200
    html = response.content.decode()
    config = config_of(html)
    assert config["can_operate"] is True
    urls = config["urls"]
    assert isinstance(urls, dict)
    assert urls["pipelines"] == "/api/v1/sync/pipelines"
    assert urls["abort"] == "/api/v1/sync/pipelines/{id}/abort"
    assert urls["retry"] == "/api/v1/sync/pipelines/{id}/retry"
    assert urls["bulk"] == "/api/v1/sync/pipelines/bulk"
    assert urls["workers"] == "/api/v1/sync/workers"
    assert urls["stale_stats"] == "/api/v1/sync/health/stale-stats"
    assert urls["files"] == "/api/v1/files/{path}"
    assert urls["websocket"] == "/ws/pipelines/"
    job_types = config["job_types"]
    assert isinstance(job_types, list)
    # Every job type is filterable (the reference's filter missed two).
    assert {t["value"] for t in job_types} >= {"reference_ingest", "module_emission_recalc", "unit_sync"}
    modules = config["modules"]
    assert isinstance(modules, list)
    assert [m["value"] for m in modules] == [1, 2, 3, 4, 5, 6, 7, 8]
    # The shell renders no pipeline and no inline code: only the json_script configuration.
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", html) == []
    assert not re.search(r"\son[a-z]+=", html), "no inline event handler"
    assert "csrftoken" in response.cookies


def test_the_admin_index_and_the_pipelines_pages_link_to_it(client: Client, superuser: User) -> None:
    client.force_login(superuser)
    for page in (reverse("admin:index"), reverse("admin:app_list", args=["pipelines"])):
        html = client.get(page).content.decode()
        assert f'href="{CONSOLE}"' in html, page
        assert "Operations console" in html
    changelist = client.get(reverse("admin:pipelines_pipeline_changelist")).content.decode()
    assert f'href="{CONSOLE}"' in changelist


def test_the_index_does_not_link_it_for_staff_who_cannot_open_it(client: Client) -> None:
    client.force_login(staff("clerk", "view_worker"))
    assert CONSOLE not in client.get(reverse("admin:index")).content.decode()


def test_nothing_the_page_loads_points_at_another_host(client: Client, superuser: User) -> None:
    client.force_login(superuser)
    html = client.get(CONSOLE).content.decode()
    assets = sorted(set(ASSET_RE.findall(html)))
    assert "/static/pipelines/console.js" in assets
    assert "/static/pipelines/console.css" in assets
    texts = {CONSOLE: html}
    for asset in assets:
        assert not urlsplit(asset).netloc, f"{asset} is loaded from another host"
        assert asset.startswith((settings.STATIC_URL, "/" + settings.STATIC_URL)), asset
        found = finders.find(asset.split(settings.STATIC_URL, 1)[1])
        assert isinstance(found, str), f"{asset} is not a static file of the project"
        texts[asset] = Path(found).read_text(encoding="utf-8")
    external = {
        where: sorted({u for u in URL_RE.findall(text) if u not in NAMESPACE_NAMES and urlsplit(u).netloc})
        for where, text in texts.items()
    }
    assert {where: found for where, found in external.items() if found} == {}
