"""WebSocket routes (the PeerJS signaling endpoint lives under /signal/)."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []
