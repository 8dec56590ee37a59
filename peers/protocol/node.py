"""A swarm node without IO (sans-IO, as h11 and aioquic), mirror of static/swarm/protocol/node.js.

Bytes from peers, connection events, operator decisions and ``now`` (integer ms) go in;
frames to send, dials, closes, delivered gossip, content frames and diagnostics come out of
:meth:`SwarmNode.take_actions` (see :mod:`peers.protocol.node_actions`). The super-peer's
asyncio adapter and the tests drive the same code. docs/superpeer-protocol.md maps it onto
docs/protocol.md.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterable
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .envelope import JsonObject
from .errand import Errand
from .errors import (
    BAD_BODY,
    BAD_ENVELOPE,
    BAD_GOSSIP_ID,
    BAD_SIGNATURE,
    PEER_MISMATCH,
    RATE_LIMITED,
    UNEXPECTED_FRAME,
    UNSUPPORTED_FRAME,
    UNSUPPORTED_VERSION,
    WRONG_COMMUNITY,
    ProtocolError,
)
from .gossip import (
    DEFAULT_GOSSIP_TTL,
    GossipLog,
    GossipMessage,
    check_gossip,
    make_gossip,
    relay_frame,
)
from .mesh import Connection, ConnState, Mesh, MeshOptions, TokenBucket
from .node_actions import Action, ContentReceived, Deliver, Dial, Event, Level, Opened, Send
from .node_views import NodeStats, NodeStatus, PeerView, mesh_status, peer_views
from .peerbook import DEFAULT_CAPACITY, PeerBook
from .pex import verify_pex_tickets
from .ticket import Ticket, verify_ticket
from .wire import (
    CONTENT_FRAMES,
    PROTOCOL_VERSION,
    Bye,
    ContentFrame,
    Frame,
    Gossip,
    Hello,
    Pex,
    PexReq,
    Ping,
    Pong,
    decode_frame,
    encode_frame,
)

# More than this many bad frames from one connection within the window: disconnected.
MAX_VIOLATIONS = 10
VIOLATION_WINDOW_MS = 60_000
# Frame rate per connection (token bucket): generous for chunk transfers, fatal for floods.
FRAME_RATE_PER_S = 500
FRAME_BURST = 1000
PRUNE_EVERY_MS = 30_000
PEX_MAX_ASKING = 2
# A peer's renewed ticket, sent to its neighbours (gossip ttl 0, never relayed): what they
# hold of it stays fresh for their PEX answers with no beacon around (docs/protocol.md
# "Renewed tickets").
TICKET_TOPIC = "ticket"
# The content layer's check of one gossip topic: raises ProtocolError for bad data.
GossipCheck = Callable[[Any, int], None]
# Gossip that fails these checks was forwarded by a peer that should have checked it.
GOSSIP_VIOLATIONS = frozenset(
    {BAD_GOSSIP_ID, BAD_SIGNATURE, BAD_ENVELOPE, BAD_BODY, PEER_MISMATCH, WRONG_COMMUNITY}
)

# What a decoded frame does in each connection state (docs/protocol.md "Connection
# semantics"): "handle" it, "refuse" (anything before the peer's hello closes the
# connection), count a "violation" (a second hello), or "hold" (dropped while the peer
# waits for approval, not held against it). Types not listed take the state's default.
Policy = Literal["handle", "refuse", "violation", "hold"]
# Frames of a download or a DHT request: they keep an errand connection (mesh.py) in use.
ERRAND_FRAMES = frozenset(
    {
        "manifest_req",
        "manifest",
        "chunk_req",
        "chunk",
        "chunk_missing",
        "dht_find_node",
        "dht_find_value",
        "dht_store",
        "dht_nodes",
        "dht_value",
        "dht_stored",
    }
)

FRAME_POLICY: dict[ConnState, tuple[dict[str, Policy], Policy]] = {
    "hello": ({"hello": "handle", "bye": "handle"}, "refuse"),
    "approval": (
        {"hello": "violation", "bye": "handle", "ping": "handle", "pong": "handle"},
        "hold",
    ),
    "open": ({"hello": "violation"}, "handle"),
}


class SwarmNode:
    """One peer of the swarm; see the module docstring."""

    def __init__(
        self,
        *,
        peer_id: str,
        community: str,
        private_key: Ed25519PrivateKey,
        ticket: Ticket | JsonObject,
        mesh: MeshOptions | None = None,
        caps: tuple[str, ...] = ("gossip", "pex"),
        agent: str | None = "swarm-py/1",
        book_capacity: int = DEFAULT_CAPACITY,
        random: Callable[[], float] = _random.random,
        now: int = 0,
    ) -> None:
        self.peer_id = peer_id
        self.community = community
        self.private_key = private_key
        self.actions: list[Action] = []
        self.stats = NodeStats()
        self.started_at = now
        self.book = PeerBook(self_id=peer_id, random=random, capacity=book_capacity)
        self.log = GossipLog()
        self.mesh = Mesh(
            self_id=peer_id,
            book=self.book,
            send=self._send,
            emit=self._emit,
            options=mesh,
            caps=caps,
            agent=agent,
        )
        self.set_ticket(ticket)
        self.next_prune_at = now + PRUNE_EVERY_MS
        # topic -> check(data, now) raising ProtocolError: gossip whose content fails is
        # neither delivered nor relayed (e.g. a post with a forged signature).
        self.gossip_checks: dict[str, GossipCheck] = {}

    # --- outputs ---

    def take_actions(self) -> list[Action]:
        """Everything decided since the last call, in order."""
        out, self.actions = self.actions, []
        return out

    def _emit(self, action: Action) -> None:
        if isinstance(action, Opened):
            if action.outbound:
                self.stats.dial_successes += 1
            else:
                self.stats.inbound += 1
            if self.stats.first_peer_at is None:
                self.stats.first_peer_at = action.at
        elif isinstance(action, Dial):
            self.stats.dials += 1
        self.actions.append(action)

    def _send(self, conn_id: str, frame: Frame) -> None:
        self._send_bytes(conn_id, encode_frame(frame), frame.t)

    def _send_bytes(self, conn_id: str, data: bytes, t: str) -> None:
        conn = self.mesh.conns.get(conn_id)
        if conn is not None:
            conn.bytes_out += len(data)
            conn.frames_out += 1
        self.stats.bytes_out += len(data)
        self.stats.frames_out += 1
        self.actions.append(Send(conn_id=conn_id, data=data, t=t))

    def _event(self, level: Level, source: str, code: str, message: str, peer_id: str) -> None:
        self.actions.append(Event(level, source, code, message, peer_id))

    # --- inputs ---

    def set_ticket(self, ticket: Ticket | JsonObject) -> None:
        """Our current ticket (refreshed by rendezvous before it expires)."""
        self.mesh.ticket = ticket.envelope if isinstance(ticket, Ticket) else ticket

    def add_candidates(self, tickets: Iterable[Ticket], source: str, now: int) -> None:
        """Verified tickets from rendezvous (beacons, capsules, cache)."""
        for ticket in tickets:
            if ticket.peer_id not in self.mesh.blocked:
                self.book.add_ticket(ticket, source, now)

    def add_seeds(self, peer_ids: Iterable[str], now: int) -> None:
        for peer_id in peer_ids:
            self.book.add_seed(peer_id, now)

    def add_hints(self, peer_ids: Iterable[str], now: int, errand: Errand | None = None) -> None:
        """Peers named as holders of something wanted: dialed first (peerbook.add_hint),
        for ``errand`` (a download of the manifest: a full holder still takes it)."""
        for peer_id in peer_ids:
            self.book.add_hint(peer_id, now, errand)

    def opened(
        self,
        conn_id: str,
        remote_peer_id: str,
        outbound: bool,
        now: int,
        errand: Errand | None = None,
    ) -> None:
        """A DataConnection opened; ``remote_peer_id`` is its PeerJS id, ``errand`` what the
        peer that dialed it said it is for (:func:`~peers.protocol.errand.errand_of`)."""
        self.mesh.opened(conn_id, remote_peer_id, outbound, now, errand)

    def closed(self, conn_id: str, now: int) -> None:
        """The transport closed."""
        self.mesh.closed(conn_id, now)

    def dial_failed(self, peer_id: str, now: int, reason: str = "unreachable") -> None:
        self.mesh.dial_failed(peer_id, now, reason)

    def receive(self, conn_id: str, data: bytes | bytearray | memoryview | str, now: int) -> None:
        """One DataChannel message from a connection (a text message is ``bad_frame``)."""
        conn = self.mesh.conns.get(conn_id)
        if conn is None:
            return
        size = len(data.encode("utf-8")) if isinstance(data, str) else memoryview(data).nbytes
        conn.bytes_in += size
        conn.frames_in += 1
        self.stats.bytes_in += size
        self.stats.frames_in += 1
        conn.health.received(now)
        if not self._take_token(conn, now):
            self._violation(conn, RATE_LIMITED, "too many frames", now)
            return
        try:
            frame = decode_frame(data)
        except ProtocolError as error:
            if error.code == UNSUPPORTED_FRAME:
                self._drop(error.code)  # reserved for later versions: not held against it
            else:
                self._violation(conn, error.code, error.message, now)
            return
        policies, default = FRAME_POLICY[conn.state]
        policy = policies.get(frame.t, default)
        if policy == "refuse":
            # Nothing before hello: a peer that skips it is not speaking this protocol.
            self._drop(UNEXPECTED_FRAME)
            self.mesh.close(conn, UNEXPECTED_FRAME, now, level="warn")
        elif policy == "violation":
            self._violation(conn, UNEXPECTED_FRAME, f"{frame.t} in state {conn.state}", now)
        elif policy == "hold":
            self._drop("awaiting_approval")
        else:
            self._handle(conn, frame, now)

    def _handle(self, conn: Connection, frame: Frame, now: int) -> None:
        if isinstance(frame, Bye):
            self.mesh.bye_received(conn, frame.reason, now)
        elif isinstance(frame, Hello):
            self._on_hello(conn, frame, now)
        elif isinstance(frame, Ping):
            self._send(conn.id, Pong(n=frame.n, ts=frame.ts))
        elif isinstance(frame, Pong):
            conn.health.pong(frame, now)
        elif isinstance(frame, PexReq):
            self._on_pex_request(conn, frame, now)
        elif isinstance(frame, Pex):
            self._on_pex(conn, frame, now)
        elif isinstance(frame, Gossip):
            self._on_gossip(conn, frame, now)
        else:
            if frame.t in ERRAND_FRAMES:
                self.mesh.used(conn, now)
            self.actions.append(ContentReceived(conn.id, conn.peer_id, frame))

    def _take_token(self, conn: Connection, now: int) -> bool:
        if conn.tokens is None:
            conn.tokens = TokenBucket(level=FRAME_BURST, at=now)
        bucket = conn.tokens
        bucket.level = min(FRAME_BURST, bucket.level + (now - bucket.at) * FRAME_RATE_PER_S / 1000)
        bucket.at = now
        if bucket.level < 1:
            return False
        bucket.level -= 1
        return True

    def _drop(self, code: str) -> None:
        self.stats.dropped[code] = self.stats.dropped.get(code, 0) + 1

    def _violation(self, conn: Connection, code: str, message: str, now: int) -> None:
        """A dropped frame that counts against the peer; too many in a minute: disconnected."""
        self._drop(code)
        conn.violations = [at for at in conn.violations if now - at < VIOLATION_WINDOW_MS]
        conn.violations.append(now)
        self._event("warn", "wire", code, message, conn.peer_id)
        if len(conn.violations) > MAX_VIOLATIONS and self.mesh.conns.get(conn.id) is conn:
            self.mesh.punish(conn, now)

    def _on_hello(self, conn: Connection, frame: Hello, now: int) -> None:
        if frame.v != PROTOCOL_VERSION:
            self.mesh.close(conn, UNSUPPORTED_VERSION, now, level="warn")
            return
        try:
            verified = verify_ticket(frame.ticket, now=now, community=self.community)
            if verified.peer_id != conn.peer_id:
                raise ProtocolError(
                    PEER_MISMATCH, "hello ticket is not for the connection's peer id"
                )
        except ProtocolError as error:
            self._drop(error.code)
            self.book.record_failure(conn.peer_id, now)
            self.mesh.close(conn, error.code, now, level="warn")
            return
        self.mesh.hello_verified(conn, verified, frame, now)

    def _on_pex_request(self, conn: Connection, frame: PexReq, now: int) -> None:
        if self.mesh.isolated:
            return  # an isolated node does not hand out who it knows
        try:
            answer = conn.pex.answer(frame, now, self.book, exclude={conn.peer_id})
        except ProtocolError as error:
            self._violation(conn, error.code, error.message, now)
            return
        self._send(conn.id, answer)

    def _on_pex(self, conn: Connection, frame: Pex, now: int) -> None:
        try:
            conn.pex.accept()
        except ProtocolError as error:
            self._violation(conn, error.code, error.message, now)
            return
        accepted, rejected = verify_pex_tickets(
            frame.peers, now=now, community=self.community, book=self.book
        )
        for ticket in accepted:
            if ticket.peer_id not in self.mesh.blocked:
                self.book.add_ticket(ticket, "pex", now)
        self.stats.pex_tickets += len(accepted)
        self.stats.pex_rejected += len(rejected)
        for rejection in rejected:
            self._drop(f"pex_{rejection.code}")

    def _on_gossip(self, conn: Connection, frame: Gossip, now: int) -> None:
        id_hex = frame.id.hex()
        if self.log.has(id_hex):
            self.stats.gossip_duplicates += 1
            return
        try:
            message = check_gossip(frame, now=now, community=self.community)
        except ProtocolError as error:
            if error.code in GOSSIP_VIOLATIONS:
                self._violation(conn, error.code, error.message, now)
            else:
                self._drop(f"gossip_{error.code}")  # too old or early: clocks differ
            return
        if message.topic == TICKET_TOPIC:
            self.log.add(id_hex, message.issued_at)
            self._take_ticket(message, now)
            return  # a neighbour's: taken, neither delivered nor relayed
        content_check = self.gossip_checks.get(message.topic)
        if content_check is not None:
            try:
                content_check(message.data, now)
            except ProtocolError as error:
                # Seen (a copy from another peer is not checked again), but never passed on.
                # Not a violation: peers that do not check this topic relay it in good faith.
                self.log.add(id_hex, message.issued_at)
                self._drop(f"gossip_{message.topic}_{error.code}")
                text = f"{message.topic} from {message.origin} dropped: {error.message}"
                self._event("warn", "gossip", error.code, text, conn.peer_id)
                return
        self.log.add(id_hex, message.issued_at)
        self.stats.gossip_delivered += 1
        self.actions.append(Deliver(message=message, sender=conn.peer_id))
        relay = relay_frame(frame)
        if relay is not None:
            self._flood(relay, except_conn=conn)

    def _take_ticket(self, message: GossipMessage, now: int) -> None:
        """A renewed ticket by gossip: its signer's own, then merged (the newest wins)."""
        try:
            ticket = verify_ticket(message.data, now=now, community=self.community)
        except ProtocolError as error:
            self._drop(f"gossip_ticket_{error.code}")
            return
        if ticket.peer_id != message.origin:
            self._drop(f"gossip_ticket_{PEER_MISMATCH}")
            return
        if ticket.peer_id in self.mesh.blocked:
            return
        if self.book.add_ticket(ticket, "hello", now) == "added":
            self.stats.tickets_renewed += 1

    def renew_ticket(self, ticket: Ticket | JsonObject, now: int) -> str | None:
        """A new ticket of this node: in hellos from now on, and sent to the open
        connections (gossip ``ticket``, ttl 0); the gossip id, or None with nobody to tell."""
        self.set_ticket(ticket)
        if not any("gossip" in c.caps for c in self.mesh.open()):
            return None
        envelope = ticket.envelope if isinstance(ticket, Ticket) else ticket
        return self.publish(TICKET_TOPIC, envelope, now, ttl=0)

    def _flood(self, frame: Gossip, except_conn: Connection | None = None) -> None:
        data = encode_frame(frame)
        for conn in self.mesh.open():
            if conn is except_conn or "gossip" not in conn.caps:
                continue
            self._send_bytes(conn.id, data, "gossip")
            if except_conn is not None:
                self.stats.gossip_relayed += 1

    def publish(self, topic: str, data: object, now: int, *, ttl: int = DEFAULT_GOSSIP_TTL) -> str:
        """Sign and flood a message; returns its id (hex)."""
        frame = make_gossip(
            self.private_key,
            origin=self.peer_id,
            community=self.community,
            topic=topic,
            data=data,
            now=now,
            ttl=ttl,
        )
        id_hex = frame.id.hex()
        self.log.add(id_hex, now)
        self.stats.gossip_published += 1
        self._flood(frame)
        return id_hex

    def tick(self, now: int) -> None:
        """Periodic work: timeouts, pings, stale peers, peer exchange, dialing, pruning."""
        self.mesh.tick(now)
        live = self.book.live_count(now)
        open_conns = self.mesh.open()
        asking = sum(1 for c in open_conns if c.pex.awaiting and c.pex.asked_within(now))
        for conn in open_conns:
            ping = conn.health.ping_due(now)
            if ping is not None:
                self._send(conn.id, ping)
            # One question at a time is enough: an answer usually fills the book.
            if (
                asking < PEX_MAX_ASKING
                and not self.mesh.isolated
                and "pex" in conn.caps
                and conn.pex.should_ask(now, live)
            ):
                asking += 1
                self.stats.pex_requests += 1
                self._send(conn.id, conn.pex.request(now))
        if now >= self.next_prune_at:
            self.next_prune_at = now + PRUNE_EVERY_MS
            self.log.prune(now)
            self.book.prune(now)

    def next_deadline(self, now: int) -> float:
        """When :meth:`tick` should run next (ms); callers may tick earlier."""
        return min(self.mesh.next_deadline(now), self.next_prune_at)

    # --- the content layer's way in (docs/superpeer-protocol.md "Content seam") ---

    def send_content(self, conn_id: str, frame: ContentFrame) -> bool:
        """Send a content frame on an open connection; False when it is not open."""
        if not isinstance(frame, CONTENT_FRAMES):
            raise TypeError(f"{type(frame).__name__} is not a content frame")
        conn = self.mesh.conns.get(conn_id)
        if conn is None or conn.state != "open":
            return False
        self._send(conn_id, frame)
        return True

    def send_to(self, peer_id: str, frame: Frame) -> bool:
        """Send a frame to an open peer (``sendTo`` in JS); False when it is not connected."""
        conn = next((c for c in self.mesh.open() if c.peer_id == peer_id), None)
        if conn is None:
            return False
        self._send(conn.id, frame)
        return True

    def content_violation(self, conn_id: str, code: str, message: str, now: int) -> None:
        """Count bad content (e.g. ``chunk_mismatch``) against the connection that sent it."""
        conn = self.mesh.conns.get(conn_id)
        if conn is not None:
            self._violation(conn, code, message, now)

    # --- decisions of the operator ---

    def block(self, peer_id: str, now: int) -> None:
        self.mesh.block(peer_id, now)

    def unblock(self, peer_id: str) -> None:
        self.mesh.unblock(peer_id)

    def approve(self, peer_id: str, now: int, *, always: bool = False) -> None:
        self.mesh.approve(peer_id, now, always=always)

    def deny(self, peer_id: str, now: int) -> None:
        self.mesh.deny(peer_id, now)

    def set_paused(self, paused: bool, now: int) -> None:
        self.mesh.set_paused(paused, now)

    def leave(self, now: int) -> None:
        self.mesh.leave(now)

    def set_isolated(self, isolated: bool, now: int) -> None:
        self.mesh.set_isolated(isolated, now)

    def set_approval(self, mode: str, now: int) -> None:
        self.mesh.set_approval(mode, now)

    # --- views ---

    def connected_peers(self, now: int) -> list[PeerView]:
        """Open connections with what an operator looks at."""
        return peer_views(self.mesh, now)

    def status(self, now: int) -> NodeStatus:
        """online / degraded (with the reason) / offline, as the mesh sees it."""
        return mesh_status(self.mesh, now)
