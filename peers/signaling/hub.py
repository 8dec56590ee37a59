"""The PeerJS signaling protocol as a sans-IO state machine (one per web process).

Inputs are connection events, frames and ``now`` (ms); outputs are effects: frames to
send, sockets to close, and directory operations (claim an id, release it, route a frame
to an id this process does not hold). The adapter (``node``) performs the effects and
feeds the directory's answers back in. Timers are ``tick`` (heartbeat deadlines) and the
directory's queue expiry, whose frames come back through ``expired``.

Semantics follow the reference server (npm ``peer`` 1.0.2); deliberate differences are
listed in docs/signaling.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from peers.protocol.encoding import is_key_bound_id
from peers.protocol.errors import ProtocolError
from peers.protocol.signal_token import verify_signal_token

from . import directory as d
from . import messages as m
from .address_limits import ID_REFUSALS, SocketCounts
from .config import MAX_TOKEN_LENGTH, SignalConfig, is_valid_id
from .effects import (
    CLOSE_POLICY,
    CLOSE_RESTART,
    CLOSE_TOO_BIG,
    Claim,
    Close,
    Effect,
    Release,
    Route,
    Send,
)

CLAIMING, OPEN, CLOSED = 1, 2, 3


# Texts of the refusals PeerJS has no message for; ``code`` carries the stable reason.
MSG_BAD_ID = "Invalid id"
MSG_PLAIN_IDS_DISABLED = "Only key-bound ids are allowed on this server"
MSG_BLOCKED = "Blocked"
MSG_TOO_LARGE = "Message too large"
MSG_RATE_LIMITED = "Too many messages"
MSG_QUEUE_FULL = "Too many messages waiting for this peer"
MSG_UNAVAILABLE = "Server unavailable, try again"
MSG_RESTART = "Server lost track of this connection, reconnect"


class Blocks(Protocol):
    def blocks(
        self, *, public_key: str | None = None, peer_id: str | None = None, ip: str | None = None
    ) -> bool: ...


@dataclass(slots=True, eq=False)
class Connection:
    conn: int
    ip: str | None
    network: str | None = None
    peer_id: str = ""
    public_key: str | None = None
    state: int = CLAIMING
    registered: bool = False  # holds its id in the directory (release it when it goes)
    last_ping: int = 0
    tokens: float = 0.0
    refilled_at: int = 0
    pending: list[tuple[str, str | None]] = field(default_factory=list)


class Hub:
    def __init__(self, config: SignalConfig, proc: str) -> None:
        self.config = config
        self.proc = proc
        self._conns: dict[int, Connection] = {}
        self._by_id: dict[str, Connection] = {}
        self._claiming: dict[str, Connection] = {}
        self._sockets = SocketCounts(config.sockets_per_ip, config.sockets_per_network)
        # (metric, label value) -> count, drained by the adapter into /metrics.
        self.counters: Counter[tuple[str, str]] = Counter()

    # --- connections -----------------------------------------------------------------

    def connect(
        self,
        conn: int,
        params: Mapping[str, str],
        *,
        ip: str | None,
        now: int,
        blocks: Blocks | None = None,
        network: str | None = None,
    ) -> list[Effect]:
        """A socket opened with query ``params`` from ``ip`` (in ``network``): refuse it,
        or claim its id."""
        c = self._conns[conn] = Connection(conn, ip, network)
        refusal = self._sockets.opened(ip, network)
        if refusal is not None:
            return self._refuse(c, m.error_frame(*refusal), refusal[1])
        key, peer_id, token = params.get("key", ""), params.get("id", ""), params.get("token", "")
        if not peer_id or not token or not key:
            return self._refuse(c, m.error_frame(m.INVALID_WS_PARAMETERS), "bad_params")
        if key != self.config.key:
            return self._refuse(c, m.error_frame(m.INVALID_KEY), "bad_key")
        if not is_valid_id(peer_id):
            return self._refuse(c, m.error_frame(MSG_BAD_ID, "bad_id"), "bad_id")
        if len(token) > MAX_TOKEN_LENGTH:
            return self._refuse(c, m.error_frame(m.INVALID_TOKEN, "bad_token"), "bad_token")
        if is_key_bound_id(peer_id):
            try:
                proof = verify_signal_token(
                    token,
                    peer_id=peer_id,
                    now=now,
                    max_age_ms=self.config.token_max_age_ms,
                    skew_ms=self.config.clock_skew_ms,
                )
            except ProtocolError as error:
                return self._refuse(c, m.error_frame(m.INVALID_TOKEN, error.code), "bad_token")
            c.public_key = proof.public_key_b64
            holder = d.Holder(self.proc, conn, token, True, proof.issued_at)
        elif not self.config.plain_ids:
            frame = m.error_frame(MSG_PLAIN_IDS_DISABLED, "plain_ids_disabled")
            return self._refuse(c, frame, "plain_ids_disabled")
        else:
            holder = d.Holder(self.proc, conn, token, False, 0)
        if blocks is not None and blocks.blocks(public_key=c.public_key, peer_id=peer_id, ip=ip):
            return self._refuse(c, m.error_frame(MSG_BLOCKED, "blocked"), "blocked")
        c.peer_id = peer_id
        self._claiming[peer_id] = c
        return [Claim(conn, peer_id, holder, ip, network)]

    def claimed(self, conn: int, peer_id: str, result: d.ClaimResult, now: int) -> list[Effect]:
        """The directory's answer to a :class:`Claim`."""
        c = self._conns.get(conn)
        if self._claiming.get(peer_id) is c:
            del self._claiming[peer_id]
        if c is None or c.state != CLAIMING:
            # The socket went away while claiming: give the id back.
            opened = result.status in (d.OPENED, d.REPLACED)
            return [Release(conn, peer_id)] if opened else []
        if result.status == d.TAKEN:
            return self._refuse(c, m.id_taken_frame(), "id_taken")
        if result.status == d.FULL:
            return self._refuse(c, m.error_frame(m.CONNECTION_LIMIT_EXCEED), "limit")
        if result.status in ID_REFUSALS:
            message, code = ID_REFUSALS[result.status]
            return self._refuse(c, m.error_frame(message, code), code)
        c.state, c.registered = OPEN, True
        c.last_ping = c.refilled_at = now
        c.tokens = float(self.config.rate_burst)
        effects: list[Effect] = []
        old = self._by_id.get(peer_id)
        if old is not None and old is not c:
            effects += self._kick(old)
        if result.previous is not None and result.previous[0] == self.proc:
            previous = self._conns.get(result.previous[1])
            if previous is not None and previous is not c and previous is not old:
                effects += self._kick(previous)
        self._by_id[peer_id] = c
        self.counters["opened", result.status] += 1
        effects.append(Send(conn, m.OPEN_FRAME))
        effects.extend(Send(conn, frame) for frame in result.queued)
        effects.extend(Send(conn, frame, src) for frame, src in c.pending)
        c.pending.clear()
        return effects

    def unavailable(self, conn: int, peer_id: str) -> list[Effect]:
        """The directory could not answer a claim (Redis down): refuse, never crash."""
        c = self._conns.get(conn)
        if self._claiming.get(peer_id) is c:
            del self._claiming[peer_id]
        if c is None or c.state != CLAIMING:
            return []
        return self._refuse(c, m.error_frame(MSG_UNAVAILABLE, "unavailable"), "unavailable")

    def disconnected(self, conn: int) -> list[Effect]:
        c = self._conns.pop(conn, None)
        if c is None:
            return []
        self._sockets.closed(c.ip, c.network)
        c.state = CLOSED
        if self._claiming.get(c.peer_id) is c:
            del self._claiming[c.peer_id]
        if self._by_id.get(c.peer_id) is c:
            del self._by_id[c.peer_id]
        if c.registered:
            c.registered = False
            return [Release(conn, c.peer_id)]
        return []

    def kick(self, conn: int) -> list[Effect]:
        """Another process gave this connection's id to a newer proof or reconnect."""
        c = self._conns.get(conn)
        if c is None or c.state != OPEN:
            return []
        return self._kick(c)

    # --- frames ----------------------------------------------------------------------

    def receive(self, conn: int, text: str, now: int) -> list[Effect]:
        """A frame from an open connection."""
        c = self._conns.get(conn)
        if c is None or c.state != OPEN:
            return []
        limit = self.config.max_frame_bytes
        if len(text) > limit or (not text.isascii() and len(text.encode("utf-8")) > limit):
            return self._violation(c, MSG_TOO_LARGE, "too_large", CLOSE_TOO_BIG)
        tokens = c.tokens + (now - c.refilled_at) * self.config.rate_per_s / 1000.0
        c.tokens = min(float(self.config.rate_burst), tokens) - 1.0
        c.refilled_at = now
        if c.tokens < 0:
            return self._violation(c, MSG_RATE_LIMITED, "rate_limited", CLOSE_POLICY)
        message = m.parse(text)
        if message is None:
            self.counters["dropped", "bad_json"] += 1
            return []
        kind = message.type
        if kind == m.HEARTBEAT:
            c.last_ping = now
            return []
        if kind not in m.RELAYED:
            self.counters["dropped", "unknown_type"] += 1
            return []
        dst = message.dst
        if not dst:
            if kind == m.LEAVE:
                # The reference server forgets the sender here; we also close its socket
                # so that it cannot go on speaking for an id it gave up.
                c.state, c.registered = CLOSED, False
                self._forget(c)
                return [Release(conn, c.peer_id), Close(conn)]
            self.counters["dropped", "no_dst"] += 1
            return []
        if not isinstance(dst, str):
            self.counters["dropped", "bad_dst"] += 1
            return []
        frame = m.relay_frame(
            kind, c.peer_id, dst, message.payload, message.has_payload, message.fast
        )
        if frame is None:
            self.counters["dropped", "bad_json"] += 1
            return []
        target = self._by_id.get(dst)
        if target is not None and target.state == OPEN:
            self.counters["relayed", kind] += 1
            return [Send(target.conn, frame, c.peer_id)]
        deadline = now + self.config.expire_timeout_ms
        return [Route(c.peer_id, dst, frame, kind in m.QUEUED, deadline)]

    def routed(self, route: Route, status: str, now: int) -> list[Effect]:
        """The directory's answer to a :class:`Route`."""
        if status in (d.SENT, d.QUEUED):
            if route.notify:
                kind = "queued" if status == d.QUEUED else "relayed"
                self.counters[kind, m.frame_type(route.frame)] += 1
            return []
        if not route.notify:
            return []
        sender = self._by_id.get(route.src)
        if status == d.QUEUE_FULL:
            self.counters["refused", "queue_full"] += 1
            if sender is None or sender.state != OPEN:
                return []
            return [Send(sender.conn, m.error_frame(MSG_QUEUE_FULL, "queue_full"))]
        if status == d.DEAD:
            return self._leave(route.src, route.dst, now)
        return []

    def deliver(self, dst: str, src: str, frame: str, now: int) -> list[Effect]:
        """A frame routed to ``dst`` on this process (from the directory)."""
        target = self._by_id.get(dst) or self._claiming.get(dst)
        if target is not None and target.state == OPEN:
            return [Send(target.conn, frame, src)]
        if target is not None and target.state == CLAIMING:
            target.pending.append((frame, src))  # sent right after its OPEN
            return []
        return self._leave(src, dst, now)

    def send_failed(self, conn: int, src: str | None, now: int) -> list[Effect]:
        """Sending to ``conn`` failed: drop the socket and tell the sender it left."""
        c = self._conns.get(conn)
        effects: list[Effect] = []
        if c is not None and c.state == OPEN:
            c.state = CLOSED
            effects.append(Close(conn))
            if c.registered:
                c.registered = False
                effects.append(Release(conn, c.peer_id))
            self._forget(c)
        if src is not None and c is not None:
            effects += self._leave(src, c.peer_id, now)
        return effects

    # --- timers ----------------------------------------------------------------------

    def tick(self, now: int) -> list[Effect]:
        """Close connections that sent no HEARTBEAT within the alive timeout."""
        alive_ms = self.config.alive_timeout_ms
        effects: list[Effect] = []
        for c in [c for c in self._by_id.values() if now - c.last_ping >= alive_ms]:
            c.state = CLOSED
            self._forget(c)
            effects.append(Close(c.conn))
            if c.registered:
                c.registered = False
                effects.append(Release(c.conn, c.peer_id))
            self.counters["timed_out", ""] += 1
        return effects

    def expired(self, frames: list[str], now: int) -> list[Effect]:
        """Queued frames whose time ran out: one EXPIRE per (sender, destination)."""
        return self._expire(frames, now, "expired")

    def gone(self, route: Route, now: int) -> list[Effect]:
        """``route`` is for a peer that left a while ago and holds no socket: its sender
        learns at once (an OFFER gets EXPIRE now, not after the queue's wait, so the dialer's
        slot is free again); the rest of that dial (candidates) is dropped, not queued."""
        if not route.notify:
            return []
        if m.frame_type(route.frame) != m.OFFER:
            self.counters["dropped", "gone"] += 1
            return []
        return self._expire([route.frame], now, "gone")

    def unrouted(self, routes: list[Route], now: int) -> list[Effect]:
        """Redis did not take these routes: their senders get EXPIRE, as after a queue."""
        return self._expire([r.frame for r in routes if r.notify], now, "unrouted")

    def _expire(self, frames: list[str], now: int, counter: str) -> list[Effect]:
        seen: set[tuple[str, str]] = set()
        effects: list[Effect] = []
        for frame in frames:
            pair = m.src_dst(frame)
            if pair is None or pair in seen:
                continue
            seen.add(pair)
            src, dst = pair
            self.counters[counter, ""] += 1
            effects += self._to(src, m.server_frame(m.EXPIRE, dst, src), dst, now)
        return effects

    def enforce(self, blocks: Blocks) -> list[Effect]:
        """Blocks changed: close the open connections they now cover."""
        effects: list[Effect] = []
        for c in list(self._by_id.values()):
            if blocks.blocks(public_key=c.public_key, peer_id=c.peer_id, ip=c.ip):
                effects += self._violation(c, MSG_BLOCKED, "blocked", CLOSE_POLICY)
        return effects

    def close_all(self, conns: Iterable[int] | None = None) -> list[Effect]:
        """The registry may have lost these sockets' ids (Redis restarted, this process was
        taken for dead): each client is told and closed, so that it reconnects."""
        targets = self._conns.values() if conns is None else map(self._conns.get, conns)
        effects: list[Effect] = []
        for c in [c for c in targets if c is not None and c.state != CLOSED]:
            effects += self._violation(c, MSG_RESTART, "restart", CLOSE_RESTART)
        return effects

    # --- queries ---------------------------------------------------------------------

    def open_count(self) -> int:
        return len(self._by_id)

    def holdings(self) -> tuple[dict[str, int], dict[str, int]]:
        """id -> conn of the open registered sockets, and of those claiming their id."""
        held = {i: c.conn for i, c in self._by_id.items() if c.state == OPEN and c.registered}
        return held, {i: c.conn for i, c in self._claiming.items()}

    # --- internals -------------------------------------------------------------------

    def _refuse(self, c: Connection, frame: str, reason: str) -> list[Effect]:
        c.state = CLOSED
        self.counters["refused", reason] += 1
        return [Send(c.conn, frame), Close(c.conn)]

    def _violation(self, c: Connection, msg: str, code: str, close_code: int) -> list[Effect]:
        c.state = CLOSED
        self._forget(c)
        self.counters["refused", code] += 1
        effects: list[Effect] = [Send(c.conn, m.error_frame(msg, code)), Close(c.conn, close_code)]
        if c.registered:
            c.registered = False
            effects.append(Release(c.conn, c.peer_id))
        return effects

    def _kick(self, c: Connection) -> list[Effect]:
        c.state = CLOSED
        c.registered = False  # its id belongs to the newer connection: never release it
        self._forget(c)
        self.counters["replaced", ""] += 1
        return [Send(c.conn, m.id_taken_frame("replaced")), Close(c.conn)]

    def _forget(self, c: Connection) -> None:
        if self._by_id.get(c.peer_id) is c:
            del self._by_id[c.peer_id]

    def _leave(self, src: str, dst: str, now: int) -> list[Effect]:
        """Tell ``src`` that ``dst`` is gone (the reference's LEAVE on a failed socket)."""
        return self._to(src, m.server_frame(m.LEAVE, dst, src), dst, now)

    def _to(self, dst: str, frame: str, src: str, now: int) -> list[Effect]:
        """A server-made frame for ``dst``: sent if local, else routed, never queued."""
        target = self._by_id.get(dst)
        if target is not None and target.state == OPEN:
            return [Send(target.conn, frame)]
        return [Route(src, dst, frame, False, now, notify=False)]
