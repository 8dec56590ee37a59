"""The super-peer's door: a WebSocket a page can reach when the signaling server cannot be
(docs/superpeer.md "The door").

A page that knows this super-peer's door (its URL is in the page config, so a page started
from its service worker's cache knows it with the server gone) opens
``ws(s)://<door>/?id=<peer id>&token=<signal token>``, the same proof of its key as the
signaling server asks for. The door answers with this super-peer's signed presence ticket (one
text message: the page learns whom it reached and checks the signature), then carries binary
wire frames both ways, only ``signal`` and ``reach``: the socket is one more neighbour of the
mesh signaling (:class:`~peers.superpeer.meshsignaling.MeshSignaling`), so the page offers a
connection to this super-peer, or to any peer the super-peer reaches, exactly as through the
mesh. Once a DataChannel to the super-peer is open the page closes the door.

Bad input gets a WebSocket close with a stable reason: ``bad_token`` (4401), ``blocked``
(4403), ``door_full`` / ``too_many_from_address`` (4429), ``bad_frame`` / ``unexpected_frame``
and the mesh signaling's violations (4400). A door socket is limited like a neighbour (the
mesh signaling's rate limits) and by size (``MAX_DOOR_FRAME`` bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import WebSocketException

from peers.protocol.errors import ProtocolError
from peers.protocol.meshsignal_messages import CAP_SIGNAL
from peers.protocol.signal_token import BAD_TOKEN, verify_signal_token
from peers.protocol.wire import Reach, Signal, decode_frame, encode_frame

from .meshsignaling import MeshSignaling

logger = logging.getLogger(__name__)

PREFIX = "door-"  # the connection ids of door sockets, beside the node's own
MAX_DOOR_FRAME = 16_384  # a signal frame holds at most 8192 bytes of message
BAD = 4400
UNAUTHORIZED = 4401
FORBIDDEN = 4403
FULL = 4429


@dataclass
class DoorStats:
    opened: int = 0
    closed: int = 0
    frames_in: int = 0
    frames_out: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def as_json(self, open_now: int) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k != "refused"}
        out["refused"] = dict(self.refused)
        out["open"] = open_now
        return out


class Door:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        meshsig: MeshSignaling,
        ticket: Callable[[], dict[str, Any]],
        blocked: Callable[[str], bool] = lambda peer_id: False,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        max_sockets: int = 256,
        max_per_address: int = 8,
    ) -> None:
        self.host = host
        self.port = port
        self.meshsig = meshsig
        self.ticket = ticket
        self.blocked = blocked
        self.wall_clock_ms = wall_clock_ms
        self.max_sockets = max_sockets
        self.max_per_address = max_per_address
        self.sockets: dict[str, ServerConnection] = {}
        self.addresses: Counter[str] = Counter()
        self.stats = DoorStats()
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @staticmethod
    def owns(conn_id: str) -> bool:
        return conn_id.startswith(PREFIX)

    async def start(self) -> None:
        self._server = await serve(
            self._handle, self.host, self.port, max_size=MAX_DOOR_FRAME, compression=None
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        logger.info("door open on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    # --- what the mesh signaling sends ---

    def send(self, conn_id: str, frame: Signal | Reach) -> bool:
        ws = self.sockets.get(conn_id)
        if ws is None:
            return False
        data = encode_frame(frame)
        task = asyncio.get_running_loop().create_task(self._send(ws, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.stats.frames_out += 1
        return True

    async def _send(self, ws: ServerConnection, data: bytes) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            await ws.send(data)

    def violation(self, conn_id: str, code: str, message: str) -> None:
        """A door neighbour's frame the mesh signaling holds against it: the socket is closed."""
        ws = self.sockets.get(conn_id)
        if ws is not None:
            self.stats.refused[code] += 1
            logger.info("door %s: %s (%s)", conn_id, code, message)
            task = asyncio.get_running_loop().create_task(ws.close(BAD, code))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- one socket ---

    async def _refuse(self, ws: ServerConnection, status: int, code: str) -> None:
        self.stats.refused[code] += 1
        await ws.close(status, code)

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
        peer_id = (query.get("id") or [""])[0]
        token = (query.get("token") or [""])[0]
        address = str(ws.remote_address[0]) if ws.remote_address else "?"
        try:
            verify_signal_token(token, peer_id=peer_id, now=self.wall_clock_ms())
        except ProtocolError:
            await self._refuse(ws, UNAUTHORIZED, BAD_TOKEN)
            return
        if self.blocked(peer_id):
            await self._refuse(ws, FORBIDDEN, "blocked")
            return
        if len(self.sockets) >= self.max_sockets:
            await self._refuse(ws, FULL, "door_full")
            return
        if self.addresses[address] >= self.max_per_address:
            await self._refuse(ws, FULL, "too_many_from_address")
            return
        conn_id = f"{PREFIX}{next(self._ids)}"
        self.sockets[conn_id] = ws
        self.addresses[address] += 1
        self.stats.opened += 1
        try:
            await ws.send(json.dumps({"ticket": self.ticket()}, separators=(",", ":")))
            self.meshsig.opened(conn_id, peer_id, (CAP_SIGNAL,))
            async for data in ws:
                if isinstance(data, str):
                    await self._refuse(ws, BAD, "bad_frame")
                    return
                try:
                    frame = decode_frame(data)
                except ProtocolError as exc:
                    await self._refuse(ws, BAD, exc.code)
                    return
                if not isinstance(frame, Signal | Reach):
                    await self._refuse(ws, BAD, "unexpected_frame")
                    return
                self.stats.frames_in += 1
                self.meshsig.received(conn_id, frame)
        except (WebSocketException, OSError):
            pass
        finally:
            del self.sockets[conn_id]
            self.addresses[address] -= 1
            if self.addresses[address] <= 0:
                del self.addresses[address]
            self.stats.closed += 1
            self.meshsig.closed(conn_id)


__all__ = ["MAX_DOOR_FRAME", "PREFIX", "Door", "DoorStats"]
