"""ASGI entry point: HTTP through Django, except the pipeline event streams, served by Channels.

Websocket routes come with the operations console.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

# The path of GET /api/v1/sync/pipelines/{id}/stream (also routed in Django for WSGI and docs).
STREAM_PATH = r"^api/v1/sync/pipelines/(?P<pipeline_id>[0-9a-fA-F-]{32,36})/stream/?$"


def _build() -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.conf import settings
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.urls import re_path

    from pipelines.consumers import PipelineStreamConsumer

    http_app: Any = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app
    return ProtocolTypeRouter(
        {
            "http": URLRouter(
                [
                    re_path(STREAM_PATH, AuthMiddlewareStack(PipelineStreamConsumer.as_asgi())),
                    re_path(r"", http_app),
                ]
            ),
        }
    )


application = _build()
