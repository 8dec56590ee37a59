"""How PeerJS DataConnections put messages on the data channel (sans-IO).

One codec per ``serialization`` value of PeerJS 1.5.5:

- ``raw``: the message is the frame (``bytes`` or ``str``), nothing added.
- ``json``: ``JSON.stringify`` as UTF-8 bytes; PeerJS refuses messages of 16300 bytes or
  more on such a channel ("message-too-big"), so we do too.
- ``binary`` (and ``binary-utf8``, PeerJS's alias): BinaryPack; a packed message over
  16300 bytes is cut into chunk maps ``{"__peerData": id, "n": i, "data": bytes,
  "total": count}``, each packed into its own frame, and the receiver glues them back.

A map whose ``__peerData`` is ``{"type": "close"}`` asks the receiver to close (PeerJS's
``close({flush: true})``). Received input is untrusted: malformed frames raise
:class:`PeerJSError` (``bad_frame``) and a reassembly never holds more than
``max_message_size`` bytes nor more than ``max_partial_messages`` unfinished messages.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from . import binarypack
from .errors import BAD_FRAME, MESSAGE_TOO_BIG, UNKNOWN_SERIALIZATION, PeerJSError

CHUNKED_MTU = 16300
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024 * 1024
DEFAULT_MAX_PARTIAL_MESSAGES = 32
SERIALIZATIONS = ("raw", "json", "binary", "binary-utf8")
CLOSE_REQUEST: dict[str, Any] = {"__peerData": {"type": "close"}}

Frame = bytes | str


@dataclass(frozen=True)
class Data:
    """A whole message from the remote peer."""

    value: Any


@dataclass(frozen=True)
class CloseRequested:
    """The remote peer asked to close the connection after its last message."""


Received = Data | CloseRequested


def _is_close_request(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    marker = value.get("__peerData")
    return isinstance(marker, dict) and marker.get("type") == "close"


class RawCodec:
    serialization = "raw"

    def encode(self, value: Any) -> list[Frame]:
        if isinstance(value, bytes | str):
            return [value]
        if isinstance(value, bytearray | memoryview):
            return [bytes(value)]
        raise PeerJSError(
            BAD_FRAME, f"a raw connection sends bytes or str, not {type(value).__name__}"
        )

    def decode(self, frame: Frame) -> list[Received]:
        return [Data(frame)]

    def encode_close(self) -> list[Frame]:
        # PeerJS's raw connection has no close message of its own (it would send
        # "[object Object]"); the channel closing is the signal.
        return []


class JsonCodec:
    serialization = "json"

    def encode(self, value: Any) -> list[Frame]:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            encoded = text.encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise PeerJSError(BAD_FRAME, f"value is not JSON: {exc}") from exc
        if len(encoded) >= CHUNKED_MTU:
            raise PeerJSError(
                MESSAGE_TOO_BIG,
                f"{len(encoded)} bytes: a JSON connection carries messages under {CHUNKED_MTU}",
            )
        return [encoded]

    def decode(self, frame: Frame) -> list[Received]:
        try:
            value = json.loads(frame)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise PeerJSError(BAD_FRAME, "frame is not UTF-8 JSON") from exc
        return [CloseRequested()] if _is_close_request(value) else [Data(value)]

    def encode_close(self) -> list[Frame]:
        return self.encode(CLOSE_REQUEST)


@dataclass
class _Partial:
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class BinaryCodec:
    serialization = "binary"

    def __init__(
        self,
        *,
        chunk_size: int = CHUNKED_MTU,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_partial_messages: int = DEFAULT_MAX_PARTIAL_MESSAGES,
        first_message_id: int = 1,
    ) -> None:
        self.chunk_size = chunk_size
        self.max_message_size = max_message_size
        self.max_partial_messages = max_partial_messages
        # PeerJS numbers chunked messages per connection from 1.
        self._next_id = first_message_id
        self._partial: dict[Any, _Partial] = {}

    def encode(self, value: Any) -> list[Frame]:
        blob = binarypack.pack(value)
        if len(blob) <= self.chunk_size:
            return [blob]
        return self.chunk(blob)

    def chunk(self, blob: bytes) -> list[Frame]:
        """Cut a packed message into PeerJS chunk frames (as ``util.chunk`` + pack)."""
        message_id = self._next_id
        self._next_id += 1
        total = math.ceil(len(blob) / self.chunk_size)
        view = memoryview(blob)
        return [
            binarypack.pack(
                {
                    "__peerData": message_id,
                    "n": index,
                    "data": view[start : start + self.chunk_size],
                    "total": total,
                }
            )
            for index, start in enumerate(range(0, len(blob), self.chunk_size))
        ]

    def encode_close(self) -> list[Frame]:
        return [binarypack.pack(CLOSE_REQUEST)]

    def decode(self, frame: Frame) -> list[Received]:
        if isinstance(frame, str):
            raise PeerJSError(BAD_FRAME, "a binary connection received a text frame")
        value = binarypack.unpack(frame)
        if isinstance(value, dict) and value.get("__peerData"):
            if _is_close_request(value):
                return [CloseRequested()]
            whole = self._add_chunk(value)
            return [] if whole is None else self.decode(whole)
        return [Data(value)]

    def _add_chunk(self, chunk: dict[Any, Any]) -> bytes | None:
        message_id, n, total, data = (chunk.get(k) for k in ("__peerData", "n", "total", "data"))
        if not isinstance(message_id, int | str) or isinstance(message_id, bool):
            raise PeerJSError(BAD_FRAME, "chunk id is not an integer or a string")
        if not isinstance(total, int) or isinstance(total, bool) or total < 1:
            raise PeerJSError(BAD_FRAME, "chunk total is not a positive integer")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < total:
            raise PeerJSError(BAD_FRAME, f"chunk index {n!r} is outside 0..{total - 1}")
        if not isinstance(data, bytes):
            raise PeerJSError(BAD_FRAME, "chunk data is not binary")
        partial = self._partial.get(message_id)
        if partial is None:
            if len(self._partial) >= self.max_partial_messages:
                raise PeerJSError(
                    MESSAGE_TOO_BIG, f"more than {self.max_partial_messages} unfinished messages"
                )
            partial = self._partial[message_id] = _Partial(total)
        if partial.total != total or n in partial.parts:
            del self._partial[message_id]
            raise PeerJSError(BAD_FRAME, f"chunk {n} of message {message_id!r} conflicts")
        partial.size += len(data)
        if partial.size > self.max_message_size:
            del self._partial[message_id]
            raise PeerJSError(
                MESSAGE_TOO_BIG, f"message {message_id!r} is over {self.max_message_size} bytes"
            )
        partial.parts[n] = data
        if len(partial.parts) < total:
            return None
        del self._partial[message_id]
        return b"".join(partial.parts[i] for i in range(total))


Codec = RawCodec | JsonCodec | BinaryCodec


def codec_for(serialization: str, **binary_options: int) -> Codec:
    """The codec for a PeerJS ``serialization`` name (else ``unknown_serialization``)."""
    if serialization == "raw":
        return RawCodec()
    if serialization == "json":
        return JsonCodec()
    if serialization in ("binary", "binary-utf8"):
        return BinaryCodec(**binary_options)
    raise PeerJSError(UNKNOWN_SERIALIZATION, f"serialization {serialization!r} is not supported")
