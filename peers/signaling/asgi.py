"""The signaling endpoints as lean ASGI apps under /signal/ (no Django request handling).

- WebSocket ``/signal/peerjs?key=&id=&token=`` -> :class:`SignalSocketApp` (routed by
  ``swarmweb.routing``);
- ``GET /signal/<key>/id`` and ``GET /signal/<key>/peers`` -> :class:`SignalHttpApp`, in
  front of Django like the beacon's fast path; any other path falls through.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable

from django.conf import settings

from shared.fastpath import ASGIApp, PerLoop, Receive, Scope, Send, preflight_headers, respond

from .config import SignalConfig
from .metrics import register_local_count
from .node import SignalNode

log = logging.getLogger(__name__)

PREFIX = "/signal/"
# What the reference server answers at its root path.
DESCRIPTION = {
    "name": "PeerJS Server",
    "description": "A server side element to broker connections between PeerJS clients.",
    "website": "https://peerjs.com/",
}
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json; charset=utf-8"
PREFLIGHT = preflight_headers("GET, HEAD, OPTIONS")


def config_from_settings() -> SignalConfig:
    return SignalConfig(
        key=settings.SWARM_SIGNAL_KEY,
        expire_timeout_ms=settings.SWARM_SIGNAL_EXPIRE_TIMEOUT_MS,
        gone_after_ms=settings.SWARM_SIGNAL_GONE_AFTER_MS,
        alive_timeout_ms=settings.SWARM_SIGNAL_ALIVE_TIMEOUT_MS,
        concurrent_limit=settings.SWARM_SIGNAL_CONCURRENT_LIMIT,
        allow_discovery=settings.SWARM_SIGNAL_ALLOW_DISCOVERY,
        plain_ids=settings.SWARM_SIGNAL_PLAIN_IDS,
        max_frame_bytes=settings.SWARM_SIGNAL_MAX_FRAME_BYTES,
        rate_per_s=settings.SWARM_SIGNAL_RATE,
        rate_burst=settings.SWARM_SIGNAL_BURST,
        queue_limit=settings.SWARM_SIGNAL_QUEUE_LIMIT,
        token_max_age_ms=settings.SWARM_SIGNAL_TOKEN_MAX_AGE_S * 1000,
        clock_skew_ms=settings.SWARM_CLOCK_SKEW_MS,
        ids_per_ip=settings.SWARM_SIGNAL_IDS_PER_IP,
        ids_per_network=settings.SWARM_SIGNAL_IDS_PER_NETWORK,
        sockets_per_ip=settings.SWARM_SIGNAL_SOCKETS_PER_IP,
        sockets_per_network=settings.SWARM_SIGNAL_SOCKETS_PER_NETWORK,
        network_v4_prefix=settings.SWARM_NETWORK_PREFIX_V4,
        network_v6_prefix=settings.SWARM_NETWORK_PREFIX_V6,
    )


def _new_node() -> SignalNode:
    node = SignalNode(config_from_settings(), settings.REDIS_URL)
    register_local_count(node.local_count)
    return node


# Never forgotten: a second node on a loop would split its sockets in two registries.
_nodes = PerLoop(_new_node, keep=None)


def get_node() -> SignalNode:
    """This event loop's signaling node (daphne runs one loop; tests may run several)."""
    return _nodes.get()


class Departures:
    """What this loop's signaling node knows of peers that left, for the beacon
    (beacon/presence.py; set up by swarmweb/asgi.py). No node yet: nobody left."""

    def any(self) -> bool:
        node = _nodes.current()
        return node is not None and node.any()

    def left_at(self, peer_id: str) -> int | None:
        node = _nodes.current()
        return None if node is None else node.left_at(peer_id)

    async def holding(self, peer_ids: Iterable[str]) -> set[str]:
        node = _nodes.current()
        return set(peer_ids) if node is None else await node.holding(peer_ids)


def health() -> str | None:
    """Why this loop's signaling node cannot relay right now, or None (also when no
    socket has started it yet)."""
    node = _nodes.current()
    return node.health() if node is not None else None


async def check() -> None:
    """Raise if this loop's signaling node cannot relay right now (for /healthz)."""
    problem = health()
    if problem is not None:
        raise RuntimeError(problem)


class SignalSocketApp:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await get_node().serve(scope, receive, send)


class SignalHttpApp:
    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.fallback(scope, receive, send)
            return
        rest = path[len(PREFIX) :]
        key, _, action = rest.partition("/")
        if rest and (not key or action not in ("id", "peers")):
            await self.fallback(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            await respond(send, 204, b"", TEXT, PREFLIGHT)
            return
        if method not in ("GET", "HEAD"):
            await respond(send, 405, b"Method Not Allowed", TEXT, [(b"allow", b"GET")])
            return
        status, body, content_type = await self._answer(rest, action)
        await respond(send, status, body, content_type, head=method == "HEAD")

    async def _answer(self, rest: str, action: str) -> tuple[int, bytes, bytes]:
        if not rest:
            return 200, json.dumps(DESCRIPTION).encode(), JSON
        # Like the reference server, any key may ask for an id; the socket checks the key.
        if action == "id":
            if not settings.SWARM_SIGNAL_PLAIN_IDS:
                return 403, b"Plain ids are disabled: use a key-bound id", TEXT
            return 200, str(uuid.uuid4()).encode(), TEXT
        if not settings.SWARM_SIGNAL_ALLOW_DISCOVERY:
            return 401, b"Unauthorized", TEXT
        try:
            ids = await get_node().peer_ids()
        except Exception:  # Redis down: a fault of ours, never the client's
            log.exception("listing signaling peers failed")
            return 503, b"Service Unavailable", TEXT
        return 200, json.dumps(ids).encode(), JSON
