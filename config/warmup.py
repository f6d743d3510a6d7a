"""Start-up of a web process: load the application once, then keep the collector off it.

CPython's cyclic garbage collector runs a full (generation 2) collection now and then, and a
full collection walks every tracked object. A Django process holds ~125k of them once it has
loaded its apps, URLconf, admin and API (the modules, classes, settings, routes): on the 2-core
bench box each full collection paused a request for 50–90 ms, which made the p95 of
``GET /api/v1/sync/pipelines`` twice its median. ``gc.freeze()`` (Python 3.7+) moves every
object alive at that moment to a permanent generation that collections skip; those objects
live as long as the process anyway, so nothing is leaked. Objects created afterwards (each
request's) are collected as usual.

The entry points call ``application_freeze`` once their application is built:
``config.wsgi``, ``config.asgi`` (daphne, ``manage.py serve``). The benchmark calls it too,
since it serves requests from its own process.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def application_freeze() -> int:
    """Import the URLconf (every view, serializer and admin), collect once, then freeze.

    Returns the number of objects frozen.
    """
    from django.urls import get_resolver

    routes = get_resolver().url_patterns  # loading the routes imports every view behind them
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("%d top-level routes loaded, %d objects frozen out of the collector's scans", len(routes), frozen)
    return frozen
