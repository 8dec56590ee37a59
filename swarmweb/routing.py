"""WebSocket routes: the PeerJS signaling endpoint (docs/signaling.md)."""

from __future__ import annotations

from typing import Any

from django.urls import path

from peers.signaling.asgi import SignalSocketApp

websocket_urlpatterns: list[Any] = [
    path("signal/peerjs", SignalSocketApp()),  # type: ignore[arg-type]  # an ASGI app
]
