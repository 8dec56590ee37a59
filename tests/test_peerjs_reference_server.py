"""Python PeerJS peers against the reference ``peer`` server (node, 127.0.0.1), over aiortc.

Two Python peers find each other through the real server and exchange data with each
serialization; signaling survives a server restart, a taken id and an absent peer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from peers.peerjs.dataconnection import DataConnection
from peers.peerjs.errors import PeerJSError
from peers.peerjs.ice import IceConfig
from peers.peerjs.peer import Peer
from peers.peerjs.signaling import Opened, ServerAddress, Timing
from tests.support.peerjs_server import ReferenceServer, start_reference_server

pytestmark = pytest.mark.live

LOOPBACK = IceConfig(host_addresses=("127.0.0.1",))
FAST = Timing(backoff_initial=200, backoff_max=1000, open_timeout=5000)


def pattern(length: int) -> bytes:
    return bytes((i * 7 + (i >> 8) + 3) & 0xFF for i in range(length))


@pytest.fixture(scope="module")
def server(artifacts_dir: Path) -> Iterator[ReferenceServer]:
    # EXPIRE after 1 s instead of 5 s keeps the absent-peer test short.
    srv = start_reference_server(artifacts_dir, "--expire_timeout", "1000")
    yield srv
    srv.stop()


def address(srv: ReferenceServer) -> ServerAddress:
    return ServerAddress("127.0.0.1", srv.port)


@pytest.fixture
async def pair(server: ReferenceServer) -> AsyncIterator[tuple[Peer, Peer]]:
    a = Peer(address(server), ice=LOOPBACK, timing=FAST)
    b = Peer(address(server), ice=LOOPBACK, timing=FAST)
    await a.start()
    await b.start()
    yield a, b
    await a.destroy()
    await b.destroy()


async def open_pair(
    a: Peer, b: Peer, serialization: str, **options: Any
) -> tuple[DataConnection, DataConnection]:
    assert b.id is not None
    out = a.connect(b.id, serialization=serialization, reliable=True, **options)
    inc = await asyncio.wait_for(b.accept(), 10)
    await out.wait_open(15)
    await inc.wait_open(15)
    return out, inc


MESSAGES = {
    "raw": [b"\x00\x01binary\xff", "text frame", pattern(200_000)],
    "json": [{"a": 1, "b": [True, None, "x"]}, "héllo ✓", [1.5, -2]],
    "binary": [
        {"name": "file", "data": pattern(1000), "n": -5, "f": 0.25, "nested": [[], {}]},
        pattern(3 * 1024 * 1024),  # PeerJS-chunked: 193 frames
        "short",
    ],
}


@pytest.mark.parametrize("serialization", ["raw", "json", "binary"])
async def test_two_python_peers_exchange_data_both_ways(
    pair: tuple[Peer, Peer], serialization: str
) -> None:
    a, b = pair
    out, inc = await open_pair(a, b, serialization, metadata={"kind": serialization})
    assert (inc.peer, inc.serialization, inc.reliable) == (a.id, serialization, True)
    assert inc.metadata == {"kind": serialization}
    assert inc.label == out.label == out.connection_id == inc.connection_id
    for message in MESSAGES[serialization]:
        await out.send(message)
        assert await asyncio.wait_for(inc.recv(), 30) == message
        await inc.send(message)
        assert await asyncio.wait_for(out.recv(), 30) == message
    await out.close()


async def test_flush_close_closes_the_remote_side(pair: tuple[Peer, Peer]) -> None:
    out, inc = await open_pair(*pair, "binary")
    await out.send("last words")
    await out.close(flush=True)
    assert await asyncio.wait_for(inc.recv(), 10) == "last words"
    with pytest.raises(PeerJSError) as info:
        await asyncio.wait_for(inc.recv(), 10)
    assert info.value.code == "connection_closed"


async def test_candidates_are_only_the_configured_addresses(pair: tuple[Peer, Peer]) -> None:
    out, inc = await open_pair(*pair, "raw")
    assert LOOPBACK.rtc_configuration().iceServers == []
    # aiortc would have put its public STUN default here had iceServers been None.
    ice = out.peer_connection.sctp.transport.transport.iceGatherer._connection
    assert (ice.stun_server, ice.turn_server) == (None, None)
    for conn in (out, inc):
        sdp = conn.peer_connection.localDescription.sdp
        candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
        assert candidates
        for line in candidates:
            fields = line.split()
            assert fields[4] == "127.0.0.1", line
            assert fields[7] == "host", line  # no server-reflexive: no STUN was asked


async def test_send_respects_the_channel_buffer(pair: tuple[Peer, Peer]) -> None:
    out, inc = await open_pair(*pair, "raw")
    out.high_water = 256 * 1024
    piece = pattern(16 * 1024)
    highest = 0
    total = 4 * 1024 * 1024
    receiver = asyncio.create_task(_drain(inc, total))
    for _ in range(total // len(piece)):
        await out.send(piece)
        highest = max(highest, out.buffered_amount)
    assert await asyncio.wait_for(receiver, 60) == hashlib.sha256(piece * 256).hexdigest()
    assert highest <= out.high_water + len(piece)


async def _drain(conn: DataConnection, total: int) -> str:
    digest, got = hashlib.sha256(), 0
    while got < total:
        frame = await conn.recv()
        digest.update(frame)
        got += len(frame)
    return digest.hexdigest()


async def test_server_given_id_is_used(server: ReferenceServer) -> None:
    peer = Peer(address(server), ice=LOOPBACK, timing=FAST)
    peer_id = await peer.start()
    assert len(peer_id) == 36  # the reference server hands out UUIDs
    assert peer.open
    await peer.destroy()


async def test_taken_id_is_reported_and_retried_until_free(server: ReferenceServer) -> None:
    first = Peer(address(server), peer_id="dup", ice=LOOPBACK, timing=FAST)
    await first.start()
    second = Peer(address(server), peer_id="dup", ice=LOOPBACK, timing=FAST)
    with pytest.raises(PeerJSError) as info:
        await second.start(timeout=1.0)
    assert info.value.code == "unavailable_id"
    await first.destroy()
    assert await second.start(timeout=10) == "dup"
    await second.destroy()


async def test_connecting_to_an_absent_peer_fails_with_peer_unavailable(
    pair: tuple[Peer, Peer],
) -> None:
    a, _ = pair
    conn = a.connect("nobody-here", serialization="raw")
    with pytest.raises(PeerJSError) as info:
        await conn.wait_open(15)
    assert info.value.code == "peer_unavailable"


async def test_reconnects_after_the_server_restarts(artifacts_dir: Path) -> None:
    srv = start_reference_server(artifacts_dir)
    opened: list[Opened] = []
    peer = Peer(
        address(srv),
        peer_id="phoenix",
        ice=LOOPBACK,
        timing=FAST,
        on_signaling_event=lambda e: opened.append(e) if isinstance(e, Opened) else None,
    )
    try:
        await peer.start()
        srv.stop()
        await asyncio.sleep(0.5)
        assert not peer.open
        srv = start_reference_server(artifacts_dir, port=srv.port)
        for _ in range(100):
            if len(opened) == 2:
                break
            await asyncio.sleep(0.1)
        assert [e.peer_id for e in opened] == ["phoenix", "phoenix"]
        assert peer.open
        assert any(e.code == "network" for e in peer.errors)
    finally:
        await peer.destroy()
        srv.stop()
