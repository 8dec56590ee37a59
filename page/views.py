"""The browser UI: the page that makes a visitor a peer.

The page carries its configuration as JSON (``#swarm-config``, parsed by
``static/swarm/adapters/config.js``): beacons, capsule URLs and pinned capsule keys, signaling
endpoints, ICE servers, seeds, mesh, repair and rendezvous settings (docs/configuration.md).
Empty URL settings mean this server: relative URLs that the page resolves itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from beacon import capsule_keys
from peers.protocol.ticket import is_valid_community
from peers.protocol.wire import DIGEST_ID_RE
from shared.clock import now_ms

from .modules import PageAssets, module_preloads, page_assets, versioned_root
from .turn import TURN_PATH, ice_servers, issue

DEFAULT_BEACONS = ["/beacon/v1/"]
DEFAULT_CAPSULES = ["/capsules/{community}.json"]
DEFAULT_SIGNALING = ["/signal/"]


def _pinned_keys() -> list[dict[str, Any]]:
    """Capsule keys the page trusts: configured ones, or this server's current keys."""
    configured = settings.SWARM_CAPSULE_KEYS
    if configured:
        return [{"pk": pk} for pk in configured]
    document = capsule_keys.keys_document(now=now_ms())
    keys: list[dict[str, Any]] = document["keys"]  # type: ignore[assignment]
    return keys


def page_config(community: str) -> dict[str, Any]:
    """The JSON the page starts from (validated again by the browser). With TURN on, the
    ICE servers carry short-lived credentials (a random user) and ``turn`` says when they
    expire and where fresh ones are (page/turn.py)."""
    credentials = issue()
    return {
        "community": community,
        "beacons": settings.SWARM_BEACON_URLS or DEFAULT_BEACONS,
        "capsules": settings.SWARM_CAPSULE_URLS or DEFAULT_CAPSULES,
        "capsule_keys": _pinned_keys(),
        "signaling": settings.SWARM_SIGNAL_URLS or DEFAULT_SIGNALING,
        "signal_key": settings.SWARM_SIGNAL_KEY,
        "doors": settings.SWARM_DOOR_URLS,
        "ice_servers": ice_servers(credentials),
        "ice_transport_policy": settings.SWARM_ICE_TRANSPORT_POLICY,
        "turn": None
        if credentials is None
        else {"url": TURN_PATH, "expires": credentials.expires, "ttl_s": settings.SWARM_TURN_TTL_S},
        "seeds": settings.SWARM_SEED_PEERS,
        "have_gossip": settings.SWARM_HAVE_GOSSIP,
        "mesh": {
            "target": settings.SWARM_MESH_TARGET,
            "max": settings.SWARM_MESH_MAX,
            "approval": settings.SWARM_MESH_APPROVAL,
        },
        "repair": {
            "tick_ms": round(settings.SWARM_REPAIR_TICK_S * 1000),
            "announce_ms": round(settings.SWARM_REPAIR_ANNOUNCE_S * 1000),
            "warmup_ms": round(settings.SWARM_REPAIR_WARMUP_S * 1000),
            "worker_grace_ms": round(settings.SWARM_REPAIR_WORKER_GRACE_S * 1000),
            "fetch_timeout_ms": round(settings.SWARM_REPAIR_FETCH_TIMEOUT_S * 1000),
        },
        "rendezvous": {
            "refresh_ms": settings.SWARM_RENDEZVOUS_REFRESH_S * 1000,
            "retry_ms": settings.SWARM_RENDEZVOUS_RETRY_S * 1000,
            "pause_after": settings.SWARM_RENDEZVOUS_PAUSE_AFTER,
            "pause_ms": settings.SWARM_RENDEZVOUS_PAUSE_S * 1000,
            "timeout_ms": settings.SWARM_RENDEZVOUS_TIMEOUT_S * 1000,
        },
    }


def _community(request: HttpRequest) -> str:
    # ?community=<name> joins another community from the same page; anything invalid
    # falls back to the default rather than failing the page.
    requested = request.GET.get("community", "")
    return requested if is_valid_community(requested) else str(settings.SWARM_COMMUNITY)


# Which static version a page response references: the service worker keeps a page only
# in that version's cache (docs/offline.md).
VERSION_HEADER = "X-Swarm-Version"


def _page(request: HttpRequest, community: str, **extra: Any) -> HttpResponse:
    assets = page_assets()
    context = {
        "community": community,
        "community_chosen": community != settings.SWARM_COMMUNITY,
        "swarm_config": page_config(community),
        "static_base": assets.base,
        "module_preloads": module_preloads(),
        **extra,
    }
    response = render(request, "swarm/index.html", context)
    response[VERSION_HEADER] = assets.version
    # Always asked again (the service worker's copy is the offline fallback, not a cache).
    response["Cache-Control"] = "no-cache"
    return response


def index(request: HttpRequest) -> HttpResponse:
    return _page(request, _community(request))


def share(request: HttpRequest, manifest_id: str) -> HttpResponse:
    """A share link, ``/f/<manifest id>#k=<file key>``: the peer page in download mode.

    The key stays in the URL fragment, which browsers never send: the server only learns
    which manifest is wanted, and the page fetches it from peers.
    """
    if not DIGEST_ID_RE.fullmatch(manifest_id):
        raise Http404("not a manifest id")
    return _page(request, _community(request), download_id=manifest_id)


WORKER_SOURCE = "swarm/sw.js"
# A navigation waits this long for the server before the cached page is shown.
NAV_TIMEOUT_MS = 3_000


def worker_manifest(assets: PageAssets) -> dict[str, Any]:
    """What the service worker of this deploy precaches (docs/offline.md)."""
    return {
        "version": assets.version,
        "static_root": versioned_root(),
        "precache": assets.urls(),
        "pages": ["/"],
        "version_header": VERSION_HEADER,
        "nav_timeout_ms": NAV_TIMEOUT_MS,
    }


def _worker_script() -> bytes:
    found = finders.find(WORKER_SOURCE)
    assert isinstance(found, str), WORKER_SOURCE
    with open(found, encoding="utf-8") as source:
        code = source.read()
    manifest = json.dumps(worker_manifest(page_assets()), separators=(",", ":"))
    return f"self.SWARM_OFFLINE = {manifest};\n{code}".encode()


def service_worker(request: HttpRequest) -> HttpResponse:
    """``/sw.js``: the service worker (static/swarm/sw.js) behind the manifest of this
    deploy. Served from the root so that its scope is the whole site; revalidated at every
    check (a new deploy is a new script, which the browser installs at the next load)."""
    body = _worker_script()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response
