"""ASGI entry point: HTTP through Django, websockets through Channels (routes come with the console)."""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()


def _build() -> Any:
    from channels.routing import ProtocolTypeRouter
    from django.conf import settings
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app: Any = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app
    return ProtocolTypeRouter({"http": http_app})


application = _build()
