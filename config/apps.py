"""The admin app configured with the project's site (``config.admin_site.CarbonAdminSite``).

Listed in INSTALLED_APPS instead of ``django.contrib.admin``: Django then builds
``admin.site`` from ``default_site``, so the apps' ``@admin.register`` land on our site and
the operations console is routed inside ``/admin/``.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class CarbonAdminConfig(AdminConfig):
    default_site = "config.admin_site.CarbonAdminSite"
