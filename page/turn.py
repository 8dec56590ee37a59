"""TURN credentials for pages: in the page config and from ``GET /turn/credentials``.

The shared secret (``SWARM_TURN_SECRET``) stays on the server; pages get credentials of the
TURN REST scheme (peers/protocol/turn.py) that live ``SWARM_TURN_TTL_S`` and ask this endpoint
for fresh ones before they expire (static/swarm/adapters/turn.js). Answers are JSON; errors
are ``{"error": code, "message": ...}`` with a stable code (docs/operations.md "TURN").
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse

from peers.protocol.encoding import PEER_ID_RE
from peers.protocol.turn import TurnCredentials, TurnSecret, turn_secret_from

TURN_PATH = "/turn/credentials"
RATE_WINDOW_S = 60


def turn_secret() -> TurnSecret | None:
    """The configured TURN secret, or None when TURN is off (no URLs and no secret)."""
    return turn_secret_from(
        settings.SWARM_TURN_URLS, settings.SWARM_TURN_SECRET, settings.SWARM_TURN_TTL_S
    )


def ice_servers(credentials: TurnCredentials | None) -> list[dict[str, Any]]:
    """``SWARM_ICE_SERVERS`` and, when TURN is on, the TURN entry with ``credentials``."""
    servers: list[dict[str, Any]] = list(settings.SWARM_ICE_SERVERS)
    if credentials is not None:
        servers.append(credentials.ice_server())
    return servers


def issue(user: str | None = None, now_s: float | None = None) -> TurnCredentials | None:
    secret = turn_secret()
    if secret is None:
        return None
    return secret.issue(time.time() if now_s is None else now_s, user)


def _error(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def _rate_wait(ip: str, now_s: float) -> int:
    """Seconds to wait when this address asked more than SWARM_TURN_RATE times in the
    current minute (a fixed window in the cache, shared by the web processes on Redis)."""
    window = int(now_s) // RATE_WINDOW_S
    key = f"turn:rate:{ip}:{window}"
    cache.add(key, 0, RATE_WINDOW_S * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, RATE_WINDOW_S * 2)
        count = 1
    if count <= settings.SWARM_TURN_RATE:
        return 0
    return max(1, (window + 1) * RATE_WINDOW_S - int(now_s))


def credentials_view(request: HttpRequest) -> JsonResponse:
    """``GET /turn/credentials[?peer=<peer id>]``: fresh ICE servers for a page.

    200 ``{"ice_servers": [...], "expires": <unix s>, "ttl_s": n}``; 400 ``bad_peer_id``;
    404 ``turn_disabled``; 405 ``method_not_allowed``; 429 ``rate_limited`` (Retry-After).
    """
    if request.method != "GET":
        return _error(405, "method_not_allowed", "use GET", Allow="GET")
    secret = turn_secret()
    if secret is None:
        return _error(404, "turn_disabled", "this server hands out no TURN credentials")
    peer = request.GET.get("peer")
    if peer is not None and not PEER_ID_RE.fullmatch(peer):
        return _error(400, "bad_peer_id", "peer must be a peer id")
    now_s = time.time()
    wait = _rate_wait(str(request.META.get("REMOTE_ADDR") or "unknown"), now_s)
    if wait:
        return _error(
            429, "rate_limited", "too many credential requests", **{"Retry-After": str(wait)}
        )
    credentials = secret.issue(now_s, peer)
    response = JsonResponse(
        {
            "ice_servers": ice_servers(credentials),
            "expires": credentials.expires,
            "ttl_s": secret.ttl_s,
        }
    )
    response["Cache-Control"] = "no-store"
    return response
