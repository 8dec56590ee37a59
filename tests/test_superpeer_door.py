"""The super-peer's door (peers/superpeer/door.py): real WebSockets on 127.0.0.1 to a door
over the super-peer's own mesh signaling; the clients are the mesh signaling core a page
runs (the Python mirror of static/swarm/protocol/meshsignal.js) with the door as their one
neighbour. What each bad input gets is a close code and a stable reason."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from peers.protocol.meshsignal import MeshSignal, SignalDeliver, SignalSend
from peers.protocol.meshsignal_messages import new_session_id
from peers.protocol.signal_token import make_signal_token
from peers.protocol.ticket import make_ticket, verify_ticket
from peers.protocol.wire import Have, decode_frame, encode_frame
from peers.superpeer.config import ConfigError, door_address
from peers.superpeer.door import Door
from peers.superpeer.meshsignaling import MeshSignaling
from shared.clock import now_ms
from tests.support.keys import peer_id, seeded_key

SP_KEY = seeded_key("door-superpeer")
SP = peer_id(SP_KEY)
COMMUNITY = "default"
OFFER = {"sdp": {"type": "offer", "sdp": "v=0\r\n"}, "type": "data", "connectionId": "dc_1"}


class Page:
    """A page behind the door: its mesh signaling core, the door its only neighbour."""

    def __init__(self, name: str) -> None:
        self.key = seeded_key(name)
        self.id = peer_id(self.key)
        self.core = MeshSignal(peer_id=self.id, private_key=self.key, now=now_ms())
        self.ws: ClientConnection | None = None
        self.ticket: dict[str, Any] | None = None
        self.delivered: list[Any] = []

    def url(self, door: Door, token: str | None = None) -> str:
        token = token or make_signal_token(self.key, now=now_ms())
        return f"ws://127.0.0.1:{door.port}/?id={self.id}&token={token}"

    async def enter(self, door: Door) -> None:
        self.ws = await connect(self.url(door))
        self.ticket = json.loads(await self.ws.recv())["ticket"]
        self.core.connected("door", SP, ["signal"], now_ms())
        await self.flush()

    async def flush(self) -> None:
        assert self.ws is not None
        for action in self.core.take_actions():
            if isinstance(action, SignalSend):
                await self.ws.send(encode_frame(action.frame))
            elif isinstance(action, SignalDeliver):
                self.delivered.append(action.message)

    async def pump(self, seconds: float) -> None:
        """Take what the door sends for ``seconds``."""
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                return
            frame = decode_frame(data)
            self.core.receive("door", frame, now_ms())  # type: ignore[arg-type]
            await self.flush()


@pytest.fixture
async def door() -> Any:
    box: dict[str, Door] = {}
    meshsig = MeshSignaling(
        SP,
        SP_KEY,
        send_frame=lambda conn_id, frame: box["door"].send(conn_id, frame),
        violation=lambda conn_id, code, message: box["door"].violation(conn_id, code, message),
        clock=now_ms,
    )
    ticket = make_ticket(SP_KEY, community=COMMUNITY, now=now_ms(), ttl_ms=60_000, caps=["signal"])
    box["door"] = Door(
        "127.0.0.1",
        0,
        meshsig=meshsig,
        ticket=lambda: ticket,
        blocked=lambda peer: peer == peer_id(seeded_key("door-blocked")),
        max_per_address=3,
    )
    await box["door"].start()
    yield box["door"]
    await box["door"].stop()
    meshsig.stop()


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the door closes the socket (it sends nothing else first, bar a ticket)."""
    for _ in range(5):
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, None)
    raise AssertionError("the door did not close the socket")


async def test_a_page_learns_whom_it_reached_from_the_signed_ticket(door: Door) -> None:
    page = Page("door-alice")
    await page.enter(door)
    assert page.ticket is not None
    verified = verify_ticket(page.ticket, now=now_ms(), community=COMMUNITY)
    assert verified.peer_id == SP
    assert len(door.sockets) == 1
    assert door.stats.opened == 1
    await page.ws.close()  # type: ignore[union-attr]
    for _ in range(50):
        if not door.sockets:
            break
        await asyncio.sleep(0.05)
    assert door.sockets == {}
    assert door.stats.closed == 1


