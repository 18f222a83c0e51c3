"""Settings, read from the environment, with safe defaults for the embedded mode.

Embedded mode (nothing set): SQLite under var/, in-memory channel layer, a generated
secret key kept in var/secret_key. Production: DATABASE_URL (PostgreSQL), REDIS_URL,
SECRET_KEY, ALLOWED_HOSTS, DEBUG=0.
"""

import json
import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FLOWMATRX_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _embedded_secret_key() -> str:
    """A key generated once for the embedded mode and kept, so sessions survive restarts."""
    path = VAR_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key


SECRET_KEY = os.environ.get("SECRET_KEY") or _embedded_secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "flowmatrx.staticfiles.StaticFiles",
    "channels",
    "django_htmx",
    "workflows",
    "runs",
    "accounts",
    "triggers",
]

MIDDLEWARE = [
    "flowmatrx.middleware.SecureCookiesOverHttps",  # first: sees the cookies set below it
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "flowmatrx.urls"
ASGI_APPLICATION = "flowmatrx.asgi.application"

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
                "accounts.context_processors.role",
            ],
        },
    },
]


def _database(url: str | None) -> dict:
    if not url:
        url = f"sqlite:///{VAR_DIR / 'flowmatrx.sqlite3'}"
    config = dj_database_url.parse(url, conn_max_age=0)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            # WAL lets the web process read while the worker writes; IMMEDIATE takes the
            # write lock at BEGIN so two writers queue on the busy timeout instead of
            # failing with "database is locked" on lock upgrade.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        name = Path(config["NAME"])
        config["TEST"] = {"NAME": str(name.with_name(f"test_{name.name}"))}
    return config


DATABASES = {"default": _database(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# The app serves its own static files (no CDN, no separate web server needed).
FLOWMATRX_SERVE_STATIC = env_bool("FLOWMATRX_SERVE_STATIC", True)

# Security. Cookies: HttpOnly session, SameSite=Lax for both. Served over HTTPS
# (FLOWMATRX_HTTPS=1: set it in production) they are Secure and HSTS is sent; off by
# default because the embedded mode serves plain http, where Secure cookies would make
# signing in impossible except on localhost; a request that did come over HTTPS gets
# Secure cookies anyway (flowmatrx.middleware). htmx sends the CSRF token as X-CSRFToken
# (hx-headers in base.html).
FLOWMATRX_HTTPS = env_bool("FLOWMATRX_HTTPS", env_bool("FLOWMATRX_SECURE_COOKIES", False))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = FLOWMATRX_HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if FLOWMATRX_HTTPS:
    SECURE_HSTS_SECONDS = int(os.environ.get("FLOWMATRX_HSTS_SECONDS", "31536000"))
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto (say so explicitly).
    if env_bool("FLOWMATRX_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("FLOWMATRX_SSL_REDIRECT", False)

# Login rate limiting (accounts.throttle): failures per username+address per window.
FLOWMATRX_LOGIN_ATTEMPTS = int(os.environ.get("FLOWMATRX_LOGIN_ATTEMPTS", "5"))
FLOWMATRX_LOGIN_WINDOW_SECONDS = int(os.environ.get("FLOWMATRX_LOGIN_WINDOW_SECONDS", "900"))
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }

# Engine
FLOWMATRX_LEASE_SECONDS = float(os.environ.get("FLOWMATRX_LEASE_SECONDS", "30"))

# Step library (SPEC §4, §6)
FLOWMATRX_ALLOW_PRIVATE_NETWORKS = env_bool("FLOWMATRX_ALLOW_PRIVATE_NETWORKS", False)
# exact "ip:port" pairs let through the private-network guard, e.g. one internal service
FLOWMATRX_ALLOW_ADDRESSES = env_list("FLOWMATRX_ALLOW_ADDRESSES", [])
FLOWMATRX_UNSAFE_INLINE_CODE = env_bool("FLOWMATRX_UNSAFE_INLINE_CODE", False)
# name -> database URL for database_query steps, as JSON: {"reports": "postgres://..."}
FLOWMATRX_QUERY_DATABASES = json.loads(os.environ.get("FLOWMATRX_QUERY_DATABASES") or "{}")
# dotted paths of modules (or callables) whose functions function_call steps may call
FLOWMATRX_FUNCTIONS = env_list("FLOWMATRX_FUNCTIONS", [])
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com/v1")
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")

# Email (send_email steps): SMTP when EMAIL_HOST is set, else printed to the console.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "flowmatrx@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "flowmatrx": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
        "engine": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
        "runs": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    },
}
