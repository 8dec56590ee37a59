"""What other peers can make the Python PeerJS client (the super-peer's) swallow: frames the
signaling server relays from them, and data on connections they open. Each bad input is a
stable error, never an exception out of the client nor memory without a bound."""

from __future__ import annotations

import asyncio

import pytest

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
