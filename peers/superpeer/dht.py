"""The DHT in the super-peer (docs/superpeer.md "DHT", docs/protocol.md "DHT").

The sans-IO :class:`~peers.protocol.dht.Dht` runs over the super-peer's connections: the
service feeds it every connection whose hello listed ``dht`` (``seen`` with the verified
ticket), the ``dht_*`` content frames, failed dials and each new ticket (the peer record's
republish). The core's sends go on the open connection to that peer; a request for a peer it
is not connected to waits here (:class:`Courier`) while the service dials it (the signaling
server, or the mesh when the server is out of reach) and goes out once the connection opens.
An always-on node with a stable id, it answers ``dht_find_node`` / ``dht_find_value`` and
keeps what is stored at it within the core's bounds (4096 records, 64 per publisher, 20 per
manifest); it also provides the manifests it holds (provider records, republished by the core
every 15 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.dht import Dht, DhtDone, DhtDrop, DhtSend
from peers.protocol.dht_records import CAP_DHT, DhtLimits
from peers.protocol.envelope import JsonObject
from peers.protocol.errors import UNEXPECTED_FRAME, ProtocolError
from peers.protocol.mesh import PEER_UNAVAILABLE
from peers.protocol.wire import DhtFrame

logger = logging.getLogger(__name__)

MAX_PROVIDED = 64  # every node keeps at most 64 records per publisher (DhtLimits.max_per_publisher)
HELD_EVERY_MS = 30_000  # what is held is looked at this often
# One provider record stored every 2 s at most: each store reaches the same few closest nodes,
# which take 1 dht_store per second from a peer (bursts of 10) and count more as a violation.
PROVIDE_GAP_MS = 2_000
MAX_SLEEP_S = 1.0
GONE_MAX = 4096  # peers remembered as gone (oldest forgotten first)

SendTo = Callable[[str, DhtFrame], bool]  # (peer id, frame) -> sent on an open connection
Dial = Callable[[str], None]
Violation = Callable[[str, str, str], None]  # (peer id, code, message)
Held = Callable[[], dict[str, int]]  # manifest id -> chunks held
# (peer id, its ticket's issued_at) -> True when another part knows that ticket to be stale
KnownGone = Callable[[str, int], bool]


def issued_at(ticket: JsonObject | None) -> int:
    """A contact ticket's ``issued_at`` (0 when it has none)."""
    body = ticket.get("body") if ticket is not None else None
    value = body.get("issued_at") if isinstance(body, dict) else None
    return value if type(value) is int else 0


@dataclass
class _Queued:
    frame: DhtFrame
    at: int


class Courier:
    """Frames for peers not connected, while they are dialed (the page's DhtCourier):
    at most ``max_dials`` dials at once, each frame kept at most ``wait_ms`` (the core's
    request timeout, dialing included)."""

    def __init__(self, *, max_dials: int = 8, wait_ms: int = 5_000, max_queued: int = 32) -> None:
        self.max_dials = max_dials
        self.wait_ms = wait_ms
        self.max_queued = max_queued
        self.queued: dict[str, list[_Queued]] = {}
        self.dialing: dict[str, int] = {}

    def route(
        self, peer_id: str, frame: DhtFrame, *, connected: bool, answer: bool, now: int
    ) -> str:
        """``send``, ``dial`` (dial it now), ``queued`` or ``drop``."""
        if connected:
            return "send"
        if answer:
            return "drop"  # the asker went away: an answer goes back only where it came from
        queue = self.queued.setdefault(peer_id, [])
        if len(queue) >= self.max_queued:
            return "drop"
        queue.append(_Queued(frame, now))
        if peer_id in self.dialing or len(self.dialing) >= self.max_dials:
            return "queued"
        self.dialing[peer_id] = now
        return "dial"

    def opened(self, peer_id: str) -> list[DhtFrame]:
        self.dialing.pop(peer_id, None)
        return [q.frame for q in self.queued.pop(peer_id, [])]

    def failed(self, peer_id: str) -> bool:
        had = peer_id in self.queued or peer_id in self.dialing
        self.queued.pop(peer_id, None)
        self.dialing.pop(peer_id, None)
        return had

    def sweep(self, now: int) -> tuple[list[str], list[str]]:
        """(peers whose frames waited too long, peers to dial now in freed slots)."""
        expired: list[str] = []
        for peer_id, queue in list(self.queued.items()):
            left = [q for q in queue if now - q.at < self.wait_ms]
            if left:
                self.queued[peer_id] = left
            else:
                del self.queued[peer_id]
                self.dialing.pop(peer_id, None)
                expired.append(peer_id)
        for peer_id, since in list(self.dialing.items()):
            if now - since >= self.wait_ms:
                del self.dialing[peer_id]
                self.queued.pop(peer_id, None)
                if peer_id not in expired:
                    expired.append(peer_id)
        dial: list[str] = []
        for peer_id in self.queued:
            if len(self.dialing) >= self.max_dials:
                break
            if peer_id not in self.dialing:
                self.dialing[peer_id] = now
                dial.append(peer_id)
        return expired, dial


