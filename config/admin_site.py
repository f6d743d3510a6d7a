"""The project's admin site: Django's, plus the pipelines operations console (SPEC §7).

The console is a page of the admin, not a separate app: it shares the admin's login, session,
header and permission model, so an operator needs nothing but an admin account. A site
subclass is the one place where such a page can be routed *inside* ``/admin/`` (before the
admin's catch-all) and listed on the index like a model: ``get_urls`` adds the route wrapped
in ``admin_view`` (login and staff checks), ``get_app_list`` adds the entry to the pipelines
app. It is installed as the default site by ``config.apps.CarbonAdminConfig``, so every
``@admin.register`` keeps working unchanged.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, reverse

from pipelines import console

CONSOLE_URL_NAME = "pipelines_console"


class CarbonAdminSite(admin.AdminSite):
    site_header = "Carbon pipeline administration"
    site_title = "Carbon pipeline admin"
    index_title = "Back office"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # First: the admin's own patterns end with a catch-all that would answer 404.
        extra: list[URLResolver | URLPattern] = [
            path("pipelines/console/", self.admin_view(self.pipelines_console), name=CONSOLE_URL_NAME),
        ]
        return extra + super().get_urls()

    def pipelines_console(self, request: HttpRequest) -> HttpResponse:
        return console.console_view(request, context=self.each_context(request))

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """The admin's app list, with the console listed first in the pipelines app."""
        app_list = super().get_app_list(request, app_label)
        if not console.can_view(request.user):
            return app_list
        entry = {
            "name": "Operations console",
            "object_name": "OperationsConsole",
            "admin_url": reverse(f"{self.name}:{CONSOLE_URL_NAME}", current_app=self.name),
            "add_url": None,
            "view_only": True,
            "perms": {"view": True, "add": False, "change": False, "delete": False},
        }
        for app in app_list:
            if app["app_label"] == "pipelines":
                app["models"].insert(0, entry)
        return app_list
