"""Field kinds of wire frames (docs/protocol.md "Encoding rules").

As in static/swarm/protocol/wire.js.

Each kind checks one decoded (or Python-built) value and returns it normalized (lists become
tuples, envelopes are copied); a fault is :class:`WireError` ``bad_frame``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from .envelope import JsonObject
from .errors import BAD_FRAME, ProtocolError

MAX_SAFE = 2**53 - 1
# A signed object may nest one level deeper than its body (the body's own limit is 16).
MAX_ENVELOPE_DEPTH = 17


class WireError(ProtocolError):
    """A frame that cannot be decoded or encoded; ``code`` is one of the wire codes."""


def fail(message: str) -> WireError:
    return WireError(BAD_FRAME, message)


Kind = Callable[[object, str], Any]


def integer(low: int, high: int) -> Kind:
    def check(value: object, name: str) -> int:
        if type(value) is not int:  # bool is an int subclass; the wire has no such overlap
            raise fail(f"{name} must be an integer")
        if not low <= value <= high:
            raise fail(f"{name} is out of range")
        return value

    return check


def utf8_length(text: str, name: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise fail(f"{name} is not valid Unicode") from exc


def text(pattern: re.Pattern[str] | None, max_bytes: int | None = None) -> Kind:
    def check(value: object, name: str) -> str:
        if type(value) is not str:
            raise fail(f"{name} must be a string")
        if max_bytes is not None and utf8_length(value, name) > max_bytes:
            raise fail(f"{name} is too long")
        if pattern is not None and not pattern.fullmatch(value):
            raise fail(f"{name} is malformed")
        return value

    return check


def binary(*, length: int | None = None, max_bytes: int | None = None) -> Kind:
    def check(value: object, name: str) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise fail(f"{name} must be binary")
        data = bytes(value)
        if length is not None and len(data) != length:
            raise fail(f"{name} must be {length} bytes")
        if max_bytes is not None and len(data) > max_bytes:
            raise fail(f"{name} is longer than {max_bytes} bytes")
        return data

    return check


def list_of(item: Kind, max_items: int) -> Kind:
    def check(value: object, name: str) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise fail(f"{name} must be a list")
        if len(value) > max_items:
            raise fail(f"{name} has more than {max_items} items")
        return tuple(item(v, f"{name}[{i}]") for i, v in enumerate(value))

    return check


def json_value(value: object, name: str, depth: int) -> Any:
    """JSON-safe data (what a signed envelope may hold), copied."""
    if depth > MAX_ENVELOPE_DEPTH:
        raise fail(f"{name} nests too deeply")
    if value is None or type(value) is bool or type(value) is str:
        return value
    if type(value) is int:
        if not -MAX_SAFE <= value <= MAX_SAFE:
            raise fail(f"{name} is out of range")
        return value
    if isinstance(value, (list, tuple)):
        return [json_value(v, name, depth + 1) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise fail("map keys must be strings")
            if key == "__proto__":
                raise fail("the key __proto__ is not allowed")
            out[key] = json_value(item, name, depth + 1)
        return out
    raise fail(f"{name} holds a value a signed object cannot carry")


def envelope(value: object, name: str) -> JsonObject:
    if not isinstance(value, dict):
        raise fail(f"{name} must be a map")
    result: JsonObject = json_value(value, name, 0)
    return result


def nullable_envelope(value: object, name: str) -> JsonObject | None:
    return None if value is None else envelope(value, name)


class Field(NamedTuple):
    name: str
    kind: Kind
    required: bool = True
