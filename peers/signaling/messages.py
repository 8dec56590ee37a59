"""PeerJS server messages: types, PeerJS's own error texts, parsing and serialization.

Frames are JSON text. Relayed messages are rebuilt as ``{type, src, dst, payload}`` in
that order (the reference server's ``JSON.stringify`` order), ``src`` always being the
sender's id as the server knows it; fields other than these four are dropped.

Relaying is the hot path, so frames are parsed and written with orjson (several times faster
than the standard library; JSON encoding was about a sixth of a relay's CPU). The few frames
orjson refuses but JSON allows (a lone surrogate escape such as ``"\\ud800"``, nesting deeper
than orjson's limits, numbers beyond a double such as ``1e999``) take the standard library's
path, which keeps the rules below for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

OPEN = "OPEN"
LEAVE = "LEAVE"
CANDIDATE = "CANDIDATE"
OFFER = "OFFER"
ANSWER = "ANSWER"
EXPIRE = "EXPIRE"
HEARTBEAT = "HEARTBEAT"
ID_TAKEN = "ID-TAKEN"
ERROR = "ERROR"

RELAYED = frozenset({OFFER, ANSWER, CANDIDATE, LEAVE, EXPIRE})
# Only these wait in a queue for an absent destination; LEAVE and EXPIRE are dropped.
QUEUED = frozenset({OFFER, ANSWER, CANDIDATE})

# The reference server's texts, verbatim: clients show them and tests compare them.
INVALID_KEY = "Invalid key provided"
INVALID_TOKEN = "Invalid token provided"  # noqa: S105 - a message, not a secret
INVALID_WS_PARAMETERS = "No id, token, or key supplied to websocket server"
CONNECTION_LIMIT_EXCEED = "Server has reached its concurrent user limit"
ID_IS_TAKEN = "ID is taken"

OPEN_FRAME = '{"type":"OPEN"}'

_encode_utf8 = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON.parse (and so PeerJS) does not.
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int | float:
    # As orjson reads them: exact within 64 bits, a double beyond (as JSON.parse reads all).
    value = int(text)
    if -(2**63) <= value < 2**64:
        return value
    try:
        return float(value)
    except OverflowError:  # beyond a double: Infinity, which no frame can carry (dropped)
        return float("inf")


_decode = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int).decode


def dumps(value: object) -> str:
    """Compact JSON like ``JSON.stringify``; escapes only what UTF-8 cannot carry."""
    text = _encode_utf8(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\\ud800" escape
            text = _encode_ascii(value)
    return text


@dataclass(frozen=True, slots=True)
class Message:
    """A client frame that parsed: ``dst``/``payload`` are absent when ``None``/missing."""

    type: str
    dst: object
    payload: object
    has_payload: bool
    fast: bool = False  # parsed by orjson: the payload is plain JSON orjson can write back


def parse(text: str) -> Message | None:
    """The message in a client frame, or None for anything the server drops silently."""
    fast = True
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        fast = False
        try:
            value = _decode(text)
        except (ValueError, RecursionError):
            return None
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if not isinstance(kind, str):
        return None
    return Message(kind, value.get("dst"), value.get("payload"), "payload" in value, fast)


def relay_frame(
    kind: str, src: str, dst: str, payload: object, has_payload: bool, fast: bool = False
) -> str | None:
    """The frame a destination receives, or None if the payload cannot be serialized.

    ``fast``: the payload came from orjson, so orjson can write it (it would turn an
    infinity from the standard library's parser into ``null``, hence the flag)."""
    body: dict[str, object] = {"type": kind, "src": src, "dst": dst}
    if has_payload:
        body["payload"] = payload
    if fast:
        try:
            return orjson.dumps(body).decode()
        except orjson.JSONEncodeError:  # nested deeper than orjson writes
            pass
    try:
        return dumps(body)
    except (ValueError, RecursionError):  # an out-of-range float (1e999) JSON cannot represent
        return None


def server_frame(kind: str, src: str, dst: str) -> str:
    """EXPIRE and LEAVE made by the server itself (no payload)."""
    return dumps({"type": kind, "src": src, "dst": dst})


def error_frame(msg: str, code: str | None = None) -> str:
    payload: dict[str, str] = {"msg": msg}
    if code is not None:
        payload["code"] = code
    return dumps({"type": ERROR, "payload": payload})


def id_taken_frame(code: str | None = None) -> str:
    payload: dict[str, str] = {"msg": ID_IS_TAKEN}
    if code is not None:
        payload["code"] = code
    return dumps({"type": ID_TAKEN, "payload": payload})


def src_dst(frame: str) -> tuple[str, str] | None:
    """``(src, dst)`` of a frame this server wrote (queued messages, for EXPIRE)."""
    try:
        value = _decode(frame)
    except ValueError:
        return None
    src, dst = value.get("src"), value.get("dst")
    if isinstance(src, str) and isinstance(dst, str):
        return src, dst
    return None


def frame_type(frame: str) -> str:
    """The type of a frame this server wrote (for counters), without parsing it."""
    # Relayed frames start with {"type":"<TYPE>", (written by relay_frame).
    end = frame.find('"', 9)
    return frame[9:end] if frame.startswith('{"type":"') and end > 9 else "unknown"
