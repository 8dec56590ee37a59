"""What a :class:`~peers.protocol.node.SwarmNode` decides: the actions its IO adapter carries out.

Mirrors the action objects of static/swarm/protocol/node.js (``type`` there is the class here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .envelope import JsonObject
from .errand import Errand
from .gossip import GossipMessage
from .wire import ContentFrame

Level = Literal["debug", "info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` (one encoded frame of type ``t``) on connection ``conn_id``."""

    conn_id: str
    data: bytes
    t: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the DataConnection (after the frames queued before this action)."""

    conn_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a DataConnection to ``peer_id`` (its last ticket, if any, names its signaling)."""

    peer_id: str
    ticket: JsonObject | None
    errand: Errand | None = None  # what the dial is for (mesh.errand_of), told to the peer


@dataclass(frozen=True, slots=True)
class Opened:
    """A connection passed hello (and approval): the peer is in the mesh."""

    conn_id: str
    peer_id: str
    outbound: bool
    at: int
    caps: tuple[str, ...]
    agent: str | None


@dataclass(frozen=True, slots=True)
class Closed:
    """An open connection ended (``Opened`` came before it)."""

    conn_id: str
    peer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """A gossip message that passed every check, seen here for the first time."""

    message: GossipMessage
    sender: str  # the peer it came from (``from`` in JS)


@dataclass(frozen=True, slots=True)
class Event:
    """A diagnostics line (the browser's ring buffer; the super-peer's log)."""

    level: Level
    source: str
    code: str
    message: str
    peer_id: str | None = None


@dataclass(frozen=True, slots=True)
class ContentReceived:
    """A content frame from an open connection, for the content layer (``frame`` in JS)."""

    conn_id: str
    peer_id: str
    frame: ContentFrame


Action = Send | Close | Dial | Opened | Closed | Deliver | Event | ContentReceived


def describe(action: Action) -> dict[str, Any]:
    """A JSON-friendly view of an action (logs, tests comparing with the browser's)."""
    if isinstance(action, Send):
        return {"type": "send", "connId": action.conn_id, "t": action.t, "hex": action.data.hex()}
    if isinstance(action, Close):
        return {"type": "close", "connId": action.conn_id, "reason": action.reason}
    if isinstance(action, Dial):
        return {"type": "dial", "peerId": action.peer_id}
    if isinstance(action, Opened):
        return {"type": "opened", "connId": action.conn_id, "peerId": action.peer_id}
    if isinstance(action, Closed):
        return {"type": "closed", "connId": action.conn_id, "reason": action.reason}
    if isinstance(action, Deliver):
        return {"type": "deliver", "id": action.message.id, "from": action.sender}
    if isinstance(action, Event):
        return {"type": "event", "level": action.level, "code": action.code}
    return {"type": "frame", "connId": action.conn_id, "t": action.frame.t}