async def test_two_pages_behind_the_door_signal_each_other_through_it(door: Door) -> None:
    alice, bob = Page("door-alice"), Page("door-bob")
    await alice.enter(door)
    await bob.enter(door)
    await asyncio.gather(alice.pump(0.3), bob.pump(0.3))  # the reach frames
    sid = new_session_id()
    alice.core.send(to=bob.id, sid=sid, kind="offer", payload=OFFER, now=now_ms())
    await alice.flush()
    await bob.pump(1.0)
    assert [(m.from_peer, m.kind, m.sid, m.payload) for m in bob.delivered] == [
        (alice.id, "offer", sid, OFFER)
    ]
    # and back: the answer finds alice through the door too
    bob.core.send(to=alice.id, sid=sid, kind="answer", payload={"x": 1}, now=now_ms())
    await bob.flush()
    await alice.pump(1.0)
    assert [(m.from_peer, m.kind) for m in alice.delivered] == [(bob.id, "answer")]
    assert door.stats.frames_in >= 2
    assert door.stats.frames_out >= 2


async def test_an_offer_for_the_superpeer_itself_is_delivered_to_it(door: Door) -> None:
    """The super-peer's own sessions get what is addressed to it (no PeerJS peer here, so
    the offer is counted as not taken: the door carried it to the right place)."""
    alice = Page("door-alice")
    await alice.enter(door)
    alice.core.send(to=SP, sid=new_session_id(), kind="offer", payload=OFFER, now=now_ms())
    await alice.flush()
    for _ in range(50):
        if door.meshsig.stats.refused:
            break
        await asyncio.sleep(0.05)
    assert dict(door.meshsig.stats.refused) == {"busy": 1}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "bad_token"),
        ("s1.not-a-token", "bad_token"),
        ("other-key", "bad_token"),
        ("expired", "bad_token"),
    ],
)
async def test_a_socket_without_a_valid_token_is_refused(
    door: Door, token: str, reason: str
) -> None:
    page = Page("door-alice")
    if token == "other-key":
        token = make_signal_token(seeded_key("door-mallory"), now=now_ms())
    elif token == "expired":
        token = make_signal_token(page.key, now=now_ms() - 3_600_000)
    url = f"ws://127.0.0.1:{door.port}/?id={page.id}&token={token}"
    async with connect(url) as ws:
        assert await closed_with(ws) == (4401, reason)
    assert door.sockets == {}
    assert door.stats.refused[reason] >= 1


async def test_a_blocked_peer_is_refused(door: Door) -> None:
    page = Page("door-blocked")
    async with connect(page.url(door)) as ws:
        assert await closed_with(ws) == (4403, "blocked")


async def test_more_sockets_from_one_address_than_allowed_are_refused(door: Door) -> None:
    pages = [Page(f"door-p{i}") for i in range(4)]
    for page in pages[:3]:
        await page.enter(door)
    async with connect(pages[3].url(door)) as ws:
        assert await closed_with(ws) == (4429, "too_many_from_address")
    assert len(door.sockets) == 3


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("a text message", "bad_frame"),
        (b"\xc1", "bad_msgpack"),
        (encode_frame(Have(manifests=())), "unexpected_frame"),
    ],
)
async def test_what_is_no_signal_or_reach_frame_closes_the_socket(
    door: Door, data: Any, reason: str
) -> None:
    page = Page("door-alice")
    await page.enter(door)
    assert page.ws is not None
    await page.ws.send(data)
    assert await closed_with(page.ws) == (4400, reason)
    assert door.stats.refused[reason] == 1


async def test_an_oversized_message_closes_the_socket(door: Door) -> None:
    page = Page("door-alice")
    await page.enter(door)
    assert page.ws is not None
    await page.ws.send(b"\x00" * 20_000)
    code, _ = await closed_with(page.ws)
    assert code == 1009  # message too big


def test_the_door_setting_is_host_and_port() -> None:
    assert door_address("") is None
    assert door_address("127.0.0.1:8001") == ("127.0.0.1", 8001)
    assert door_address("[::1]:9000") == ("::1", 9000)
    for bad in ("8001", "host:", ":80", "host:port", "host:70000"):
        with pytest.raises(ConfigError, match="SWARM_SUPERPEER_DOOR"):
            door_address(bad)
