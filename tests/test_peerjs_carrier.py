"""DataConnections signaled through a carrier instead of the PeerJS server: two real
aiortc peers on loopback whose server is never started, their OFFER/ANSWER/CANDIDATE
carried by an in-memory pipe (a fake of the mesh), and what a carrier must refuse."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import pytest

from peers.peerjs import messages as m
from peers.peerjs.carrier import BYE, Carried
from peers.peerjs.dataconnection import DataConnection
from peers.peerjs.errors import BAD_PAYLOAD, PEER_UNAVAILABLE, PeerJSError
from peers.peerjs.ice import IceConfig
from peers.peerjs.peer import Peer
from peers.peerjs.signaling import PeerLeft, PeerUnavailable, ServerAddress

NOWHERE = ServerAddress("127.0.0.1", 9)  # never started: nothing may go to the server
ICE = IceConfig(host_addresses=("127.0.0.1",))


def make_peer(peer_id: str) -> Peer:
    return Peer(NOWHERE, peer_id=peer_id, ice=ICE)


class Pipe:
    """Two carriers joined in memory. The first OFFER that reaches the answering side is
    handed to its peer's ``take_offer``; everything after goes to the carriers' handlers.
    ``log`` keeps every (direction, kind, payload); ``hold`` stops delivery (a lost path)."""

    def __init__(self, a: Peer, b: Peer) -> None:
        self.a, self.b = a, b
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self.hold = False
        self.offered: DataConnection | None = None
        self.to_b = Carried(lambda kind, payload: self._carry("a>b", kind, payload))
        self.to_a = Carried(lambda kind, payload: self._carry("b>a", kind, payload))

    def _carry(self, way: str, kind: str, payload: dict[str, Any]) -> None:
        self.log.append((way, kind, payload))
        if self.hold:
            return
        loop = asyncio.get_running_loop()
        loop.call_soon(self._arrive, way, kind, payload)  # never re-entrant, like a network

    def _arrive(self, way: str, kind: str, payload: Mapping[str, Any]) -> None:
        if way == "a>b" and kind == m.OFFER and self.offered is None:
            assert self.a.id is not None
            self.offered = self.b.take_offer(self.a.id, payload, self.to_a)
            return
        (self.to_a if way == "a>b" else self.to_b).received(kind, payload)

    def kinds(self, way: str) -> list[str]:
        return [kind for w, kind, _ in self.log if w == way]


async def test_a_connection_opens_through_a_carrier_and_nothing_goes_to_the_server() -> None:
    a, b = make_peer("alice"), make_peer("bob")
    pipe = Pipe(a, b)
    conn = a.connect("bob", serialization="raw", reliable=True, carrier=pipe.to_b)
    await conn.wait_open(15)
    accepted = await asyncio.wait_for(b.accept(), 5)
    assert accepted is pipe.offered
    await accepted.wait_open(15)
    assert (accepted.peer, accepted.connection_id) == ("alice", conn.connection_id)
    assert accepted.serialization == "raw"
    assert accepted.reliable
    await conn.send(b"hello through the mesh")
    assert await asyncio.wait_for(accepted.recv(), 5) == b"hello through the mesh"
    await accepted.send(b"and back")
    assert await asyncio.wait_for(conn.recv(), 5) == b"and back"
    # aiortc does not trickle: one offer, one answer, both PeerJS payloads.
    assert pipe.kinds("a>b") == [m.OFFER]
    assert pipe.kinds("b>a") == [m.ANSWER]
    offer = m.Offer.parse(pipe.log[0][2])
    assert offer.connection_id == conn.connection_id
    assert "a=candidate" in offer.sdp.sdp
    for peer in (a, b):
        assert not peer.core._queue, "the server path was not used"
        assert not peer.core.actions_pending()
    # The server's LEAVE and EXPIRE are about the server path: a carried connection stays.
    a._handle(PeerLeft("bob"))
    a._handle(PeerUnavailable("bob"))
    await asyncio.sleep(0.2)
    assert conn.open
    await conn.close()
    assert pipe.to_b.closed, "the carrier is closed with its connection"
    await a.destroy()
    await b.destroy()


async def test_a_candidate_trickled_through_the_carrier_is_applied() -> None:
    """A browser trickles its candidates: an answer without them, then CANDIDATE messages
    (here the answer's own candidates, moved out of its SDP) reach aiortc and it connects
    (aiortc would also connect on the checks alone: the spy shows they were applied)."""
    a, b = make_peer("alice"), make_peer("bob")
    pipe = Pipe(a, b)
    conn = a.connect("bob", serialization="raw", reliable=True, carrier=pipe.to_b)
    while pipe.offered is None:
        await asyncio.sleep(0.01)
    pipe.hold = True
    while not pipe.kinds("b>a"):
        await asyncio.sleep(0.01)
    answer = m.Answer.parse(pipe.log[-1][2])
    lines = answer.sdp.sdp.split("\r\n")
    candidates = [line[2:] for line in lines if line.startswith("a=candidate")]
    assert candidates
    # As a browser's answer before its candidates: port 9, address 0.0.0.0, no candidates and
    # no end-of-candidates (aiortc's answer says end-of-candidates; kept, it let aioice prune
    # the only component when the answer was applied before the first trickled candidate).
    bare = "\r\n".join(
        re.sub(r"^m=application \d+", "m=application 9", line).replace(
            "c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"
        )
        for line in lines
        if not line.startswith(("a=candidate", "a=end-of-candidates"))
    )
    mid = next(line[6:] for line in lines if line.startswith("a=mid:"))
    added: list[Any] = []
    pc = conn.peer_connection
    add = pc.addIceCandidate

    async def spy(candidate: Any) -> None:
        added.append(candidate)
        await add(candidate)

    pc.addIceCandidate = spy  # type: ignore[method-assign]
    pipe.to_b.received(
        m.ANSWER, m.Answer(answer.connection_id, m.SessionDescription("answer", bare)).to_json()
    )
    for text in candidates:
        ice = m.IceCandidate(text, mid, 0)
        pipe.to_b.received(m.CANDIDATE, m.Candidate(conn.connection_id, ice).to_json())
    await conn.wait_open(15)
    assert a.carrier_errors == 0
    assert [(c.ip, c.port) for c in added] == [
        (text.split()[4], int(text.split()[5])) for text in candidates
    ], "every trickled candidate reached aiortc"
    await a.destroy()
    await b.destroy()


async def test_what_a_carrier_brings_for_another_connection_or_malformed_is_refused() -> None:
    a, b = make_peer("alice"), make_peer("bob")
    pipe = Pipe(a, b)
    conn = a.connect("bob", serialization="raw", reliable=True, carrier=pipe.to_b)
    while pipe.offered is None:
        await asyncio.sleep(0.01)
    assert pipe.offered is not None
    sdp = m.SessionDescription("answer", "v=0\r\n")
    pipe.to_b.received(m.ANSWER, m.Answer("dc_someoneelse", sdp).to_json())
    pipe.to_b.received(m.CANDIDATE, {"connectionId": conn.connection_id, "candidate": 7})
    pipe.to_b.received("HEARTBEAT", {})
    pipe.to_b.received(m.OFFER, {"nonsense": True})  # a second offer: ignored, not an error
    assert a.carrier_errors == 3
    await conn.wait_open(15)  # the real answer still came and connected
    await a.destroy()
    await b.destroy()


async def test_take_offer_refuses_media_and_rejects_what_is_no_offer() -> None:
    b = make_peer("bob")
    carrier = Carried(lambda kind, payload: None)
    media = {
        "type": "media",
        "connectionId": "mc_x",
        "sdp": {"type": "offer", "sdp": "v=0\r\n"},
    }
    assert b.take_offer("alice", media, carrier) is None
    with pytest.raises(PeerJSError) as error:
        b.take_offer("alice", {"type": "data"}, carrier)
    assert error.value.code == BAD_PAYLOAD
    assert b.connections() == []
    await b.destroy()


async def test_a_bye_before_it_opened_ends_the_offer_and_giving_up_sends_one() -> None:
    a, b = make_peer("alice"), make_peer("bob")
    pipe = Pipe(a, b)
    pipe.hold = True  # the offer is lost on the way
    conn = a.connect("bob", serialization="raw", reliable=True, carrier=pipe.to_b)
    while not pipe.kinds("a>b"):
        await asyncio.sleep(0.01)
    pipe.to_b.received(BYE, {"connectionId": conn.connection_id})
    with pytest.raises(PeerJSError) as error:
        await conn.wait_open(5)
    assert error.value.code == PEER_UNAVAILABLE
    assert pipe.kinds("a>b") == [m.OFFER], "no bye echoed to a bye"
    assert pipe.to_b.closed
    # A connection given up before it opened says so through its carrier.
    other = Pipe(a, b)
    other.hold = True
    again = a.connect("bob", serialization="raw", reliable=True, carrier=other.to_b)
    while not other.kinds("a>b"):
        await asyncio.sleep(0.01)
    await again.close()
    assert other.kinds("a>b") == [m.OFFER, BYE]
    assert other.log[-1][2] == {"connectionId": again.connection_id}
    assert a.connections() == []
    await a.destroy()
    await b.destroy()
