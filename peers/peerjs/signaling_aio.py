"""The asyncio adapter of :class:`~peers.peerjs.signaling.SignalingCore`.

It performs the core's actions with the ``websockets`` package (the server socket) and
``httpx`` (``GET .../id``), feeds back what happens with ``now`` from the monotonic clock,
calls ``handle_timer`` when the core asks, and hands events to a callback. All protocol
decisions stay in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

import httpx
import websockets

from .signaling import (
    CloseSocket,
    Event,
    FetchId,
    OpenSocket,
    SendFrame,
    SignalingCore,
    State,
)

logger = logging.getLogger(__name__)
MAX_SERVER_FRAME = 1024 * 1024


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class SignalingClient:
    """Runs a :class:`SignalingCore` until it is destroyed; events go to ``on_event``."""

    def __init__(
        self,
        core: SignalingCore,
        on_event: Callable[[Event], None],
        *,
        clock: Callable[[], int] = monotonic_ms,
        http_timeout: float = 10.0,
    ) -> None:
        self.core = core
        self._on_event = on_event
        self._clock = clock
        self._http_timeout = http_timeout
        self._wake = asyncio.Event()
        self._socket_task: asyncio.Task[None] | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._outgoing: asyncio.Queue[str] | None = None
        self._generation = 0
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._runner is None:
            self.core.start(self._clock())
            self._runner = asyncio.create_task(self._run(), name="peerjs-signaling")

    def send(self, kind: str, payload: dict[str, object], dst: str) -> None:
        self.core.send(kind, payload, dst)
        self._wake.set()

    async def close(self) -> None:
        """Destroy the core (closing the socket) and wait for the adapter to stop."""
        self.core.destroy(self._clock())
        self._wake.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        try:
            while True:
                self._pump()
                if self.core.state is State.DESTROYED:
                    break
                timer = self.core.get_timer()
                timeout = None if timer is None else max(0, timer - self._clock()) / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                self.core.handle_timer(self._clock())
        finally:
            self._drop_socket()
            if self._fetch_task is not None:
                self._fetch_task.cancel()

    def _pump(self) -> None:
        # Actions before events: a handler may send, which queues new actions for next round.
        for action in self.core.actions():
            if isinstance(action, OpenSocket):
                self._drop_socket()
                self._generation += 1
                self._outgoing = asyncio.Queue()
                self._socket_task = asyncio.create_task(
                    self._socket(action.url, self._generation, self._outgoing)
                )
            elif isinstance(action, SendFrame):
                if self._outgoing is not None:
                    self._outgoing.put_nowait(action.text)
            elif isinstance(action, CloseSocket):
                self._drop_socket()
            elif isinstance(action, FetchId):
                self._fetch_task = asyncio.create_task(self._fetch_id(action.url))
        for event in self.core.events():
            try:
                self._on_event(event)
            except Exception:
                logger.exception("peerjs event handler failed on %r", event)
        if self.core.actions_pending():
            self._wake.set()

    def _drop_socket(self) -> None:
        self._generation += 1
        self._outgoing = None
        if self._socket_task is not None:
            self._socket_task.cancel()
            self._socket_task = None

    async def _socket(self, url: str, generation: int, outgoing: asyncio.Queue[str]) -> None:
        reason = "closed"
        try:
            async with websockets.connect(
                url, max_size=MAX_SERVER_FRAME, open_timeout=None, compression=None
            ) as ws:
                self._feed(generation, lambda now: self.core.socket_opened(now))

                async def writer() -> None:
                    while True:
                        await ws.send(await outgoing.get())

                write_task = asyncio.create_task(writer())
                try:
                    async for frame in ws:
                        self._feed(generation, functools.partial(self._received, frame))
                finally:
                    write_task.cancel()
                reason = f"closed ({ws.close_code})"
        except asyncio.CancelledError:
            raise
        except (OSError, websockets.WebSocketException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        self._feed(generation, lambda now: self.core.socket_closed(now, reason))

    def _received(self, frame: str | bytes, now: int) -> None:
        self.core.frame_received(frame, now)

    def _feed(self, generation: int, call: Callable[[int], None]) -> None:
        if generation == self._generation:  # a replaced socket's news is stale
            call(self._clock())
            self._wake.set()

    async def _fetch_id(self, url: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=self._http_timeout) as client:
                response = await client.get(url)
            if response.status_code != 200:
                raise httpx.HTTPError(f"status {response.status_code}")
            text = response.text[:128]
        except httpx.HTTPError as exc:
            self.core.id_fetch_failed(str(exc) or type(exc).__name__, self._clock())
        else:
            self.core.id_fetched(text, self._clock())
        self._wake.set()