@dataclass
class SuperPeerDhtStats:
    sent: int = 0
    dials: int = 0
    unreachable: int = 0
    gone_skipped: int = 0  # requests failed at once: signaling said the peer is not there
    provided: int = 0
    lookups: dict[str, int] = field(default_factory=dict)  # "kind ok|code" -> count
    violations: dict[str, int] = field(default_factory=dict)
    late_answers: int = 0  # answers to no request (mostly after their request timed out)

    def as_json(self, core: Dht) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(self).items()
        }
        s = core.stats
        out["core"] = {
            "requests_in": s.requests_in,
            "requests_out": s.requests_out,
            "answers_in": s.answers_in,
            "timeouts": s.timeouts,
            "stored": s.stored,
            "lookups": s.lookups,
            "dropped": dict(s.dropped),
        }
        out["memory"] = core.memory()
        return out


class SuperPeerDht:
    def __init__(
        self,
        peer_id: str,
        key: Ed25519PrivateKey,
        community: str,
        ticket: JsonObject,
        *,
        send_to: SendTo,
        connected: Callable[[str], bool],
        dial: Dial,
        violation: Violation,
        held: Held,
        clock: Callable[[], int],
        limits: DhtLimits | None = None,
        known_gone: KnownGone | None = None,
    ) -> None:
        self.clock = clock
        self.core = Dht(
            peer_id=peer_id,
            community=community,
            private_key=key,
            ticket=ticket,
            limits=limits,
            now=clock(),
        )
        self.send_to = send_to
        self.connected = connected
        self.dial = dial
        self.violation = violation
        self.held = held
        self.known_gone = known_gone
        # peer id -> issued_at of the newest ticket of it known when signaling answered that
        # it is not there: not dialed again until a newer ticket of it (or its connection)
        # comes, as the peer book does (docs/superpeer.md "DHT").
        self.gone: dict[str, int] = {}
        self._dialed: dict[str, int] = {}  # peer id -> issued_at of the contact being dialed
        self.courier = Courier(wait_ms=self.core.limits.request_timeout_ms)
        self.provided: dict[str, int] = {}  # manifest -> chunks provided
        self._providing: dict[int, tuple[str, int]] = {}  # lookup -> (manifest, chunks)
        self.next_held_at = 0
        self.next_provide_at = 0
        self.want: dict[str, int] = {}  # what is held: manifest -> chunks (the provided set)
        self.stats = SuperPeerDhtStats()
        self.wake = asyncio.Event()

    # --- inputs from the service ---

    def opened(self, peer_id: str, caps: Iterable[str], ticket: JsonObject | None) -> None:
        self.gone.pop(peer_id, None)
        self._dialed.pop(peer_id, None)
        for frame in self.courier.opened(peer_id):
            self._deliver(peer_id, frame)
        if CAP_DHT in caps and ticket is not None:
            self.core.seen(ticket, self.clock())
        self.flush()

    def received(self, peer_id: str, frame: DhtFrame) -> None:
        self.core.receive(peer_id, frame, self.clock())
        self.flush()

    def dial_failed(self, peer_id: str, reason: str | None = None) -> None:
        """A dial failed; ``peer_unavailable`` (signaling says the peer is not there) also
        takes it out of the table and keeps it from being dialed again for that ticket."""
        dialed = self._dialed.pop(peer_id, 0)
        if reason == PEER_UNAVAILABLE:
            self._mark_gone(peer_id, dialed)
        if self.courier.failed(peer_id):
            self.stats.unreachable += 1
            self.core.unreachable(peer_id, self.clock())
            self.flush()

    def set_ticket(self, ticket: JsonObject) -> None:
        """A new ticket: in frames from now on, and stored as the peer record."""
        self.core.set_ticket(ticket, self.clock())
        self.flush()

    def find_peer(self, peer_id: str) -> int:
        lookup = self.core.find_peer(peer_id, self.clock())
        self.flush()
        return lookup

    def find_providers(self, manifest: str) -> int:
        lookup = self.core.find_providers(manifest, self.clock())
        self.flush()
        return lookup

    def peer_left(self, peer_id: str) -> None:
        """The peer said ``bye leaving``: out of the table, so that no answer names it to
        others (who would each dial it), and its ticket is not dialed again."""
        self._mark_gone(peer_id, 0)

    def _mark_gone(self, peer_id: str, issued: int) -> None:
        known = self.core.table.get(peer_id)
        if known is not None:
            issued = max(issued, known.issued_at)
            self.core.table.remove(peer_id)  # a spare takes its place
        self.gone[peer_id] = max(self.gone.pop(peer_id, 0), issued)
        while len(self.gone) > GONE_MAX:
            del self.gone[next(iter(self.gone))]

    def is_gone(self, peer_id: str, ticket: JsonObject | None) -> bool:
        """True when ``ticket`` is no newer than the one signaling said was not there (here
        or, through ``known_gone``, in the peer book)."""
        issued = issued_at(ticket)
        at = self.gone.get(peer_id)
        if at is not None and issued <= at:
            return True
        return self.known_gone is not None and self.known_gone(peer_id, issued)

    # --- the core's decisions ---

    def flush(self) -> None:
        while actions := self.core.take_actions():
            for action in actions:
                if isinstance(action, DhtSend):
                    self._send(action)
                elif isinstance(action, DhtDone):
                    self._done(action)
                elif isinstance(action, DhtDrop):
                    self._drop(action)
        self.wake.set()

    def _send(self, action: DhtSend) -> None:
        connected = self.connected(action.peer_id)
        if (
            not connected
            and action.ticket is not None
            and self.is_gone(action.peer_id, action.ticket)
        ):
            # Not dialed: its request fails now and the lookup asks the next contact.
            self.stats.gone_skipped += 1
            self.core.unreachable(action.peer_id, self.clock())
            return
        how = self.courier.route(
            action.peer_id,
            action.frame,
            connected=connected,
            answer=action.ticket is None,
            now=self.clock(),
        )
        if how == "send":
            self._deliver(action.peer_id, action.frame)
            return
        if how in ("dial", "queued"):
            issued = issued_at(action.ticket)
            self._dialed[action.peer_id] = max(self._dialed.get(action.peer_id, 0), issued)
        if how == "dial":
            self.stats.dials += 1
            self.dial(action.peer_id)

    def _deliver(self, peer_id: str, frame: DhtFrame) -> None:
        if self.send_to(peer_id, frame):
            self.stats.sent += 1
        else:  # gone between the decision and the send: its requests fail now
            self.core.unreachable(peer_id, self.clock())

    def _done(self, action: DhtDone) -> None:
        outcome = "ok" if action.ok else (action.code or "failed")
        label = f"{action.kind} {outcome}"
        self.stats.lookups[label] = self.stats.lookups.get(label, 0) + 1
        if action.lookup in self._providing:
            manifest, chunks = self._providing.pop(action.lookup)
            if action.ok:
                self.provided[manifest] = chunks
                self.stats.provided += 1
            else:
                self.core.unprovide(manifest)  # tried again at the next round

    def _drop(self, action: DhtDrop) -> None:
        """A violation counts against the connection like a bad frame, except an answer to no
        request (as in the page's adapter): under load that is mostly an honest answer that came
        after its request timed out, and the node's frame limits bound the rest."""
        if not action.violation or action.peer_id is None:
            return
        if action.code == UNEXPECTED_FRAME:
            self.stats.late_answers += 1
            return
        self.stats.violations[action.code] = self.stats.violations.get(action.code, 0) + 1
        self.violation(action.peer_id, action.code, f"dht: {action.reason}")

    # --- provider records of what is held ---

    def provide_held(self, now: int) -> None:
        """Look at what is held (most chunks first, at most MAX_PROVIDED): stop republishing
        what is gone, and provide the next manifest not provided yet (or whose chunks
        changed), one every PROVIDE_GAP_MS."""
        held = sorted((-c, m) for m, c in self.held().items() if c > 0)
        self.want = {m: -c for c, m in held[:MAX_PROVIDED]}
        for manifest in [m for m in self.provided if m not in self.want]:
            self.core.unprovide(manifest)
            del self.provided[manifest]
        self.provide_next(now)

    def provide_next(self, now: int) -> None:
        if now < self.next_provide_at:
            return
        busy = {m for m, _ in self._providing.values()}
        for manifest, chunks in self.want.items():
            if self.provided.get(manifest) == chunks or manifest in busy:
                continue
            try:
                lookup = self.core.provide(manifest, chunks, now)
            except ProtocolError as exc:
                logger.info("not provided %s: %s", manifest, exc.code)
                continue
            self._providing[lookup] = (manifest, chunks)
            self.next_provide_at = now + PROVIDE_GAP_MS
            break
        self.flush()

    # --- time ---

    async def run(self, stopping: asyncio.Event) -> None:
        """Ticks at the core's deadlines; looks at what is held every 30 s and provides it
        one manifest every 2 s."""
        while not stopping.is_set():
            now = self.clock()
            try:
                self.core.tick(now)
                expired, dial = self.courier.sweep(now)
                for peer_id in expired:
                    self._dialed.pop(peer_id, None)
                    self.core.unreachable(peer_id, now)
                for peer_id in dial:
                    self.stats.dials += 1
                    self.dial(peer_id)
                if len(self.core.table) > 0:
                    if now >= self.next_held_at:
                        self.next_held_at = now + HELD_EVERY_MS
                        self.provide_held(now)
                    else:
                        self.provide_next(now)
                self.flush()
            except Exception:
                logger.exception("dht tick failed")
            self.wake.clear()
            delay = max(0.01, min(MAX_SLEEP_S, (self.core.next_deadline(now) - now) / 1000))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
