"""Settings, all read from the environment (see README "Settings").

One module for every deployment: production differs from the embedded default only by
environment variables. "Production" means DATABASE_URL points at PostgreSQL; there DEBUG
defaults to off and SECRET_KEY must be given. Every bad value stops start-up with a message
naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_database,
    env_int,
    env_list,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Database -------------------------------------------------------------------------------
_DEFAULT_DATABASE_URL = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": env_database("DATABASE_URL", _DEFAULT_DATABASE_URL)}
EMBEDDED = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if EMBEDDED:
    # Tests run worker subprocesses against the test database: it must be a file, not memory
    # (they are handed its path). One file per test run, so concurrent runs never share one.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})
    # A worker, the reconciler and the web server share the file: wait for the write lock
    # instead of failing with "database is locked", and take it up front so a read that turns
    # into a write cannot deadlock (IMMEDIATE transactions).
    DATABASES["default"]["OPTIONS"].update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})
    # Each process names itself (worker, reconciler, web) in pg_stat_activity.
    DATABASES["default"]["OPTIONS"].setdefault("application_name", env_str("CARBON_PROCESS_NAME", "carbon-pipeline"))

# The engine writes job state (progress, history, cancellation checks) on a second connection
# in autocommit, so that rolling back a handler's data transaction never loses them. On
# SQLite there is one writer, so job state shares the data connection (see pipelines.db).
if not EMBEDDED:
    DATABASES["jobs"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

# --- Security -------------------------------------------------------------------------------
# Refused below when DEBUG is off.
_DEV_FALLBACK_KEY = "dev-only-insecure-key-do-not-use-in-production"
DEBUG = env_bool("DEBUG", EMBEDDED)
SECRET_KEY = env_str("SECRET_KEY", None) or _DEV_FALLBACK_KEY
if not DEBUG and SECRET_KEY == _DEV_FALLBACK_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY: must be set when DEBUG is off (production); generate one with "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
if not DEBUG and len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY: must be at least 32 characters when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# HTTPS. Behind a TLS proxy (which tells Django a request was secure), production redirects
# plain HTTP to HTTPS, except the health endpoint, which monitors and load balancers probe over
# plain HTTP inside the network. HSTS is only ever sent on HTTPS responses (SecurityMiddleware),
# so its production default of one year is harmless where TLS is not used; PRELOAD is left to
# whoever owns the registrable domain (it is hard to undo), hence off and its check silenced.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY and not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, min_value=0, max_value=63_072_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if EMBEDDED:
    # pipeline_list_cover_idx INCLUDEs the list's filter columns for PostgreSQL's index-only
    # scans; SQLite builds the same index without them, which is all it needs.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Applications ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "config.apps.CarbonAdminConfig",  # django.contrib.admin with the site of config.admin_site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "pipelines",
    "carbon",
    "ingestion",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_USER_MODEL = "carbon.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Serve admin/console assets from the ASGI app itself (no separate web server needed); turn
# off when a reverse proxy serves STATIC_ROOT after `collectstatic`.
SERVE_STATIC = env_bool("SERVE_STATIC", True)
STATIC_ROOT = BASE_DIR / "var" / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    # One process only: events do not cross processes through the layer itself; each web
    # process then tails the database for changes instead (pipelines.relay).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its ``WWW-Authenticate`` header turns "not authenticated" into a 401
    # (session authentication alone has none, and DRF would answer 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "config.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "config.api.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "carbon-pipeline API",
    "DESCRIPTION": "Data pipelines of the university carbon-footprint calculator.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets are served from the app itself: no CDN (the network may be closed).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.add_error_responses",
    ],
}

# --- Files ----------------------------------------------------------------------------------
FILES_ROOT = Path(env_str("FILES_ROOT", str(BASE_DIR / "var" / "files")) or "").resolve()
FILES_MAX_SIZE_MB = env_int("FILES_MAX_SIZE_MB", 100, min_value=1, max_value=10_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# The size limit is enforced while the body is read, before any view (config.uploads).
FILE_UPLOAD_HANDLERS = [
    "config.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Unit directory and travel API ----------------------------------------------------------
UNIT_SOURCE_URL = env_str("UNIT_SOURCE_URL", str(BASE_DIR / "ingestion" / "demo" / "units.json"))
UNIT_SOURCE_USER = env_str("UNIT_SOURCE_USER", None)
UNIT_SOURCE_PASSWORD = env_str("UNIT_SOURCE_PASSWORD", None)
TRAVEL_API_URL = env_url("TRAVEL_API_URL", None, schemes=("http", "https"))
TRAVEL_API_TOKEN = env_str("TRAVEL_API_TOKEN", None)

# --- Pipelines engine -----------------------------------------------------------------------
# Who may see and operate pipelines: a function user → scope, provided by the domain app so
# the engine imports none (fixed wiring, not an environment setting).
PIPELINES_ACCESS = "carbon.permissions.access_scope"
# Display labels of the domain ids on pipelines (module, data-entry type), same wiring.
PIPELINES_LABELS = "carbon.labels.pipeline_labels"
WORKER_POLL_SECONDS = env_int("WORKER_POLL_SECONDS", 1, min_value=1, max_value=3600)
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 5, min_value=1, max_value=3600)
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 30, min_value=2, max_value=86_400)
if JOB_LEASE_SECONDS <= WORKER_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"JOB_LEASE_SECONDS: must exceed WORKER_HEARTBEAT_SECONDS ({WORKER_HEARTBEAT_SECONDS}), "
        f"or every lease expires between two renewals; got {JOB_LEASE_SECONDS}"
    )
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, min_value=1, max_value=100)
PIPELINE_RECONCILER_INTERVAL_SECONDS = env_int(
    "PIPELINE_RECONCILER_INTERVAL_SECONDS", 15, min_value=1, max_value=86_400
)
MAX_ROW_ERRORS = env_int("MAX_ROW_ERRORS", 100, min_value=1, max_value=100_000)
INGEST_COPY_BATCH_SIZE = env_int("INGEST_COPY_BATCH_SIZE", 50_000, min_value=1, max_value=10_000_000)
GIT_SHA = env_str("GIT_SHA", None)
APP_VERSION = env_str("APP_VERSION", "0.1.0")

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = (env_str("LOG_LEVEL", "INFO") or "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
