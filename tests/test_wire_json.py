"""Wire frames over a PeerJS ``json`` DataConnection: base64url text in JSON strings, cut
into pieces under PeerJS's 16300-byte JSON limit (peers/protocol/wire_json.py), and the
super-peer's per-serialization transport (peers/superpeer/transport.py) between two nodes."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from peers.peerjs.serialization import CHUNKED_MTU, Data, JsonCodec
from peers.protocol.encoding import b64url_encode
from peers.protocol.errors import BAD_FRAME, FRAME_TOO_LARGE
from peers.protocol.node import SwarmNode
from peers.protocol.node_actions import ContentReceived, Opened, Send
from peers.protocol.wire import MAX_FRAME_BYTES, Chunk
from peers.protocol.wire_fields import WireError
from peers.protocol.wire_json import (
    MAX_PIECES,
    MAX_TEXT_CHARS,
    PIECE_CHARS,
    JsonFrameDecoder,
    encode_json_frame,
)
from peers.superpeer.transport import FramedChannel, FrameTransport
from tests.support.swarm_network import T0, make_identity

COMMUNITY = "main"


def over_peerjs_json(message: Any) -> Any:
    """What the remote's PeerJS json layer hands over for one sent message."""
    (encoded,) = JsonCodec().encode(message)  # raises message_too_big at 16300 bytes
    assert isinstance(encoded, bytes)
    assert len(encoded) < CHUNKED_MTU
    (received,) = JsonCodec().decode(encoded)
    assert isinstance(received, Data)
    return received.value


