"""The DataChannel wire protocol (docs/protocol.md "Wire frames"), mirror of static/swarm/wire.js.

One MessagePack map per message, ``{"t": type, ...fields}``. :func:`decode_frame` is the only
way bytes from a peer become a frame; it fails with a stable code (:class:`WireError`) so the
node can count and punish bad input. Frames are frozen dataclasses checked at construction;
:func:`encode_frame` writes ``t`` first, then the fields in spec order, with the shortest
encodings, so both languages produce the same bytes (tests/vectors/wire.json holds it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

import msgpack

from .encoding import PEER_ID_RE
from .envelope import JsonObject
from .errors import (
    BAD_FRAME,
    BAD_MSGPACK,
    FRAME_TOO_LARGE,
    UNKNOWN_FRAME,
    UNSUPPORTED_FRAME,
    ProtocolError,
)

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 * 1024
ID_BYTES = 32
MAX_PEX_PEERS = 50
MAX_GOSSIP_TTL = 16
MAX_CAPS = 16
MAX_AGENT_BYTES = 64
MAX_HAVE_MANIFESTS = 256
MAX_CHUNKS_PER_MANIFEST = 4096
MAX_CHUNK_DATA = 64 * 1024 + 16  # a 64 KiB chunk plus its AES-GCM tag
MAX_UINT32 = 0xFFFFFFFF
MAX_SAFE = 2**53 - 1
# A signed object may nest one level deeper than its body (the body's own limit is 16).
MAX_ENVELOPE_DEPTH = 17
# Patterns match the whole string (re.fullmatch): JS's `$` never admits a trailing newline.
CAP_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
REASON_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
DIGEST_ID_RE = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
PEER_ID_FULL_RE = re.compile(PEER_ID_RE.pattern.removeprefix("^").removesuffix("$"))
_RESERVED_RE = re.compile(r"(dht|sync|shard)_[a-z0-9_]{1,24}")


class WireError(ProtocolError):
    """A frame that cannot be decoded or encoded; ``code`` is one of the wire codes."""


def _fail(message: str) -> WireError:
    return WireError(BAD_FRAME, message)


# --- field kinds: each checks a value and returns it normalized (lists become tuples) ---

Kind = Callable[[object, str], Any]


def _int(low: int, high: int) -> Kind:
    def check(value: object, name: str) -> int:
        if type(value) is not int:  # bool is an int subclass; the wire has no such overlap
            raise _fail(f"{name} must be an integer")
        if not low <= value <= high:
            raise _fail(f"{name} is out of range")
        return value

    return check


def _utf8_length(text: str, name: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _fail(f"{name} is not valid Unicode") from exc


def _str(pattern: re.Pattern[str] | None, max_bytes: int | None = None) -> Kind:
    def check(value: object, name: str) -> str:
        if type(value) is not str:
            raise _fail(f"{name} must be a string")
        if max_bytes is not None and _utf8_length(value, name) > max_bytes:
            raise _fail(f"{name} is too long")
        if pattern is not None and not pattern.fullmatch(value):
            raise _fail(f"{name} is malformed")
        return value

    return check


def _bin(*, length: int | None = None, max_bytes: int | None = None) -> Kind:
    def check(value: object, name: str) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _fail(f"{name} must be binary")
        data = bytes(value)
        if length is not None and len(data) != length:
            raise _fail(f"{name} must be {length} bytes")
        if max_bytes is not None and len(data) > max_bytes:
            raise _fail(f"{name} is longer than {max_bytes} bytes")
        return data

    return check


def _list(item: Kind, max_items: int) -> Kind:
    def check(value: object, name: str) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise _fail(f"{name} must be a list")
        if len(value) > max_items:
            raise _fail(f"{name} has more than {max_items} items")
        return tuple(item(v, f"{name}[{i}]") for i, v in enumerate(value))

    return check


def _json_value(value: object, name: str, depth: int) -> Any:
    """JSON-safe data (what a signed envelope may hold), copied."""
    if depth > MAX_ENVELOPE_DEPTH:
        raise _fail(f"{name} nests too deeply")
    if value is None or type(value) is bool or type(value) is str:
        return value
    if type(value) is int:
        if not -MAX_SAFE <= value <= MAX_SAFE:
            raise _fail(f"{name} is out of range")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v, name, depth + 1) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _fail("map keys must be strings")
            if key == "__proto__":
                raise _fail("the key __proto__ is not allowed")
            out[key] = _json_value(item, name, depth + 1)
        return out
    raise _fail(f"{name} holds a value a signed object cannot carry")


def _envelope(value: object, name: str) -> JsonObject:
    if not isinstance(value, dict):
        raise _fail(f"{name} must be a map")
    result: JsonObject = _json_value(value, name, 0)
    return result


def _nullable_envelope(value: object, name: str) -> JsonObject | None:
    return None if value is None else _envelope(value, name)


_peer_id = _str(PEER_ID_FULL_RE)
_digest_id = _str(DIGEST_ID_RE)
_uint32 = _int(0, MAX_UINT32)
_ms = _int(0, MAX_SAFE)


class Field(NamedTuple):
    name: str
    kind: Kind
    required: bool = True


class _Frame:
    """Behaviour shared by every frame class (each is a frozen dataclass)."""

    __slots__ = ()
    t: ClassVar[str]
    FIELDS: ClassVar[tuple[Field, ...]]

    def __post_init__(self) -> None:
        for field in self.FIELDS:
            value = getattr(self, field.name)
            if value is None and not field.required:
                continue
            object.__setattr__(self, field.name, field.kind(value, f"{self.t}.{field.name}"))

    def to_value(self) -> dict[str, Any]:
        """The MessagePack map: ``t`` first, then the fields in spec order."""
        out: dict[str, Any] = {"t": self.t}
        for field in self.FIELDS:
            value = getattr(self, field.name)
            if value is None and not field.required:
                continue
            out[field.name] = _plain(value)
        return out

    def serialize(self) -> bytes:
        return encode_frame(self)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Holding):
        return {"id": value.id, "chunks": value.chunks}
    return value


@dataclass(frozen=True, slots=True)
class Holding:
    """A replica advert: ``chunks`` verified chunks of manifest ``id`` (0 withdraws it)."""

    id: str
    chunks: int

    def __post_init__(self) -> None:
        _digest_id(self.id, "have.manifests.id")
        _chunk_count(self.chunks, "have.manifests.chunks")


_chunk_count = _int(0, MAX_CHUNKS_PER_MANIFEST)


def _holding(value: object, name: str) -> Holding:
    if isinstance(value, Holding):
        return value
    if not isinstance(value, dict):
        raise _fail(f"{name} must be a map")
    for key in ("id", "chunks"):
        if key not in value:
            raise _fail(f"{name}.{key} is missing")
    if len(value) != 2:
        raise _fail(f"{name} has an unknown field")
    # Checked here field by field: build without running the checks a second time.
    holding = object.__new__(Holding)
    object.__setattr__(holding, "id", _digest_id(value["id"], f"{name}.id"))
    object.__setattr__(holding, "chunks", _chunk_count(value["chunks"], f"{name}.chunks"))
    return holding


@dataclass(frozen=True, slots=True)
class Hello(_Frame):
    ticket: JsonObject
    caps: tuple[str, ...] = ()
    agent: str | None = None
    v: int = PROTOCOL_VERSION
    t: ClassVar[str] = "hello"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("v", _int(1, 0xFFFF)),
        Field("ticket", _envelope),
        Field("caps", _list(_str(CAP_RE), MAX_CAPS)),
        Field("agent", _str(None, MAX_AGENT_BYTES), required=False),
    )


@dataclass(frozen=True, slots=True)
class Ping(_Frame):
    n: int
    ts: int
    t: ClassVar[str] = "ping"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("n", _uint32), Field("ts", _ms))


@dataclass(frozen=True, slots=True)
class Pong(_Frame):
    n: int
    ts: int
    t: ClassVar[str] = "pong"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("n", _uint32), Field("ts", _ms))


@dataclass(frozen=True, slots=True)
class PexReq(_Frame):
    max: int
    t: ClassVar[str] = "pex_req"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("max", _int(1, MAX_PEX_PEERS)),)


@dataclass(frozen=True, slots=True)
class Pex(_Frame):
    peers: tuple[JsonObject, ...]
    t: ClassVar[str] = "pex"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("peers", _list(_envelope, MAX_PEX_PEERS)),)


@dataclass(frozen=True, slots=True)
class Gossip(_Frame):
    id: bytes
    origin: str
    ttl: int
    payload: JsonObject
    t: ClassVar[str] = "gossip"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("id", _bin(length=ID_BYTES)),
        Field("origin", _peer_id),
        Field("ttl", _int(0, MAX_GOSSIP_TTL)),
        Field("payload", _envelope),
    )


@dataclass(frozen=True, slots=True)
class Have(_Frame):
    manifests: tuple[Holding, ...]
    t: ClassVar[str] = "have"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("manifests", _list(_holding, MAX_HAVE_MANIFESTS)),)


@dataclass(frozen=True, slots=True)
class ManifestReq(_Frame):
    id: str
    t: ClassVar[str] = "manifest_req"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("id", _digest_id),)


@dataclass(frozen=True, slots=True)
class Manifest(_Frame):
    id: str
    manifest: JsonObject | None
    t: ClassVar[str] = "manifest"
    # Required but nullable: nil means "not held", an absent field is malformed.
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("id", _digest_id),
        Field("manifest", _nullable_envelope),
    )


_CHUNK_REF = (Field("manifest", _digest_id), Field("index", _uint32), Field("chunk", _digest_id))


@dataclass(frozen=True, slots=True)
class ChunkReq(_Frame):
    manifest: str
    index: int
    chunk: str
    t: ClassVar[str] = "chunk_req"
    FIELDS: ClassVar[tuple[Field, ...]] = _CHUNK_REF


@dataclass(frozen=True, slots=True)
class Chunk(_Frame):
    manifest: str
    index: int
    chunk: str
    data: bytes
    t: ClassVar[str] = "chunk"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        *_CHUNK_REF,
        Field("data", _bin(max_bytes=MAX_CHUNK_DATA)),
    )


@dataclass(frozen=True, slots=True)
class ChunkMissing(_Frame):
    manifest: str
    index: int
    chunk: str
    t: ClassVar[str] = "chunk_missing"
    FIELDS: ClassVar[tuple[Field, ...]] = _CHUNK_REF


@dataclass(frozen=True, slots=True)
class Bye(_Frame):
    reason: str
    t: ClassVar[str] = "bye"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("reason", _str(REASON_RE)),)


Frame = (
    Hello
    | Ping
    | Pong
    | PexReq
    | Pex
    | Gossip
    | Have
    | ManifestReq
    | Manifest
    | ChunkReq
    | Chunk
    | ChunkMissing
    | Bye
)
ContentFrame = Have | ManifestReq | Manifest | ChunkReq | Chunk | ChunkMissing
CONTENT_FRAMES: tuple[type[_Frame], ...] = (
    Have,
    ManifestReq,
    Manifest,
    ChunkReq,
    Chunk,
    ChunkMissing,
)
_ALL_FRAMES: tuple[type[_Frame], ...] = (
    Hello,
    Ping,
    Pong,
    PexReq,
    Pex,
    Gossip,
    *CONTENT_FRAMES,
    Bye,
)
_CLASSES: dict[str, type[_Frame]] = {cls.t: cls for cls in _ALL_FRAMES}
FRAME_TYPES = tuple(_CLASSES)

# The dataclass field names of each class match its FIELDS (checked once, at import).
for _cls in _CLASSES.values():
    if {f.name for f in fields(_cls)} != {f.name for f in _cls.FIELDS}:  # type: ignore[arg-type]
        raise RuntimeError(f"{_cls.__name__} fields differ from its schema")


def parse_frame(value: object) -> Frame:
    """Check a decoded MessagePack value against its frame schema (``checkFrame`` in JS)."""
    if not isinstance(value, dict):
        raise _fail("a frame must be a map")
    frame_type = value.get("t")
    if type(frame_type) is not str:
        raise _fail("t must be a string")
    cls = _CLASSES.get(frame_type)
    if cls is None:
        if _RESERVED_RE.fullmatch(frame_type):
            raise WireError(UNSUPPORTED_FRAME, f"frame type {frame_type} is reserved")
        raise WireError(UNKNOWN_FRAME, "unknown frame type")
    checked: dict[str, Any] = {}
    for field in cls.FIELDS:
        if field.name not in value:
            if field.required:
                raise _fail(f"{frame_type}.{field.name} is missing")
            continue
        checked[field.name] = field.kind(value[field.name], f"{frame_type}.{field.name}")
    if len(value) != len(checked) + 1:
        raise _fail(f"{frame_type} has an unknown field")
    # Already checked field by field: build without running the checks a second time.
    frame = object.__new__(cls)
    for field in cls.FIELDS:
        object.__setattr__(frame, field.name, checked.get(field.name))
    return frame  # type: ignore[return-value]


# --- MessagePack, strictly: no floats, no extension types, string keys, valid UTF-8 ---


def _check_item(value: object) -> None:
    if type(value) is float:
        raise _fail("floats are not allowed")
    if isinstance(value, (msgpack.ExtType, msgpack.Timestamp)):
        raise _fail("extension types are not allowed")


# The hooks run inside the C unpacker as each container completes, so the checks cost no
# second walk over the value and no Python recursion however deep the nesting.
def _map_hook(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if type(key) is not str:
            raise _fail("map keys must be strings")
        if key == "__proto__":
            raise _fail("the key __proto__ is not allowed")
        _check_item(value)
        out[key] = value
    return out


def _list_hook(items: list[Any]) -> list[Any]:
    for item in items:
        _check_item(item)
    return items


def _ext_hook(code: int, data: bytes) -> Any:
    raise _fail("extension types are not allowed")


def decode_frame(data: bytes | bytearray | memoryview | str) -> Frame:
    """Decode and check one frame; raises :class:`WireError` with a stable code."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _fail("frames are binary messages")
    size = memoryview(data).nbytes
    if size > MAX_FRAME_BYTES:
        raise WireError(FRAME_TOO_LARGE, f"frame is {size} bytes (limit {MAX_FRAME_BYTES})")
    try:
        # strict_map_key=False only so that a non-string key reaches _map_hook and is
        # bad_frame (as in JS) instead of an unpacker ValueError indistinguishable from
        # bad_msgpack; the hook enforces string keys.
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            use_list=True,
            object_pairs_hook=_map_hook,
            list_hook=_list_hook,
            ext_hook=_ext_hook,
        )
    except WireError:
        raise
    except msgpack.StackError as exc:
        # The C unpacker stops at 1024 levels; no frame field may nest that deep.
        raise _fail("the frame nests too deeply") from exc
    except ValueError as exc:
        if str(exc).startswith("invalid timestamp data"):
            raise _fail("extension types are not allowed") from exc
        raise WireError(BAD_MSGPACK, f"not one MessagePack value: {exc}") from exc
    except (msgpack.UnpackException, TypeError) as exc:
        raise WireError(BAD_MSGPACK, f"not one MessagePack value: {exc}") from exc
    _check_item(value)
    return parse_frame(value)


def encode_frame(frame: _Frame) -> bytes:
    """Encode one (already checked) frame; refuses a frame over the size limit."""
    try:
        data: bytes = msgpack.packb(frame.to_value(), use_bin_type=True)
    except UnicodeEncodeError as exc:
        raise _fail("a string is not valid Unicode") from exc
    if len(data) > MAX_FRAME_BYTES:
        raise WireError(FRAME_TOO_LARGE, f"frame is {len(data)} bytes (limit {MAX_FRAME_BYTES})")
    return data
