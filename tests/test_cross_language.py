"""Python nodes and a browser node (static/swarm/protocol/node.js, run by Node.js) on one network.

The browser node runs in tests/js/support/swarm_driver.mjs; frames cross as hex over JSON
lines and both sides read the same fake clock. Proves: hello, PEX and gossip (published,
delivered and relayed) in both directions; the same malformed input is counted with the same
code on both sides; and both codecs agree on bytes for frames neither test suite wrote.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from peers.protocol.encoding import b64url_encode
from peers.protocol.node import SwarmNode
from peers.protocol.ticket import verify_ticket
from peers.protocol.wire import (
    MAX_CHUNK_DATA,
    Bye,
    Chunk,
    ChunkMissing,
    ChunkReq,
    Frame,
    Gossip,
    Have,
    Hello,
    Holding,
    Manifest,
    ManifestReq,
    Pex,
    PexReq,
    Ping,
    Pong,
    WireError,
    decode_frame,
    encode_frame,
)
from tests.support.js_node import JsNode
from tests.support.swarm_network import Network, SimPeer, make_identity

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")

ROOT = Path(__file__).parent.parent
VECTORS = json.loads((ROOT / "tests" / "vectors" / "wire.json").read_text())
# Faults the browser and this codec must both see, beyond the shared vectors.
PING = {"t": "ping", "n": 1, "ts": 2}


def pack(value: Any) -> bytes:
    result: bytes = msgpack.packb(value, use_bin_type=True)
    return result


def deep(levels: int) -> bytes:
    return b"\x91" * levels + b"\x01"


EXTRA_CASES: list[tuple[str, bytes | str, str | None]] = [
    ("array_key", bytes([0x81, 0x91, 1, 1]), "bad_frame"),
    ("nil_key", bytes([0x81, 0xC0, 1]), "bad_frame"),
    ("bool_key", bytes([0x81, 0xC3, 1]), "bad_frame"),
    ("map_key", bytes([0x81, 0x80, 1]), "bad_frame"),
    ("float_key", bytes([0x81, 0xCA]) + struct.pack(">f", 1.0) + b"\x01", "bad_frame"),
    ("timestamp_ext_bad_length", pack(PING)[:-1] + bytes([0xC7, 3, 0xFF, 0, 0, 1]), "bad_frame"),
    ("timestamp_ext_96", pack(PING)[:-1] + bytes([0xC7, 12, 0xFF]) + bytes(12), "bad_frame"),
    (
        "ticket_nested_2000_levels",
        b"\x84"
        + pack({"t": "hello", "v": 1, "caps": []})[1:]
        + pack("ticket")
        + b"\x81\xa1x"
        + deep(2000),
        "bad_frame",
    ),
    (
        "duplicate_key_drops_a_field",
        bytes([0x83]) + pack("t") + pack("ping") + b"\xa1n\x01\xa1n\x02",
        "bad_frame",
    ),
    ("duplicate_t_last_wins", bytes([0x84]) + pack("t") + pack("nope") + pack(PING)[1:], None),
    ("bom_in_reason", pack({"t": "bye", "reason": "\ufeffx"}), "bad_frame"),
    ("proto_in_have_entry", pack({"t": "have", "manifests": [{"__proto__": 1}]}), "bad_frame"),
    (
        "uint64_in_pong",
        bytes([0x83])
        + pack("t")
        + pack("pong")
        + b"\xa1n\xcf"
        + struct.pack(">Q", 5)
        + b"\xa2ts\xcf"
        + struct.pack(">Q", 6),
        None,
    ),
    (
        "int64_negative_ts",
        bytes([0x83]) + pack("t") + pack("ping") + b"\xa1n\x01\xa2ts\xd3" + struct.pack(">q", -1),
        "bad_frame",
    ),
    (
        "str32_type",
        bytes([0x83, 0xDB, 0, 0, 0, 1])
        + b"t"
        + bytes([0xDB, 0, 0, 0, 4])
        + b"ping\xa1n\x01\xa2ts\x02",
        None,
    ),
    ("map16_frame", bytes([0xDE, 0, 3]) + pack(PING)[1:], None),
    ("overlong_utf8_nul", bytes([0x81, 0xA1]) + b"t" + bytes([0xA2, 0xC0, 0x80]), "bad_msgpack"),
    ("map32_count_beyond_data", bytes([0xDF, 0xFF, 0xFF, 0xFF, 0xFF]), "bad_msgpack"),
    ("text_message", "ping", "bad_frame"),
    ("unsolicited_pex", pack({"t": "pex", "peers": []}), "unexpected_frame"),
]


def invalid_vector_cases() -> list[tuple[str, bytes, str]]:
    cases = []
    for case in VECTORS["invalid"]:
        data = bytes.fromhex(case["hex"])
        cases.append(
            (case["name"], data + bytes(case.get("pad_to", len(data)) - len(data)), case["error"])
        )
    # Gossip faults that do not depend on the clock (the others are checked in test_wire).
    for case in VECTORS["semantic"]["gossip"]:
        if case["error"] not in (None, "expired", "not_yet_valid"):
            cases.append((f"gossip_{case['name']}", bytes.fromhex(case["hex"]), case["error"]))
    return cases


@pytest.fixture
def js_nodes() -> Iterator[list[JsNode]]:
    started: list[JsNode] = []
    yield started
    for node in started:
        node.close()


def add_js(net: Network, js_nodes: list[JsNode], seed: int) -> tuple[SimPeer, JsNode]:
    js = JsNode(community=net.community, now=net.now, seed=seed)
    js_nodes.append(js)
    return net.add_node(js, js.peer_id), js


def python_node(peer: SimPeer) -> SwarmNode:
    assert isinstance(peer.node, SwarmNode)
    return peer.node


def js_peers(js: JsNode, now: int) -> set[str]:
    return {p["peerId"] for p in js.state(now)["peers"]}


# Data whose canonical JSON (JCS, which the gossip id hashes) is easy to get wrong: escapes,
# non-BMP characters, keys that sort differently by UTF-16 unit than by code point.
AWKWARD = {
    "quote": '"q" \\ \n\t\u0000\u007f\u2028 h\u00e9llo \u2603 \U0001f600',
    "\U0001f600": 1,
    "\uffff": 2,
    "\u00e9": "",
    "big": 2**53 - 1,
    "neg": -(2**53 - 1),
    "nested": [{"b": 1, "a": [None, True, False]}, []],
}


def test_python_and_browser_nodes_complete_hello_pex_and_gossip_in_both_directions(
    js_nodes: list[JsNode],
) -> None:
    net = Network(seed=3)
    p1, p2 = net.add_peer(), net.add_peer()
    j, js = add_js(net, js_nodes, seed=5)
    x = make_identity("main", net.now)  # known at first only to the browser node
    y = make_identity("main", net.now)  # known at first only to p1
    n1, n2 = python_node(p1), python_node(p2)
    n1.add_candidates(
        [verify_ticket(js.ticket, now=net.now, community="main"), y.ticket], "beacon", net.now
    )
    assert p2.identity is not None
    js.add_candidates([p2.identity.ticket.envelope, x.ticket.envelope], net.now)
    # p1 and p2 never meet: what one says reaches the other only through the browser node.
    n1.block(p2.peer_id, net.now)
    n2.block(p1.peer_id, net.now)
    net.start()

    def meshed() -> bool:
        return {p.peer_id for p in n1.connected_peers(net.now)} == {j.peer_id} and js_peers(
            js, net.now
        ) == {p1.peer_id, p2.peer_id}

    assert net.run_until(meshed, 6)
    assert {p.peer_id for p in n2.connected_peers(net.now)} == {j.peer_id}

    # PEX both ways: p1 learns x from the browser node, the browser node learns y from p1.
    assert net.run_until(
        lambda: n1.book.has(x.peer_id) and y.peer_id in js.state(net.now)["known"], 4
    )
    assert n1.stats.pex_tickets >= 1
    assert js.state(net.now)["stats"]["pexTickets"] >= 1

    # Gossip from Python: delivered by the browser node, relayed by it to the other Python node.
    first = n1.publish("chat", {"text": "from python", **AWKWARD}, net.now)
    net.collect(p1.peer_id)
    assert net.run_until(lambda: first in j.delivered and first in p2.delivered, 4)
    assert j.delivered[first].data == {"text": "from python", **AWKWARD}
    assert (p2.delivered[first].ttl, p2.delivered[first].origin) == (9, p1.peer_id)

    # Gossip from the browser: delivered by both Python nodes.
    second = js.publish("chat", {"text": "from the browser", **AWKWARD}, net.now)
    net.collect(j.peer_id)
    assert net.run_until(lambda: second in p1.delivered and second in p2.delivered, 4)
    for peer in (p1, p2):
        message = peer.delivered[second]
        assert (message.data, message.ttl, message.origin) == (
            {"text": "from the browser", **AWKWARD},
            10,
            j.peer_id,
        )

    # And from the other Python node, relayed by the browser to p1.
    third = n2.publish("chat", None, net.now)
    net.collect(p2.peer_id)
    assert net.run_until(lambda: third in p1.delivered, 4)
    assert p1.delivered[third].ttl == 9
    assert j.delivered[third].origin == p2.peer_id

    dropped = [n1.stats.dropped, n2.stats.dropped, js.state(net.now)["stats"]["dropped"]]
    assert dropped == [{}, {}, {}], "nobody saw a bad frame"


def test_malformed_frames_from_either_side_are_counted_with_the_same_code(
    js_nodes: list[JsNode],
) -> None:
    net = Network(seed=11)
    p = net.add_peer()
    _j, js = add_js(net, js_nodes, seed=13)
    node = python_node(p)
    node.add_candidates(
        [verify_ticket(js.ticket, now=net.now, community="main")], "beacon", net.now
    )
    net.start()
    assert net.run_until(
        lambda: bool(node.connected_peers(net.now)) and bool(js_peers(js, net.now)), 4
    )
    net.run_until(lambda: False, 3)  # the opening PEX exchange
    [py_conn] = node.mesh.conns
    [js_conn] = [peer["connId"] for peer in js.state(net.now)["peers"]]

    # The unsolicited pex goes first, right after the opening exchange answered the nodes'
    # requests: later, a node that asked again (once a minute) awaits a pex, and whether it
    # does when the case arrives would depend on how many cases came before.
    cases = sorted(
        [*invalid_vector_cases(), *EXTRA_CASES], key=lambda case: case[0] != "unsolicited_pex"
    )
    mismatches = []
    for name, data, expected in cases:
        py_before = dict(node.stats.dropped)
        js_before = js.state(net.now)["stats"]["dropped"]
        node.receive(py_conn, data, net.now)  # as if the browser node had sent it
        js.receive(js_conn, data, net.now)  # as if the Python node had sent it
        py_delta = delta(py_before, node.stats.dropped)
        js_delta = delta(js_before, js.state(net.now)["stats"]["dropped"])
        want = {} if expected is None else {expected: 1}
        if not py_delta == js_delta == want:
            mismatches.append((name, want, py_delta, js_delta))
        # At most 10 violations a minute are tolerated: space the cases out (pings still flow).
        net.advance(6_500, 6_500)
    assert mismatches == []
    assert node.connected_peers(net.now), "the Python node kept the connection"
    assert js_peers(js, net.now) == {p.peer_id}, "so did the browser node"


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


# --- the codecs alone: decode, re-encode, compare ---


def test_both_codecs_give_the_same_code_for_every_invalid_frame(js_nodes: list[JsNode]) -> None:
    js = JsNode(community="main", now=0)
    js_nodes.append(js)
    cases = [
        (n, d, e) for n, d, e in [*invalid_vector_cases(), *EXTRA_CASES] if isinstance(d, bytes)
    ]
    results = js.decode([d for _, d, _ in cases])
    for (name, data, _), js_result in zip(cases, results, strict=True):
        try:
            python_result = {"hex": encode_frame(decode_frame(data)).hex()}
        except WireError as error:
            python_result = {"code": error.code}
        assert python_result == js_result, name


KEY_POOL = ["a", "body", "pk", "data", "é", "☃", "\U0001f600", "", "\ufeff", "x y", "t"]
TEXT_POOL = ["", "hello", "h\u00e9llo", "\u2603", "\U0001f600", "\ufeff", "\x00", "\uffff", "tab\t"]


def random_json(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(8 if depth < 6 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(
            [
                0,
                -1,
                127,
                128,
                -32,
                -33,
                255,
                65535,
                65536,
                2**32,
                -(2**31) - 1,
                2**53 - 1,
                -(2**53 - 1),
            ]
        )
    if kind in (3, 4):
        return rng.choice(TEXT_POOL) * rng.randrange(1, 40)
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(KEY_POOL) + str(rng.randrange(3) * "k"): random_json(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


def random_frame(rng: random.Random) -> Frame:
    def did() -> str:
        return b64url_encode(rng.randbytes(32))

    def envelope() -> dict[str, Any]:
        return {
            "v": 1,
            "body": random_json(rng, 1),
            **{k: random_json(rng, 1) for k in rng.sample(KEY_POOL, 2)},
        }

    def cap() -> str:
        return rng.choice("abc0") + "".join(rng.choice("az09_.-") for _ in range(rng.randrange(31)))

    ref = {"manifest": did(), "index": rng.choice([0, 1, 4095, 2**32 - 1]), "chunk": did()}
    builders = [
        lambda: Hello(
            ticket=envelope(),
            caps=tuple(cap() for _ in range(rng.randrange(17))),
            agent=rng.choice([None, "swarm-web/1", "\u00e9" * 32, "\U0001f600" * 16]),
        ),
        lambda: Ping(n=rng.randrange(2**32), ts=rng.choice([0, 2**53 - 1, rng.randrange(2**53)])),
        lambda: Pong(n=rng.randrange(2**32), ts=rng.randrange(2**40)),
        lambda: PexReq(max=rng.randrange(1, 51)),
        lambda: Pex(peers=tuple(envelope() for _ in range(rng.randrange(6)))),
        lambda: Gossip(
            id=rng.randbytes(32),
            origin="p" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(32)),
            ttl=rng.randrange(17),
            payload=envelope(),
        ),
        lambda: Have(
            manifests=tuple(Holding(did(), rng.randrange(4097)) for _ in range(rng.randrange(20)))
        ),
        lambda: ManifestReq(id=did()),
        lambda: Manifest(id=did(), manifest=rng.choice([None, envelope()])),
        lambda: ChunkReq(**ref),
        lambda: Chunk(
            **ref, data=rng.randbytes(rng.choice([0, 1, 255, 256, 65535, MAX_CHUNK_DATA]))
        ),
        lambda: ChunkMissing(**ref),
        lambda: Bye(
            reason=rng.choice("abz")
            + "".join(rng.choice("az09_") for _ in range(rng.randrange(32)))
        ),
    ]
    frame: Frame = rng.choice(builders)()
    return frame


def test_both_codecs_write_the_same_bytes_for_random_frames(js_nodes: list[JsNode]) -> None:
    js = JsNode(community="main", now=0)
    js_nodes.append(js)
    rng = random.Random(20240611)
    frames = [random_frame(rng) for _ in range(400)]
    encoded = [encode_frame(f) for f in frames]
    results = js.decode(encoded)
    for frame, data, result in zip(frames, encoded, results, strict=True):
        assert result == {"hex": data.hex()}, frame.t
        assert decode_frame(data) == frame


def test_integer_like_keys_keep_their_value_but_not_their_order_in_the_browser(
    js_nodes: list[JsNode],
) -> None:
    # A JS object lists integer-like keys first whatever the wire order: re-encoding such an
    # envelope in the browser gives other bytes (signatures and gossip ids use JCS, which
    # sorts keys, so nothing depends on this order; docs/superpeer-protocol.md says so).
    js = JsNode(community="main", now=0)
    js_nodes.append(js)
    frame = Hello(ticket={"b": 1, "1": 2})
    [result] = js.decode([encode_frame(frame)])
    browser = decode_frame(bytes.fromhex(result["hex"]))
    assert isinstance(browser, Hello)
    assert list(browser.ticket) == ["1", "b"]
    assert browser == frame
