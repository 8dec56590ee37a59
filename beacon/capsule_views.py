"""``GET /capsules/keys.json`` and ``GET /capsules/<community>.json`` (CORS open).

A capsule is served with cache headers that end at its expiry (``max-age`` is the time
it has left, ``Expires`` its ``expires_at``), so no cache keeps one past its life.
"""

from __future__ import annotations

import hashlib
import json
import logging
from email.utils import formatdate

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from peers.protocol.ticket import is_valid_community
from shared.clock import now_ms

from . import capsule_keys, selectors

log = logging.getLogger(__name__)


def _json(status: int, body: bytes, **headers: str) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Access-Control-Allow-Origin"] = "*"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _error(status: int, code: str, message: str) -> HttpResponse:
    body = json.dumps({"ok": False, "error": {"code": code, "message": message}}).encode()
    return _json(status, body, Cache_Control="no-store")


@csrf_exempt  # no writes here: a POST gets 405, not the CSRF failure page
@require_safe
def keys(request: HttpRequest) -> HttpResponse:
    body = json.dumps(capsule_keys.keys_document(now=now_ms()), separators=(",", ":"))
    return _json(200, body.encode(), Cache_Control="public, max-age=60")


@csrf_exempt
@require_safe
def capsule(request: HttpRequest, community: str) -> HttpResponse:
    if not is_valid_community(community):
        return _error(404, "bad_community", "community name is invalid")
    now = now_ms()
    try:
        newest = selectors.newest_capsule(community)
    except DatabaseError:
        log.exception("cannot read capsules")
        return _error(503, "unavailable", "capsules cannot be read right now")
    if newest is None or newest.expires_at <= now:
        return _error(404, "no_capsule", "no unexpired capsule for this community")
    etag = '"' + hashlib.sha256(newest.envelope.encode()).hexdigest()[:32] + '"'
    headers = {
        "Cache_Control": f"public, max-age={(newest.expires_at - now) // 1000}",
        "Expires": formatdate(newest.expires_at / 1000, usegmt=True),
        "Last_Modified": formatdate(newest.issued_at / 1000, usegmt=True),
        "ETag": etag,
    }
    if etag in request.headers.get("If-None-Match", ""):
        return _json(304, b"", **headers)
    return _json(200, newest.envelope.encode(), **headers)
