"""Security headers of the pages (docs/operations.md "Security headers").

The page holds the peer's private key, so it runs only the scripts this server serves:
a Content-Security-Policy with ``script-src 'self'`` and a per-response nonce for the
one inline script, the import map (``templates/swarm/_vendor.html`` reads
``request.csp_nonce``). The config blob is ``application/json``, which browsers never
run, so it needs no nonce. ``connect-src`` allows this server (HTTP and WebSocket) and
the origins of the beacons, capsules and signaling servers configured for the page.

Referrer-Policy and X-Content-Type-Options come from Django's SecurityMiddleware
(``SECURE_REFERRER_POLICY``, ``SECURE_CONTENT_TYPE_NOSNIFF``); this middleware adds the
CSP and the Permissions-Policy to every HTML response.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

CSP_HEADER = "Content-Security-Policy"
PERMISSIONS_HEADER = "Permissions-Policy"

# Camera and microphone stay allowed for this origin: Chromium offers loopback and host
# ICE candidates only to pages that may use them (tests grant them; nothing asks people).
PERMISSIONS_POLICY = ", ".join(
    [
        "camera=(self)",
        "microphone=(self)",
        "geolocation=()",
        "payment=()",
        "usb=()",
        "serial=()",
        "bluetooth=()",
        "hid=()",
        "midi=()",
        "magnetometer=()",
        "gyroscope=()",
        "accelerometer=()",
        "browsing-topics=()",
    ]
)

_WS_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def remote_origins(urls: Iterable[str]) -> list[str]:
    """The origins of the absolute URLs among ``urls``, each in its HTTP and WebSocket
    form (PeerJS fetches an id over HTTP and signals over a WebSocket); relative URLs
    are this server, which ``'self'`` covers."""
    origins: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _WS_SCHEME or not parts.netloc:
            continue
        for form in (_HTTP_SCHEME[scheme], _WS_SCHEME[scheme]):
            origin = f"{form}://{parts.netloc.lower()}"
            if origin not in origins:
                origins.append(origin)
    return origins


def content_security_policy(nonce: str) -> str:
    configured = [
        *settings.SWARM_BEACON_URLS,
        *settings.SWARM_CAPSULE_URLS,
        *settings.SWARM_SIGNAL_URLS,
        *settings.SWARM_DOOR_URLS,
    ]
    # blob: the page's own object URLs (a file opened or saved, an identity backup) may be
    # read back by the page and by the tabs it opens on them.
    connect = ["'self'", "blob:", *remote_origins(configured)]
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", f"'nonce-{nonce}'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "font-src": ["'self'"],
        "connect-src": connect,
        "worker-src": ["'self'"],
        "manifest-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-src": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class SecurityHeadersMiddleware(MiddlewareMixin):
    """A fresh nonce per request (``request.csp_nonce``), and the CSP and
    Permissions-Policy on HTML responses that do not set their own. (MiddlewareMixin: it
    runs in the async request path without a thread of its own.)"""

    def process_request(self, request: HttpRequest) -> None:
        request.csp_nonce = secrets.token_urlsafe(18)  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        nonce = getattr(request, "csp_nonce", None)
        if nonce and response.get("Content-Type", "").startswith("text/html"):
            response.headers.setdefault(CSP_HEADER, content_security_policy(nonce))
            response.headers.setdefault(PERMISSIONS_HEADER, PERMISSIONS_POLICY)
        return response
