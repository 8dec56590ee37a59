"""The DataChannel wire protocol (docs/protocol.md "Wire frames").

Mirror of static/swarm/protocol/wire.js.

One MessagePack map per message, ``{"t": type, ...fields}``. :func:`decode_frame` is the only
way bytes from a peer become a frame; it fails with a stable code (:class:`WireError`) so the
node can count and punish bad input. Frames are frozen dataclasses checked at construction;
:func:`encode_frame` writes ``t`` first, then the fields in spec order, with the shortest
encodings, so both languages produce the same bytes (tests/vectors/wire.json holds it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import msgpack

from .encoding import PEER_ID_RE
from .envelope import JsonObject
from .errors import BAD_MSGPACK, FRAME_TOO_LARGE, UNKNOWN_FRAME, UNSUPPORTED_FRAME
from .wire_fields import (
    MAX_SAFE,
    Field,
    WireError,
    binary,
    envelope,
    fail,
    integer,
    list_of,
    nullable_envelope,
    text,
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
# Post sync (docs/protocol.md "Post sync"): heads per summary frame, entries per answer.
MAX_SYNC_HEADS = 1024
MAX_SYNC_ENTRIES = 256
# Signaling through the mesh (docs/protocol.md "Signaling through the mesh"): the largest hop
# budget a signed message may grant (a frame's `hops` left is below it) and the peer ids a
# `reach` advert lists.
MAX_SIGNAL_HOPS = 6
MAX_REACH_PEERS = 64
# The DHT (docs/protocol.md "DHT"): contacts per answer (k), records per answer and per store.
MAX_DHT_NODES = 20
MAX_DHT_RECORDS = 20
MAX_DHT_STORE = 8
DHT_KIND_RE = re.compile(r"peer|provider")
# Patterns match the whole string (re.fullmatch): JS's `$` never admits a trailing newline.
CAP_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
REASON_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
DIGEST_ID_RE = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
PEER_ID_FULL_RE = re.compile(PEER_ID_RE.pattern.removeprefix("^").removesuffix("$"))
# "" (from the first author) or a peer id: where a summary's range of authors starts.
AFTER_RE = re.compile(r"|p[a-z2-7]{32}")
_RESERVED_RE = re.compile(r"(dht|sync|shard)_[a-z0-9_]{1,24}")


_peer_id = text(PEER_ID_FULL_RE)
_digest_id = text(DIGEST_ID_RE)
_uint32 = integer(0, MAX_UINT32)
_ms = integer(0, MAX_SAFE)


def _bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise fail(f"{name} must be a boolean")
    return value


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
        if value.keep:
            return {"id": value.id, "chunks": value.chunks}
        return {"id": value.id, "chunks": value.chunks, "keep": False}
    if isinstance(value, SyncHead):
        return {"author": value.author, "seq": value.seq, "hash": value.hash}
    return value


@dataclass(frozen=True, slots=True)
class Holding:
    """A replica advert: ``chunks`` verified chunks of manifest ``id`` (0 withdraws it);
    ``keep`` False for a copy the holder does not keep (a cache: a source, never a replica).
    On the wire ``keep`` is optional and written only when False."""

    id: str
    chunks: int
    keep: bool = True

    def __post_init__(self) -> None:
        _digest_id(self.id, "have.manifests.id")
        _chunk_count(self.chunks, "have.manifests.chunks")
        if not isinstance(self.keep, bool):
            raise fail("have.manifests.keep must be a boolean")


_chunk_count = integer(0, MAX_CHUNKS_PER_MANIFEST)


def _holding(value: object, name: str) -> Holding:
    if isinstance(value, Holding):
        return value
    if not isinstance(value, dict):
        raise fail(f"{name} must be a map")
    for key in ("id", "chunks"):
        if key not in value:
            raise fail(f"{name}.{key} is missing")
    keep = value.get("keep", True)
    if len(value) != (3 if "keep" in value else 2):
        raise fail(f"{name} has an unknown field")
    if not isinstance(keep, bool):
        raise fail(f"{name}.keep must be a boolean")
    # Checked here field by field: build without running the checks a second time.
    holding = object.__new__(Holding)
    object.__setattr__(holding, "id", _digest_id(value["id"], f"{name}.id"))
    object.__setattr__(holding, "chunks", _chunk_count(value["chunks"], f"{name}.chunks"))
    object.__setattr__(holding, "keep", keep)
    return holding


@dataclass(frozen=True, slots=True)
class SyncHead:
    """The head of one author's post log in a sync summary."""

    author: str
    seq: int
    hash: str

    def __post_init__(self) -> None:
        _peer_id(self.author, "sync_summary.heads.author")
        _ms(self.seq, "sync_summary.heads.seq")
        _digest_id(self.hash, "sync_summary.heads.hash")


