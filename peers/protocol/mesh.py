"""The mesh: which connections a node keeps, mirror of static/swarm/protocol/mesh.js.

Hello exchange, target size, dialing with backoff, duplicate connections, the manual
approval queue, blocks, pause and isolation. Pure: callers pass ``now``; decisions leave
through the ``send`` (frames) and ``emit`` (other actions) callables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from .envelope import JsonObject
from .errand import Errand
from .health import Health
from .node_actions import Action, Close, Closed, Dial, Event, Level, Opened
from .peerbook import PeerBook
from .pex import PexChannel
from .ticket import Ticket
from .wire import Bye, Frame, Hello

PEER_UNAVAILABLE = "peer_unavailable"  # dial_failed reason: signaling says it is not there
LEAVING = "leaving"  # bye reason of a peer going away
DENY_MS = 10 * 60_000
REFUSED_RETRY_MS = 60_000  # after a "mesh_full"/"paused"/... bye
MISBEHAVING_RETRY_MS = 30 * 60_000
STALE_RETRY_MS = 2_000  # reconnect soon after dropping a stale connection
# A peer that says one of these waits DENY_MS before being dialed again.
_LONG_REFUSALS = frozenset({"blocked", "denied", "isolated", "misbehaving"})

ConnState = Literal["hello", "approval", "open"]
# Connection states and what moves them (h11 style: one table, anything else is a bug).
# Closing is possible from every state and removes the connection from the mesh.
TRANSITIONS: dict[tuple[ConnState, str], ConnState] = {
    ("hello", "hello_verified"): "open",
    ("hello", "needs_approval"): "approval",
    ("approval", "approved"): "open",
}


@dataclass(slots=True)
class MeshOptions:
    target: int = 6  # connections the node dials up to
    max_conns: int = 10  # connections it accepts (inbound beyond this get bye "mesh_full")
    spare: int = 4  # errand connections it takes beyond max (a download from it, a DHT request)
    errand_idle_ms: int = 30_000  # an errand connection beyond max unused this long is closed
    max_dialing: int = 3
    dial_timeout_ms: int = 15_000
    hello_timeout_ms: int = 10_000
    approval_timeout_ms: int = 120_000
    approval: Literal["auto", "manual"] = "auto"  # manual: new peers wait for a decision


@dataclass(slots=True)
class TokenBucket:
    level: float
    at: int


class Connection:
    """One DataConnection as the mesh sees it."""

    def __init__(self, conn_id: str, peer_id: str, outbound: bool, now: int, serial: int) -> None:
        self.id = conn_id
        self.peer_id = peer_id
        self.outbound = outbound
        self.serial = serial
        self.state: ConnState = "hello"
        self.opened_at = now
        self.since: int | None = None  # when it became open
        self.deadline: int | None = None  # hello or approval deadline
        self.ticket: Ticket | None = None  # verified ticket from the peer's hello
        self.caps: tuple[str, ...] = ()
        self.agent: str | None = None
        self.health = Health(now)
        self.pex = PexChannel()
        self.bytes_in = 0
        self.bytes_out = 0
        self.frames_in = 0
        self.frames_out = 0
        self.violations: list[int] = []
        self.tokens: TokenBucket | None = None  # frame rate bucket, set by the node
        # Taken beyond max for this errand; None: an ordinary member.
        self.errand: Errand | None = None
        self.used_at = now  # last frame of a download or DHT request

    def move(self, event: str) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise RuntimeError(f"no transition from {self.state} on {event}") from None


class Mesh:
    """Connection policy of one node; see the module docstring."""

    def __init__(
        self,
        *,
        self_id: str,
        book: PeerBook,
        send: Callable[[str, Frame], None],
        emit: Callable[[Action], None],
        options: MeshOptions | None = None,
        caps: tuple[str, ...] = ("gossip", "pex"),
        agent: str | None = "swarm-py/1",
    ) -> None:
        self.self_id = self_id
        self.book = book
        self._send = send
        self._emit = emit
        self.options = replace(options) if options is not None else MeshOptions()
        self.conns: dict[str, Connection] = {}
        self.dialing: dict[str, int] = {}  # peer id -> deadline
        self.blocked: set[str] = set()
        # "always" allowed: never queued, kept when isolated, not held to max
        self.allowed: set[str] = set()
        self.denied: dict[str, int] = {}  # peer id -> until
        self.paused = False
        self.isolated = False
        self.can_dial = True  # False while the adapter cannot reach signaling (no new dials)
        self.ticket: JsonObject | None = None  # our own ticket, sent in hello
        self.caps = caps
        self.agent = agent
        self._serial = 0
        # Whether this node takes an errand beyond its maximum: it holds the manifest, it
        # runs a DHT (set by the adapter).
        self.admits: Callable[[Errand], bool] = lambda errand: False

    # --- queries ---

    def conns_of(self, peer_id: str) -> list[Connection]:
        return [c for c in self.conns.values() if c.peer_id == peer_id]

    def open(self) -> list[Connection]:
        return [c for c in self.conns.values() if c.state == "open"]

    def queue(self) -> list[Connection]:
        return [c for c in self.conns.values() if c.state == "approval"]

    def _event(self, level: Level, code: str, message: str, peer_id: str) -> None:
        self._emit(Event(level=level, source="mesh", code=code, message=message, peer_id=peer_id))

    def _refusal(self, peer_id: str, outbound: bool, now: int) -> str | None:
        if self.paused:
            return "paused"
        if peer_id in self.blocked:
            return "blocked"
        if self.isolated and peer_id not in self.allowed:
            return "isolated"
        if self.denied.get(peer_id, 0) > now:
            return "denied"
        # Dials in flight count: once they open, the node must still be within its maximum.
        # A peer always allowed is let in beyond it (the person chose it over the limit).
        if (
            not outbound
            and peer_id not in self.allowed
            and len(self.conns) + len(self.dialing) >= self.options.max_conns
        ):
            return "mesh_full"
        return None

    # --- connection lifecycle ---

    def errands(self) -> int:
        """Connections taken beyond the maximum for an errand and not yet members."""
        return sum(1 for c in self.conns.values() if c.errand is not None)

    def opened(
        self, conn_id: str, peer_id: str, outbound: bool, now: int, errand: Errand | None = None
    ) -> Connection | None:
        """A DataConnection opened (we dialed it, or the peer did). ``errand``: what the
        dialer said it is for (:func:`~peers.protocol.errand.errand_of`), inbound only."""
        if conn_id in self.conns:
            return self.conns[conn_id]
        if outbound:
            self.dialing.pop(peer_id, None)
        refusal = self._refusal(peer_id, outbound, now)
        # A full node still takes a download of what it holds, or a DHT request, within spare.
        as_errand = (
            refusal == "mesh_full"
            and errand is not None
            and self.errands() < self.options.spare
            and self.admits(errand)
        )
        if as_errand:
            refusal = None
        if refusal is not None:
            # A paused node sends nothing at all, not even the reason (as the browser);
            # every other refusal is a bye then close.
            if refusal != "paused":
                self._send(conn_id, Bye(reason=refusal))
            self._emit(Close(conn_id=conn_id, reason=refusal))
            direction = "outbound" if outbound else "inbound"
            self._event(
                "info", f"refused_{refusal}", f"refused {direction} connection: {refusal}", peer_id
            )
            return None
        self._serial += 1
        conn = Connection(conn_id, peer_id, outbound, now, self._serial)
        conn.deadline = now + self.options.hello_timeout_ms
        if as_errand and errand is not None:
            conn.errand = errand
            self._event(
                "info", "errand_taken", f"taken beyond the maximum for {errand.kind}", peer_id
            )
        self.conns[conn_id] = conn
        if self.ticket is None:
            raise RuntimeError("the node has no ticket to send in its hello")
        self._send(conn_id, Hello(ticket=self.ticket, caps=self.caps, agent=self.agent))
        return conn

    def hello_verified(self, conn: Connection, verified: Ticket, frame: Hello, now: int) -> None:
        """The peer's hello carried a valid ticket for its PeerJS id."""
        conn.ticket = verified
        conn.caps = frame.caps
        conn.agent = frame.agent
        if not self._resolve_duplicates(conn, now):
            return
        if self.options.approval == "manual" and conn.peer_id not in self.allowed:
            conn.move("needs_approval")
            conn.deadline = now + self.options.approval_timeout_ms
            self._event("info", "approval_requested", "peer waits for approval", conn.peer_id)
            return
        self._make_open(conn, "hello_verified", now)

    def _make_open(self, conn: Connection, event: str, now: int) -> None:
        conn.move(event)
        conn.since = now
        conn.deadline = None
        if conn.ticket is not None:
            self.book.add_ticket(conn.ticket, "hello", now)
        self.book.record_success(conn.peer_id, now)
        self._emit(
            Opened(conn.id, conn.peer_id, conn.outbound, now, caps=conn.caps, agent=conn.agent)
        )
        direction = "outbound" if conn.outbound else "inbound"
        self._event("info", "peer_open", f"connected ({direction})", conn.peer_id)

    # Two connections to one peer (both dialed at once, or it came back): keep one, the same
    # one on both sides. A newer ticket means the peer restarted: its connection wins.
    # Otherwise the connection dialed by the smaller peer id wins; same dialer: the newer.
    def _resolve_duplicates(self, conn: Connection, now: int) -> bool:
        for other in self.conns_of(conn.peer_id):
            if other is conn or other.ticket is None:
                continue
            loser = other if self._preferred(conn, other) is conn else conn
            self.close(loser, "duplicate", now)
            if loser is conn:
                return False
        return True

    def _preferred(self, a: Connection, b: Connection) -> Connection:
        ta, tb = a.ticket, b.ticket
        if ta is None or tb is None:
            raise RuntimeError("duplicates are compared once both hellos are verified")
        if ta.nonce != tb.nonce:
            if ta.issued_at != tb.issued_at:
                return a if ta.issued_at > tb.issued_at else b
            return a if ta.nonce > tb.nonce else b
        low = min(self.self_id, a.peer_id)

        def by_low(c: Connection) -> bool:
            return (self.self_id if c.outbound else c.peer_id) == low

        if by_low(a) != by_low(b):
            return a if by_low(a) else b
        return a if a.serial > b.serial else b

    def close(
        self,
        conn: Connection,
        reason: str,
        now: int,
        *,
        level: Level = "info",
        retry_at: int | None = None,
    ) -> None:
        """Say why (bye) and close."""
        if self.conns.get(conn.id) is not conn:
            return
        del self.conns[conn.id]
        self._send(conn.id, Bye(reason=reason))
        self._emit(Close(conn_id=conn.id, reason=reason))
        if retry_at is not None:
            self.book.defer_dial(conn.peer_id, retry_at)
        self._closed_event(conn, reason, level)

    def closed(self, conn_id: str, now: int) -> None:
        """The transport closed (the peer left, or the network did)."""
        conn = self.conns.pop(conn_id, None)
        if conn is None:
            return
        if conn.state == "hello" and conn.outbound:
            self.book.record_failure(conn.peer_id, now)
        self._closed_event(conn, "closed", "info")

    def bye_received(self, conn: Connection, reason: str, now: int) -> None:
        """The peer said bye."""
        if self.conns.get(conn.id) is not conn:
            return
        del self.conns[conn.id]
        self._emit(Close(conn_id=conn.id, reason=f"bye_{reason}"))
        if reason in _LONG_REFUSALS:
            self.book.defer_dial(conn.peer_id, now + DENY_MS)
        elif reason == LEAVING:
            # Its ticket is stale now; a newer one (the page reloaded) may be dialed at once.
            self.book.record_gone(conn.peer_id, now)
        elif reason != "duplicate":
            self.book.defer_dial(conn.peer_id, now + REFUSED_RETRY_MS)
        self._closed_event(conn, f"bye_{reason}", "info")

    def _closed_event(self, conn: Connection, reason: str, level: Level) -> None:
        if conn.state == "open":
            self._emit(Closed(conn_id=conn.id, peer_id=conn.peer_id, reason=reason))
        self._event(level, f"peer_{reason}", f"disconnected: {reason}", conn.peer_id)

    def punish(self, conn: Connection, now: int) -> None:
        """Drop a peer that keeps breaking the protocol; it may try again much later."""
        self.book.record_failure(conn.peer_id, now, backoff_ms=MISBEHAVING_RETRY_MS)
        self.close(conn, "misbehaving", now, level="warn")

    def used(self, conn: Connection, now: int) -> None:
        """The peer sent a frame of a download or a DHT request on ``conn``: it is in use."""
        conn.used_at = now

    def dial_failed(self, peer_id: str, now: int, reason: str = "unreachable") -> None:
        # Whoever dialed it (the mesh, the DHT, an errand): signaling says its ticket is stale.
        if reason == PEER_UNAVAILABLE:
            self.book.record_gone(peer_id, now)
        if self.dialing.pop(peer_id, None) is None:
            return
        self.book.record_failure(peer_id, now)
        self._event("info", "dial_failed", f"could not connect: {reason}", peer_id)

    # --- periodic work: timeouts, stale connections, dialing ---

    def tick(self, now: int) -> None:
        for conn in list(self.conns.values()):
            if conn.deadline is not None and now >= conn.deadline:
                if conn.state == "hello":
                    self.book.record_failure(conn.peer_id, now)
                    self.close(conn, "hello_timeout", now)
                else:
                    self.close(conn, "approval_timeout", now)
            elif conn.state == "open" and conn.health.state(now) == "stale":
                self.close(conn, "stale", now, level="warn", retry_at=now + STALE_RETRY_MS)
            elif conn.errand is not None and now >= conn.used_at + self.options.errand_idle_ms:
                # Its errand is done: closed while the node is beyond its maximum, else it
                # stays as a member.
                if len(self.conns) > self.options.max_conns:
                    self.close(conn, "idle", now)
                else:
                    conn.errand = None
        for peer_id, deadline in list(self.dialing.items()):
            if now >= deadline:
                self.dial_failed(peer_id, now, "timeout")
        for peer_id, until in list(self.denied.items()):
            if until <= now:
                del self.denied[peer_id]
        self._dial(now)

    def _dial(self, now: int) -> None:
        if self.paused or not self.can_dial:
            return
        need = self.options.target - len(self.conns) - len(self.dialing)
        slots = min(need, self.options.max_dialing - len(self.dialing))
        if slots <= 0:
            return
        exclude = {self.self_id, *self.blocked, *self.dialing, *self.denied}
        exclude.update(c.peer_id for c in self.conns.values())
        allow = self.allowed if self.isolated else None
        for entry in self.book.dial_candidates(now, exclude=exclude, limit=slots, allow=allow):
            self.dialing[entry.peer_id] = now + self.options.dial_timeout_ms
            self._emit(Dial(peer_id=entry.peer_id, ticket=entry.ticket, errand=entry.errand))

    def next_deadline(self, now: int) -> float:
        deadline: float = float("inf")
        for conn in self.conns.values():
            if conn.deadline is not None:
                deadline = min(deadline, conn.deadline)
            if conn.state == "open":
                deadline = min(deadline, conn.health.next_deadline(now))
            if conn.errand is not None:
                deadline = min(deadline, conn.used_at + self.options.errand_idle_ms)
        for at in self.dialing.values():
            deadline = min(deadline, at)
        return deadline

    # --- what the operator decides ---

    def approve(self, peer_id: str, now: int, *, always: bool = False) -> None:
        if always:
            self.allowed.add(peer_id)
        for conn in self.conns_of(peer_id):
            if conn.state == "approval":
                self._make_open(conn, "approved", now)

    def deny(self, peer_id: str, now: int) -> None:
        self.denied[peer_id] = now + DENY_MS
        self.book.defer_dial(peer_id, now + DENY_MS)
        for conn in self.conns_of(peer_id):
            self.close(conn, "denied", now)

    def block(self, peer_id: str, now: int) -> None:
        self.blocked.add(peer_id)
        self.allowed.discard(peer_id)
        self.dialing.pop(peer_id, None)
        self.book.remove(peer_id)
        for conn in self.conns_of(peer_id):
            self.close(conn, "blocked", now)

    def unblock(self, peer_id: str) -> None:
        self.blocked.discard(peer_id)

    def set_approval(self, mode: str, now: int) -> None:
        self.options.approval = "manual" if mode == "manual" else "auto"
        if self.options.approval == "auto":
            for conn in self.queue():
                self._make_open(conn, "approved", now)

    def set_paused(self, paused: bool, now: int) -> None:
        """Pause: every connection closes, nothing is dialed or accepted until resumed."""
        self.paused = bool(paused)
        if not self.paused:
            return
        self.dialing.clear()
        for conn in list(self.conns.values()):
            self.close(conn, "paused", now)

    def leave(self, now: int) -> None:
        """Shutting down: tell every peer (bye "leaving") so nobody waits for a timeout."""
        self.dialing.clear()
        for conn in list(self.conns.values()):
            self.close(conn, LEAVING, now)

    def set_isolated(self, isolated: bool, now: int) -> None:
        """Isolation: only "always" approved peers stay connected or get dialed."""
        self.isolated = bool(isolated)
        if not self.isolated:
            return
        for peer_id in [p for p in self.dialing if p not in self.allowed]:
            del self.dialing[peer_id]
        for conn in list(self.conns.values()):
            if conn.peer_id not in self.allowed:
                self.close(conn, "isolated", now)
