"""How wire frames travel on each PeerJS serialization (pure).

- ``raw``: each DataChannel message is one frame.
- ``binary``: each frame is one BinaryPack binary value (the PeerJS layer reassembles
  PeerJS's chunks); any other value is not a frame.
- ``json``: each frame is base64url text in one or more JSON strings
  (:mod:`peers.protocol.wire_json`).

Input that is not a frame reaches the node as ``""``, which it counts as ``bad_frame``
(a text message on a raw connection gets the same treatment). :class:`FrameTransport` is
pure; :class:`FramedChannel` is the connection as the senders (outbox, uploader) see it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from peers.protocol.wire_fields import WireError
from peers.protocol.wire_json import JsonFrameDecoder, encode_json_frame

NodeInput = bytes | bytearray | memoryview | str
NOT_A_FRAME = ""


class FrameTransport:
    def __init__(self, serialization: str) -> None:
        self.serialization = serialization
        self._json = JsonFrameDecoder() if serialization == "json" else None

    def incoming(self, value: Any) -> list[NodeInput]:
        """What one received PeerJS message gives the node: frames (none while a json
        frame's pieces are still arriving), or ``""`` for input that is not a frame."""
        if self._json is not None:
            try:
                frame = self._json.receive(value)
            except WireError:
                return [NOT_A_FRAME]
            return [] if frame is None else [frame]
        if isinstance(value, bytes | bytearray | memoryview | str):
            return [value]
        return [NOT_A_FRAME]  # a BinaryPack map or list

    def outgoing(self, frame: bytes) -> list[Any]:
        """The PeerJS messages that carry one frame."""
        if self._json is not None:
            return list(encode_json_frame(frame))
        return [frame]


class MessageChannel(Protocol):
    """What :class:`FramedChannel` needs of a PeerJS DataConnection."""

    @property
    def open(self) -> bool: ...

    @property
    def buffered_amount(self) -> int: ...

    async def send(self, value: Any) -> None: ...


class FramedChannel:
    """A connection that sends whole wire frames: each frame goes out as the messages of
    its serialization, and the pieces of one json frame are never interleaved with another
    frame's (the outbox and the uploader both send on a connection)."""

    def __init__(self, conn: MessageChannel, transport: FrameTransport) -> None:
        self.conn = conn
        self.transport = transport
        self._lock = asyncio.Lock()

    @property
    def open(self) -> bool:
        return self.conn.open

    @property
    def buffered_amount(self) -> int:
        return self.conn.buffered_amount

    async def send(self, value: bytes) -> None:
        messages = self.transport.outgoing(value)
        if self.transport.serialization != "json":
            await self.conn.send(messages[0])
            return
        async with self._lock:
            for message in messages:
                await self.conn.send(message)
