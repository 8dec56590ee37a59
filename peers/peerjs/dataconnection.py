"""A PeerJS DataConnection on an aiortc RTCPeerConnection (asyncio).

Negotiation mirrors PeerJS's ``Negotiator``: the originator creates the data channel
(``ordered = reliable``), gathers, and sends OFFER; the other side answers with ANSWER.
aiortc does not trickle: its descriptions already carry every local candidate, so this side
never sends CANDIDATE, but it applies the browser's trickled ones (queued until the remote
description is set). Framing is :mod:`peers.peerjs.serialization`; sending waits while the
channel's ``bufferedAmount`` is above ``high_water`` (the ``bufferedamountlow`` event wakes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from . import messages as m
from .errors import CONNECTION_CLOSED, NEGOTIATION_FAILED, NOT_OPEN, PeerJSError
from .ice import IceConfig, gather_on_configured_addresses
from .serialization import DEFAULT_MAX_MESSAGE_SIZE, CloseRequested, Codec, Data, codec_for

logger = logging.getLogger(__name__)

HIGH_WATER = 8 * 1024 * 1024  # PeerJS's MAX_BUFFERED_AMOUNT
LOW_WATER = 4 * 1024 * 1024  # PeerJS waits for half of it to drain
MAX_PENDING_CANDIDATES = 64
_ALPHABET = string.ascii_lowercase + string.digits


def new_connection_id() -> str:
    """``dc_`` + random base36, like PeerJS (``DataConnection.ID_PREFIX`` + randomToken)."""
    return "dc_" + "".join(secrets.choice(_ALPHABET) for _ in range(11))


SendSignal = Callable[[str, dict[str, Any], str], None]


class DataConnection:
    """One data channel to ``peer``: ``send``, ``recv`` (or ``async for``), ``close``."""

    def __init__(
        self,
        peer: str,
        *,
        connection_id: str,
        serialization: str,
        reliable: bool,
        label: str,
        metadata: Any,
        ice: IceConfig,
        send_signal: SendSignal,
        on_closed: Callable[[DataConnection], None] | None = None,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.peer = peer
        self.connection_id = connection_id
        self.codec: Codec = codec_for(serialization, max_message_size=max_message_size)
        self.serialization = serialization
        self.reliable = reliable
        self.label = label
        self.metadata = metadata
        self.high_water = high_water
        self.bad_frames = 0
        self._ice = ice
        self._send_signal = send_signal
        self._on_closed = on_closed
        self._pc = RTCPeerConnection(ice.rtc_configuration())
        self._channel: RTCDataChannel | None = None
        self._low_water = low_water
        self._remote_set = False
        self._pending_candidates: list[m.IceCandidate] = []
        self._opened = asyncio.Event()
        self._drained = asyncio.Event()
        self._incoming: asyncio.Queue[Any] = asyncio.Queue()
        self._closed = False
        self.bye_received = False  # a carried connection the remote gave up (carrier.BYE)
        self._closed_event = asyncio.Event()
        self._close_reason: PeerJSError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pc.on("connectionstatechange", self._on_state)
        self._pc.on("datachannel", self._attach)

    # Public API.
    @property
    def open(self) -> bool:
        return self._opened.is_set() and not self._closed

    @property
    def was_open(self) -> bool:
        """Whether the channel ever opened."""
        return self._opened.is_set()

    @property
    def buffered_amount(self) -> int:
        return 0 if self._channel is None else int(self._channel.bufferedAmount)

    @property
    def peer_connection(self) -> RTCPeerConnection:
        return self._pc

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until the channel is open; raises if the connection closes first."""
        waiter = asyncio.ensure_future(self._opened.wait())
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            closed.cancel()
        if self._closed or not done:
            raise self._close_reason or PeerJSError(
                NEGOTIATION_FAILED, f"connection to {self.peer} did not open in {timeout}s"
            )

    async def send(self, value: Any) -> None:
        """Send one message; waits while the channel's buffer is above ``high_water``."""
        if not self.open or self._channel is None:
            raise PeerJSError(NOT_OPEN, "connection is not open")
        for frame in self.codec.encode(value):
            while self._channel.bufferedAmount > self.high_water:
                # "bufferedamountlow" fires on crossing the threshold downwards, so the
                # threshold must sit below high_water whatever high_water was set to.
                threshold = min(self._low_water, self.high_water // 2)
                self._channel.bufferedAmountLowThreshold = threshold
                self._drained.clear()
                await self._drained.wait()
                if self._closed:
                    raise self._close_reason or PeerJSError(CONNECTION_CLOSED, "closed")
            self._channel.send(frame)

    async def recv(self) -> Any:
        """The next message; raises ``connection_closed`` once closed and drained."""
        if self._incoming.empty() and self._closed:
            raise self._close_reason or PeerJSError(CONNECTION_CLOSED, "connection closed")
        item = await self._incoming.get()
        if isinstance(item, PeerJSError):
            self._incoming.put_nowait(item)  # later calls see it too
            raise item
        return item

    def __aiter__(self) -> DataConnection:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.recv()
        except PeerJSError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise StopAsyncIteration from exc
            raise

    async def close(self, *, flush: bool = False, flush_timeout: float = 10.0) -> None:
        """Close the channel and the RTCPeerConnection.

        With ``flush`` (PeerJS's ``close({flush: true})``), ask the remote to close after
        everything sent so far, and wait up to ``flush_timeout`` for it to do so: closing at
        once would drop what is still buffered.
        """
        if flush and self.open and self._channel is not None:
            frames = self.codec.encode_close()
            for frame in frames:
                self._channel.send(frame)
            if frames:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed_event.wait(), flush_timeout)
        await self._shutdown(PeerJSError(CONNECTION_CLOSED, "closed by this peer"))

    # Negotiation (called by Peer).
    async def start_as_originator(self) -> None:
        channel = self._pc.createDataChannel(self.label, ordered=self.reliable)
        self._attach(channel)
        await gather_on_configured_addresses(self._pc, self._ice.gather_addresses)
        await self._pc.setLocalDescription(await self._pc.createOffer())
        offer = m.Offer(
            connection_id=self.connection_id,
            sdp=m.SessionDescription("offer", self._pc.localDescription.sdp),
            label=self.label,
            reliable=self.reliable,
            serialization=self.serialization,
            metadata=self.metadata,
        )
        self._send_signal(m.OFFER, offer.to_json(), self.peer)

    async def answer(self, offer: m.Offer) -> None:
        await self._pc.setRemoteDescription(RTCSessionDescription(offer.sdp.sdp, "offer"))
        await self._remote_description_set()
        await gather_on_configured_addresses(self._pc, self._ice.gather_addresses)
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        answer = m.Answer(
            self.connection_id, m.SessionDescription("answer", self._pc.localDescription.sdp)
        )
        self._send_signal(m.ANSWER, answer.to_json(), self.peer)

    async def handle_answer(self, answer: m.Answer) -> None:
        if self._remote_set:
            return
        await self._pc.setRemoteDescription(RTCSessionDescription(answer.sdp.sdp, "answer"))
        await self._remote_description_set()

    async def handle_candidate(self, candidate: m.IceCandidate) -> None:
        if not self._remote_set:
            if len(self._pending_candidates) < MAX_PENDING_CANDIDATES:
                self._pending_candidates.append(candidate)
            return
        await self._add_candidate(candidate)

    def run(self, coro: Any, what: str) -> None:
        """Run a negotiation step in the background; a failure closes the connection."""

        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                logger.warning(
                    "peerjs %s %s with %s failed: %r", self.connection_id, what, self.peer, exc
                )
                await self._shutdown(PeerJSError(NEGOTIATION_FAILED, f"{what} failed: {exc}"))

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Internals.
    async def _remote_description_set(self) -> None:
        self._remote_set = True
        pending, self._pending_candidates = self._pending_candidates, []
        for candidate in pending:
            await self._add_candidate(candidate)

    async def _add_candidate(self, candidate: m.IceCandidate) -> None:
        text = candidate.candidate.removeprefix("candidate:")
        if not text:
            return  # end-of-candidates, which PeerJS never relays anyway
        try:
            ice = candidate_from_sdp(text)
        except (AssertionError, ValueError, IndexError) as exc:
            logger.info("peerjs %s: unusable candidate %r (%s)", self.connection_id, text[:80], exc)
            return
        ice.sdpMid = candidate.sdp_mid
        ice.sdpMLineIndex = candidate.sdp_mline_index
        if ice.sdpMid is None and ice.sdpMLineIndex is None:
            ice.sdpMLineIndex = 0
        await self._pc.addIceCandidate(ice)

    def _attach(self, channel: RTCDataChannel) -> None:
        if self._channel is not None:
            return
        self._channel = channel
        channel.bufferedAmountLowThreshold = self._low_water
        channel.on("open", self._opened.set)
        channel.on("bufferedamountlow", self._drained.set)
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._spawn_shutdown("the data channel closed"))
        if channel.readyState == "open":
            self._opened.set()

    def _on_message(self, frame: bytes | str) -> None:
        try:
            received = self.codec.decode(frame)
        except PeerJSError as exc:
            self.bad_frames += 1
            logger.info(
                "peerjs %s: dropped a frame from %s: %s", self.connection_id, self.peer, exc
            )
            return
        for item in received:
            if isinstance(item, Data):
                self._incoming.put_nowait(item.value)
            elif isinstance(item, CloseRequested):
                self._spawn_shutdown("the remote peer closed")

    def _on_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._spawn_shutdown(f"peer connection {self._pc.connectionState}")

    def _spawn_shutdown(self, why: str) -> None:
        if not self._closed:
            task = asyncio.ensure_future(self._shutdown(PeerJSError(CONNECTION_CLOSED, why)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _shutdown(self, reason: PeerJSError) -> None:
        if self._closed:
            return
        self._closed = True
        self._closed_event.set()
        self._close_reason = reason
        self._drained.set()
        self._incoming.put_nowait(reason)
        if self._on_closed is not None:
            self._on_closed(self)
        if self._channel is not None:
            self._channel.close()
        with contextlib.suppress(Exception):
            await self._pc.close()
