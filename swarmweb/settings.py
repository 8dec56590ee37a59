"""Swarm settings: environment variables only (docs/configuration.md)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from peers.protocol.errors import ProtocolError
from peers.protocol.turn import turn_secret_from

# Lets admin classes and querysets be written with type parameters (ModelAdmin[Model]).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env.str("SWARM_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    configured = env.str("DJANGO_SECRET_KEY", default="")
    if configured:
        return str(configured)
    # Embedded default: one random key per var/ directory, created on first start.
    path = VAR_DIR / "django-secret-key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS (docs/operations.md "Production settings"): SWARM_HTTPS=true behind a TLS
# proxy turns on HSTS, secure cookies and the redirect to HTTPS; each can be overridden. ---
SWARM_HTTPS = env.bool("SWARM_HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=SWARM_HTTPS)
# /healthz answers the load balancer's plain HTTP probes instead of redirecting them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int(
    "DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if SWARM_HTTPS else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SWARM_HTTPS
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=SWARM_HTTPS)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=SWARM_HTTPS)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=SWARM_HTTPS)
# The header by which the TLS proxy says a request came over HTTPS (e.g. X-Forwarded-Proto,
# which the proxy must always set, overwriting what a client sent); empty: none trusted.
_PROXY_SSL_HEADER = env.str("SWARM_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https") if _PROXY_SSL_HEADER else None
)
# Headers of every Django response (SecurityMiddleware); the CSP and Permissions-Policy are
# added by swarmweb/security.py.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "corsheaders",
    "django_celery_beat",
    "axes",
    # Lower layers first (pyproject.toml, import contracts): operations, then the apps.
    "ops",
    "beacon",
    "peers.superpeer",
    "peers.replication",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy (a nonce for the import map) and Permissions-Policy.
    "swarmweb.security.SecurityHeadersMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Admin login throttling (django-axes, docs/operations.md "Admin login"): failures are
# counted per client address (the one ClientAddressMiddleware resolved, as REMOTE_ADDR),
# so nobody elsewhere can lock the real admin out.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_FAILURE_LIMIT = env.int("SWARM_ADMIN_LOGIN_FAILURES", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.float("SWARM_ADMIN_LOGIN_COOLOFF_S", default=900.0))
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

ROOT_URLCONF = "swarmweb.urls"
ASGI_APPLICATION = "swarmweb.asgi.application"

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

# --- Database: SQLite under var/ by default, PostgreSQL with DATABASE_URL. ---
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'swarm.sqlite3'}")}
_db: dict[str, Any] = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # web, worker, beat and super-peer share the file: WAL and immediate
    # transactions avoid "database is locked" under concurrent writers.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file (not :memory:) so that server processes started by tests share it.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    from shared.db import POOL_RECONNECT_TIMEOUT_S

    # A failed reconnection is not retried for minutes: the next request tries again.
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("SWARM_DB_POOL_SIZE", default=8),
        "timeout": 10,
        "reconnect_timeout": POOL_RECONNECT_TIMEOUT_S,
    }
    _db["CONN_MAX_AGE"] = 0
    # The pool checks a connection before handing it out: a database restart leaves dead
    # ones idle in it (shared/db.py).
    _db["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: rate limits, shared counters, cache, channel layer and broker. ---
REDIS_URL = env.str("REDIS_URL", default="")
# Every Redis client: connect and reply timeout, and how long a pooled connection may
# sit idle before it is pinged ahead of its next use (shared/redis.py).
SWARM_REDIS_TIMEOUT_S = env.float("SWARM_REDIS_TIMEOUT_S", default=2.0)
SWARM_REDIS_HEALTH_CHECK_S = env.float("SWARM_REDIS_HEALTH_CHECK_S", default=10.0)

if REDIS_URL:
    from shared.redis import async_options

    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "swarm",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        **async_options(
                            timeout_s=SWARM_REDIS_TIMEOUT_S,
                            health_check_s=SWARM_REDIS_HEALTH_CHECK_S,
                        ),
                    }
                ],
                "prefix": "swarm:ch",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery: Redis broker, or kombu's filesystem transport with no server. ---
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    # kombu's filesystem transport with whole-or-nothing writes (swarmweb/broker.py).
    CELERY_BROKER_TRANSPORT = "swarmweb.broker:Transport"
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    _control_dir = VAR_DIR / "celery" / "control"
    for _dir in (_queue_dir, _processed_dir, _control_dir):
        _dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "control_folder": str(_control_dir),
        "store_processed": False,
    }
# Redis hands a task that was taken but never acknowledged (its worker was killed) to
# another worker once it has been out this long. Every task is killed before it runs that
# long (so a running task is never handed out twice), and no retry or deferred task waits
# longer than what is left (a worker holds such a task unacknowledged while it waits, and
# past the timeout it would be handed out again, and again). docs/operations.md "Faults".
SWARM_CELERY_VISIBILITY_TIMEOUT_S = env.int("SWARM_CELERY_VISIBILITY_TIMEOUT_S", default=600)
SWARM_CELERY_TASK_TIME_LIMIT_S = env.int("SWARM_CELERY_TASK_TIME_LIMIT_S", default=240)
if not 0 < SWARM_CELERY_TASK_TIME_LIMIT_S < SWARM_CELERY_VISIBILITY_TIMEOUT_S:
    raise ImproperlyConfigured(
        "SWARM_CELERY_TASK_TIME_LIMIT_S must be positive and below "
        "SWARM_CELERY_VISIBILITY_TIMEOUT_S"
    )
SWARM_CELERY_MAX_COUNTDOWN_S = SWARM_CELERY_VISIBILITY_TIMEOUT_S - SWARM_CELERY_TASK_TIME_LIMIT_S
CELERY_TASK_TIME_LIMIT = SWARM_CELERY_TASK_TIME_LIMIT_S
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": SWARM_CELERY_VISIBILITY_TIMEOUT_S,
        # Look for such tasks every 10 s (kombu's default looks every 100 s).
        "unacked_restore_interval": max(1, min(10, SWARM_CELERY_VISIBILITY_TIMEOUT_S // 10)),
        "unacked_restore_throttle": 1,
        # Replies wait past the 1 s BRPOP; connections are kept alive and checked.
        "socket_timeout": max(5.0, SWARM_REDIS_TIMEOUT_S),
        "socket_connect_timeout": SWARM_REDIS_TIMEOUT_S,
        "socket_keepalive": True,
        "health_check_interval": SWARM_REDIS_HEALTH_CHECK_S,
        "retry_on_timeout": True,
    }
# Workers wait for the broker as long as it takes, instead of exiting after 100 tries.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("SWARM_CELERY_EAGER", default=False)
# Deployments (and test runs) sharing one Redis keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = env.str("SWARM_CELERY_QUEUE", default="celery")

# --- Static files: served by daphne itself (docs/operations.md). ---
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticroot"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# Cross-origin pages (static mirrors, other deployments) may use the beacon and capsules.
# (The beacon's announce/peers fast path sets its own CORS headers: beacon/asgi.py.)
CORS_URLS_REGEX = r"^/(beacon|capsules)/.*$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_EXPOSE_HEADERS = ["Retry-After"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("SWARM_LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# --- Swarm: community and beacon rules (DESIGN section 4). ---
SWARM_COMMUNITY = env.str("SWARM_COMMUNITY", default="main")
SWARM_TICKET_MAX_TTL_MS = env.int("SWARM_TICKET_MAX_TTL_MS", default=600_000)
SWARM_CLOCK_SKEW_MS = env.int("SWARM_CLOCK_SKEW_MS", default=15_000)
SWARM_ANNOUNCE_MAX_BYTES = env.int("SWARM_ANNOUNCE_MAX_BYTES", default=4096)
SWARM_BEACON_MAX_LIVE = env.int("SWARM_BEACON_MAX_LIVE", default=200)
SWARM_BEACON_MAX_PEERS = env.int("SWARM_BEACON_MAX_PEERS", default=50)
SWARM_BEACON_PEER_INTERVAL_S = env.float("SWARM_BEACON_PEER_INTERVAL_S", default=15.0)
SWARM_BEACON_IP_RATE = env.float("SWARM_BEACON_IP_RATE", default=5.0)
SWARM_BEACON_IP_BURST = env.int("SWARM_BEACON_IP_BURST", default=50)
SWARM_BEACON_READ_IP_RATE = env.float("SWARM_BEACON_READ_IP_RATE", default=10.0)
SWARM_BEACON_READ_IP_BURST = env.int("SWARM_BEACON_READ_IP_BURST", default=60)
SWARM_BEACON_DB_POOL_SIZE = env.int("SWARM_BEACON_DB_POOL_SIZE", default=8)
SWARM_TRUST_X_FORWARDED_FOR = env.bool("SWARM_TRUST_X_FORWARDED_FOR", default=False)
SWARM_TRUSTED_PROXIES = env.list("SWARM_TRUSTED_PROXIES", default=[])
SWARM_PROXY_CLIENT_HEADER = env.str("SWARM_PROXY_CLIENT_HEADER", default="X-Forwarded-For")
SWARM_COMMUNITY_NEW_PER_IP_HOUR = env.int("SWARM_COMMUNITY_NEW_PER_IP_HOUR", default=10)
SWARM_COMMUNITY_NEW_PER_HOUR = env.int("SWARM_COMMUNITY_NEW_PER_HOUR", default=200)
# Counters are flushed to the database by a background thread every 2 s (off in unit tests).
SWARM_METRICS_BACKGROUND_FLUSH = env.bool("SWARM_METRICS_BACKGROUND_FLUSH", default=True)

# --- Swarm: connection limits of the web process (swarmweb/connlimits.py). ---
SWARM_HTTP_MAX_CONNECTIONS_PER_IP = env.int("SWARM_HTTP_MAX_CONNECTIONS_PER_IP", default=128)
SWARM_HTTP_HEADER_TIMEOUT_S = env.float("SWARM_HTTP_HEADER_TIMEOUT_S", default=10.0)
SWARM_HTTP_BODY_TIMEOUT_S = env.float("SWARM_HTTP_BODY_TIMEOUT_S", default=30.0)
SWARM_HTTP_MAX_BODY_BYTES = env.int("SWARM_HTTP_MAX_BODY_BYTES", default=1024 * 1024)
# Per-network limits count IPv4 clients by /24 and IPv6 clients by /64 by default.
SWARM_NETWORK_PREFIX_V4 = env.int("SWARM_NETWORK_PREFIX_V4", default=24)
SWARM_NETWORK_PREFIX_V6 = env.int("SWARM_NETWORK_PREFIX_V6", default=64)

# --- Swarm: capsules, federation, alerting (docs/capsules.md). ---
SWARM_CAPSULE_DIR = Path(env.str("SWARM_CAPSULE_DIR", default=str(VAR_DIR / "capsules")))
SWARM_CAPSULE_MIN_PEERS = env.int("SWARM_CAPSULE_MIN_PEERS", default=20)
SWARM_CAPSULE_RETRY_BACKOFF_S = env.float("SWARM_CAPSULE_RETRY_BACKOFF_S", default=30.0)
SWARM_FEDERATION_RETRIES = env.int("SWARM_FEDERATION_RETRIES", default=2)
SWARM_FEDERATION_BACKOFF_S = env.float("SWARM_FEDERATION_BACKOFF_S", default=0.5)
SWARM_BEACON_HEALTH_WINDOW_S = env.int("SWARM_BEACON_HEALTH_WINDOW_S", default=900)
SWARM_BEACON_HEALTH_MIN_RATE = env.float("SWARM_BEACON_HEALTH_MIN_RATE", default=0.8)
SWARM_BEACON_HEALTH_MIN_PROBES = env.int("SWARM_BEACON_HEALTH_MIN_PROBES", default=3)
SWARM_ALERT_WEBHOOK_URL = env.str("SWARM_ALERT_WEBHOOK_URL", default="")
SWARM_ALERT_WEBHOOK_TIMEOUT_S = env.float("SWARM_ALERT_WEBHOOK_TIMEOUT_S", default=10.0)
SWARM_ALERT_RETRY_BACKOFF_S = env.float("SWARM_ALERT_RETRY_BACKOFF_S", default=10.0)
SWARM_HISTORY_HOURS = env.int("SWARM_HISTORY_HOURS", default=24)

# --- Swarm: PeerJS-compatible signaling (docs/signaling.md, docs/configuration.md). ---
SWARM_SIGNAL_KEY = env.str("SWARM_SIGNAL_KEY", default="peerjs")
SWARM_SIGNAL_EXPIRE_TIMEOUT_MS = env.int("SWARM_SIGNAL_EXPIRE_TIMEOUT_MS", default=5_000)
SWARM_SIGNAL_GONE_AFTER_MS = env.int("SWARM_SIGNAL_GONE_AFTER_MS", default=10_000)
SWARM_SIGNAL_ALIVE_TIMEOUT_MS = env.int("SWARM_SIGNAL_ALIVE_TIMEOUT_MS", default=60_000)
SWARM_SIGNAL_CONCURRENT_LIMIT = env.int("SWARM_SIGNAL_CONCURRENT_LIMIT", default=5_000)
SWARM_SIGNAL_ALLOW_DISCOVERY = env.bool("SWARM_SIGNAL_ALLOW_DISCOVERY", default=False)
SWARM_SIGNAL_PLAIN_IDS = env.bool("SWARM_SIGNAL_PLAIN_IDS", default=True)
SWARM_SIGNAL_MAX_FRAME_BYTES = env.int("SWARM_SIGNAL_MAX_FRAME_BYTES", default=32_768)
SWARM_SIGNAL_RATE = env.float("SWARM_SIGNAL_RATE", default=50.0)
SWARM_SIGNAL_BURST = env.int("SWARM_SIGNAL_BURST", default=200)
SWARM_SIGNAL_QUEUE_LIMIT = env.int("SWARM_SIGNAL_QUEUE_LIMIT", default=100)
SWARM_SIGNAL_TOKEN_MAX_AGE_S = env.int("SWARM_SIGNAL_TOKEN_MAX_AGE_S", default=600)
SWARM_SIGNAL_IDS_PER_IP = env.int("SWARM_SIGNAL_IDS_PER_IP", default=50)
SWARM_SIGNAL_IDS_PER_NETWORK = env.int("SWARM_SIGNAL_IDS_PER_NETWORK", default=200)
SWARM_SIGNAL_SOCKETS_PER_IP = env.int("SWARM_SIGNAL_SOCKETS_PER_IP", default=50)
SWARM_SIGNAL_SOCKETS_PER_NETWORK = env.int("SWARM_SIGNAL_SOCKETS_PER_NETWORK", default=200)

# --- Swarm: the browser peer's page config (docs/configuration.md "Browser peer"). ---
# Empty URL lists mean "this server" (relative URLs, resolved by the page).
SWARM_BEACON_URLS = env.list("SWARM_BEACON_URLS", default=[])
SWARM_CAPSULE_URLS = env.list("SWARM_CAPSULE_URLS", default=[])
SWARM_CAPSULE_KEYS = env.list("SWARM_CAPSULE_KEYS", default=[])
SWARM_SIGNAL_URLS = env.list("SWARM_SIGNAL_URLS", default=[])
SWARM_ICE_SERVERS = env.json("SWARM_ICE_SERVERS", default=[])
# "all" (any candidate) or "relay" (TURN only: hides the addresses, tests the TURN path).
SWARM_ICE_TRANSPORT_POLICY = env.str("SWARM_ICE_TRANSPORT_POLICY", default="all")
SWARM_SEED_PEERS = env.list("SWARM_SEED_PEERS", default=[])
# Flooded `have` adverts (topic `have`) from the pages; off: holders beyond the connected
# peers are found through the DHT only.
SWARM_HAVE_GOSSIP = env.bool("SWARM_HAVE_GOSSIP", default=True)
# Repair by peers in the page (docs/replication.md "Repair by peers"): how often a page that
# keeps copies for the swarm decides and announces itself, how long it listens after it
# starts, how recent a backfill run must be to hold it back, how long one repair fetch may take.
SWARM_REPAIR_TICK_S = env.float("SWARM_REPAIR_TICK_S", default=5.0)
SWARM_REPAIR_ANNOUNCE_S = env.float("SWARM_REPAIR_ANNOUNCE_S", default=60.0)
SWARM_REPAIR_WARMUP_S = env.float("SWARM_REPAIR_WARMUP_S", default=75.0)
SWARM_REPAIR_WORKER_GRACE_S = env.float("SWARM_REPAIR_WORKER_GRACE_S", default=180.0)
SWARM_REPAIR_FETCH_TIMEOUT_S = env.int("SWARM_REPAIR_FETCH_TIMEOUT_S", default=600)
SWARM_MESH_TARGET = env.int("SWARM_MESH_TARGET", default=6)
SWARM_MESH_MAX = env.int("SWARM_MESH_MAX", default=10)
SWARM_MESH_APPROVAL = env.str("SWARM_MESH_APPROVAL", default="auto")
SWARM_RENDEZVOUS_REFRESH_S = env.int("SWARM_RENDEZVOUS_REFRESH_S", default=60)
SWARM_RENDEZVOUS_RETRY_S = env.int("SWARM_RENDEZVOUS_RETRY_S", default=15)
SWARM_RENDEZVOUS_PAUSE_AFTER = env.int("SWARM_RENDEZVOUS_PAUSE_AFTER", default=3)
SWARM_RENDEZVOUS_PAUSE_S = env.int("SWARM_RENDEZVOUS_PAUSE_S", default=120)
SWARM_RENDEZVOUS_TIMEOUT_S = env.int("SWARM_RENDEZVOUS_TIMEOUT_S", default=8)

# --- Swarm: TURN with short-lived credentials (docs/operations.md "TURN"). ---
# The TURN REST scheme (coturn's use-auth-secret): the secret is shared with the TURN
# server and the super-peer and never sent to a page; pages get credentials that live
# SWARM_TURN_TTL_S and fetch fresh ones from /turn/credentials (at most SWARM_TURN_RATE a
# minute per address).
SWARM_TURN_URLS = env.list("SWARM_TURN_URLS", default=[])
SWARM_TURN_SECRET = env.str("SWARM_TURN_SECRET", default="")
SWARM_TURN_TTL_S = env.int("SWARM_TURN_TTL_S", default=3600)
SWARM_TURN_RATE = env.int("SWARM_TURN_RATE", default=12)
if SWARM_ICE_TRANSPORT_POLICY not in ("all", "relay"):
    raise ImproperlyConfigured("SWARM_ICE_TRANSPORT_POLICY must be all or relay")
try:  # refused at start-up, not at the first page
    turn_secret_from(SWARM_TURN_URLS, SWARM_TURN_SECRET, SWARM_TURN_TTL_S)
except ProtocolError as _exc:
    raise ImproperlyConfigured(f"SWARM_TURN_*: {_exc.message}") from _exc

# --- Swarm: the Python PeerJS peer / super-peer's ICE (docs/peerjs.md, docs/configuration.md). ---
# RTCIceServer list as JSON (default none: no STUN/TURN), and the local addresses to gather
# host candidates on (empty: every interface except loopback).
SWARM_SUPERPEER_ICE_SERVERS = env.json("SWARM_SUPERPEER_ICE_SERVERS", default=[])
SWARM_SUPERPEER_HOST_ADDRESSES = env.list("SWARM_SUPERPEER_HOST_ADDRESSES", default=[])
# "all", or "relay": only TURN candidates (needs SWARM_TURN_* or a turn: server above).
SWARM_SUPERPEER_ICE_TRANSPORT_POLICY = env.str(
    "SWARM_SUPERPEER_ICE_TRANSPORT_POLICY", default="all"
)
if SWARM_SUPERPEER_ICE_TRANSPORT_POLICY not in ("all", "relay"):
    raise ImproperlyConfigured("SWARM_SUPERPEER_ICE_TRANSPORT_POLICY must be all or relay")
_superpeer_turn_urls = [
    url
    for server in SWARM_SUPERPEER_ICE_SERVERS
    if isinstance(server, dict) and isinstance(server.get("urls"), str | list)
    for url in ([server["urls"]] if isinstance(server["urls"], str) else server["urls"])
    if isinstance(url, str) and url.startswith(("turn:", "turns:"))
]
if SWARM_SUPERPEER_ICE_TRANSPORT_POLICY == "relay" and not (
    any(u.strip() for u in SWARM_TURN_URLS) or _superpeer_turn_urls
):
    raise ImproperlyConfigured(
        "SWARM_SUPERPEER_ICE_TRANSPORT_POLICY=relay needs a TURN server (SWARM_TURN_URLS)"
    )

# --- Swarm: the super-peer (docs/superpeer.md, docs/configuration.md "Super-peer"). ---
_SUPERPEER_SERVER = (
    f"http://{env.str('SWARM_HOST', default='127.0.0.1')}:{env.int('SWARM_PORT', default=8000)}"
)
SWARM_SUPERPEER_SIGNAL_URL = env.str(
    "SWARM_SUPERPEER_SIGNAL_URL", default=f"{_SUPERPEER_SERVER}/signal/"
)
SWARM_SUPERPEER_BEACON_URLS = env.list(
    "SWARM_SUPERPEER_BEACON_URLS", default=[f"{_SUPERPEER_SERVER}/beacon/v1/"]
)
SWARM_SUPERPEER_COMMUNITY = env.str("SWARM_SUPERPEER_COMMUNITY", default=SWARM_COMMUNITY)
# The door (docs/superpeer.md "The door"): host:port where the super-peer takes WebSockets
# from pages that cannot reach the signaling server (empty: no door), and the door URLs the
# page config names (default: this super-peer's door, ws:// on its address).
SWARM_SUPERPEER_DOOR = env.str("SWARM_SUPERPEER_DOOR", default="")
SWARM_DOOR_URLS = env.list(
    "SWARM_DOOR_URLS",
    default=[f"ws://{SWARM_SUPERPEER_DOOR}/"] if SWARM_SUPERPEER_DOOR else [],
)
SWARM_SUPERPEER_STORE_DIR = Path(
    env.str("SWARM_SUPERPEER_STORE_DIR", default=str(VAR_DIR / "chunks"))
)
SWARM_SUPERPEER_STORAGE_BYTES = env.int("SWARM_SUPERPEER_STORAGE_BYTES", default=10 * 2**30)
SWARM_SUPERPEER_SEEDS = env.list("SWARM_SUPERPEER_SEEDS", default=[])
SWARM_SUPERPEER_MESH_TARGET = env.int("SWARM_SUPERPEER_MESH_TARGET", default=8)
SWARM_SUPERPEER_MAX_CONNECTIONS = env.int("SWARM_SUPERPEER_MAX_CONNECTIONS", default=64)
SWARM_SUPERPEER_MAX_JOBS = env.int("SWARM_SUPERPEER_MAX_JOBS", default=4)
SWARM_SUPERPEER_ANNOUNCE_S = env.float("SWARM_SUPERPEER_ANNOUNCE_S", default=60.0)
SWARM_SUPERPEER_SYNC_S = env.float("SWARM_SUPERPEER_SYNC_S", default=10.0)
SWARM_SUPERPEER_STATUS_S = env.float("SWARM_SUPERPEER_STATUS_S", default=5.0)
SWARM_SUPERPEER_REQUEST_TIMEOUT_S = env.float("SWARM_SUPERPEER_REQUEST_TIMEOUT_S", default=8.0)
SWARM_SUPERPEER_SEND_BUFFER_BYTES = env.int(
    "SWARM_SUPERPEER_SEND_BUFFER_BYTES", default=1024 * 1024
)
# Mailboxes: signed shard messages held for peers who are away (docs/superpeer.md "Mailboxes").
SWARM_SUPERPEER_MAILBOX_TTL_S = env.int("SWARM_SUPERPEER_MAILBOX_TTL_S", default=7 * 86400)
SWARM_SUPERPEER_MAILBOX_PER_SENDER = env.int("SWARM_SUPERPEER_MAILBOX_PER_SENDER", default=128)
SWARM_SUPERPEER_MAILBOX_PER_RECIPIENT = env.int(
    "SWARM_SUPERPEER_MAILBOX_PER_RECIPIENT", default=256
)
SWARM_SUPERPEER_MAILBOX_TOTAL = env.int("SWARM_SUPERPEER_MAILBOX_TOTAL", default=20000)
SWARM_SUPERPEER_MAILBOX_UPKEEP_S = env.float("SWARM_SUPERPEER_MAILBOX_UPKEEP_S", default=30.0)
# Key announcements (swarm/xkey/v1) not heard for this long leave the key directory.
SWARM_SUPERPEER_KEYS_TTL_S = env.int("SWARM_SUPERPEER_KEYS_TTL_S", default=30 * 86400)
# The super-peer as a guardian of identity shares (docs/superpeer.md): off unless allowed.
SWARM_SUPERPEER_GUARDIAN = env.bool("SWARM_SUPERPEER_GUARDIAN", default=False)
# Repair by peers without the backfill worker (docs/replication.md "Repair by peers")
SWARM_SUPERPEER_REPAIR = env.bool("SWARM_SUPERPEER_REPAIR", default=True)
SWARM_SUPERPEER_REPAIR_SLOTS = env.int("SWARM_SUPERPEER_REPAIR_SLOTS", default=4)
# Its timings are the pages' (SWARM_REPAIR_TICK_S, _ANNOUNCE_S, _WARMUP_S, _WORKER_GRACE_S).

# --- Swarm: replication backfill (docs/replication.md, docs/configuration.md "Replication"). ---
SWARM_REPLICATION_TARGET = env.int("SWARM_REPLICATION_TARGET", default=3)
SWARM_REPLICATION_HOLDING_TTL_S = env.float("SWARM_REPLICATION_HOLDING_TTL_S", default=600.0)
SWARM_REPLICATION_SUPERPEER_TTL_S = env.float("SWARM_REPLICATION_SUPERPEER_TTL_S", default=90.0)
SWARM_REPLICATION_JOB_TIMEOUT_S = env.float("SWARM_REPLICATION_JOB_TIMEOUT_S", default=120.0)
SWARM_REPLICATION_RETRY_BASE_S = env.float("SWARM_REPLICATION_RETRY_BASE_S", default=10.0)
SWARM_REPLICATION_ALERT_AFTER_S = env.float("SWARM_REPLICATION_ALERT_AFTER_S", default=900.0)
SWARM_REPLICATION_LOST_GRACE_S = env.float("SWARM_REPLICATION_LOST_GRACE_S", default=60.0)
SWARM_REPLICATION_MAX_JOBS_PER_SUPERPEER = env.int(
    "SWARM_REPLICATION_MAX_JOBS_PER_SUPERPEER", default=4
)
SWARM_REPLICATION_HISTORY_RUNS = env.int("SWARM_REPLICATION_HISTORY_RUNS", default=2000)