def _sync_head(value: object, name: str) -> SyncHead:
    if isinstance(value, SyncHead):
        return value
    if not isinstance(value, dict):
        raise fail(f"{name} must be a map")
    for key in ("author", "seq", "hash"):
        if key not in value:
            raise fail(f"{name}.{key} is missing")
    if len(value) != 3:
        raise fail(f"{name} has an unknown field")
    return SyncHead(
        _peer_id(value["author"], f"{name}.author"),
        _ms(value["seq"], f"{name}.seq"),
        _digest_id(value["hash"], f"{name}.hash"),
    )


@dataclass(frozen=True, slots=True)
class Hello(_Frame):
    ticket: JsonObject
    caps: tuple[str, ...] = ()
    agent: str | None = None
    v: int = PROTOCOL_VERSION
    t: ClassVar[str] = "hello"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("v", integer(1, 0xFFFF)),
        Field("ticket", envelope),
        Field("caps", list_of(text(CAP_RE), MAX_CAPS)),
        Field("agent", text(None, MAX_AGENT_BYTES), required=False),
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
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("max", integer(1, MAX_PEX_PEERS)),)


@dataclass(frozen=True, slots=True)
class Pex(_Frame):
    peers: tuple[JsonObject, ...]
    t: ClassVar[str] = "pex"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("peers", list_of(envelope, MAX_PEX_PEERS)),)


@dataclass(frozen=True, slots=True)
class Gossip(_Frame):
    id: bytes
    origin: str
    ttl: int
    payload: JsonObject
    t: ClassVar[str] = "gossip"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("id", binary(length=ID_BYTES)),
        Field("origin", _peer_id),
        Field("ttl", integer(0, MAX_GOSSIP_TTL)),
        Field("payload", envelope),
    )


def parse_holdings(value: object, name: str = "manifests") -> tuple[Holding, ...]:
    """A list of replica adverts as the ``have`` frame carries it (also the ``have`` gossip
    topic's ``manifests``): at most ``MAX_HAVE_MANIFESTS`` checked entries. Raises
    :class:`WireError` (``bad_frame``)."""
    result: tuple[Holding, ...] = list_of(_holding, MAX_HAVE_MANIFESTS)(value, name)
    return result


@dataclass(frozen=True, slots=True)
class Have(_Frame):
    manifests: tuple[Holding, ...]
    t: ClassVar[str] = "have"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("manifests", list_of(_holding, MAX_HAVE_MANIFESTS)),
    )


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
        Field("manifest", nullable_envelope),
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
        Field("data", binary(max_bytes=MAX_CHUNK_DATA)),
    )


@dataclass(frozen=True, slots=True)
class ChunkMissing(_Frame):
    manifest: str
    index: int
    chunk: str
    t: ClassVar[str] = "chunk_missing"
    FIELDS: ClassVar[tuple[Field, ...]] = _CHUNK_REF


@dataclass(frozen=True, slots=True)
class SyncSummary(_Frame):
    """Heads of the sender's post logs for the authors after ``after`` (all the rest when
    ``end``, else up to the last head listed): "send me what I lack"."""

    heads: tuple[SyncHead, ...]
    after: str = ""
    end: bool = True
    t: ClassVar[str] = "sync_summary"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("heads", list_of(_sync_head, MAX_SYNC_HEADS)),
        Field("after", text(AFTER_RE)),
        Field("end", _bool),
    )


@dataclass(frozen=True, slots=True)
class SyncEntries(_Frame):
    """Signed post entries the receiver lacks; ``complete`` false: summarise again and ask."""

    entries: tuple[JsonObject, ...]
    complete: bool = True
    t: ClassVar[str] = "sync_entries"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("entries", list_of(envelope, MAX_SYNC_ENTRIES)),
        Field("complete", _bool),
    )


