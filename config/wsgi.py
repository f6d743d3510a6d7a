from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from config.warmup import application_freeze

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
application_freeze()