@pytest.mark.parametrize(
    "size", [0, 1, 2, 3, 12221, 12222, 12223, 65_700, 100_000, MAX_FRAME_BYTES]
)
def test_any_frame_round_trips_in_strings_peerjs_accepts(size: int) -> None:
    frame = os.urandom(size)
    messages = encode_json_frame(frame)
    assert all(len(m) <= PIECE_CHARS for m in messages)
    assert all(m.startswith("+") for m in messages[:-1])
    assert not messages[-1].startswith("+")
    text = b64url_encode(frame)
    assert "".join(m.removeprefix("+") for m in messages) == text
    expected = 1 if len(text) <= PIECE_CHARS else -(-len(text) // (PIECE_CHARS - 1))
    assert len(messages) == expected
    decoder = JsonFrameDecoder()
    results = [decoder.receive(over_peerjs_json(m)) for m in messages]
    assert results[:-1] == [None] * (len(messages) - 1)
    assert results[-1] == frame
    assert decoder.pending_chars == 0


def test_a_small_frame_is_one_unpadded_base64url_string() -> None:
    assert encode_json_frame(b"\xfb\xff\xfe") == ["-__-"]
    assert encode_json_frame(b"\x82\xa1t") == ["gqF0"]
    assert encode_json_frame(b"\x00") == ["AA"]


def test_pieces_of_any_length_are_joined() -> None:
    frame = os.urandom(1000)
    text = encode_json_frame(frame)[0]
    decoder = JsonFrameDecoder()
    pieces = ["+" + text[:1], "+" + text[1:7], "+", text[7:]]
    assert [decoder.receive(p) for p in pieces] == [None, None, None, frame]


@pytest.mark.parametrize(
    "value",
    [None, True, 0, 1.5, [], ["gqF0"], {}, {"t": "ping"}, {"__peerData": 1}],
    ids=repr,
)
def test_a_value_that_is_not_a_string_is_bad_frame(value: object) -> None:
    with pytest.raises(WireError) as excinfo:
        JsonFrameDecoder().receive(value)
    assert excinfo.value.code == BAD_FRAME


@pytest.mark.parametrize(
    "text",
    [
        "gqF0=",  # padding
        "gq+F0",  # "+" inside
        "gq/F",  # standard alphabet
        "gq F0",
        "gqF0\n",
        "A",  # a length no encoding has
        "AB",  # stray low bits: not canonical
        "++AA",
        "é",
    ],
)
def test_text_that_is_not_canonical_base64url_is_bad_frame(text: str) -> None:
    with pytest.raises(WireError) as excinfo:
        JsonFrameDecoder().receive(text)
    assert excinfo.value.code == BAD_FRAME


def test_a_bad_piece_drops_the_pending_pieces_and_the_next_frame_decodes() -> None:
    decoder = JsonFrameDecoder()
    assert decoder.receive("+gq") is None
    with pytest.raises(WireError):
        decoder.receive(["F0"])
    assert decoder.pending_chars == 0
    assert decoder.receive("gqF0") == b"\x82\xa1t"


def test_more_than_max_pieces_is_bad_frame() -> None:
    decoder = JsonFrameDecoder()
    for _ in range(MAX_PIECES - 1):
        assert decoder.receive("+AAAA") is None
    with pytest.raises(WireError) as excinfo:
        decoder.receive("+AAAA")
    assert excinfo.value.code == BAD_FRAME
    assert decoder.pending_chars == 0
    pieces = ["+AAAA"] * (MAX_PIECES - 1) + ["AAAA"]  # exactly MAX_PIECES: fine
    assert [decoder.receive(p) for p in pieces][-1] == bytes(3 * MAX_PIECES)


def test_text_past_the_largest_frame_is_frame_too_large() -> None:
    decoder = JsonFrameDecoder()
    piece = "+" + "A" * (PIECE_CHARS - 1)
    fitting = MAX_TEXT_CHARS // (PIECE_CHARS - 1)
    assert fitting < MAX_PIECES - 1
    for _ in range(fitting):
        assert decoder.receive(piece) is None
    with pytest.raises(WireError) as excinfo:
        decoder.receive(piece)
    assert excinfo.value.code == FRAME_TOO_LARGE
    assert decoder.pending_chars == 0


# --- two nodes talking through the super-peer's transport, over PeerJS's json codec ---


def make_node(seed: bytes) -> SwarmNode:
    ident = make_identity(COMMUNITY, T0, seed=seed)
    return SwarmNode(
        peer_id=ident.peer_id,
        community=COMMUNITY,
        private_key=ident.key,
        ticket=ident.ticket,
        now=T0,
    )


class Side:
    def __init__(self, node: SwarmNode, serialization: str) -> None:
        self.node = node
        self.transport = FrameTransport(serialization)
        self.actions: list[Any] = []


def deliver(a: Side, b: Side, wire: list[Any] | None = None) -> None:
    """Carry every frame each side decided to send to the other, until both are quiet."""
    while True:
        moved = False
        for src, dst in ((a, b), (b, a)):
            for action in src.node.take_actions():
                src.actions.append(action)
                if isinstance(action, Send):
                    for message in src.transport.outgoing(action.data):
                        value = over_peerjs_json(message)
                        if wire is not None:
                            wire.append(value)
                        for frame in dst.transport.incoming(value):
                            dst.node.receive("c", frame, T0)
                        moved = True
        if not moved:
            return


def connected_pair() -> tuple[Side, Side]:
    a = Side(make_node(b"json-a"), "json")
    b = Side(make_node(b"json-b"), "json")
    a.node.opened("c", b.node.peer_id, True, T0)
    b.node.opened("c", a.node.peer_id, False, T0)
    deliver(a, b)
    return a, b


def test_two_nodes_say_hello_and_exchange_a_full_chunk_over_json() -> None:
    a, b = connected_pair()
    assert [x.peer_id for x in a.actions if isinstance(x, Opened)] == [b.node.peer_id]
    assert [x.peer_id for x in b.actions if isinstance(x, Opened)] == [a.node.peer_id]
    data = os.urandom(65_552)  # a full chunk: its frame takes several pieces
    chunk = Chunk(manifest="A" * 43, index=7, chunk="Q" * 43, data=data)
    assert a.node.send_content("c", chunk)
    wire: list[Any] = []
    deliver(a, b, wire)
    assert len(wire) > 1
    assert all(isinstance(w, str) for w in wire)
    received = [x.frame for x in b.actions if isinstance(x, ContentReceived)]
    assert received == [chunk]
    assert not a.node.stats.dropped
    assert not b.node.stats.dropped


@pytest.mark.parametrize(
    "value", [{"t": "ping"}, None, 42, "not base64!", "A", "+" * 2, "gqF0"], ids=repr
)
def test_what_is_not_a_frame_on_json_is_bad_frame_like_text_on_raw(value: object) -> None:
    a, b = connected_pair()
    for frame in a.transport.incoming(value):
        a.node.receive("c", frame, T0)
    raw = Side(make_node(b"raw"), "raw")
    raw.node.opened("r", b.node.peer_id, False, T0)
    for frame in raw.transport.incoming("a text message"):
        raw.node.receive("r", frame, T0)
    expected = "bad_msgpack" if value == "gqF0" else "bad_frame"  # "gqF0" is a cut-off map
    assert a.node.stats.dropped == {expected: 1}
    assert raw.node.stats.dropped == {"bad_frame": 1}
    assert "c" in a.node.mesh.conns  # counted, not disconnected


def test_a_pending_piece_is_not_a_frame_yet() -> None:
    a, _ = connected_pair()
    assert a.transport.incoming("+AAAA") == []
    assert a.transport.incoming(json.loads('"AAAA"')) == [bytes(6)]


class SlowConn:
    """A DataConnection whose every send yields to the loop (as one under backpressure)."""

    open = True
    buffered_amount = 0

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, value: Any) -> None:
        await asyncio.sleep(0)
        self.sent.append(value)


async def test_the_pieces_of_concurrently_sent_frames_are_not_interleaved() -> None:
    conn = SlowConn()
    channel = FramedChannel(conn, FrameTransport("json"))
    frames = [os.urandom(40_000), b"\x81\xa1t\xa4ping", os.urandom(70_000), os.urandom(5)]
    await asyncio.gather(*(channel.send(f) for f in frames))
    decoder = JsonFrameDecoder()
    received = [f for f in map(decoder.receive, conn.sent) if f is not None]
    assert sorted(received) == sorted(frames)
    assert len(conn.sent) == sum(len(encode_json_frame(f)) for f in frames)


async def test_raw_and_binary_channels_send_each_frame_as_it_is() -> None:
    for serialization in ("raw", "binary"):
        conn = SlowConn()
        channel = FramedChannel(conn, FrameTransport(serialization))
        frame = os.urandom(70_000)
        await channel.send(frame)
        assert conn.sent == [frame]
