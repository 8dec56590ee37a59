"""Write tests/vectors/wire.json: the DataChannel wire frames (docs/protocol.md "Wire frames").

Frames are packed here with the `msgpack` package, independently of any codec under test,
and checked by node --test (static/swarm/protocol/wire.js) and by the Python codec.
Deterministic: fixed seeds, deterministic Ed25519, fixed times; `--check` compares.
Usage: python scripts/make_wire_vectors.py [--check]

In the JSON, binary values are {"$bin": "<hex>"} and {"$zeros": n} (n zero bytes); a frame
with "pad_to" is `hex` followed by zero bytes up to that many bytes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.dht_records import make_provider_record
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_MANIFEST, sign
from peers.protocol.keywrap import x25519_public
from peers.protocol.mail import make_ack, make_mail
from peers.protocol.meshsignal_messages import make_signal
from peers.protocol.posts import entry_hash, make_post
from peers.protocol.shard import make_revoke, make_share
from peers.protocol.ticket import make_ticket

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "wire.json"
NOW = 1_800_000_000_000
COMMUNITY = "main"
MAX_FRAME_BYTES = 256 * 1024
MAX_CHUNK_DATA = 64 * 1024 + 16
DOMAIN_GOSSIP = "swarm/gossip/v1"
MAX_SAFE = 2**53 - 1


class Zeros:
    """n zero bytes, written compactly in the JSON."""

    def __init__(self, n: int) -> None:
        self.n = n


def key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


ALICE, BOB, CAROL = key("alice"), key("bob"), key("carol")


def pid(k: Ed25519PrivateKey) -> str:
    return peer_id_for_key(k.public_key().public_bytes_raw())


def ticket(k: Ed25519PrivateKey, n: int, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"community": COMMUNITY, "now": NOW - 1000, "nonce": f"d2lyZS0{n:05d}"}
    args.update(kw)
    return make_ticket(k, **args)


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def to_native(value: Any) -> Any:
    if isinstance(value, Zeros):
        return bytes(value.n)
    if isinstance(value, dict):
        return {k: to_native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_native(v) for v in value]
    return value


def to_json(value: Any) -> Any:
    if isinstance(value, Zeros):
        return {"$zeros": value.n}
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def pack(value: Any) -> bytes:
    return msgpack.packb(to_native(value), use_bin_type=True)


def hex_fields(data: bytes) -> dict[str, Any]:
    """`hex`, with a long run of trailing zero bytes written as `pad_to` instead."""
    body = data.rstrip(b"\x00")
    if len(data) - len(body) < 256:
        return {"hex": data.hex()}
    return {"hex": body.hex(), "pad_to": len(data)}


def gossip_id(payload: dict[str, Any]) -> bytes:
    return hashlib.sha256(rfc8785.dumps(payload)).digest()


def gossip_payload(k: Ed25519PrivateKey, **body: Any) -> dict[str, Any]:
    full = {"community": COMMUNITY, "topic": "chat", "issued_at": NOW - 5000, "data": None}
    full.update(body)
    return sign(DOMAIN_GOSSIP, full, k)


def gossip_frame(
    payload: dict[str, Any], *, origin: str | None = None, ttl: int = 8
) -> dict[str, Any]:
    return {
        "t": "gossip",
        "id": gossip_id(payload),
        "origin": origin or pid(ALICE),
        "ttl": ttl,
        "payload": payload,
    }


def nested(depth: int) -> Any:
    """A value whose innermost scalar sits `depth` levels below the envelope map."""
    value: Any = 1
    for _ in range(depth - 2):  # envelope -> body -> data -> ... lists
        value = [value]
    return value


def hello(**over: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "t": "hello",
        "v": 1,
        "ticket": ticket(ALICE, 1),
        "caps": ["gossip", "pex"],
    }
    frame.update(over)
    return frame


def did(label: str) -> str:
    """A manifest or chunk id: unpadded base64url SHA-256."""
    return b64url_encode(h(label))


def holdings(n: int) -> list[dict[str, Any]]:
    return [{"id": did(f"manifest-{i}"), "chunks": i % 4097} for i in range(n)]


def heads(n: int) -> list[dict[str, Any]]:
    """Sync summary heads of n distinct authors, sorted by author."""
    authors = sorted(pid(key(f"author-{i}")) for i in range(n))
    return [{"author": a, "seq": i * 7, "hash": did(f"head-{i}")} for i, a in enumerate(authors)]


def post_entries() -> list[dict[str, Any]]:
    first = make_post(ALICE, seq=0, prev=None, created_at=NOW - 2000, text="first", name="Alice")
    second = make_post(
        ALICE,
        seq=1,
        prev=entry_hash(first["body"]),
        created_at=NOW - 1000,
        text="h\u00e9llo \u2603",
        attachments=[did("manifest-0")],
        name="Alice",
    )
    return [first, second]


def shard_share() -> dict[str, Any]:
    """A signed share (swarm/shard/v1) from Alice to Bob, sealed with fixed keys."""
    bob_x = X25519PrivateKey.from_private_bytes(h("bob/x25519"))
    return make_share(
        ALICE,
        guardian=pid(BOB),
        guardian_key=x25519_public(bob_x),
        set_id=did("set")[:21] + "A",
        index=1,
        k=2,
        n=3,
        share="academic acid acne acquire acrobat activity actress adapt adequate adjust",
        issued_at=NOW - 1000,
        expires_at=NOW - 1000 + 730 * 86_400_000,
        ephemeral=X25519PrivateKey.from_private_bytes(h("wire/ephemeral")),
    )


def mail_mail() -> dict[str, Any]:
    """A mail (swarm/mail/v1) from Alice to Bob, sealed with fixed keys."""
    bob_x = X25519PrivateKey.from_private_bytes(h("bob/x25519"))
    return make_mail(
        ALICE,
        to=pid(BOB),
        to_key=x25519_public(bob_x),
        topic="wrapped-key",
        data={"manifest": did("manifest-0")},
        created_at=NOW - 1000,
        id=did("mail")[:21] + "A",
        ephemeral=X25519PrivateKey.from_private_bytes(h("wire/mail-ephemeral")),
    )


def meshsig_offer(**kw: Any) -> dict[str, Any]:
    """A swarm/meshsig/v1 offer from Alice to Carol, budget 4 hops."""
    args: dict[str, Any] = {
        "to": pid(CAROL),
        "sid": did("meshsig")[:21] + "A",
        "kind": "offer",
        "payload": {"type": "offer", "sdp": "v=0\r\n"},
        "created_at": NOW - 1000,
        "hops": 4,
    }
    args.update(kw)
    return make_signal(ALICE, **args)


def dht_provide() -> dict[str, Any]:
    manifest = b64url_encode(h("manifest"))
    return make_provider_record(ALICE, community=COMMUNITY, manifest=manifest, chunks=3, now=NOW)


def valid_frames() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, frame: dict[str, Any], raw: bytes | None = None) -> None:
        case: dict[str, Any] = {"name": name, **hex_fields(raw or pack(frame)), "frame": frame}
        if raw is not None:
            case["canonical"] = False
        out.append(case)

    add("hello_minimal", hello(caps=[]))
    add("hello_full", hello(caps=["gossip", "pex", "superpeer"], agent="swarm-py/1 (aiortc)"))
    add("hello_agent_64_bytes", hello(agent="\u00e9" * 32))
    add("hello_16_caps", hello(caps=[f"cap{i}" for i in range(16)]))
    add("ping", {"t": "ping", "n": 1, "ts": NOW})
    add("ping_limits", {"t": "ping", "n": 2**32 - 1, "ts": MAX_SAFE})
    add("pong_zero", {"t": "pong", "n": 0, "ts": 0})
    add("pex_req", {"t": "pex_req", "max": 16})
    add("pex_req_50", {"t": "pex_req", "max": 50})
    add("pex_empty", {"t": "pex", "peers": []})
    add("pex_two", {"t": "pex", "peers": [ticket(BOB, 2), ticket(CAROL, 3)]})
    add("pex_50", {"t": "pex", "peers": [ticket(BOB, 100 + i) for i in range(50)]})
    add("gossip", gossip_frame(gossip_payload(ALICE, data={"text": "hello swarm"})))
    add("gossip_ttl_0", gossip_frame(gossip_payload(ALICE, topic="x"), ttl=0))
    add("gossip_ttl_16", gossip_frame(gossip_payload(ALICE, topic="a.b-c_d"), ttl=16))
    add(
        "gossip_unicode_data",
        gossip_frame(
            gossip_payload(ALICE, data={"text": "h\u00e9llo \u2603 \U0001f600", "n": -42})
        ),
    )
    add("gossip_depth_17", gossip_frame(gossip_payload(ALICE, data=nested(17))))
    add("have_empty", {"t": "have", "manifests": []})
    add("have_three", {"t": "have", "manifests": holdings(3)})
    add(
        "have_withdraw_and_max_chunks",
        {
            "t": "have",
            "manifests": [{"id": did("m-a"), "chunks": 0}, {"id": did("m-b"), "chunks": 4096}],
        },
    )
    add(
        "have_not_kept",
        {
            "t": "have",
            "manifests": [
                {"id": did("m-a"), "chunks": 3},
                {"id": did("m-b"), "chunks": 3, "keep": False},
            ],
        },
    )
    add("have_256", {"t": "have", "manifests": holdings(256)})
    add("manifest_req", {"t": "manifest_req", "id": did("manifest-0")})
    add("manifest_missing", {"t": "manifest", "id": did("manifest-0"), "manifest": None})
    manifest = sign(DOMAIN_MANIFEST, {"name": "placeholder.txt", "size": 3}, ALICE)
    add("manifest", {"t": "manifest", "id": did("manifest-0"), "manifest": manifest})
    add(
        "chunk_req",
        {"t": "chunk_req", "manifest": did("manifest-0"), "index": 7, "chunk": did("chunk-7")},
    )
    add(
        "chunk",
        {
            "t": "chunk",
            "manifest": did("manifest-0"),
            "index": 7,
            "chunk": did("chunk-7"),
            "data": b"\x00\x01\x02",
        },
    )
    add(
        "chunk_max_data",
        {
            "t": "chunk",
            "manifest": did("manifest-0"),
            "index": 2**32 - 1,
            "chunk": did("chunk-x"),
            "data": Zeros(MAX_CHUNK_DATA),
        },
    )
    add(
        "chunk_missing",
        {"t": "chunk_missing", "manifest": did("manifest-0"), "index": 0, "chunk": did("chunk-0")},
    )
    add("sync_summary_empty", {"t": "sync_summary", "heads": [], "after": "", "end": True})
    add(
        "sync_summary_two",
        {"t": "sync_summary", "heads": heads(2), "after": "", "end": True},
    )
    add(
        "sync_summary_part",
        {"t": "sync_summary", "heads": heads(1024), "after": pid(BOB), "end": False},
    )
    add("sync_entries", {"t": "sync_entries", "entries": post_entries(), "complete": True})
    add("sync_entries_cut", {"t": "sync_entries", "entries": [], "complete": False})
    add("shard_msg_share", {"t": "shard_msg", "to": pid(BOB), "msg": shard_share()})
    revoke = make_revoke(ALICE, set_id=did("set")[:21] + "A", issued_at=NOW)
    add("shard_msg_revoke", {"t": "shard_msg", "to": pid(CAROL), "msg": revoke})
    add("mail_mail", {"t": "mail", "to": pid(BOB), "msg": mail_mail()})
    ack = make_ack(BOB, to=pid(ALICE), ids=[did("mail")[:21] + "A"], acked_at=NOW)
    add("mail_ack", {"t": "mail", "to": pid(ALICE), "msg": ack})
    add("signal_offer", {"t": "signal", "hops": 3, "msg": meshsig_offer()})
    bye = meshsig_offer(kind="bye", payload=None, hops=6)
    add("signal_hops_0", {"t": "signal", "hops": 0, "msg": bye})
    add("signal_hops_5", {"t": "signal", "hops": 5, "msg": bye})
    add("reach_empty", {"t": "reach", "peers": []})
    add("reach_two", {"t": "reach", "peers": [pid(BOB), pid(CAROL)]})
    add("reach_64", {"t": "reach", "peers": [pid(key(f"reach-{i}")) for i in range(64)]})
    # the DHT (contacts and peer records are presence tickets)
    me = ticket(ALICE, 40)
    contacts = [ticket(key(f"dht-{i}"), 41 + i) for i in range(20)]
    add("dht_find_node", {"t": "dht_find_node", "id": 1, "ticket": me, "target": h("target")})
    add(
        "dht_find_value_peer",
        {"t": "dht_find_value", "id": 2, "ticket": me, "kind": "peer", "key": h("peer")},
    )
    add(
        "dht_find_value_provider",
        {"t": "dht_find_value", "id": 2**32 - 1, "ticket": me, "kind": "provider", "key": h("m")},
    )
    add("dht_nodes_empty", {"t": "dht_nodes", "id": 1, "ticket": me, "nodes": []})
    add("dht_nodes_20", {"t": "dht_nodes", "id": 1, "ticket": me, "nodes": contacts})
    provide = dht_provide()
    add(
        "dht_value_records",
        {"t": "dht_value", "id": 2, "ticket": me, "records": [provide], "nodes": []},
    )
    add(
        "dht_value_nodes",
        {"t": "dht_value", "id": 2, "ticket": me, "records": [], "nodes": contacts[:3]},
    )
    add(
        "dht_store_8",
        {"t": "dht_store", "id": 3, "ticket": me, "kind": "provider", "records": [provide] * 8},
    )
    add(
        "dht_stored",
        {"t": "dht_stored", "id": 3, "ticket": me, "codes": ["stored", "not_close", "replay"]},
    )
    add("bye", {"t": "bye", "reason": "mesh_full"})
    # Receivers accept any field order and any integer/string width (not only the shortest).
    add(
        "fields_in_other_order",
        {"t": "ping", "n": 5, "ts": 6},
        raw=bytes([0x83, 0xA2])
        + b"ts"
        + bytes([0x06, 0xA1])
        + b"n"
        + bytes([0x05, 0xA1])
        + b"t"
        + bytes([0xA4])
        + b"ping",
    )
    add(
        "wide_ints_and_str8",
        {"t": "ping", "n": 5, "ts": 6},
        raw=bytes([0x83, 0xD9, 0x01])
        + b"t"
        + bytes([0xD9, 0x04])
        + b"ping"
        + bytes([0xA1])
        + b"n"
        + bytes([0xCE, 0, 0, 0, 5])
        + bytes([0xA2])
        + b"ts"
        + bytes([0xCF])
        + struct.pack(">Q", 6),
    )
    return out


def invalid_frames() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def bad(
        name: str, raw: bytes | dict[str, Any] | list[Any] | Any, error: str, **extra: Any
    ) -> None:
        data = raw if isinstance(raw, bytes) else pack(raw)
        out.append({"name": name, **hex_fields(data), **extra, "error": error})

    ping = pack({"t": "ping", "n": 1, "ts": NOW})
    # MessagePack itself
    bad("empty", b"", "bad_msgpack")
    bad("truncated", ping[:-1], "bad_msgpack")
    bad("trailing_byte", ping + b"\x00", "bad_msgpack")
    bad("two_frames", ping + ping, "bad_msgpack")
    bad("never_used_byte_c1", b"\xc1", "bad_msgpack")
    bad("invalid_utf8_value", bytes([0x81, 0xA1]) + b"t" + bytes([0xA2, 0xC3, 0x28]), "bad_msgpack")
    bad("invalid_utf8_key", bytes([0x81, 0xA2, 0xFF, 0xFE, 0xA4]) + b"ping", "bad_msgpack")
    bad(
        "lone_surrogate_utf8",
        bytes([0x81, 0xA1]) + b"t" + bytes([0xA3, 0xED, 0xA0, 0x80]),
        "bad_msgpack",
    )
    bad("over_256_kib", b"\x80", "frame_too_large", pad_to=MAX_FRAME_BYTES + 1)
    # Shape
    bad("array_not_map", ["ping", 1, NOW], "bad_frame")
    bad("integer_not_map", 7, "bad_frame")
    bad("string_not_map", "ping", "bad_frame")
    bad("nil_not_map", None, "bad_frame")
    bad("t_missing", {"n": 1, "ts": NOW}, "bad_frame")
    bad("t_integer", {"t": 1, "n": 1, "ts": NOW}, "bad_frame")
    bad("t_binary", {"t": b"ping", "n": 1, "ts": NOW}, "bad_frame")
    bad("t_nil", {"t": None}, "bad_frame")
    bad(
        "integer_key",
        bytes([0x82, 0xA1]) + b"t" + bytes([0xA4]) + b"ping" + bytes([0x01, 0x01]),
        "bad_frame",
    )
    bad("binary_key", bytes([0x81, 0xC4, 0x01]) + b"t" + bytes([0xA4]) + b"ping", "bad_frame")
    bad("proto_key", {"t": "ping", "n": 1, "ts": NOW, "__proto__": {}}, "bad_frame")
    bad("float64_value", {"t": "ping", "n": 1, "ts": float(NOW)}, "bad_frame")
    bad("float64_integral_value", {"t": "ping", "n": 1.0, "ts": NOW}, "bad_frame")
    bad(
        "float32_value",
        bytes([0x83, 0xA1])
        + b"t"
        + bytes([0xA4])
        + b"ping"
        + bytes([0xA1])
        + b"n"
        + bytes([0xCA])
        + struct.pack(">f", 1.0)
        + bytes([0xA2])
        + b"ts"
        + bytes([0x00]),
        "bad_frame",
    )
    bad("ext_value", {"t": "ping", "n": 1, "ts": msgpack.ExtType(5, b"\x01")}, "bad_frame")
    bad(
        "timestamp_ext_value",
        bytes([0x83, 0xA1])
        + b"t"
        + bytes([0xA4])
        + b"ping"
        + bytes([0xA1])
        + b"n"
        + bytes([0x01])
        + bytes([0xA2])
        + b"ts"
        + bytes([0xD6, 0xFF])
        + struct.pack(">I", 1_800_000_000),
        "bad_frame",
    )
    bad("unknown_field", {"t": "ping", "n": 1, "ts": NOW, "x": 1}, "bad_frame")
    # Types
    bad("unknown_type", {"t": "nope"}, "unknown_frame")
    bad("empty_type", {"t": ""}, "unknown_frame")
    bad("upper_case_type", {"t": "PING", "n": 1, "ts": NOW}, "unknown_frame")
    bad("object_prototype_name", {"t": "constructor"}, "unknown_frame")
    bad("reserved_dht", {"t": "dht_later", "target": h("x")}, "unsupported_frame")
    bad("reserved_sync", {"t": "sync_have"}, "unsupported_frame")
    bad("reserved_shard", {"t": "shard_put", "x": 1}, "unsupported_frame")
    bad("reserved_prefix_alone", {"t": "dht_"}, "unknown_frame")
    # hello
    bad("hello_missing_ticket", {"t": "hello", "v": 1, "caps": []}, "bad_frame")
    bad("hello_missing_caps", {"t": "hello", "v": 1, "ticket": ticket(ALICE, 1)}, "bad_frame")
    bad("hello_v_zero", hello(v=0), "bad_frame")
    bad("hello_v_string", hello(v="1"), "bad_frame")
    bad("hello_v_bool", hello(v=True), "bad_frame")
    bad("hello_ticket_string", hello(ticket="ticket"), "bad_frame")
    bad("hello_ticket_nil", hello(ticket=None), "bad_frame")
    bad("hello_caps_not_list", hello(caps="gossip"), "bad_frame")
    bad("hello_17_caps", hello(caps=[f"cap{i}" for i in range(17)]), "bad_frame")
    bad("hello_cap_upper_case", hello(caps=["Gossip"]), "bad_frame")
    bad("hello_cap_trailing_newline", hello(caps=["gossip\n"]), "bad_frame")
    bad("hello_agent_65_bytes", hello(agent="a" * 65), "bad_frame")
    bad("hello_agent_33_two_byte_chars", hello(agent="\u00e9" * 33), "bad_frame")
    bad("hello_agent_nil", hello(agent=None), "bad_frame")
    with_bin = ticket(ALICE, 1)
    with_bin["sig"] = b"\x00" * 64
    bad("hello_ticket_with_binary", hello(ticket=with_bin), "bad_frame")
    too_big = ticket(ALICE, 1)
    too_big["body"]["issued_at"] = MAX_SAFE + 1
    bad("hello_ticket_unsafe_integer", hello(ticket=too_big), "bad_frame")
    # ping / pong
    bad("ping_missing_ts", {"t": "ping", "n": 1}, "bad_frame")
    bad("ping_n_negative", {"t": "ping", "n": -1, "ts": NOW}, "bad_frame")
    bad("ping_n_2_32", {"t": "ping", "n": 2**32, "ts": NOW}, "bad_frame")
    bad("ping_ts_negative", {"t": "ping", "n": 1, "ts": -1}, "bad_frame")
    bad("ping_ts_unsafe", {"t": "ping", "n": 1, "ts": MAX_SAFE + 1}, "bad_frame")
    bad("ping_ts_uint64_max", {"t": "ping", "n": 1, "ts": 2**64 - 1}, "bad_frame")
    bad("ping_n_bool", {"t": "ping", "n": True, "ts": NOW}, "bad_frame")
    bad("pong_ts_nil", {"t": "pong", "n": 1, "ts": None}, "bad_frame")
    # pex
    bad("pex_req_max_zero", {"t": "pex_req", "max": 0}, "bad_frame")
    bad("pex_req_max_51", {"t": "pex_req", "max": 51}, "bad_frame")
    bad("pex_req_missing_max", {"t": "pex_req"}, "bad_frame")
    bad("pex_51", {"t": "pex", "peers": [ticket(BOB, 2)] * 51}, "bad_frame")
    bad("pex_peers_not_list", {"t": "pex", "peers": ticket(BOB, 2)}, "bad_frame")
    bad("pex_peer_string", {"t": "pex", "peers": ["pabc"]}, "bad_frame")
    # gossip
    good = gossip_frame(gossip_payload(ALICE))
    bad("gossip_id_31_bytes", {**good, "id": good["id"][:31]}, "bad_frame")
    bad("gossip_id_hex_string", {**good, "id": good["id"].hex()}, "bad_frame")
    bad("gossip_origin_malformed", {**good, "origin": "alice"}, "bad_frame")
    bad("gossip_origin_trailing_newline", {**good, "origin": pid(ALICE) + "\n"}, "bad_frame")
    bad("gossip_ttl_17", {**good, "ttl": 17}, "bad_frame")
    bad("gossip_ttl_negative", {**good, "ttl": -1}, "bad_frame")
    bad("gossip_payload_string", {**good, "payload": "x"}, "bad_frame")
    bad("gossip_payload_list", {**good, "payload": []}, "bad_frame")
    deep = copy.deepcopy(good["payload"])  # too deep to sign; the wire check comes first
    deep["body"]["data"] = nested(18)
    bad("gossip_payload_depth_18", {**good, "payload": deep}, "bad_frame")
    proto = gossip_payload(ALICE, data={"__proto__": 1})
    bad("gossip_payload_proto_key", gossip_frame(proto), "bad_frame")
    bad("gossip_missing_ttl", {k: v for k, v in good.items() if k != "ttl"}, "bad_frame")
    # content
    bad("have_257", {"t": "have", "manifests": holdings(257)}, "bad_frame")
    bad("have_not_a_map", {"t": "have", "manifests": [did("m")]}, "bad_frame")
    bad(
        "have_chunks_4097",
        {"t": "have", "manifests": [{"id": did("m"), "chunks": 4097}]},
        "bad_frame",
    )
    bad(
        "have_extra_field",
        {"t": "have", "manifests": [{"id": did("m"), "chunks": 1, "x": 1}]},
        "bad_frame",
    )
    bad("have_missing_chunks", {"t": "have", "manifests": [{"id": did("m")}]}, "bad_frame")
    bad(
        "have_keep_not_bool",
        {"t": "have", "manifests": [{"id": did("m"), "chunks": 1, "keep": 1}]},
        "bad_frame",
    )
    bad(
        "have_padded_id",
        {"t": "have", "manifests": [{"id": did("m") + "=", "chunks": 1}]},
        "bad_frame",
    )
    noncanonical = did("m")[:-1] + "B"  # last character carries non-zero low bits
    bad("manifest_req_noncanonical_id", {"t": "manifest_req", "id": noncanonical}, "bad_frame")
    bad("manifest_req_binary_id", {"t": "manifest_req", "id": h("m")}, "bad_frame")
    bad("manifest_req_missing", {"t": "manifest_req"}, "bad_frame")
    bad("manifest_integer", {"t": "manifest", "id": did("f"), "manifest": 1}, "bad_frame")
    bad("manifest_missing_field", {"t": "manifest", "id": did("f")}, "bad_frame")
    c = {"manifest": did("f"), "index": 0, "chunk": did("c")}
    bad("chunk_req_index_negative", {"t": "chunk_req", **c, "index": -1}, "bad_frame")
    bad("chunk_req_chunk_hex", {"t": "chunk_req", **c, "chunk": h("c").hex()}, "bad_frame")
    bad("chunk_data_too_long", {"t": "chunk", **c, "data": Zeros(MAX_CHUNK_DATA + 1)}, "bad_frame")
    bad("chunk_data_string", {"t": "chunk", **c, "data": "x"}, "bad_frame")
    bad("chunk_missing_index_2_32", {"t": "chunk_missing", **c, "index": 2**32}, "bad_frame")
    # sync
    s = {"t": "sync_summary", "heads": heads(1), "after": "", "end": True}
    bad("sync_summary_1025_heads", {**s, "heads": heads(1025)}, "bad_frame")
    bad("sync_summary_missing_end", {"t": "sync_summary", "heads": [], "after": ""}, "bad_frame")
    bad("sync_summary_end_integer", {**s, "end": 1}, "bad_frame")
    bad("sync_summary_after_not_peer", {**s, "after": "alice"}, "bad_frame")
    bad("sync_summary_head_seq_negative", {**s, "heads": [{**heads(1)[0], "seq": -1}]}, "bad_frame")
    bad("sync_summary_head_extra", {**s, "heads": [{**heads(1)[0], "x": 1}]}, "bad_frame")
    bad(
        "sync_summary_head_hex_hash",
        {**s, "heads": [{**heads(1)[0], "hash": h("x").hex()}]},
        "bad_frame",
    )
    e = {"t": "sync_entries", "entries": [], "complete": True}
    bad("sync_entries_257", {**e, "entries": [{"v": 1}] * 257}, "bad_frame")
    bad("sync_entries_not_a_map", {**e, "entries": ["post"]}, "bad_frame")
    bad("sync_entries_binary", {**e, "entries": [{"sig": b"x"}]}, "bad_frame")
    bad("sync_entries_complete_nil", {**e, "complete": None}, "bad_frame")
    # shard
    sm = {"t": "shard_msg", "to": pid(BOB), "msg": shard_share()}
    bad("shard_msg_missing_to", {"t": "shard_msg", "msg": sm["msg"]}, "bad_frame")
    bad("shard_msg_missing_msg", {"t": "shard_msg", "to": pid(BOB)}, "bad_frame")
    bad("shard_msg_to_malformed", {**sm, "to": "bob"}, "bad_frame")
    bad("shard_msg_msg_string", {**sm, "msg": "share"}, "bad_frame")
    bad("shard_msg_msg_nil", {**sm, "msg": None}, "bad_frame")
    with_bin = copy.deepcopy(sm["msg"])
    with_bin["body"]["sealed"] = b"\x00" * 64
    bad("shard_msg_msg_with_binary", {**sm, "msg": with_bin}, "bad_frame")
    bad("shard_msg_extra_field", {**sm, "ttl": 3}, "bad_frame")
    # mail
    mm = {"t": "mail", "to": pid(BOB), "msg": mail_mail()}
    bad("mail_missing_to", {"t": "mail", "msg": mm["msg"]}, "bad_frame")
    bad("mail_missing_msg", {"t": "mail", "to": pid(BOB)}, "bad_frame")
    bad("mail_to_malformed", {**mm, "to": "bob"}, "bad_frame")
    bad("mail_msg_string", {**mm, "msg": "mail"}, "bad_frame")
    bad("mail_msg_nil", {**mm, "msg": None}, "bad_frame")
    bad("mail_msg_list", {**mm, "msg": [mm["msg"]]}, "bad_frame")
    bad("mail_extra_field", {**mm, "via": pid(CAROL)}, "bad_frame")
    # signal
    sg = {"t": "signal", "hops": 3, "msg": meshsig_offer()}
    bad("signal_missing_hops", {"t": "signal", "msg": sg["msg"]}, "bad_frame")
    bad("signal_missing_msg", {"t": "signal", "hops": 3}, "bad_frame")
    bad("signal_hops_6", {**sg, "hops": 6}, "bad_frame")
    bad("signal_hops_negative", {**sg, "hops": -1}, "bad_frame")
    bad("signal_hops_string", {**sg, "hops": "3"}, "bad_frame")
    bad("signal_msg_string", {**sg, "msg": "offer"}, "bad_frame")
    bad("signal_msg_nil", {**sg, "msg": None}, "bad_frame")
    sg_bin = copy.deepcopy(sg["msg"])
    sg_bin["body"]["payload"] = b"sdp"
    bad("signal_msg_with_binary", {**sg, "msg": sg_bin}, "bad_frame")
    bad("signal_extra_field", {**sg, "to": pid(CAROL)}, "bad_frame")
    # dht
    me = ticket(ALICE, 40)
    fn = {"t": "dht_find_node", "id": 1, "ticket": me, "target": h("target")}
    bad("dht_find_node_missing_ticket", {k: v for k, v in fn.items() if k != "ticket"}, "bad_frame")
    bad("dht_find_node_id_negative", {**fn, "id": -1}, "bad_frame")
    bad("dht_find_node_id_too_big", {**fn, "id": 2**32}, "bad_frame")
    bad("dht_find_node_target_31_bytes", {**fn, "target": h("x")[:31]}, "bad_frame")
    bad("dht_find_node_target_string", {**fn, "target": "x" * 32}, "bad_frame")
    bad("dht_find_node_ticket_nil", {**fn, "ticket": None}, "bad_frame")
    bad("dht_find_node_extra_field", {**fn, "kind": "peer"}, "bad_frame")
    fv = {"t": "dht_find_value", "id": 2, "ticket": me, "kind": "peer", "key": h("peer")}
    bad("dht_find_value_kind_unknown", {**fv, "kind": "node"}, "bad_frame")
    bad("dht_find_value_kind_upper_case", {**fv, "kind": "PEER"}, "bad_frame")
    bad("dht_find_value_missing_key", {k: v for k, v in fv.items() if k != "key"}, "bad_frame")
    nodes21 = [ticket(key(f"dht-{i}"), 41 + i) for i in range(21)]
    bad("dht_nodes_21", {"t": "dht_nodes", "id": 1, "ticket": me, "nodes": nodes21}, "bad_frame")
    bad(
        "dht_nodes_node_string",
        {"t": "dht_nodes", "id": 1, "ticket": me, "nodes": ["x"]},
        "bad_frame",
    )
    dv = {"t": "dht_value", "id": 2, "ticket": me, "records": [], "nodes": []}
    bad("dht_value_missing_nodes", {k: v for k, v in dv.items() if k != "nodes"}, "bad_frame")
    bad("dht_value_21_records", {**dv, "records": nodes21}, "bad_frame")
    st = {"t": "dht_store", "id": 3, "ticket": me, "kind": "provider", "records": [dht_provide()]}
    bad("dht_store_9_records", {**st, "records": [dht_provide()] * 9}, "bad_frame")
    bad("dht_store_record_with_binary", {**st, "records": [{"sig": b"x"}]}, "bad_frame")
    sd = {"t": "dht_stored", "id": 3, "ticket": me, "codes": ["stored"]}
    bad("dht_stored_code_upper_case", {**sd, "codes": ["Stored"]}, "bad_frame")
    bad("dht_stored_9_codes", {**sd, "codes": ["stored"] * 9}, "bad_frame")
    # reach
    bad("reach_missing_peers", {"t": "reach"}, "bad_frame")
    bad(
        "reach_65_peers",
        {"t": "reach", "peers": [pid(key(f"reach-{i}")) for i in range(65)]},
        "bad_frame",
    )
    bad("reach_peer_malformed", {"t": "reach", "peers": ["bob"]}, "bad_frame")
    bad("reach_peers_a_map", {"t": "reach", "peers": {"bob": pid(BOB)}}, "bad_frame")
    bad("reach_extra_field", {"t": "reach", "peers": [], "at": NOW}, "bad_frame")
    # bye
    bad("bye_reason_upper_case", {"t": "bye", "reason": "Full"}, "bad_frame")
    bad("bye_reason_empty", {"t": "bye", "reason": ""}, "bad_frame")
    bad("bye_reason_33_chars", {"t": "bye", "reason": "a" * 33}, "bad_frame")
    bad("bye_missing_reason", {"t": "bye"}, "bad_frame")
    return out


def hello_semantics() -> list[dict[str, Any]]:
    """Hello checks once decoded: the ticket verifies for the connection's PeerJS id."""
    out: list[dict[str, Any]] = []

    def case(name: str, frame: dict[str, Any], remote: str, error: str | None) -> None:
        out.append(
            {"name": name, "remote_peer_id": remote, "hex": pack(frame).hex(), "error": error}
        )

    case("valid", hello(), pid(ALICE), None)
    case("ticket_of_another_peer", hello(), pid(BOB), "peer_mismatch")
    case(
        "other_community",
        hello(ticket=ticket(ALICE, 4, community="other")),
        pid(ALICE),
        "wrong_community",
    )
    case("expired_ticket", hello(ticket=ticket(ALICE, 5, now=NOW - 180_000)), pid(ALICE), "expired")
    tampered = ticket(ALICE, 6)
    tampered["body"]["nonce"] = "dGFtcGVyZWQ"
    case("tampered_ticket", hello(ticket=tampered), pid(ALICE), "bad_signature")
    case("unsupported_version", hello(v=2), pid(ALICE), "unsupported_version")
    return out


