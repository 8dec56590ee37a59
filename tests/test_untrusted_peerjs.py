"""What other peers can make the Python PeerJS client (the super-peer's) swallow: frames the
signaling server relays from them, and data on connections they open. Each bad input is a
stable error, never an exception out of the client nor memory without a bound."""

from __future__ import annotations

import asyncio

import pytest

from peers.peerjs import binarypack
from peers.peerjs import messages as m
from peers.peerjs.dataconnection import DataConnection
from peers.peerjs.errors import PeerJSError
from peers.peerjs.peer import Peer
from peers.peerjs.serialization import codec_for
from peers.peerjs.signaling import (
    OfferReceived,
    ServerAddress,
    SignalingCore,
    SignalingError,
    Timing,
)
from peers.superpeer.service import SUPERPEER_MAX_MESSAGE_BYTES


def opened_core() -> SignalingCore:
    core = SignalingCore(
        ServerAddress("127.0.0.1", 9000),
        peer_id="bob",
        token="tok",
        timing=Timing(backoff_jitter=0.0),
        rng=lambda: 0.5,
    )
    core.start(0)
    core.socket_opened(0)
    core.frame_received('{"type":"OPEN"}', 0)
    core.actions()
    core.events()
    return core


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_a_relayed_frame_nested_too_deeply_is_bad_server_message(depth: int) -> None:
    # The reference server relays a peer's text as is; Python's parser gives up (with a
    # RecursionError) far below the 1 MiB frame limit.
    text = '{"type":"OFFER","src":"eve","payload":{"x":' + "[" * depth + "]" * depth + "}}"
    assert len(text) <= m.MAX_FRAME_CHARS
    core = opened_core()
    core.frame_received(text, 5)
    (event,) = core.events()
    assert isinstance(event, SignalingError)
    assert (event.code, event.fatal) == ("bad_server_message", False)
    assert core.is_open
    core.frame_received('{"type":"HEARTBEAT"}', 6)  # and the socket goes on
    assert core.events() == []


def test_a_json_connection_message_nested_too_deeply_is_bad_frame() -> None:
    codec = codec_for("json")
    with pytest.raises(PeerJSError) as err:
        codec.decode(b"[" * 100_000 + b"]" * 100_000)
    assert err.value.code == "bad_frame"


async def test_offers_handed_to_on_connection_are_not_also_kept_for_accept() -> None:
    # The super-peer takes connections through on_connection and never calls accept(): a
    # second reference in accept()'s queue kept every connection ever offered (a flood of
    # offers with garbage SDP included) alive for the life of the process.
    handed: list[DataConnection] = []
    peer = Peer(ServerAddress("127.0.0.1", 9), on_connection=handed.append)
    for i in range(20):
        sdp = m.SessionDescription("offer", "v=0 not an sdp")
        offer = m.Offer(f"dc_{i}", sdp, f"dc_{i}", True, "raw")
        peer._on_event(OfferReceived("p" + "a" * 32, offer))
    assert [c.connection_id for c in handed] == [f"dc_{i}" for i in range(20)]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(peer.accept(), 0.05)
    for conn in handed:
        await conn.close()


def chunk_frames(message_id: int, total: int, size: int) -> list[bytes]:
    """PeerJS chunk frames of one message that will never be finished (the last is held)."""
    return [
        binarypack.pack({"__peerData": message_id, "n": n, "data": b"x" * size, "total": total})
        for n in range(total - 1)
    ]


async def test_binary_connections_of_the_super_peer_reassemble_no_more_than_one_frame() -> None:
    # A peer opening a "binary" connection may send chunks of messages it never finishes:
    # with PeerJS's defaults up to 32 messages of 256 MiB each wait in memory. The swarm's
    # frames are at most 256 KiB, so the super-peer's connections hold no more than that.
    peer = Peer(ServerAddress("127.0.0.1", 9), max_message_size=SUPERPEER_MAX_MESSAGE_BYTES)
    conn = peer.connect("p" + "b" * 32, serialization="binary")
    try:
        for frame in chunk_frames(7, total=40, size=16_000)[:17]:  # 272,000 bytes
            conn._on_message(frame)
        assert conn.bad_frames == 1
        for frame in chunk_frames(8, total=3, size=1000):  # the next message still works
            conn._on_message(frame)
        assert conn.bad_frames == 1
    finally:
        await conn.close()
    assert SUPERPEER_MAX_MESSAGE_BYTES < 300 * 1024
