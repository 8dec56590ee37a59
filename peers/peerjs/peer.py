"""``Peer``: a PeerJS peer in Python (signaling + DataConnections), like PeerJS's ``Peer``.

    peer = Peer(ServerAddress("127.0.0.1", 9000), ice=IceConfig(host_addresses=("127.0.0.1",)))
    my_id = await peer.start()
    conn = peer.connect("other-id", serialization="raw", reliable=True)
    await conn.wait_open()
    await conn.send(b"hello")
    incoming = await peer.accept()

Routing follows PeerJS's ``Peer._handleMessage``: OFFER creates a connection (announced at
once, open later), ANSWER/CANDIDATE go to the connection named by ``connectionId`` or are kept
until it exists, LEAVE closes the remote peer's connections, EXPIRE fails the ones that were
never answered. Media offers are refused (logged): this peer only speaks data.

A connection may also be signaled through a :class:`~peers.peerjs.carrier.SignalCarrier`
instead of the server (``connect(..., carrier=...)``, :meth:`Peer.take_offer`): the same
negotiation, its messages carried by the carrier; the server's LEAVE and EXPIRE do not touch
it (the remote may well be away from the server: that is why the carrier is used).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

from . import messages as m
from .carrier import BYE, SignalCarrier
from .dataconnection import DataConnection, SendSignal, new_connection_id
from .errors import BAD_PAYLOAD, DESTROYED, PEER_UNAVAILABLE, PeerJSError
from .ice import IceConfig
from .serialization import DEFAULT_MAX_MESSAGE_SIZE, SERIALIZATIONS
from .signaling import (
    AnswerReceived,
    CandidateReceived,
    Destroyed,
    Event,
    OfferReceived,
    Opened,
    PeerLeft,
    PeerUnavailable,
    ServerAddress,
    SignalingCore,
    SignalingError,
    Timing,
    TokenProvider,
)
from .signaling_aio import SignalingClient

logger = logging.getLogger(__name__)
MAX_LOST_CONNECTIONS = 64
MAX_LOST_PER_CONNECTION = 64
MAX_ERRORS_KEPT = 100


def _through(carrier: SignalCarrier) -> SendSignal:
    """A connection's ``send_signal`` that goes through ``carrier`` (no ``dst``: the
    carrier knows its peer)."""

    def send(kind: str, payload: dict[str, Any], dst: str) -> None:
        carrier.send(kind, payload)

    return send


class Peer:
    """A PeerJS peer. ``token`` may be a provider ``(peer_id, now_ms) -> token`` (key-bound ids)."""

    def __init__(
        self,
        server: ServerAddress,
        *,
        peer_id: str | None = None,
        token: str | TokenProvider | None = None,
        ice: IceConfig | None = None,
        timing: Timing | None = None,
        on_connection: Callable[[DataConnection], None] | None = None,
        on_signaling_event: Callable[[Event], None] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.ice = ice or IceConfig()
        # The largest message a binary connection reassembles from chunks (each connection
        # may hold a few unfinished ones): a peer that only needs small messages says so.
        self.max_message_size = max_message_size
        self.core = SignalingCore(server, peer_id=peer_id, token=token, timing=timing)
        self.signaling = SignalingClient(self.core, self._on_event)
        self.on_connection = on_connection
        self.on_signaling_event = on_signaling_event
        self.errors: deque[SignalingError] = deque(maxlen=MAX_ERRORS_KEPT)
        self._connections: dict[tuple[str, str], DataConnection] = {}
        # connections signaled through a carrier instead of the server
        self._carriers: dict[tuple[str, str], SignalCarrier] = {}
        self.carrier_errors = 0  # carried messages refused (bad payload, wrong connection)
        self._lost: OrderedDict[str, list[Event]] = OrderedDict()
        self._incoming: asyncio.Queue[DataConnection] = asyncio.Queue()
        self._opened = asyncio.Event()
        self._destroyed = asyncio.Event()

    @property
    def id(self) -> str | None:
        return self.core.peer_id

    @property
    def open(self) -> bool:
        return self.core.is_open

    def connections(self) -> list[DataConnection]:
        return list(self._connections.values())

    async def start(self, timeout: float = 15.0) -> str:
        """Connect to the server; returns this peer's id once the server opened it."""
        self.signaling.start()
        opened = asyncio.ensure_future(self._opened.wait())
        destroyed = asyncio.ensure_future(self._destroyed.wait())
        try:
            await asyncio.wait({opened, destroyed}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            opened.cancel()
            destroyed.cancel()
        if not self._opened.is_set():
            last = self.errors[-1] if self.errors else None
            detail = f"{last.code}: {last.message}" if last else f"no OPEN in {timeout}s"
            raise PeerJSError(last.code if last else DESTROYED, f"could not open: {detail}")
        assert self.id is not None
        return self.id

    def connect(
        self,
        peer: str,
        *,
        serialization: str = "binary",
        reliable: bool = False,
        label: str | None = None,
        metadata: Any = None,
        carrier: SignalCarrier | None = None,
    ) -> DataConnection:
        """Offer a DataConnection to ``peer`` (PeerJS defaults: binary, unreliable/unordered).

        Its signaling goes through the server, or through ``carrier`` when one is given
        (the server need not be reachable then). Call it from the peer's event loop: the
        negotiation runs there in the background.
        """
        asyncio.get_running_loop()  # fail loudly when called from another thread
        if self.core.state.value == "destroyed":
            raise PeerJSError(DESTROYED, "this peer is destroyed")
        connection_id = new_connection_id()
        conn = self._new_connection(
            peer, connection_id, serialization, reliable, label or connection_id, metadata, carrier
        )
        conn.run(conn.start_as_originator(), "offer")
        return conn

    def take_offer(
        self, src: str, payload: Mapping[str, Any], carrier: SignalCarrier
    ) -> DataConnection | None:
        """An OFFER from ``src`` that came through ``carrier`` (its payload is PeerJS's):
        answered through the carrier, announced like an offer from the server
        (``on_connection`` or :meth:`accept`), and returned. None for an offer this peer
        refuses (media, an unknown serialization); ``bad_payload`` for one that is no offer."""
        asyncio.get_running_loop()
        if self.core.state.value == "destroyed":
            raise PeerJSError(DESTROYED, "this peer is destroyed")
        return self._offer(src, m.Offer.parse(payload), carrier)

    async def accept(self) -> DataConnection:
        """The next connection a remote peer offered (it may not be open yet); only for a
        peer made without ``on_connection``, which takes them instead."""
        return await self._incoming.get()

    async def destroy(self) -> None:
        for conn in list(self._connections.values()):
            await conn.close()
        await self.signaling.close()
        self._destroyed.set()

    async def __aenter__(self) -> Peer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    def _new_connection(
        self,
        peer: str,
        connection_id: str,
        serialization: str,
        reliable: bool,
        label: str,
        metadata: Any,
        carrier: SignalCarrier | None = None,
    ) -> DataConnection:
        send_signal: SendSignal = self.signaling.send
        if carrier is not None:
            send_signal = _through(carrier)
        conn = DataConnection(
            peer,
            connection_id=connection_id,
            serialization=serialization,
            reliable=reliable,
            label=label,
            metadata=metadata,
            ice=self.ice,
            send_signal=send_signal,
            on_closed=self._forget,
            max_message_size=self.max_message_size,
        )
        self._connections[(peer, connection_id)] = conn
        if carrier is not None:
            self._carriers[(peer, connection_id)] = carrier
            carrier.on_message = lambda kind, payload: self._carried(conn, kind, payload)
        return conn

    def _forget(self, conn: DataConnection) -> None:
        key = (conn.peer, conn.connection_id)
        if self._connections.get(key) is conn:
            del self._connections[key]
            carrier = self._carriers.pop(key, None)
            if carrier is not None:
                if not conn.was_open and not conn.bye_received:
                    # Given up before it opened: the remote may stop waiting too.
                    carrier.send(BYE, {"connectionId": conn.connection_id})
                carrier.close()
        self._lost.pop(conn.connection_id, None)

    def _carried(self, conn: DataConnection, kind: str, payload: Mapping[str, Any]) -> None:
        """A message for ``conn`` through its carrier."""
        try:
            if kind == m.ANSWER:
                answer = m.Answer.parse(payload)
                self._check_carried(conn, answer.connection_id)
                conn.run(conn.handle_answer(answer), "answer")
            elif kind == m.CANDIDATE:
                candidate = m.Candidate.parse(payload)
                self._check_carried(conn, candidate.connection_id)
                conn.run(conn.handle_candidate(candidate.candidate), "candidate")
            elif kind == BYE:
                if not conn.open:
                    conn.bye_received = True
                    reason = PeerJSError(PEER_UNAVAILABLE, f"{conn.peer} gave the connection up")
                    conn.run(conn._shutdown(reason), "close on BYE")
            elif kind != m.OFFER:  # a second offer for a negotiated connection: ignored
                raise PeerJSError(BAD_PAYLOAD, f"{kind!r} is not a carried message")
        except PeerJSError as exc:
            self.carrier_errors += 1
            logger.info("peerjs: refused a carried %s from %s: %s", kind, conn.peer, exc)

    @staticmethod
    def _check_carried(conn: DataConnection, connection_id: str) -> None:
        if connection_id != conn.connection_id:
            raise PeerJSError(BAD_PAYLOAD, f"{connection_id} is not this carrier's connection")

    def _on_event(self, event: Event) -> None:
        self._handle(event)
        if self.on_signaling_event is not None:
            self.on_signaling_event(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, Opened):
            self._opened.set()
        elif isinstance(event, SignalingError):
            self.errors.append(event)
            log = logger.warning if event.fatal else logger.info
            log("peerjs signaling: %s: %s", event.code, event.message)
        elif isinstance(event, Destroyed):
            self._destroyed.set()
        elif isinstance(event, OfferReceived):
            self._on_offer(event)
        elif isinstance(event, AnswerReceived | CandidateReceived):
            self._route(event.src, event)
        elif isinstance(event, PeerLeft):
            for conn in self._served(event.src):
                conn.run(conn.close(), "close on LEAVE")
        elif isinstance(event, PeerUnavailable):
            for conn in self._served(event.src):
                if not conn.open:
                    conn.run(
                        conn._shutdown(PeerJSError(PEER_UNAVAILABLE, f"{event.src} is not there")),
                        "close on EXPIRE",
                    )

    def _served(self, src: str) -> list[DataConnection]:
        """The connections with ``src`` that the server signals (not carried ones)."""
        return [
            conn
            for key, conn in self._connections.items()
            if conn.peer == src and key not in self._carriers
        ]

    def _on_offer(self, event: OfferReceived) -> None:
        self._offer(event.src, event.offer, None)

    def _offer(
        self, src: str, offer: m.Offer, carrier: SignalCarrier | None
    ) -> DataConnection | None:
        if offer.type != "data" or offer.serialization not in SERIALIZATIONS:
            logger.info(
                "peerjs: refused a %s offer (%s) from %s",
                offer.type,
                offer.serialization,
                src,
            )
            return None
        old = self._connections.get((src, offer.connection_id))
        if old is not None:
            old.run(old.close(), "close on a repeated offer")
            self._forget(old)
        conn = self._new_connection(
            src,
            offer.connection_id,
            offer.serialization,
            offer.reliable,
            offer.label,
            offer.metadata,
            carrier,
        )
        conn.run(conn.answer(offer), "answer")
        if carrier is None:
            for lost in self._lost.pop(offer.connection_id, []):
                self._route(src, lost)
        # One taker: with on_connection set nobody calls accept(), and a queued reference
        # would keep every connection ever offered alive.
        if self.on_connection is not None:
            self.on_connection(conn)
        else:
            self._incoming.put_nowait(conn)
        return conn

    def _route(self, src: str, event: Event) -> None:
        assert isinstance(event, AnswerReceived | CandidateReceived)
        payload = event.answer if isinstance(event, AnswerReceived) else event.candidate
        key = (src, payload.connection_id)
        conn = self._connections.get(key)
        if key in self._carriers:
            return  # its carrier brings its answer and candidates
        if conn is None:
            # Kept for a connection whose OFFER is still to come (PeerJS's lost messages).
            kept = self._lost.setdefault(payload.connection_id, [])
            if len(kept) < MAX_LOST_PER_CONNECTION:
                kept.append(event)
            while len(self._lost) > MAX_LOST_CONNECTIONS:
                self._lost.popitem(last=False)
        elif isinstance(event, AnswerReceived):
            conn.run(conn.handle_answer(event.answer), "answer")
        else:
            conn.run(conn.handle_candidate(event.candidate.candidate), "candidate")
