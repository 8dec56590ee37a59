"""What a :class:`~peers.protocol.node.SwarmNode` shows: counters, open peers, status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .mesh import Mesh


@dataclass(slots=True)
class NodeStats:
    bytes_in: int = 0
    bytes_out: int = 0
    frames_in: int = 0
    frames_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # code -> count
    dials: int = 0
    dial_successes: int = 0
    inbound: int = 0
    gossip_delivered: int = 0
    gossip_duplicates: int = 0
    gossip_relayed: int = 0
    gossip_published: int = 0
    pex_requests: int = 0
    pex_tickets: int = 0
    pex_rejected: int = 0
    tickets_renewed: int = 0  # neighbours' renewed tickets taken (gossip topic ``ticket``)
    first_peer_at: int | None = None


@dataclass(frozen=True, slots=True)
class PeerView:
    peer_id: str
    conn_id: str
    outbound: bool
    since: int | None
    rtt: float | None
    loss: float
    health: str
    bytes_in: int
    bytes_out: int
    caps: tuple[str, ...]
    agent: str | None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    state: Literal["online", "degraded", "offline"]
    reason: str | None
    peers: int


def peer_views(mesh: Mesh, now: int) -> list[PeerView]:
    """Open connections with what an operator looks at."""
    return [
        PeerView(
            peer_id=c.peer_id,
            conn_id=c.id,
            outbound=c.outbound,
            since=c.since,
            rtt=c.health.rtt,
            loss=c.health.loss,
            health=c.health.state(now),
            bytes_in=c.bytes_in,
            bytes_out=c.bytes_out,
            caps=c.caps,
            agent=c.agent,
        )
        for c in mesh.open()
    ]


def mesh_status(mesh: Mesh, now: int) -> NodeStatus:
    """online / degraded (with the reason) / offline, as the mesh sees it."""
    open_conns = mesh.open()
    if mesh.paused:
        return NodeStatus("offline", "paused", 0)
    if not open_conns:
        return NodeStatus("offline", "no peers connected", 0)
    idle = sum(1 for c in open_conns if c.health.state(now) != "ok")
    if idle:
        return NodeStatus("degraded", f"{idle} peer(s) not responding", len(open_conns))
    if mesh.isolated:
        return NodeStatus("degraded", "isolated: allowed peers only", len(open_conns))
    return NodeStatus("online", None, len(open_conns))