def gossip_semantics() -> list[dict[str, Any]]:
    """Gossip checks once decoded, in order: id, signature, body, origin, community, age."""
    out: list[dict[str, Any]] = []

    def case(name: str, frame: dict[str, Any], error: str | None) -> None:
        entry: dict[str, Any] = {"name": name, "hex": pack(frame).hex(), "error": error}
        if error is None:
            entry["id_hex"] = frame["id"].hex()
            relay = None if frame["ttl"] == 0 else {**frame, "ttl": frame["ttl"] - 1}
            entry["relay_hex"] = None if relay is None else pack(relay).hex()
        out.append(entry)

    payload = gossip_payload(ALICE, data={"text": "hi"})
    case("valid", gossip_frame(payload), None)
    case("valid_ttl_0_not_relayed", gossip_frame(payload, ttl=0), None)
    case("oldest_accepted", gossip_frame(gossip_payload(ALICE, issued_at=NOW - 599_999)), None)
    case("skew_edge", gossip_frame(gossip_payload(ALICE, issued_at=NOW + 15_000)), None)
    other = gossip_payload(ALICE, data={"text": "other"})
    case(
        "id_of_another_payload", {**gossip_frame(payload), "id": gossip_id(other)}, "bad_gossip_id"
    )
    case("id_zero", {**gossip_frame(payload), "id": bytes(32)}, "bad_gossip_id")
    changed = copy.deepcopy(payload)
    changed["body"]["data"] = {"text": "changed"}
    case("body_changed_after_signing", gossip_frame(changed), "bad_signature")
    case(
        "signed_with_ticket_domain",
        gossip_frame(sign("swarm/ticket/v1", payload["body"], ALICE)),
        "bad_signature",
    )
    wrong_v = copy.deepcopy(payload)
    wrong_v["v"] = 2
    case("envelope_version_2", gossip_frame(wrong_v), "bad_envelope")
    case("unknown_body_field", gossip_frame(gossip_payload(ALICE, color="red")), "bad_body")
    no_data = sign(
        DOMAIN_GOSSIP, {"community": COMMUNITY, "topic": "chat", "issued_at": NOW}, ALICE
    )
    case("missing_data", gossip_frame(no_data), "bad_body")
    case("topic_upper_case", gossip_frame(gossip_payload(ALICE, topic="Chat")), "bad_body")
    case("issued_at_string", gossip_frame(gossip_payload(ALICE, issued_at=str(NOW))), "bad_body")
    case("origin_not_signer", gossip_frame(payload, origin=pid(BOB)), "peer_mismatch")
    case(
        "other_community", gossip_frame(gossip_payload(ALICE, community="other")), "wrong_community"
    )
    case("too_old", gossip_frame(gossip_payload(ALICE, issued_at=NOW - 600_000)), "expired")
    case(
        "from_the_future",
        gossip_frame(gossip_payload(ALICE, issued_at=NOW + 15_001)),
        "not_yet_valid",
    )
    return out


