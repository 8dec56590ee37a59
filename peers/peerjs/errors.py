"""Stable error codes of the Python PeerJS client.

Codes are part of the package's contract (callers and tests match on them); never rename one.
"""

from __future__ import annotations


class PeerJSError(Exception):
    """A PeerJS-level failure; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class BinaryPackError(PeerJSError, ValueError):
    """A value cannot be packed, or bytes are not valid BinaryPack."""


# BinaryPack.
UNSUPPORTED_TYPE = "unsupported_type"
OUT_OF_RANGE = "out_of_range"
TRUNCATED = "truncated"
UNKNOWN_TYPE_BYTE = "unknown_type_byte"
TRAILING_BYTES = "trailing_bytes"
BAD_UTF8 = "bad_utf8"
TOO_DEEP = "too_deep"
BAD_MAP_KEY = "bad_map_key"

# Signaling (server messages and the socket).
BAD_SERVER_MESSAGE = "bad_server_message"
SERVER_ERROR = "server_error"
ID_TAKEN = "unavailable_id"
INVALID_KEY = "invalid_key"
INVALID_ID = "invalid_id"
NETWORK = "network"
PEER_UNAVAILABLE = "peer_unavailable"
DESTROYED = "destroyed"

# Data connections.
BAD_PAYLOAD = "bad_payload"
BAD_FRAME = "bad_frame"
MESSAGE_TOO_BIG = "message_too_big"
NOT_OPEN = "not_open"
NEGOTIATION_FAILED = "negotiation_failed"
CONNECTION_CLOSED = "connection_closed"
UNKNOWN_SERIALIZATION = "unknown_serialization"