@dataclass(frozen=True, slots=True)
class ShardMsg(_Frame):
    """One signed ``swarm/shard/v1`` message for peer ``to`` (docs/protocol.md "Guardians
    and recovery"); its size, signature and fields are checked by the shard layer."""

    to: str
    msg: JsonObject
    t: ClassVar[str] = "shard_msg"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("to", _peer_id), Field("msg", envelope))


@dataclass(frozen=True, slots=True)
class Mail(_Frame):
    """One signed ``swarm/mail/v1`` message (a mail or an ack) for peer ``to``
    (docs/protocol.md "Mail"); its size, signature and fields are checked by the mail layer."""

    to: str
    msg: JsonObject
    t: ClassVar[str] = "mail"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("to", _peer_id), Field("msg", envelope))


@dataclass(frozen=True, slots=True)
class Signal(_Frame):
    """One signed ``swarm/meshsig/v1`` message (a WebRTC offer, answer, candidate or bye)
    relayed hop by hop; ``hops`` is how many more times it may be forwarded. Its size,
    signature and fields are checked by the mesh signaling layer (:mod:`.meshsignal`)."""

    hops: int
    msg: JsonObject
    t: ClassVar[str] = "signal"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("hops", integer(0, MAX_SIGNAL_HOPS - 1)),
        Field("msg", envelope),
    )


@dataclass(frozen=True, slots=True)
class Reach(_Frame):
    """The sender's other neighbours that take ``signal`` frames (its reach in one hop)."""

    peers: tuple[str, ...]
    t: ClassVar[str] = "reach"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("peers", list_of(_peer_id, MAX_REACH_PEERS)),)


_DHT_HEAD = (Field("id", _uint32), Field("ticket", envelope))
_dht_id = binary(length=ID_BYTES)
_dht_kind = text(DHT_KIND_RE)
_dht_nodes = list_of(envelope, MAX_DHT_NODES)


@dataclass(frozen=True, slots=True)
class DhtFindNode(_Frame):
    """The DHT (docs/protocol.md "DHT"): "which contacts do you know closest to ``target``?"
    ``id`` pairs the answer with the request; ``ticket`` is the sender's presence ticket."""

    id: int
    ticket: JsonObject
    target: bytes
    t: ClassVar[str] = "dht_find_node"
    FIELDS: ClassVar[tuple[Field, ...]] = (*_DHT_HEAD, Field("target", _dht_id))


@dataclass(frozen=True, slots=True)
class DhtFindValue(_Frame):
    """Which records of ``kind`` (peer | provider) are held for ``key``."""

    id: int
    ticket: JsonObject
    kind: str
    key: bytes
    t: ClassVar[str] = "dht_find_value"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        *_DHT_HEAD,
        Field("kind", _dht_kind),
        Field("key", _dht_id),
    )


@dataclass(frozen=True, slots=True)
class DhtStore(_Frame):
    """Keep these signed records of ``kind`` (each is checked by the DHT layer)."""

    id: int
    ticket: JsonObject
    kind: str
    records: tuple[JsonObject, ...]
    t: ClassVar[str] = "dht_store"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        *_DHT_HEAD,
        Field("kind", _dht_kind),
        Field("records", list_of(envelope, MAX_DHT_STORE)),
    )


@dataclass(frozen=True, slots=True)
class DhtNodes(_Frame):
    """The answer to ``dht_find_node``: contacts as their presence tickets."""

    id: int
    ticket: JsonObject
    nodes: tuple[JsonObject, ...]
    t: ClassVar[str] = "dht_nodes"
    FIELDS: ClassVar[tuple[Field, ...]] = (*_DHT_HEAD, Field("nodes", _dht_nodes))


@dataclass(frozen=True, slots=True)
class DhtValue(_Frame):
    """The answer to ``dht_find_value``: the records held, else closer contacts."""

    id: int
    ticket: JsonObject
    records: tuple[JsonObject, ...]
    nodes: tuple[JsonObject, ...]
    t: ClassVar[str] = "dht_value"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        *_DHT_HEAD,
        Field("records", list_of(envelope, MAX_DHT_RECORDS)),
        Field("nodes", _dht_nodes),
    )


