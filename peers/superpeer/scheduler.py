"""Serving chunks to many peers at once: round robin across connections, with backpressure.

Each connection has its own queue of ``chunk_req``s. :class:`FairQueue` (pure) hands out one
request at a time, taking connections in turn, and skips a connection whose channel is not
ready, so one fast downloader cannot starve the others and one slow one cannot hold the
others up. :class:`Uploader` is the asyncio driver: a connection is ready while its
DataChannel's ``bufferedAmount`` is below ``low_water``, which bounds the memory a slow
peer can pin to about ``low_water`` plus one frame, and keeps SCTP fed for fast ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

MAX_PENDING_PER_CONNECTION = 512
LOW_WATER = 1024 * 1024
POLL_S = 0.004  # how often a fully backpressured uploader looks again
YIELD_EVERY = 8  # sends between yields to the loop (SCTP transmits on the same loop)


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    manifest: str
    index: int
    chunk: str


class FairQueue:
    """Per-connection FIFO queues served round robin."""

    def __init__(self, max_pending: int = MAX_PENDING_PER_CONNECTION) -> None:
        self.max_pending = max_pending
        self._queues: dict[str, deque[ChunkRequest]] = {}
        self._ring: deque[str] = deque()  # connections with pending requests, next first
        self.dropped = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def pending(self, conn_id: str) -> int:
        queue = self._queues.get(conn_id)
        return 0 if queue is None else len(queue)

    def push(self, conn_id: str, request: ChunkRequest) -> bool:
        """Queue a request; False (dropped, counted) when the connection has too many."""
        queue = self._queues.get(conn_id)
        if queue is None:
            queue = self._queues[conn_id] = deque()
        if len(queue) >= self.max_pending:
            self.dropped += 1
            return False
        if not queue:
            self._ring.append(conn_id)
        queue.append(request)
        return True

    def forget(self, conn_id: str) -> int:
        """Drop a closed connection's requests; returns how many there were."""
        queue = self._queues.pop(conn_id, None)
        if queue is None:
            return 0
        if conn_id in self._ring:
            self._ring.remove(conn_id)
        return len(queue)

    def pick(self, ready: Callable[[str], bool]) -> tuple[str, ChunkRequest] | None:
        """The next request of the next ready connection in turn, or None."""
        for _ in range(len(self._ring)):
            conn_id = self._ring[0]
            self._ring.rotate(-1)
            if not ready(conn_id):
                continue
            queue = self._queues[conn_id]
            request = queue.popleft()
            if not queue:
                self._ring.remove(conn_id)
            return conn_id, request
        return None


class Channel(Protocol):
    """What the uploader needs of a connection (a PeerJS DataConnection has it)."""

    @property
    def open(self) -> bool: ...

    @property
    def buffered_amount(self) -> int: ...

    async def send(self, value: bytes) -> None: ...


Reader = Callable[[ChunkRequest], bytes | None]
Encoder = Callable[[ChunkRequest, bytes | None], bytes]
Sent = Callable[[str, ChunkRequest, int, bool], None]


class Uploader:
    """Answers queued ``chunk_req``s with ``chunk``/``chunk_missing`` frames, fairly.

    ``read`` gives a chunk's bytes (None: not held); ``encode`` makes the frame;
    ``on_sent(conn_id, request, bytes, found)`` is told about each answer sent.
    """

    def __init__(
        self,
        read: Reader,
        encode: Encoder,
        *,
        on_sent: Sent | None = None,
        low_water: int = LOW_WATER,
        max_pending: int = MAX_PENDING_PER_CONNECTION,
        poll_s: float = POLL_S,
    ) -> None:
        self.queue = FairQueue(max_pending)
        self.channels: dict[str, Channel] = {}
        self.low_water = low_water
        self.poll_s = poll_s
        self.sent_frames = 0
        self.sent_bytes = 0
        self._read = read
        self._encode = encode
        self._on_sent = on_sent
        self._wake = asyncio.Event()

    def attach(self, conn_id: str, channel: Channel) -> None:
        self.channels[conn_id] = channel

    def detach(self, conn_id: str) -> None:
        self.channels.pop(conn_id, None)
        self.queue.forget(conn_id)

    def request(self, conn_id: str, request: ChunkRequest) -> bool:
        if conn_id not in self.channels:
            return False
        accepted = self.queue.push(conn_id, request)
        self._wake.set()
        return accepted

    def ready(self, conn_id: str) -> bool:
        channel = self.channels.get(conn_id)
        return channel is not None and channel.open and channel.buffered_amount < self.low_water

    async def run(self) -> None:
        """Serve until cancelled."""
        since_yield = 0
        while True:
            picked = self.queue.pick(self.ready)
            if picked is None:
                since_yield = 0
                if len(self.queue) == 0:
                    self._wake.clear()
                    await self._wake.wait()
                else:
                    await asyncio.sleep(self.poll_s)  # everyone with work is backpressured
                continue
            conn_id, request = picked
            await self._answer(conn_id, request)
            since_yield += 1
            if since_yield >= YIELD_EVERY:
                since_yield = 0
                await asyncio.sleep(0)

    async def _answer(self, conn_id: str, request: ChunkRequest) -> None:
        channel = self.channels.get(conn_id)
        if channel is None:
            return
        data = self._read(request)
        frame = self._encode(request, data)
        try:
            await channel.send(frame)
        except Exception as exc:  # the connection went away between pick and send
            logger.info("uploader: send to %s failed: %r", conn_id, exc)
            self.detach(conn_id)
            return
        self.sent_frames += 1
        self.sent_bytes += len(frame)
        if self._on_sent is not None:
            self._on_sent(conn_id, request, len(frame), data is not None)