def pex_semantics() -> list[dict[str, Any]]:
    """Each ticket of a pex answer is verified on its own; bad ones are dropped, not the frame."""
    tickets = [
        ticket(BOB, 7),
        ticket(CAROL, 8, now=NOW - 200_000),
        ticket(ALICE, 9, community="other"),
        ticket(CAROL, 10),
    ]
    frame = {"t": "pex", "peers": tickets}
    return [
        {
            "name": "mixed",
            "hex": pack(frame).hex(),
            "accepted": [pid(BOB), pid(CAROL)],
            "rejected": ["expired", "wrong_community"],
        }
    ]


def document() -> dict[str, Any]:
    return {
        "description": "DataChannel wire frames (docs/protocol.md, 'Wire frames'). Decode each "
        "`valid` hex to `frame` (and, unless canonical is false, encode `frame` back to the same "
        "bytes); each `invalid` hex must fail with `error`. Binary values are {'$bin': hex} or "
        "{'$zeros': n}; `pad_to` appends zero bytes up to that length. `semantic` cases decode "
        "fine and are then checked at `now` for `community`.",
        "max_frame_bytes": MAX_FRAME_BYTES,
        "valid": [to_json(c) for c in valid_frames()],
        "invalid": invalid_frames(),
        "semantic": {
            "now": NOW,
            "community": COMMUNITY,
            "hello": hello_semantics(),
            "gossip": gossip_semantics(),
            "pex": pex_semantics(),
        },
    }


def render(data: Any) -> str:
    """Readable outline, one vector per line (the frames themselves are long)."""

    def compact(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def cases(items: list[Any], indent: str) -> str:
        inner = ",\n".join(indent + "  " + compact(item) for item in items)
        return "[\n" + inner + "\n" + indent + "]"

    lines = []
    for name, value in data.items():
        if isinstance(value, list):
            lines.append(f"  {compact(name)}: {cases(value, '  ')}")
        elif isinstance(value, dict):
            inner = []
            for sub, item in value.items():
                text = cases(item, "    ") if isinstance(item, list) else compact(item)
                inner.append(f"    {compact(sub)}: {text}")
            lines.append(f"  {compact(name)}: {{\n" + ",\n".join(inner) + "\n  }")
        else:
            lines.append(f"  {compact(name)}: {compact(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> int:
    text = render(document())
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print("stale vectors (run scripts/make_wire_vectors.py): wire.json")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