@dataclass(frozen=True, slots=True)
class DhtStored(_Frame):
    """The answer to ``dht_store``: one code per record (``stored`` or why not)."""

    id: int
    ticket: JsonObject
    codes: tuple[str, ...]
    t: ClassVar[str] = "dht_stored"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        *_DHT_HEAD,
        Field("codes", list_of(text(REASON_RE), MAX_DHT_STORE)),
    )


DhtFrame = DhtFindNode | DhtFindValue | DhtStore | DhtNodes | DhtValue | DhtStored
DHT_FRAMES: tuple[type[_Frame], ...] = (
    DhtFindNode,
    DhtFindValue,
    DhtStore,
    DhtNodes,
    DhtValue,
    DhtStored,
)


@dataclass(frozen=True, slots=True)
class Bye(_Frame):
    reason: str
    t: ClassVar[str] = "bye"
    FIELDS: ClassVar[tuple[Field, ...]] = (Field("reason", text(REASON_RE)),)


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
    | SyncSummary
    | SyncEntries
    | ShardMsg
    | Mail
    | Signal
    | Reach
    | DhtFrame
    | Bye
)
# Frames the node hands to the content layer (files, post sync, guardians, mail, mesh
# signaling, the DHT) instead of handling.
ContentFrame = (
    Have
    | ManifestReq
    | Manifest
    | ChunkReq
    | Chunk
    | ChunkMissing
    | SyncSummary
    | SyncEntries
    | ShardMsg
    | Mail
    | Signal
    | Reach
    | DhtFrame
)
CONTENT_FRAMES: tuple[type[_Frame], ...] = (
    Have,
    ManifestReq,
    Manifest,
    ChunkReq,
    Chunk,
    ChunkMissing,
    SyncSummary,
    SyncEntries,
    ShardMsg,
    Mail,
    Signal,
    Reach,
    *DHT_FRAMES,
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
        raise fail("a frame must be a map")
    frame_type = value.get("t")
    if type(frame_type) is not str:
        raise fail("t must be a string")
    cls = _CLASSES.get(frame_type)
    if cls is None:
        if _RESERVED_RE.fullmatch(frame_type):
            raise WireError(UNSUPPORTED_FRAME, f"frame type {frame_type} is reserved")
        raise WireError(UNKNOWN_FRAME, "unknown frame type")
    checked: dict[str, Any] = {}
    for field in cls.FIELDS:
        if field.name not in value:
            if field.required:
                raise fail(f"{frame_type}.{field.name} is missing")
            continue
        checked[field.name] = field.kind(value[field.name], f"{frame_type}.{field.name}")
    if len(value) != len(checked) + 1:
        raise fail(f"{frame_type} has an unknown field")
    # Already checked field by field: build without running the checks a second time.
    frame = object.__new__(cls)
    for field in cls.FIELDS:
        object.__setattr__(frame, field.name, checked.get(field.name))
    return frame  # type: ignore[return-value]


# --- MessagePack, strictly: no floats, no extension types, string keys, valid UTF-8 ---


def _check_item(value: object) -> None:
    if type(value) is float:
        raise fail("floats are not allowed")
    if isinstance(value, (msgpack.ExtType, msgpack.Timestamp)):
        raise fail("extension types are not allowed")


# The hooks run inside the C unpacker as each container completes, so the checks cost no
# second walk over the value and no Python recursion however deep the nesting.
def _map_hook(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if type(key) is not str:
            raise fail("map keys must be strings")
        if key == "__proto__":
            raise fail("the key __proto__ is not allowed")
        _check_item(value)
        out[key] = value
    return out


def _list_hook(items: list[Any]) -> list[Any]:
    for item in items:
        _check_item(item)
    return items


def _ext_hook(code: int, data: bytes) -> Any:
    raise fail("extension types are not allowed")


def decode_frame(data: bytes | bytearray | memoryview | str) -> Frame:
    """Decode and check one frame; raises :class:`WireError` with a stable code."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise fail("frames are binary messages")
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
        raise fail("the frame nests too deeply") from exc
    except ValueError as exc:
        if str(exc).startswith("invalid timestamp data"):
            raise fail("extension types are not allowed") from exc
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
        raise fail("a string is not valid Unicode") from exc
    if len(data) > MAX_FRAME_BYTES:
        raise WireError(FRAME_TOO_LARGE, f"frame is {len(data)} bytes (limit {MAX_FRAME_BYTES})")
    return data
