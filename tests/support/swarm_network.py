"""An in-memory network for SwarmNodes (Python port of tests/js/support/network.js).

Dials, DataConnections and frames are delivered in rounds (one round = one hop, ``round_ms``
of fake clock). Everything a node decides goes through take_actions(), exactly as in the
super-peer's adapter. Any object with the node's input methods can join (the cross-language
test puts a browser node, driven through Node.js, on the same network).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import peer_id_for_key
from peers.protocol.errand import Errand
from peers.protocol.gossip import GossipMessage, make_gossip
from peers.protocol.mesh import MeshOptions
from peers.protocol.node import GossipCheck, SwarmNode
from peers.protocol.node_actions import Action, Close, Deliver, Dial, Event, Send
from peers.protocol.ticket import Ticket, make_ticket, verify_ticket
from peers.protocol.wire import encode_frame

T0 = 1_800_000_000_000


def prng(seed: int) -> Callable[[], float]:
    """mulberry32, as the browser tests use, so simulations repeat exactly."""
    state = seed & 0xFFFFFFFF

    def imul(a: int, b: int) -> int:
        return (a * b) & 0xFFFFFFFF

    def next_value() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = state
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return next_value


@dataclass(frozen=True)
class Identity:
    key: Ed25519PrivateKey
    peer_id: str
    ticket: Ticket


def make_identity(
    community: str, now: int, ttl_ms: int = 600_000, *, seed: bytes | None = None
) -> Identity:
    key = (
        Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
        if seed is not None
        else Ed25519PrivateKey.generate()
    )
    peer_id = peer_id_for_key(key.public_key().public_bytes_raw())
    envelope = make_ticket(key, community=community, now=now, ttl_ms=ttl_ms)
    return Identity(key, peer_id, verify_ticket(envelope, now=now, community=community))


class NodeLike(Protocol):
    def opened(self, conn_id: str, remote_peer_id: str, outbound: bool, now: int) -> None: ...
    def receive(self, conn_id: str, data: bytes, now: int) -> None: ...
    def closed(self, conn_id: str, now: int) -> None: ...
    def dial_failed(self, peer_id: str, now: int, reason: str = ...) -> None: ...
    def tick(self, now: int) -> None: ...
    def take_actions(self) -> list[Action]: ...


@dataclass
class SimPeer:
    node: Any  # SwarmNode, or a proxy with the same inputs (NodeLike)
    peer_id: str
    identity: Identity | None = None
    online: bool = True
    delivered: dict[str, GossipMessage] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # frame type of every Send, in order


@dataclass
class Link:
    owner: str
    remote: str
    remote_conn: str
    open: bool = True


class Network:
    def __init__(
        self, *, community: str = "main", round_ms: int = 100, seed: int = 1, now: int = T0
    ) -> None:
        self.community = community
        self.round_ms = round_ms
        self.random = prng(seed)
        self.now = now
        self.rounds = 0
        self.peers: dict[str, SimPeer] = {}
        self.links: dict[str, Link] = {}
        self.pending: list[tuple[Any, ...]] = []
        self.serial = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.sent_by_type: dict[str, int] = {}

    def add_peer(
        self, *, identity: Identity | None = None, mesh: MeshOptions | None = None, **kw: Any
    ) -> SimPeer:
        ident = identity or make_identity(self.community, self.now)
        node = SwarmNode(
            peer_id=ident.peer_id,
            community=self.community,
            private_key=ident.key,
            ticket=ident.ticket,
            mesh=mesh,
            random=self.random,
            now=self.now,
            **kw,
        )
        return self.add_node(node, ident.peer_id, ident)

    def add_node(self, node: NodeLike, peer_id: str, identity: Identity | None = None) -> SimPeer:
        peer = SimPeer(node=node, peer_id=peer_id, identity=identity)
        self.peers[peer_id] = peer
        return peer

    def peer(self, peer_id: str) -> SimPeer:
        return self.peers[peer_id]

    def disconnect(self, peer_id: str) -> None:
        """Take a peer off the network: its links drop (the other side sees a close)."""
        self.peers[peer_id].online = False
        for link in self.links.values():
            if link.owner != peer_id or not link.open:
                continue
            link.open = False
            remote = self.links.get(link.remote_conn)
            if remote is not None:
                remote.open = False
            self.pending.append(("closed", link.remote, link.remote_conn))

    def collect(self, peer_id: str) -> None:
        peer = self.peers[peer_id]
        for action in peer.node.take_actions():
            if isinstance(action, Send):
                peer.sent.append(action.t)
                self._send(action)
            elif isinstance(action, Close):
                self._close(peer, action)
            elif isinstance(action, Dial):
                self._dial(peer_id, action.peer_id, action.errand)
            elif isinstance(action, Deliver):
                peer.delivered[action.message.id] = action.message
            elif isinstance(action, Event):
                peer.events.append(action)

    def _send(self, action: Send) -> None:
        link = self.links.get(action.conn_id)
        if link is None or not link.open:
            return
        self.frames_sent += 1
        self.bytes_sent += len(action.data)
        self.sent_by_type[action.t] = self.sent_by_type.get(action.t, 0) + 1
        self.pending.append(("data", link.remote, link.remote_conn, action.data))

    def _close(self, peer: SimPeer, action: Close) -> None:
        peer.closes.append(action.reason)
        link = self.links.get(action.conn_id)
        if link is None or not link.open:
            return
        link.open = False
        remote = self.links.get(link.remote_conn)
        if remote is not None and remote.open:
            remote.open = False
            self.pending.append(("closed", link.remote, link.remote_conn))

    def _dial(self, source: str, target_id: str, errand: Errand | None = None) -> None:
        """``errand`` travels with the dial as PeerJS metadata would: the answering side
        is told it."""
        target = self.peers.get(target_id)
        if target is None or not target.online:
            self.pending.append(("dial_failed", source, target_id))
            return
        n = self.serial
        self.serial += 1
        a, b = f"c{n}a", f"c{n}b"
        self.links[a] = Link(owner=source, remote=target_id, remote_conn=b)
        self.links[b] = Link(owner=target_id, remote=source, remote_conn=a)
        self.pending.append(("opened", target_id, b, source, False, errand))
        self.pending.append(("opened", source, a, target_id, True, None))

    def start(self) -> None:
        """Let nodes act on the current time before the first round (initial dials)."""
        for peer_id, peer in self.peers.items():
            peer.node.tick(self.now)
            self.collect(peer_id)

    def round(self) -> None:
        """One hop: deliver what was sent last round, then every node ticks."""
        self.rounds += 1
        self.now += self.round_ms
        work, self.pending = self.pending, []
        for kind, peer_id, *args in work:
            peer = self.peers.get(peer_id)
            if peer is None or not peer.online:
                continue
            if kind == "data":
                peer.node.receive(args[0], args[1], self.now)
            elif kind == "opened":
                if args[3] is None:
                    peer.node.opened(args[0], args[1], args[2], self.now)
                else:
                    peer.node.opened(args[0], args[1], args[2], self.now, args[3])
            elif kind == "closed":
                peer.node.closed(args[0], self.now)
            elif kind == "dial_failed":
                peer.node.dial_failed(args[0], self.now, "unreachable")
        for peer_id, peer in self.peers.items():
            if not peer.online:
                continue
            peer.node.tick(self.now)
            self.collect(peer_id)

    def run_until(self, predicate: Callable[[], bool], max_rounds: int) -> bool:
        for _ in range(max_rounds):
            if predicate():
                return True
            self.round()
        return predicate()

    @property
    def idle(self) -> bool:
        return not self.pending

    def advance(self, ms: int, step_ms: int = 5_000) -> None:
        """Advance the clock without traffic (long idle periods), ticking every node."""
        end = self.now + ms
        while self.now < end:
            step = min(step_ms, end - self.now)
            self.now += step - self.round_ms
            self.round()


def pair(
    *,
    net: dict[str, Any] | None = None,
    a: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
) -> tuple[Network, SimPeer, SimPeer]:
    """Two peers, ``a`` knowing ``b``'s ticket: the smallest useful network."""
    network = Network(**(net or {}))
    pa = network.add_peer(**(a or {}))
    pb = network.add_peer(**(b or {}))
    assert pb.identity is not None
    pa.node.add_candidates([pb.identity.ticket], "beacon", network.now)
    return network, pa, pb


