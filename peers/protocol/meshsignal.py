"""Signaling through the mesh: WebRTC offers, answers and candidates relayed hop by hop.

Mirror of static/swarm/protocol/meshsignal.js; docs/protocol.md "Signaling through the mesh"
is the specification. Two peers that are not connected but share a path of connected peers
exchange signed ``swarm/meshsig/v1`` messages, body

    {v: 1, kind, from, to, sid, created_at, hops, payload}

(``kind`` offer | answer | candidate | bye, ``sid`` the session, ``hops`` the hop budget the
sender grants, ``payload`` the SDP or candidate as JSON), carried in ``signal {hops, msg}``
frames whose ``hops`` is how many more times the frame may be forwarded. Neighbours tell
each other whom they are connected to (``reach {peers}``), so every peer knows its
neighbourhood two hops deep; a relay sends a message straight to ``to`` when connected to
it, else to a neighbour that reaches it, else along a route learned from earlier messages of
``to``; only an offer with no known route is flooded (budget - 2 hops out: two by default),
and the answer coming back teaches every relay on the way the route for the rest of the session.

:class:`MeshSignal` is sans-IO: neighbours, frames, local sends and ``now`` go in; frames to
send, messages to deliver and drops (with a stable code and whether the neighbour is to
blame) come out of :meth:`MeshSignal.take_actions`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .envelope import JsonObject
from .errors import (
    BAD_HOPS,
    DUPLICATE,
    HOPS_EXHAUSTED,
    NO_ROUTE,
    QUEUE_FULL,
    RATE_LIMITED,
    UNEXPECTED_FRAME,
    ProtocolError,
)
from .meshsignal_messages import (
    CAP_SIGNAL,
    CLOCK_SKEW_MS,
    FLOOD_MIN_HOPS,
    KIND_OFFER,
    MAX_AGE_MS,
    VIOLATIONS,
    SignalMessage,
    check_size,
    default_hops,
    make_signal,
    parse_signal,
    signal_id,
)
from .ratelimit import GcraBuckets
from .wire import MAX_REACH_PEERS, MAX_SIGNAL_HOPS, Reach, Signal


@dataclass(frozen=True, slots=True)
class SignalLimits:
    """Limits of one peer (docs/protocol.md "Signaling through the mesh", "Limits").

    Rates are GCRA token buckets in integers: one token every ``*_interval_ms``, at most
    ``*_burst`` saved up."""

    conn_interval_ms: int = 50  # signal frames per connection: 20/s ...
    conn_burst: int = 200  # ... bursts of 200; beyond: rate_limited, a violation
    origin_interval_ms: int = 200  # messages per origin (`from`): 5/s ...
    origin_burst: int = 50  # ... bursts of 50; beyond: rate_limited, counted only
    flood_interval_ms: int = 5_000  # flooded offers per origin: one per 5 s ...
    flood_burst: int = 5  # ... bursts of 5
    reach_interval_ms: int = 5_000  # reach adverts sent per connection: one per 5 s at most
    reach_in_interval_ms: int = 4_000  # reach adverts taken per connection (some jitter) ...
    reach_in_burst: int = 3  # ... bursts of 3; beyond: rate_limited, a violation
    route_ttl_ms: int = 120_000  # a learned route lives this long after its last message
    max_routes: int = 1024
    max_seen: int = 20_000  # message ids remembered (each until it expires anyway)
    max_buckets: int = 4096  # origins whose rate is tracked (least recently used dropped)
    discovery_ms: int = 10_000  # a sender waits this long for a route after flooding an offer
    max_pending: int = 64  # messages a sender holds per peer while it waits
    max_pending_peers: int = 32
    prune_every_ms: int = 30_000


# --- actions ---


@dataclass(frozen=True, slots=True)
class SignalSend:
    """Send ``frame`` on connection ``conn_id`` (a ``signal`` or a ``reach``)."""

    conn_id: str
    frame: Signal | Reach


@dataclass(frozen=True, slots=True)
class SignalDeliver:
    """A message for this peer, seen for the first time: hand it to the WebRTC layer.
    ``traveled`` is the number of hops it took; ``conn_id`` the neighbour it came from."""

    message: SignalMessage
    conn_id: str
    traveled: int


@dataclass(frozen=True, slots=True)
class SignalDrop:
    """A frame (``conn_id`` its neighbour) or a local send (``conn_id`` None) went no
    further. ``violation``: the neighbour is to blame (count it like a bad frame)."""

    code: str
    violation: bool
    conn_id: str | None
    reason: str
    id: str | None = None


SignalAction = SignalSend | SignalDeliver | SignalDrop


# --- the relay ---


@dataclass(slots=True)
class Neighbour:
    conn_id: str
    peer_id: str
    signal: bool  # its hello listed the capability `signal`
    reach: frozenset[str] = frozenset()
    reach_sent_at: int | None = None
    reach_dirty: bool = False


@dataclass(slots=True)
class Route:
    conn_id: str
    dist: int  # hops from here to the peer along this route
    until: int


@dataclass(slots=True)
class _Pending:
    to: str
    hops: int
    envelope: JsonObject
    id: str
    until: int


@dataclass(slots=True)
class SignalStats:
    delivered: int = 0
    sent: int = 0  # messages of this peer
    relayed: int = 0  # frames forwarded one way (a flood counts each copy)
    flooded: int = 0  # messages flooded (this peer's and others')
    reach_sent: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class MeshSignal:
    """Mesh signaling of one peer; see the module docstring and docs/protocol.md."""

    def __init__(
        self,
        *,
        peer_id: str,
        private_key: Ed25519PrivateKey,
        limits: SignalLimits | None = None,
        now: int = 0,
    ) -> None:
        self.peer_id = peer_id
        self.private_key = private_key
        self.limits = limits or SignalLimits()
        lim = self.limits
        self.neighbours: dict[str, Neighbour] = {}  # conn id -> neighbour, in connection order
        self.routes: OrderedDict[str, Route] = OrderedDict()  # peer id -> learned route
        self.seen: OrderedDict[str, int] = OrderedDict()  # message id -> forget at
        self.pending: dict[str, list[_Pending]] = {}  # peer id -> messages waiting for a route
        # peer id -> (until, offer id): an offer was flooded, its answer is awaited
        self.discovering: dict[str, tuple[int, str]] = {}
        self.conn_buckets = GcraBuckets(lim.conn_interval_ms, lim.conn_burst, lim.max_buckets)
        self.reach_buckets = GcraBuckets(
            lim.reach_in_interval_ms, lim.reach_in_burst, lim.max_buckets
        )
        self.origin_buckets = GcraBuckets(lim.origin_interval_ms, lim.origin_burst, lim.max_buckets)
        self.flood_buckets = GcraBuckets(lim.flood_interval_ms, lim.flood_burst, lim.max_buckets)
        self.next_prune_at = now + lim.prune_every_ms
        self.stats = SignalStats()
        self.actions: list[SignalAction] = []

    def take_actions(self) -> list[SignalAction]:
        """Everything decided since the last call, in order."""
        out, self.actions = self.actions, []
        return out

    # --- neighbours ---

    def connected(self, conn_id: str, peer_id: str, caps: Iterable[str], now: int) -> None:
        """A connection opened (after hello); only those listing ``signal`` carry frames."""
        signal = CAP_SIGNAL in caps
        self.neighbours[conn_id] = Neighbour(conn_id, peer_id, signal)
        if not signal:
            return
        for other in self._signal_neighbours():
            other.reach_dirty = True
        self._send_reach_due(now)
        self._flush(peer_id, now)

    def disconnected(self, conn_id: str, now: int) -> None:
        gone = self.neighbours.pop(conn_id, None)
        if gone is None:
            return
        for peer_id in [p for p, r in self.routes.items() if r.conn_id == conn_id]:
            del self.routes[peer_id]
        self.conn_buckets.tat.pop(conn_id, None)
        self.reach_buckets.tat.pop(conn_id, None)
        if gone.signal:
            for other in self._signal_neighbours():
                other.reach_dirty = True
            self._send_reach_due(now)

    def _signal_neighbours(self) -> list[Neighbour]:
        return [n for n in self.neighbours.values() if n.signal]

    def _reach_for(self, to: Neighbour) -> Reach:
        peers: list[str] = []
        for n in self._signal_neighbours():
            if n.peer_id != to.peer_id and n.peer_id not in peers:
                peers.append(n.peer_id)
        return Reach(peers=tuple(peers[:MAX_REACH_PEERS]))

    def _send_reach_due(self, now: int) -> None:
        interval = self.limits.reach_interval_ms
        for n in self._signal_neighbours():
            due = n.reach_sent_at is None or now >= n.reach_sent_at + interval
            if due and (n.reach_dirty or n.reach_sent_at is None):
                n.reach_sent_at = now
                n.reach_dirty = False
                self.stats.reach_sent += 1
                self.actions.append(SignalSend(n.conn_id, self._reach_for(n)))

    # --- inputs ---

    def receive(self, conn_id: str, frame: Signal | Reach, now: int) -> None:
        """A ``signal`` or ``reach`` frame from an open connection."""
        neighbour = self.neighbours.get(conn_id)
        if neighbour is None:
            self._drop(UNEXPECTED_FRAME, conn_id, "frame from an unknown connection")
            return
        if isinstance(frame, Reach):
            self._on_reach(neighbour, frame, now)
        else:
            self._on_signal(neighbour, frame, now)

    def _on_reach(self, n: Neighbour, frame: Reach, now: int) -> None:
        if not self.reach_buckets.take(n.conn_id, now):
            self._drop(RATE_LIMITED, n.conn_id, "reach adverts too often", violation=True)
            return
        n.reach = frozenset(p for p in frame.peers if p != self.peer_id)
        for to in [p for p in self.pending if p in n.reach]:
            self._flush(to, now)

    def _on_signal(self, n: Neighbour, frame: Signal, now: int) -> None:
        conn_id = n.conn_id
        if not self.conn_buckets.take(conn_id, now):
            self._drop(RATE_LIMITED, conn_id, "too many signal frames", violation=True)
            return
        try:
            msg_id = signal_id(check_size(frame.msg).get("body"))
        except ProtocolError as error:
            self._drop(error.code, conn_id, error.message)
            return
        if msg_id in self.seen:
            self._drop(DUPLICATE, conn_id, "seen before", msg_id)
            return
        try:
            message = parse_signal(frame.msg, now=now)
            if frame.hops >= message.hops:
                raise ProtocolError(BAD_HOPS, "more hops left than the sender granted")
        except ProtocolError as error:
            self._drop(error.code, conn_id, error.message, msg_id)
            return
        if message.from_peer == self.peer_id:
            self._drop(DUPLICATE, conn_id, "a message of this peer came back", msg_id)
            return
        if not self.origin_buckets.take(message.from_peer, now):
            self._drop(RATE_LIMITED, conn_id, "too many messages from this origin", msg_id)
            return
        self._remember(msg_id, message.created_at)
        traveled = message.hops - frame.hops
        self._learn(message.from_peer, conn_id, traveled, now)
        if message.to == self.peer_id:
            self.stats.delivered += 1
            self.actions.append(SignalDeliver(message, conn_id, traveled))
            return
        self._forward(message, msg_id, frame.hops, conn_id, now)

    def send(
        self,
        *,
        to: str,
        sid: str,
        kind: str,
        payload: Any,
        now: int,
        hops: int | None = None,
    ) -> str:
        """Sign a message of this peer and send it on its way; returns its id.

        Raises :class:`ProtocolError` for a message receivers would refuse; what happens
        to it next (sent, flooded, held until a route is known, or dropped with
        ``no_route``, ``rate_limited`` or ``queue_full``) comes out as actions."""
        envelope = make_signal(
            self.private_key,
            to=to,
            sid=sid,
            kind=kind,
            payload=payload,
            created_at=now,
            hops=hops,
        )
        msg_id = signal_id(envelope["body"])
        hops = cast(int, envelope["body"]["hops"])
        self._remember(msg_id, now)
        if not self.origin_buckets.take(self.peer_id, now):
            self._drop(RATE_LIMITED, None, "this peer sends too fast", msg_id)
            return msg_id
        self.stats.sent += 1
        route = self._route(to, hops, exclude=None, now=now)
        if route is not None:
            self._send_signal(route, hops - 1, envelope)
            return msg_id
        if kind == KIND_OFFER and hops >= FLOOD_MIN_HOPS:
            if not self.flood_buckets.take(self.peer_id, now):
                self._drop(RATE_LIMITED, None, "this peer floods offers too often", msg_id)
            elif self._flood(self.peer_id, envelope, hops - 1, exclude=None):
                self.discovering[to] = (now + self.limits.discovery_ms, msg_id)
            else:
                self._drop(NO_ROUTE, None, "no neighbour takes signal frames", msg_id)
            return msg_id
        if to in self.discovering and self.discovering[to][0] > now:
            queue = self.pending.get(to)
            if queue is None and len(self.pending) >= self.limits.max_pending_peers:
                self._drop(QUEUE_FULL, None, "too many peers wait for a route", msg_id)
            elif queue is not None and len(queue) >= self.limits.max_pending:
                self._drop(QUEUE_FULL, None, "too many messages wait for this peer", msg_id)
            else:
                until = self.discovering[to][0]
                self.pending.setdefault(to, []).append(_Pending(to, hops, envelope, msg_id, until))
            return msg_id
        self._drop(NO_ROUTE, None, "no route to the peer", msg_id)
        return msg_id

    # --- routing ---

    def has_route(self, to: str, now: int) -> bool:
        """Whether an offer to ``to`` would follow a known route (a neighbour, a
        neighbour's ``reach``, a learned route) rather than a flood."""
        return self._route(to, default_hops(KIND_OFFER), exclude=None, now=now) is not None

    def _route(self, to: str, hops: int, *, exclude: str | None, now: int) -> str | None:
        """The connection to send a message for ``to`` on, with ``hops`` forwards left
        here (a sender: its budget); None when no known route fits."""
        if hops < 1:
            return None
        for n in self.neighbours.values():
            if n.signal and n.peer_id == to and n.conn_id != exclude:
                return n.conn_id
        learned = self.routes.get(to)
        if learned is not None and (
            learned.until <= now
            or learned.conn_id == exclude
            or learned.conn_id not in self.neighbours
            or learned.dist > hops
        ):
            learned = None
        if learned is not None and learned.dist <= 2:
            return learned.conn_id
        if hops >= 2:
            for n in self.neighbours.values():
                if n.signal and n.conn_id != exclude and to in n.reach:
                    return n.conn_id
        return None if learned is None else learned.conn_id

    def _forward(
        self, message: SignalMessage, msg_id: str, hops: int, from_conn: str, now: int
    ) -> None:
        if hops < 1:
            self._drop(HOPS_EXHAUSTED, from_conn, "no hops left", msg_id)
            return
        route = self._route(message.to, hops, exclude=from_conn, now=now)
        if route is not None:
            self.stats.relayed += 1
            self._send_signal(route, hops - 1, message.envelope)
            return
        if message.kind != KIND_OFFER or hops < FLOOD_MIN_HOPS:
            self._drop(NO_ROUTE, from_conn, "no route to the peer within the hops left", msg_id)
            return
        if not self.flood_buckets.take(message.from_peer, now):
            self._drop(RATE_LIMITED, from_conn, "too many flooded offers", msg_id)
            return
        if not self._flood(message.from_peer, message.envelope, hops - 1, from_conn):
            self._drop(NO_ROUTE, from_conn, "no other neighbour takes signal frames", msg_id)

    def _flood(self, origin: str, envelope: JsonObject, hops: int, exclude: str | None) -> bool:
        """Send to every neighbour taking signal frames but the one it came from and its
        origin; False when there is none."""
        targets = [
            n for n in self._signal_neighbours() if n.conn_id != exclude and n.peer_id != origin
        ]
        if not targets:
            return False
        self.stats.flooded += 1
        frame = Signal(hops=hops, msg=envelope)
        for n in targets:
            if exclude is not None:
                self.stats.relayed += 1
            self.actions.append(SignalSend(n.conn_id, frame))
        return True

    def _send_signal(self, conn_id: str, hops: int, envelope: JsonObject) -> None:
        self.actions.append(SignalSend(conn_id, Signal(hops=hops, msg=envelope)))

    def _learn(self, peer_id: str, conn_id: str, dist: int, now: int) -> None:
        """A message of ``peer_id`` came on ``conn_id`` after ``dist`` hops: the way back."""
        self.routes[peer_id] = Route(conn_id, dist, now + self.limits.route_ttl_ms)
        self.routes.move_to_end(peer_id)
        while len(self.routes) > self.limits.max_routes:
            self.routes.popitem(last=False)
        if peer_id in self.pending:
            self._flush(peer_id, now)

    def _flush(self, to: str, now: int) -> None:
        """Send what waits for ``to`` once a route is known."""
        queue = self.pending.get(to)
        if not queue:
            return
        keep: list[_Pending] = []
        for item in queue:
            route = self._route(to, item.hops, exclude=None, now=now)
            if route is None:
                keep.append(item)
            else:
                self._send_signal(route, item.hops - 1, item.envelope)
        if keep:
            self.pending[to] = keep
        else:
            del self.pending[to]
            self.discovering.pop(to, None)

    def _remember(self, msg_id: str, created_at: int) -> None:
        self.seen[msg_id] = created_at + MAX_AGE_MS + CLOCK_SKEW_MS
        while len(self.seen) > self.limits.max_seen:
            self.seen.popitem(last=False)

    def _drop(
        self,
        code: str,
        conn_id: str | None,
        reason: str,
        msg_id: str | None = None,
        *,
        violation: bool | None = None,
    ) -> None:
        blame = (code in VIOLATIONS) if violation is None else violation
        blame = blame and conn_id is not None
        self.stats.dropped[code] = self.stats.dropped.get(code, 0) + 1
        self.actions.append(SignalDrop(code, blame, conn_id, reason, msg_id))

    # --- time ---

    def tick(self, now: int) -> None:
        """Overdue waits (``no_route``), reach adverts due, pruning."""
        for to, queue in list(self.pending.items()):
            for item in queue:
                if item.until <= now:
                    self._drop(NO_ROUTE, None, "no route found in time", item.id)
            keep = [item for item in queue if item.until > now]
            if keep:
                self.pending[to] = keep
            else:
                del self.pending[to]
        for to, (until, offer_id) in list(self.discovering.items()):
            if until <= now:
                del self.discovering[to]
                if self._route(to, MAX_SIGNAL_HOPS, exclude=None, now=now) is None:
                    # Nothing came back: the sender may offer again with a larger budget.
                    self._drop(NO_ROUTE, None, "the offer was not answered in time", offer_id)
        self._send_reach_due(now)
        if now >= self.next_prune_at:
            self.next_prune_at = now + self.limits.prune_every_ms
            for msg_id in [i for i, at in self.seen.items() if at <= now]:
                del self.seen[msg_id]
            for peer_id in [p for p, r in self.routes.items() if r.until <= now]:
                del self.routes[peer_id]
            for buckets in (
                self.conn_buckets,
                self.reach_buckets,
                self.origin_buckets,
                self.flood_buckets,
            ):
                buckets.prune(now)

    def next_deadline(self, now: int) -> int:
        """When :meth:`tick` should run next (ms)."""
        deadline = self.next_prune_at
        for queue in self.pending.values():
            deadline = min(deadline, *(item.until for item in queue))
        for until, _ in self.discovering.values():
            deadline = min(deadline, until)  # an offer unanswered then is dropped no_route
        for n in self._signal_neighbours():
            if n.reach_dirty and n.reach_sent_at is not None:
                deadline = min(deadline, n.reach_sent_at + self.limits.reach_interval_ms)
        return max(deadline, now)
