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
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from .dataconnection import DataConnection, new_connection_id
from .errors import DESTROYED, PEER_UNAVAILABLE, PeerJSError
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
    ) -> DataConnection:
        """Offer a DataConnection to ``peer`` (PeerJS defaults: binary, unreliable/unordered).

        Call it from the peer's event loop: the negotiation runs there in the background.
        """
        asyncio.get_running_loop()  # fail loudly when called from another thread
        if self.core.state.value == "destroyed":
            raise PeerJSError(DESTROYED, "this peer is destroyed")
        connection_id = new_connection_id()
        conn = self._new_connection(
            peer, connection_id, serialization, reliable, label or connection_id, metadata
        )
        conn.run(conn.start_as_originator(), "offer")
        return conn

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
    ) -> DataConnection:
        conn = DataConnection(
            peer,
            connection_id=connection_id,
            serialization=serialization,
            reliable=reliable,
            label=label,
            metadata=metadata,
            ice=self.ice,
            send_signal=self.signaling.send,
            on_closed=self._forget,
            max_message_size=self.max_message_size,
        )
        self._connections[(peer, connection_id)] = conn
        return conn

    def _forget(self, conn: DataConnection) -> None:
        self._connections.pop((conn.peer, conn.connection_id), None)
        self._lost.pop(conn.connection_id, None)

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
            for conn in [c for c in self._connections.values() if c.peer == event.src]:
                conn.run(conn.close(), "close on LEAVE")
        elif isinstance(event, PeerUnavailable):
            for conn in [c for c in self._connections.values() if c.peer == event.src]:
                if not conn.open:
                    conn.run(
                        conn._shutdown(PeerJSError(PEER_UNAVAILABLE, f"{event.src} is not there")),
                        "close on EXPIRE",
                    )

    def _on_offer(self, event: OfferReceived) -> None:
        offer = event.offer
        if offer.type != "data" or offer.serialization not in SERIALIZATIONS:
            logger.info(
                "peerjs: refused a %s offer (%s) from %s",
                offer.type,
                offer.serialization,
                event.src,
            )
            return
        old = self._connections.get((event.src, offer.connection_id))
        if old is not None:
            old.run(old.close(), "close on a repeated offer")
        conn = self._new_connection(
            event.src,
            offer.connection_id,
            offer.serialization,
            offer.reliable,
            offer.label,
            offer.metadata,
        )
        conn.run(conn.answer(offer), "answer")
        for lost in self._lost.pop(offer.connection_id, []):
            self._route(event.src, lost)
        # One taker: with on_connection set nobody calls accept(), and a queued reference
        # would keep every connection ever offered alive.
        if self.on_connection is not None:
            self.on_connection(conn)
        else:
            self._incoming.put_nowait(conn)

    def _route(self, src: str, event: Event) -> None:
        assert isinstance(event, AnswerReceived | CandidateReceived)
        payload = event.answer if isinstance(event, AnswerReceived) else event.candidate
        conn = self._connections.get((src, payload.connection_id))
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