@dataclass
class CheckedRelay:
    """What a node's gossip check did in the middle of a line a - b - c (a and c apart)."""

    origin: str  # a's peer id: the signer of every message sent
    delivered: list[GossipMessage]  # at b, in order
    dropped: dict[str, int]  # b's node's drops by code
    forwarder_violations: list[Any]  # held against a's connection at b
    relayed: list[str]  # the ids of the messages c got


def relay_through_check(topic: str, check: GossipCheck, datas: list[object]) -> CheckedRelay:
    """a gossips each of ``datas`` on ``topic`` to b, which checks them with ``check`` before
    delivery and relay to c."""
    net = Network()
    a, b, c = net.add_peer(), net.add_peer(), net.add_peer()
    assert a.identity is not None
    assert b.identity is not None
    assert c.identity is not None
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    b.node.add_candidates([c.identity.ticket], "beacon", net.now)
    a.node.block(c.peer_id, net.now)
    c.node.block(a.peer_id, net.now)
    net.start()
    assert net.run_until(lambda: len(b.node.connected_peers(net.now)) == 2, 5)
    middle: SwarmNode = b.node
    middle.gossip_checks[topic] = check
    [from_a] = [p.conn_id for p in middle.connected_peers(net.now) if p.peer_id == a.peer_id]
    for data in datas:
        frame = make_gossip(
            a.identity.key, origin=a.peer_id, community=net.community, topic=topic, now=net.now,
            data=data,
        )  # fmt: skip
        middle.receive(from_a, encode_frame(frame), net.now)
    net.collect(b.peer_id)
    delivered = list(b.delivered.values())
    net.run_until(lambda: len(c.delivered) >= len(delivered), 3)
    return CheckedRelay(
        origin=a.peer_id,
        delivered=delivered,
        dropped=dict(middle.stats.dropped),
        forwarder_violations=list(middle.mesh.conns[from_a].violations),
        relayed=[m.id for m in c.delivered.values()],
    )
