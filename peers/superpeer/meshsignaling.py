"""Signaling through the mesh for the super-peer (docs/superpeer.md "Signaling through the
mesh"): the sans-IO :class:`~peers.protocol.meshsignal.MeshSignal` beside the node, and the
sessions that carry PeerJS connections' OFFER/ANSWER/CANDIDATE through it.

The service feeds it the node's ``Opened``/``Closed`` and the ``signal``/``reach`` content
frames; its frames go out with the node's ``send_content``; a neighbour's bad frame is a
violation of that connection. A message for this super-peer is handed to the PeerJS client
(``take_offer`` for an offer, the session's carrier for the rest), so the connection that
results is an aiortc DataConnection like any other. It relays for others on its own
(``MeshSignal`` decides). An offer of its own that nobody answered in the discovery time is
sent once more with budget 5 (docs/protocol.md "Routing": the expanding ring).

Message payloads are PeerJS's server payloads, verbatim: ``offer`` is an OFFER's payload,
``answer`` an ANSWER's, ``candidate`` a CANDIDATE's, ``bye`` ``{connectionId}``
(docs/protocol.md "PeerJS connections through the mesh").
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.peerjs import messages as m
from peers.peerjs.carrier import BYE, OnMessage, SignalCarrier
from peers.peerjs.dataconnection import DataConnection
from peers.peerjs.errors import PeerJSError
from peers.protocol.errors import NO_ROUTE, ProtocolError
from peers.protocol.meshsignal import (
    MeshSignal,
    SignalDeliver,
    SignalDrop,
    SignalLimits,
    SignalSend,
)
from peers.protocol.meshsignal_messages import (
    CAP_SIGNAL,
    KIND_OFFER,
    SignalMessage,
    new_session_id,
)
from peers.protocol.wire import Reach, Signal

logger = logging.getLogger(__name__)

TO_PEERJS = {"offer": m.OFFER, "answer": m.ANSWER, "candidate": m.CANDIDATE, "bye": BYE}
FROM_PEERJS = {v: k for k, v in TO_PEERJS.items()}
RETRY_HOPS = 5  # an unanswered offer is sent once more with this budget (three hops of flood)
MAX_SESSIONS = 64  # mesh-signaled connections negotiating or open at once

SendFrame = Callable[[str, Signal | Reach], bool]
Violation = Callable[[str, str, str], None]
Connect = Callable[[str, SignalCarrier, Any], DataConnection]  # peer id, carrier, metadata
TakeOffer = Callable[[str, Mapping[str, Any], SignalCarrier], DataConnection | None]


@dataclass
class MeshSignalingStats:
    dials: int = 0  # connections this super-peer offered through the mesh
    retries: int = 0  # offers sent again with budget 5
    unanswered: int = 0  # offers given up (nothing came back after the retry either)
    offers: int = 0  # offers taken for this super-peer (answered with aiortc)
    refused: Counter[str] = field(default_factory=Counter)  # offers and messages not taken

    def as_json(self, core: MeshSignal) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k != "refused"}
        out["refused"] = dict(self.refused)
        stats = core.stats
        out["core"] = {
            "delivered": stats.delivered,
            "sent": stats.sent,
            "relayed": stats.relayed,
            "flooded": stats.flooded,
            "reach_sent": stats.reach_sent,
            "dropped": dict(stats.dropped),
        }
        return out


class Session:
    """The carrier of one mesh-signaled connection (a :class:`SignalCarrier`)."""

    def __init__(self, owner: MeshSignaling, peer_id: str, sid: str, outbound: bool) -> None:
        self.owner = owner
        self.peer_id = peer_id
        self.sid = sid
        self.outbound = outbound
        self.on_message: OnMessage | None = None
        self.offer: dict[str, Any] | None = None  # our offer's payload, for the retry
        self.heard = False  # a message came back from the peer
        self.retried = False
        self.closed = False

    def send(self, kind: str, payload: dict[str, Any]) -> None:
        if not self.closed:
            self.owner._send(self, kind, payload)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner._forget(self)


class MeshSignaling:
    def __init__(
        self,
        peer_id: str,
        key: Ed25519PrivateKey,
        *,
        send_frame: SendFrame,
        violation: Violation,
        clock: Callable[[], int],
        blocked: Callable[[str], bool] = lambda peer_id: False,
        limits: SignalLimits | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.clock = clock
        self.core = MeshSignal(peer_id=peer_id, private_key=key, limits=limits, now=clock())
        self.send_frame = send_frame
        self.violation = violation
        self.blocked = blocked
        # Set by the service once its PeerJS peer exists.
        self.connect: Connect | None = None
        self.take_offer: TakeOffer | None = None
        self.sessions: dict[tuple[str, str], Session] = {}  # (peer id, sid) -> session
        self.offers: dict[str, Session] = {}  # id of an offer of ours -> its session
        self.stats = MeshSignalingStats()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None

    # --- the node's connections and frames ---

    def opened(self, conn_id: str, peer_id: str, caps: tuple[str, ...] | list[str]) -> None:
        self.core.connected(conn_id, peer_id, caps, self.clock())
        self._drain()

    def closed(self, conn_id: str) -> None:
        self.core.disconnected(conn_id, self.clock())
        self._drain()

    def received(self, conn_id: str, frame: Signal | Reach) -> None:
        self.core.receive(conn_id, frame, self.clock())
        self._drain()

    def reachable(self) -> bool:
        """Whether any neighbour takes signal frames (a dial through the mesh may work)."""
        return any(n.signal for n in self.core.neighbours.values())

    # --- dialing ---

    def dial(self, peer_id: str, metadata: Any = None) -> DataConnection:
        """Offer a connection to ``peer_id`` through the mesh (``raw``, reliable, as every
        dial of the super-peer; ``metadata``: what it is for); the caller waits for it to
        open like any other."""
        if self.connect is None:
            raise RuntimeError("no PeerJS peer to connect with yet")
        session = Session(self, peer_id, new_session_id(), outbound=True)
        self.sessions[(peer_id, session.sid)] = session
        self.stats.dials += 1
        return self.connect(peer_id, session, metadata)

    # --- time ---

    def tick(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.tick(self.clock())
        self._drain()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for session in list(self.sessions.values()):
            session.closed = True
        self.sessions.clear()
        self.offers.clear()

    def _rearm(self) -> None:
        now = self.clock()
        due = self.core.next_deadline(now)
        if self._timer is not None and self._timer_at is not None and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # driven by hand (tests without a loop tick it themselves)
        self._timer_at = due
        self._timer = loop.call_later(max(0, due - now) / 1000, self.tick)

    # --- what the core decided ---

    def _drain(self) -> None:
        while actions := self.core.take_actions():
            for action in actions:
                if isinstance(action, SignalSend):
                    self.send_frame(action.conn_id, action.frame)
                elif isinstance(action, SignalDeliver):
                    self._delivered(action.message)
                elif isinstance(action, SignalDrop):
                    self._dropped(action)
        self._rearm()

    def _dropped(self, drop: SignalDrop) -> None:
        if drop.violation and drop.conn_id is not None:
            self.violation(drop.conn_id, drop.code, drop.reason)
            return
        if drop.conn_id is None and drop.id is not None:
            session = self.offers.pop(drop.id, None)
            if session is not None and drop.code == NO_ROUTE:
                self._retry(session)

    def _retry(self, session: Session) -> None:
        if session.closed or session.heard or session.offer is None:
            return
        if session.retried:
            self.stats.unanswered += 1
            return
        session.retried = True
        self.stats.retries += 1
        self._send(session, m.OFFER, session.offer, hops=RETRY_HOPS)

    def _delivered(self, message: SignalMessage) -> None:
        kind = TO_PEERJS[message.kind]
        payload = message.payload
        if not isinstance(payload, dict):
            self.stats.refused["bad_payload"] += 1  # signed, but no PeerJS message
            return
        session = self.sessions.get((message.from_peer, message.sid))
        if session is not None:
            session.heard = True
            if session.on_message is not None and not session.closed:
                session.on_message(kind, payload)
            return
        if kind != m.OFFER:
            self.stats.refused["unknown_session"] += 1
            return
        self._offered(message, payload)

    def _offered(self, message: SignalMessage, payload: dict[str, Any]) -> None:
        peer_id = message.from_peer
        if self.blocked(peer_id):
            self.stats.refused["blocked"] += 1
            return
        if len(self.sessions) >= MAX_SESSIONS or self.take_offer is None:
            self.stats.refused["busy"] += 1
            return
        session = Session(self, peer_id, message.sid, outbound=False)
        session.heard = True
        self.sessions[(peer_id, message.sid)] = session
        try:
            conn = self.take_offer(peer_id, payload, session)
        except PeerJSError as exc:
            conn = None
            self.stats.refused[exc.code] += 1
        else:
            if conn is None:
                self.stats.refused["unsupported"] += 1
            else:
                self.stats.offers += 1
        if conn is None:
            session.close()

    # --- a session's messages ---

    def _send(
        self, session: Session, kind: str, payload: dict[str, Any], hops: int | None = None
    ) -> None:
        mesh_kind = FROM_PEERJS.get(kind)
        if mesh_kind is None:
            logger.info("mesh signaling: nothing to carry a %s in", kind)
            return
        try:
            msg_id = self.core.send(
                to=session.peer_id,
                sid=session.sid,
                kind=mesh_kind,
                payload=payload,
                now=self.clock(),
                hops=hops,
            )
        except ProtocolError as exc:  # e.g. an SDP too large for a message
            self.stats.refused[exc.code] += 1
            logger.warning("mesh signaling: could not send a %s: %s", mesh_kind, exc.message)
            return
        if mesh_kind == KIND_OFFER:
            session.offer = payload
            self.offers[msg_id] = session
        self._drain()

    def _forget(self, session: Session) -> None:
        if self.sessions.get((session.peer_id, session.sid)) is session:
            del self.sessions[(session.peer_id, session.sid)]
        for msg_id in [i for i, s in self.offers.items() if s is session]:
            del self.offers[msg_id]


__all__ = ["CAP_SIGNAL", "MeshSignaling", "MeshSignalingStats", "Session"]
