"""peers/protocol/wire.py (and gossip/pex/hello on top of it) against tests/vectors/wire.json.

The same vectors hold for the browser (tests/js/wire.test.js); here every valid frame must
decode to its value and re-encode to the same bytes, every invalid one fail with its code.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import peer_id_for_key
from peers.protocol.errors import ProtocolError
from peers.protocol.gossip import check_gossip, relay_frame
from peers.protocol.node import SwarmNode
from peers.protocol.node_actions import Close, Deliver, Opened
from peers.protocol.peerbook import PeerBook
from peers.protocol.pex import verify_pex_tickets
from peers.protocol.ticket import make_ticket
from peers.protocol.wire import (
    FRAME_TYPES,
    MAX_CHUNK_DATA,
    MAX_FRAME_BYTES,
    Chunk,
    Gossip,
    Have,
    Hello,
    Holding,
    Pex,
    Ping,
    WireError,
    decode_frame,
    encode_frame,
    parse_frame,
)
from tests.support.wire_vectors import VECTORS, frame_bytes, native

SEMANTIC = VECTORS["semantic"]
WIRE_CODES = {"frame_too_large", "bad_msgpack", "bad_frame", "unknown_frame", "unsupported_frame"}


def test_vectors_cover_every_frame_type_and_wire_error() -> None:
    types = {native(c["frame"])["t"] for c in VECTORS["valid"]}
    assert types == set(FRAME_TYPES)
    assert {c["error"] for c in VECTORS["invalid"]} == WIRE_CODES
    assert VECTORS["max_frame_bytes"] == MAX_FRAME_BYTES


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_frame_decodes_to_its_value_and_encodes_to_its_bytes(case: dict[str, Any]) -> None:
    frame = decode_frame(frame_bytes(case))
    assert frame.to_value() == native(case["frame"])
    assert type(frame) is type(parse_frame(native(case["frame"])))
    reencoded = encode_frame(frame)
    if case.get("canonical", True):
        assert reencoded == frame_bytes(case)
    else:  # other field order or wider ints on the wire: we still write the canonical form
        assert reencoded == msgpack.packb(native(case["frame"]), use_bin_type=True)
    assert frame.serialize() == reencoded


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_frame_fails_with_its_code(case: dict[str, Any]) -> None:
    with pytest.raises(WireError) as excinfo:
        decode_frame(frame_bytes(case))
    assert excinfo.value.code == case["error"]


def test_frames_are_binary_messages_in_any_buffer_type() -> None:
    [ping] = [c for c in VECTORS["valid"] if c["name"] == "ping"]
    data = frame_bytes(ping)
    for buffer in (bytearray(data), memoryview(data)):
        assert decode_frame(buffer).to_value() == native(ping["frame"])
    with pytest.raises(WireError) as excinfo:
        decode_frame("ping")
    assert excinfo.value.code == "bad_frame"


def test_a_frame_of_exactly_256_kib_decodes_and_one_byte_more_is_refused_both_ways() -> None:
    ticket: dict[str, Any] = {"pad": ""}
    overhead = len(encode_frame(Hello(ticket=ticket)))
    ticket["pad"] = "x" * (MAX_FRAME_BYTES - overhead - 4)  # str8 -> str32 header: +4 bytes
    exact = encode_frame(Hello(ticket=ticket))
    assert len(exact) == MAX_FRAME_BYTES
    decoded = decode_frame(exact)
    assert isinstance(decoded, Hello)
    assert decoded.ticket["pad"] == ticket["pad"]
    with pytest.raises(WireError) as excinfo:
        encode_frame(Hello(ticket={"pad": ticket["pad"] + "x"}))
    assert excinfo.value.code == "frame_too_large"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Ping(n=1.5, ts=0), "ping.n must be an integer"),
        (lambda: Ping(n=True, ts=0), "ping.n must be an integer"),
        (lambda: Ping(n=2**32, ts=0), "ping.n is out of range"),
        (lambda: Hello(ticket={"x": 1.0}), "hello.ticket holds a value"),
        (lambda: Hello(ticket={"body": {"k": b"\x00"}}), "hello.ticket holds a value"),
        (lambda: Hello(ticket={}, caps=("Gossip",)), "hello.caps[0] is malformed"),
        (lambda: Hello(ticket={}, agent="\ud800"), "hello.agent is not valid Unicode"),
        (lambda: Have(manifests=(Holding("x", 1),)), "have.manifests.id is malformed"),
        (
            lambda: Chunk(
                manifest="A" * 43, index=0, chunk="A" * 43, data=bytes(MAX_CHUNK_DATA + 1)
            ),
            "chunk.data is longer than 65552 bytes",
        ),
        (lambda: Gossip(id=bytes(31), origin="p" * 33, ttl=0, payload={}), "gossip.id must be"),
    ],
)
def test_frames_built_in_python_are_checked_like_received_ones(build: Any, message: str) -> None:
    with pytest.raises(WireError) as excinfo:
        build()
    assert excinfo.value.code == "bad_frame"
    assert str(excinfo.value).startswith(message)


def test_parse_frame_names_unknown_and_reserved_types() -> None:
    for value, code in [
        ({"t": "nope"}, "unknown_frame"),
        ({"t": "constructor"}, "unknown_frame"),
        ({"t": "sync_have", "x": 1}, "unsupported_frame"),
        ({"t": "dht_"}, "unknown_frame"),
        ({"t": "ping\n"}, "unknown_frame"),
        ([], "bad_frame"),
    ]:
        with pytest.raises(WireError) as excinfo:
            parse_frame(value)
        assert excinfo.value.code == code, value


def test_python_frames_keep_their_own_copy_of_an_envelope() -> None:
    ticket: dict[str, Any] = {"body": {"n": 1}}
    hello = Hello(ticket=ticket, caps=["gossip"])
    ticket["body"]["n"] = 2
    assert hello.ticket == {"body": {"n": 1}}
    assert hello.caps == ("gossip",)


# --- semantics on top of the codec: through the node, as a peer would see them ---

NOW: int = SEMANTIC["now"]
COMMUNITY: str = SEMANTIC["community"]


def make_node() -> SwarmNode:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test_wire node").digest())
    peer_id = peer_id_for_key(key.public_key().public_bytes_raw())
    ticket = make_ticket(key, community=COMMUNITY, now=NOW, ttl_ms=600_000)
    return SwarmNode(peer_id=peer_id, community=COMMUNITY, private_key=key, ticket=ticket, now=NOW)


@pytest.mark.parametrize("case", SEMANTIC["hello"], ids=lambda c: c["name"])
def test_hello_from_the_connections_peer_is_accepted_or_refused_with_its_code(
    case: dict[str, Any],
) -> None:
    node = make_node()
    node.opened("c1", case["remote_peer_id"], False, NOW)
    node.take_actions()
    node.receive("c1", bytes.fromhex(case["hex"]), NOW)
    actions = node.take_actions()
    if case["error"] is None:
        assert [a.peer_id for a in actions if isinstance(a, Opened)] == [case["remote_peer_id"]]
        assert not node.stats.dropped
    else:
        assert [a.reason for a in actions if isinstance(a, Close)] == [case["error"]]
        assert node.mesh.conns == {}


@pytest.mark.parametrize("case", SEMANTIC["gossip"], ids=lambda c: c["name"])
def test_gossip_is_accepted_with_its_id_and_relay_bytes_or_refused_with_its_code(
    case: dict[str, Any],
) -> None:
    frame = decode_frame(bytes.fromhex(case["hex"]))
    assert isinstance(frame, Gossip)
    if case["error"] is not None:
        with pytest.raises(ProtocolError) as excinfo:
            check_gossip(frame, now=NOW, community=COMMUNITY)
        assert excinfo.value.code == case["error"]
        return
    message = check_gossip(frame, now=NOW, community=COMMUNITY)
    assert message.id == case["id_hex"]
    relay = relay_frame(frame)
    assert (None if relay is None else encode_frame(relay).hex()) == case["relay_hex"]


def test_gossip_vectors_through_a_node_are_delivered_relayed_or_counted() -> None:
    for case in SEMANTIC["gossip"]:
        node = make_node()
        hello = SEMANTIC["hello"][0]  # alice's valid hello: the sender
        node.opened("c1", hello["remote_peer_id"], False, NOW)
        node.receive("c1", bytes.fromhex(hello["hex"]), NOW)
        node.take_actions()
        node.receive("c1", bytes.fromhex(case["hex"]), NOW)
        delivered = [a for a in node.take_actions() if isinstance(a, Deliver)]
        if case["error"] is None:
            assert [d.message.id for d in delivered] == [case["id_hex"]], case["name"]
        else:
            assert delivered == [], case["name"]
            counted = {k for k, v in node.stats.dropped.items() if v}
            violation = case["error"] not in ("expired", "not_yet_valid")
            expected = case["error"] if violation else f"gossip_{case['error']}"
            assert counted == {expected}, case["name"]


@pytest.mark.parametrize("case", SEMANTIC["pex"], ids=lambda c: c["name"])
def test_pex_keeps_good_tickets_and_drops_bad_ones_with_their_code(case: dict[str, Any]) -> None:
    frame = decode_frame(bytes.fromhex(case["hex"]))
    assert isinstance(frame, Pex)
    book = PeerBook(self_id="pself")
    accepted, rejected = verify_pex_tickets(frame.peers, now=NOW, community=COMMUNITY, book=book)
    assert sorted(t.peer_id for t in accepted) == sorted(case["accepted"])
    assert sorted(r.code for r in rejected) == sorted(case["rejected"])


def test_a_have_entry_may_say_the_copy_is_not_kept() -> None:
    digest = "A" * 43
    frame = Have(manifests=(Holding(digest, 3), Holding(digest, 4, keep=False)))
    back = decode_frame(encode_frame(frame))
    assert isinstance(back, Have)
    assert [(h.chunks, h.keep) for h in back.manifests] == [(3, True), (4, False)]
    assert encode_frame(Have(manifests=(Holding(digest, 3, keep=True),))) == encode_frame(
        Have(manifests=(Holding(digest, 3),))
    )
    with pytest.raises(WireError, match=r"have\.manifests\.keep must be a boolean"):
        Holding(digest, 3, keep=1)  # type: ignore[arg-type]
    raw = msgpack.packb({"t": "have", "manifests": [{"id": digest, "chunks": 1, "keep": "no"}]})
    with pytest.raises(WireError, match=r"have.manifests\[0\].keep must be a boolean"):
        decode_frame(raw)
