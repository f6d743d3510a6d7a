"""ASGI entry point: HTTP through Django, except the pipeline event streams, served by Channels.

- HTTP: GET /api/v1/sync/pipelines/{id}/stream (SSE) by ``PipelineStreamConsumer``, everything
  else by Django (static assets too, unless a proxy serves them).
- Websocket: the operations console's live updates, ``/ws/pipelines/`` (every pipeline the
  user may see) and ``/ws/pipelines/<uuid>/`` (one), session-authenticated. The Origin must be
  one of ALLOWED_HOSTS: the session cookie rides along with any page's websocket, so a foreign
  page could otherwise open one in the operator's name (cross-site websocket hijacking).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

from config.warmup import application_freeze

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

# The path of GET /api/v1/sync/pipelines/{id}/stream (also routed in Django for WSGI and docs).
STREAM_PATH = r"^api/v1/sync/pipelines/(?P<pipeline_id>[0-9a-fA-F-]{32,36})/stream/?$"
WS_LIST_PATH = r"^ws/pipelines/?$"
WS_PIPELINE_PATH = r"^ws/pipelines/(?P<pipeline_id>[0-9a-fA-F-]{32,36})/?$"


def _build() -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
    from django.conf import settings
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.urls import re_path

    from pipelines.consumers import PipelineListSocket, PipelineSocket, PipelineStreamConsumer

    http_app: Any = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app
    return ProtocolTypeRouter(
        {
            "http": URLRouter(
                [
                    re_path(STREAM_PATH, AuthMiddlewareStack(PipelineStreamConsumer.as_asgi())),
                    re_path(r"", http_app),
                ]
            ),
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(
                    URLRouter(
                        [
                            re_path(WS_LIST_PATH, PipelineListSocket.as_asgi()),
                            re_path(WS_PIPELINE_PATH, PipelineSocket.as_asgi()),
                            # Any other path: refused at the handshake (not a routing error in the logs).
                            re_path(r"", WebsocketDenier.as_asgi()),
                        ]
                    )
                )
            ),
        }
    )


application = _build()
application_freeze()
