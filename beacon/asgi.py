"""The beacon API as a lean ASGI app in front of Django (the announce hot path).

Django's request handling costs more than verifying and storing a ticket, so
``/beacon/v1/<community>/announce`` and ``/peers`` are served here directly; every
other path (the OpenAPI document included) falls through to Django.
"""

from __future__ import annotations

import json
import logging
import re

from django.conf import settings

from shared.clientaddr import scope_client
from shared.clock import now_ms
from shared.fastpath import ASGIApp, Headers, Receive, Scope, Send, preflight_headers, respond

from . import health, services
from .exceptions import BeaconError, too_large
from .limits import retry_after_header

log = logging.getLogger(__name__)

PREFIX = "/beacon/v1/"
JSON = b"application/json"
# Pages on other origins read Retry-After of a 429.
EXPOSE_HEADERS = (b"access-control-expose-headers", b"Retry-After")
EXPOSE_ONLY = [EXPOSE_HEADERS]  # most answers have no header of their own
ALLOWED = {"announce": "POST, OPTIONS", "withdraw": "POST, OPTIONS", "peers": "GET, HEAD, OPTIONS"}
PREFLIGHT = {
    action: preflight_headers(methods, request_headers="content-type")
    for action, methods in ALLOWED.items()
}
LIMIT_RE = re.compile(r"[0-9]+")


class BeaconApp:
    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope)
        if route is None:
            await self.fallback(scope, receive, send)
            return
        community, action = route
        try:
            status, body, headers = await self._handle(scope, receive, community, action)
        except BeaconError as error:
            status, body, headers = _error(error)
        except Exception:  # a fault of ours (database down...), never the client's input
            log.exception("beacon %s failed", action)
            status, body, headers = _error(
                BeaconError(503, "unavailable", "the beacon cannot answer right now")
            )
        health.record(ok=status != 503)
        await respond(
            send,
            status,
            body,
            JSON,
            [EXPOSE_HEADERS, *headers] if headers else EXPOSE_ONLY,
            head=scope["method"] == "HEAD",
        )

    async def _handle(
        self, scope: Scope, receive: Receive, community: str, action: str
    ) -> tuple[int, bytes, Headers]:
        method = scope["method"]
        if method == "OPTIONS":
            return 204, b"", PREFLIGHT[action]
        allowed = ALLOWED[action].replace(", OPTIONS", "").split(", ")
        if method not in allowed:
            error = BeaconError(405, "method_not_allowed", f"use {' or '.join(allowed)}")
            status, body, headers = _error(error)
            return status, body, [*headers, (b"allow", ALLOWED[action].encode())]
        ip = scope_client(scope)  # resolved by shared.clientaddr (trusted proxies)
        now = now_ms()
        if action == "announce":
            raw = await _read_body(scope, receive, settings.SWARM_ANNOUNCE_MAX_BYTES)
            result = await services.ticket_announce(community=community, raw=raw, ip=ip, now=now)
            return 200, _peers_body(result.peers_json), []
        if action == "withdraw":
            raw = await _read_body(scope, receive, settings.SWARM_ANNOUNCE_MAX_BYTES)
            withdrawn = await services.ticket_withdraw(community=community, raw=raw, ip=ip, now=now)
            return 200, b'{"ok":true,"withdrawn":%s}' % (b"true" if withdrawn else b"false"), []
        limit = _limit_param(scope)
        peers = await services.peers_list(community=community, ip=ip, now=now, limit=limit)
        return 200, _peers_body(peers), []


def _route(scope: Scope) -> tuple[str, str] | None:
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    community, _, action = path[len(PREFIX) :].partition("/")
    if action not in ALLOWED or not community:
        return None
    return community, action


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _limit_param(scope: Scope) -> int:
    from urllib.parse import parse_qs

    maximum: int = settings.SWARM_BEACON_MAX_PEERS
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("limit")
    if not values:
        return maximum
    # ASCII digits only: str.isdigit() admits "²", which int() refuses, and int() refuses
    # more than 4300 digits; anything longer than the cap's digits is the cap anyway.
    digits = values[0].lstrip("0")
    if not LIMIT_RE.fullmatch(values[0]) or not digits:
        raise BeaconError(400, "bad_limit", "limit must be a positive integer")
    if len(digits) > len(str(maximum)):
        return maximum
    return min(int(digits), maximum)


def _peers_body(peers_json: list[str]) -> bytes:
    # Stored tickets are already JSON: splice them in rather than parse and re-dump.
    return ('{"ok":true,"peers":[' + ",".join(peers_json) + "]}").encode()


def _error(error: BeaconError) -> tuple[int, bytes, Headers]:
    body = json.dumps({"ok": False, "error": {"code": error.code, "message": error.message}})
    headers = []
    if error.retry_after is not None:
        headers.append((b"retry-after", retry_after_header(error.retry_after).encode()))
    return error.status, body.encode(), headers
