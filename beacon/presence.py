"""Tickets of peers that have left, skipped in the lists the beacon hands out.

A page closed without its goodbye (no withdrawal reached the beacon) stays listed until its
ticket expires, up to 10 minutes: every page that announces meanwhile is handed it and
dials it, and each such dial costs the page a WebRTC set-up and waits 5 s for signaling's
EXPIRE. The signaling server knows better: it saw the peer's socket close. The project's
wiring (swarmweb/asgi.py) gives the beacon what signaling knows, as :class:`Departures`,
since beacon/ uses nothing of peers/ but the protocol.

A ticket is skipped when its peer's signaling socket closed after the ticket was issued and
the peer holds no socket now. A ticket whose peer never connected to this server's
signaling (another server's peer, a client of the HTTP API alone) is listed as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Protocol


class Departures(Protocol):
    def any(self) -> bool:
        """False when no departure is remembered (nothing to check)."""

    def left_at(self, peer_id: str) -> int | None:
        """When ``peer_id``'s last signaling socket closed (ms), None if not known to."""

    async def holding(self, peer_ids: Iterable[str]) -> set[str]:
        """Those of ``peer_ids`` that hold a signaling socket now."""


_departures: Departures | None = None
PEER_KEY = '"peer_id":"'


def set_departures(departures: Departures | None) -> None:
    global _departures
    _departures = departures


def _peer_and_issued(envelope_json: str) -> tuple[str, int] | None:
    try:
        body = json.loads(envelope_json)["body"]
        peer_id, issued_at = body["peer_id"], body["issued_at"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(peer_id, str) and type(issued_at) is int:
        return peer_id, issued_at
    return None


async def skip_departed(peers_json: list[str]) -> list[str]:
    """``peers_json`` (stored envelopes) without the tickets of peers known to have left."""
    departures = _departures
    if departures is None or not peers_json or not departures.any():
        return peers_json
    left: dict[int, str] = {}
    for i, envelope in enumerate(peers_json):
        # Stored compact (`"peer_id":"…"`, the only key of that name): a departed peer's row
        # is found without parsing the others.
        start = envelope.find(PEER_KEY)
        end = envelope.find('"', start + len(PEER_KEY)) if start >= 0 else -1
        at = departures.left_at(envelope[start + len(PEER_KEY) : end]) if end >= 0 else None
        if at is None:
            continue
        parsed = _peer_and_issued(envelope)
        if parsed is not None and at > parsed[1]:
            left[i] = parsed[0]
    if not left:
        return peers_json
    back = await departures.holding(set(left.values()))
    return [e for i, e in enumerate(peers_json) if i not in left or left[i] in back]
