"""The PeerJS signaling protocol over real WebSockets against real daphne processes.

The beacon beside it skips the tickets of peers whose socket closed (beacon/presence.py).

Every test runs twice: on one process with the directory in memory (the embedded
default) and on two processes sharing Redis, where clients alternate between the two
processes so that every exchange crosses from one to the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async

from peers.protocol.signal_token import make_signal_token
from tests.support.keys import peer_id, seeded_key, ticket
from tests.support.signal import (
    Cluster,
    SignalClient,
    new_id,
    start_cluster,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

EXPIRE_MS = 700
GONE_AFTER_MS = 400
ALIVE_MS = 1500
SETTINGS = {
    "SWARM_TRUST_X_FORWARDED_FOR": "1",
    "SWARM_SIGNAL_EXPIRE_TIMEOUT_MS": str(EXPIRE_MS),
    "SWARM_SIGNAL_GONE_AFTER_MS": str(GONE_AFTER_MS),
    "SWARM_SIGNAL_ALIVE_TIMEOUT_MS": str(ALIVE_MS),
    "SWARM_SIGNAL_QUEUE_LIMIT": "5",
    "SWARM_SIGNAL_MAX_FRAME_BYTES": "8192",
    "SWARM_SIGNAL_RATE": "20",
    "SWARM_SIGNAL_BURST": "40",
}


@pytest.fixture(scope="module", params=["embedded", "redis-2"])
def cluster(
    request: pytest.FixtureRequest,
    live_db: None,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[Cluster]:
    redis = request.param == "redis-2"
    started = start_cluster(
        request.param,
        2 if redis else 1,
        tmp_path_factory.mktemp("signal"),
        artifacts_dir,
        SETTINGS,
        redis=redis,
    )
    yield started
    started.stop()


async def pair(cluster: Cluster) -> tuple[SignalClient, SignalClient]:
    a = await (await SignalClient.connect(cluster.ws(0), new_id("a"))).opened()
    b = await (await SignalClient.connect(cluster.ws(1), new_id("b"))).opened()
    return a, b


# --- relaying ----------------------------------------------------------------------------


async def test_every_relayed_type_reaches_the_other_side_with_the_servers_src(
    cluster: Cluster,
) -> None:
    a, b = await pair(cluster)
    payload = {"sdp": {"type": "offer", "sdp": "v=0 " + "x" * 1500}, "connectionId": "dc_1"}
    await a.send({"type": "OFFER", "src": "forged", "dst": b.peer_id, "payload": payload, "x": 1})
    assert await b.recv() == {
        "type": "OFFER",
        "src": a.peer_id,
        "dst": b.peer_id,
        "payload": payload,
    }
    for kind in ("ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"):
        await b.send({"type": kind, "dst": a.peer_id, "payload": {"n": kind}})
        assert await a.recv() == {
            "type": kind,
            "src": b.peer_id,
            "dst": a.peer_id,
            "payload": {"n": kind},
        }
    await a.send({"type": "CANDIDATE", "dst": b.peer_id})
    assert await b.recv() == {"type": "CANDIDATE", "src": a.peer_id, "dst": b.peer_id}
    await a.close()
    await b.close()


async def test_bad_frames_are_dropped_and_the_socket_keeps_working(cluster: Cluster) -> None:
    a, b = await pair(cluster)
    for bad in [
        "{not json",
        "[]",
        "42",
        '{"type":"NOPE","dst":"' + b.peer_id + '"}',
        '{"dst":"x"}',
    ]:
        await a.send(bad)
    await a.send(b'{"type":"OFFER","dst":"' + b.peer_id.encode() + b'","payload":"binary"}')
    assert await b.recv() == {
        "type": "OFFER",
        "src": a.peer_id,
        "dst": b.peer_id,
        "payload": "binary",
    }
    assert await a.silent(0.2)
    await a.close()
    await b.close()


# --- opening and refusing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "msg"),
    [
        ({"peer_id": None}, "No id, token, or key supplied to websocket server"),
        ({"token": None}, "No id, token, or key supplied to websocket server"),
        ({"key": None}, "No id, token, or key supplied to websocket server"),
        ({"key": "wrong"}, "Invalid key provided"),
    ],
)
async def test_peerjs_errors_then_close(
    cluster: Cluster, params: dict[str, str | None], msg: str
) -> None:
    kwargs: dict[str, str | None] = {"peer_id": new_id(), **params}
    peer = kwargs.pop("peer_id")
    client = await SignalClient.connect(cluster.ws(), peer, **kwargs)  # type: ignore[arg-type]
    assert await client.recv() == {"type": "ERROR", "payload": {"msg": msg}}
    assert await client.recv() is None


async def test_an_invalid_id_is_refused(cluster: Cluster) -> None:
    client = await SignalClient.connect(cluster.ws(), "bad--id")
    assert await client.recv() == {
        "type": "ERROR",
        "payload": {"msg": "Invalid id", "code": "bad_id"},
    }
    assert await client.recv() is None


async def test_id_taken_across_processes(cluster: Cluster) -> None:
    shared = new_id()
    holder = await (await SignalClient.connect(cluster.ws(0), shared, "t1")).opened()
    thief = await SignalClient.connect(cluster.ws(1), shared, "t2")
    assert await thief.recv() == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
    assert await thief.recv() is None
    assert await holder.silent(0.2)
    await holder.close()


async def test_same_token_reconnect_takes_over_at_once(cluster: Cluster) -> None:
    shared = new_id()
    old = await (await SignalClient.connect(cluster.ws(0), shared, "same")).opened()
    new = await (await SignalClient.connect(cluster.ws(1), shared, "same")).opened()
    assert await old.recv() == {
        "type": "ID-TAKEN",
        "payload": {"msg": "ID is taken", "code": "replaced"},
    }
    assert await old.closed()
    other = await (await SignalClient.connect(cluster.ws(0), new_id())).opened()
    await other.send({"type": "OFFER", "dst": shared})
    assert (await new.recv() or {}).get("src") == other.peer_id
    await new.close()
    await other.close()


async def test_heartbeat_timeout_closes_a_silent_socket(cluster: Cluster) -> None:
    quiet = await (await SignalClient.connect(cluster.ws(0), new_id(), heartbeat=False)).opened()
    lively = await (await SignalClient.connect(cluster.ws(1), new_id())).opened()
    started = time.monotonic()
    assert await quiet.closed(timeout=ALIVE_MS / 1000 + 2)
    waited = time.monotonic() - started
    assert ALIVE_MS / 1000 - 0.2 <= waited <= ALIVE_MS / 1000 + 1.0
    assert await lively.silent(0.3)  # heartbeats kept it open past the timeout
    # The timed-out id is free again.
    again = await (await SignalClient.connect(cluster.ws(1), quiet.peer_id, "new")).opened()
    await again.close()
    await lively.close()


# --- queue and expiry ------------------------------------------------------------------


async def test_queued_messages_arrive_after_open_on_another_process(cluster: Cluster) -> None:
    a = await (await SignalClient.connect(cluster.ws(0), new_id("a"))).opened()
    absent = new_id("c")
    for n in range(3):
        await a.send({"type": "CANDIDATE", "dst": absent, "payload": n})
    await a.send({"type": "LEAVE", "dst": absent})  # never queued
    await asyncio.sleep(0.1)
    c = await SignalClient.connect(cluster.ws(1), absent)
    assert await c.recv() == {"type": "OPEN"}
    for n in range(3):
        assert await c.recv() == {
            "type": "CANDIDATE",
            "src": a.peer_id,
            "dst": absent,
            "payload": n,
        }
    assert await c.silent(0.2)
    assert await a.silent(EXPIRE_MS / 1000 + 0.3)  # collected: no EXPIRE
    await a.close()
    await c.close()


async def test_expire_once_per_sender_after_the_expire_timeout(cluster: Cluster) -> None:
    a, b = await pair(cluster)
    absent = new_id("gone")
    started = time.monotonic()
    await a.send({"type": "OFFER", "dst": absent, "payload": 1})
    await a.send({"type": "CANDIDATE", "dst": absent, "payload": 2})
    await b.send({"type": "OFFER", "dst": absent})
    assert await a.recv(timeout=3) == {"type": "EXPIRE", "src": absent, "dst": a.peer_id}
    waited = time.monotonic() - started
    assert EXPIRE_MS / 1000 - 0.05 <= waited <= EXPIRE_MS / 1000 + 0.5
    assert await b.recv(timeout=1) == {"type": "EXPIRE", "src": absent, "dst": b.peer_id}
    assert await a.silent(0.3)
    await a.close()
    await b.close()


async def test_an_offer_to_a_peer_that_left_a_while_ago_expires_at_once_where_it_left(
    cluster: Cluster,
) -> None:
    """With the directory in memory, an OFFER for a peer whose socket closed more than
    SWARM_SIGNAL_GONE_AFTER_MS ago gets EXPIRE at once (not after the queue's wait), and the
    dial's CANDIDATEs are dropped; a peer back within that time still gets what waited for
    it. With Redis the queue decides, as for any absent id (docs/signaling.md)."""
    a = await (await SignalClient.connect(cluster.ws(0), new_id("a"))).opened()
    left = await (await SignalClient.connect(cluster.ws(0), new_id("left"))).opened()
    await left.close()
    await asyncio.sleep(GONE_AFTER_MS / 1000 + 0.2)
    started = time.monotonic()
    await a.send({"type": "OFFER", "dst": left.peer_id, "payload": 1})
    await a.send({"type": "CANDIDATE", "dst": left.peer_id, "payload": 2})
    assert await a.recv(timeout=3) == {"type": "EXPIRE", "src": left.peer_id, "dst": a.peer_id}
    waited = time.monotonic() - started
    if len(cluster.servers) == 1:
        assert waited < EXPIRE_MS / 1000 / 2
    else:
        assert waited >= EXPIRE_MS / 1000 - 0.05
    assert await a.silent(EXPIRE_MS / 1000 + 0.3)  # one EXPIRE: the candidate expires nothing

    # Back within the time: the queue holds the offer for it, as for a reload.
    back = await (await SignalClient.connect(cluster.ws(0), new_id("back"))).opened()
    await back.close()
    await asyncio.sleep(0.05)
    await a.send({"type": "OFFER", "dst": back.peer_id, "payload": 3})
    again = await SignalClient.connect(cluster.ws(1), back.peer_id)
    assert await again.recv() == {"type": "OPEN"}
    assert await again.recv() == {
        "type": "OFFER",
        "src": a.peer_id,
        "dst": back.peer_id,
        "payload": 3,
    }
    assert await a.silent(EXPIRE_MS / 1000 + 0.3)
    await again.close()
    await a.close()


# --- key-bound ids ---------------------------------------------------------------------


async def test_key_bound_id_requires_its_proof(cluster: Cluster) -> None:
    key = seeded_key("live-" + new_id())
    pid = peer_id(key)
    forged = await SignalClient.connect(cluster.ws(0), pid, "plainpeerjstoken")
    assert await forged.recv() == {
        "type": "ERROR",
        "payload": {"msg": "Invalid token provided", "code": "bad_token"},
    }
    now = int(time.time() * 1000)
    other = await SignalClient.connect(
        cluster.ws(0), pid, make_signal_token(seeded_key("someone-else"), now=now)
    )
    assert (await other.recv() or {})["payload"]["code"] == "peer_mismatch"
    owner = await SignalClient.connect(cluster.ws(1), pid, make_signal_token(key, now=now))
    assert await owner.recv() == {"type": "OPEN"}
    await owner.close()


async def test_a_fresh_proof_reclaims_the_id_from_a_stale_socket(cluster: Cluster) -> None:
    key = seeded_key("reclaim-" + new_id())
    pid = peer_id(key)
    now = int(time.time() * 1000)
    first_token = make_signal_token(key, now=now - 2000)
    stale = await (await SignalClient.connect(cluster.ws(0), pid, first_token)).opened()
    stale.stop_heartbeats()  # a network drop: the socket is still open on the server
    fresh = await SignalClient.connect(cluster.ws(1), pid, make_signal_token(key, now=now))
    assert await fresh.recv() == {"type": "OPEN"}  # at once, no "ID is taken"
    assert await stale.closed()
    replay = await SignalClient.connect(cluster.ws(0), pid, first_token)
    assert (await replay.recv() or {}).get("type") == "ID-TAKEN"
    a = await (await SignalClient.connect(cluster.ws(0), new_id())).opened()
    await a.send({"type": "OFFER", "dst": pid})
    assert (await fresh.recv() or {}).get("src") == a.peer_id
    await fresh.close()
    await a.close()


# --- limits ----------------------------------------------------------------------------


async def test_an_oversized_frame_gets_error_and_close(cluster: Cluster) -> None:
    a, b = await pair(cluster)
    await a.send({"type": "OFFER", "dst": b.peer_id, "payload": "x" * 9000})
    assert await a.recv() == {
        "type": "ERROR",
        "payload": {"msg": "Message too large", "code": "too_large"},
    }
    assert await a.recv() is None
    assert await b.silent(0.2)
    await b.close()


async def test_a_flood_gets_error_and_close(cluster: Cluster) -> None:
    a, b = await pair(cluster)
    a.stop_heartbeats()
    for _ in range(60):
        await a.send({"type": "CANDIDATE", "dst": b.peer_id})
    frames = []
    while (frame := await a.recv()) is not None:
        frames.append(frame)
    assert frames == [
        {"type": "ERROR", "payload": {"msg": "Too many messages", "code": "rate_limited"}}
    ]
    received = len(await b.drain())
    assert 38 <= received <= 41  # the burst (40), give or take the refill while sending
    await b.close()


async def test_queue_limit_per_destination(cluster: Cluster) -> None:
    a = await (await SignalClient.connect(cluster.ws(0), new_id())).opened()
    absent = new_id("full")
    for _ in range(6):
        await a.send({"type": "CANDIDATE", "dst": absent})
    assert await a.recv() == {
        "type": "ERROR",
        "payload": {"msg": "Too many messages waiting for this peer", "code": "queue_full"},
    }
    c = await SignalClient.connect(cluster.ws(1), absent)
    frames = [await c.recv() for _ in range(6)]
    assert [f["type"] for f in frames if f] == ["OPEN"] + ["CANDIDATE"] * 5
    await a.close()
    await c.close()


# --- blocks ------------------------------------------------------------------------------


@pytest.fixture
async def shared_blocks(cluster: Cluster) -> AsyncIterator[None]:
    if cluster.name == "embedded":
        pytest.skip("without Redis, block changes reach another process within 30 s (by design)")
    yield
    # The ORM ran in asgiref's sync thread: close its connection before the test database goes.
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.mark.usefixtures("shared_blocks")
async def test_blocked_peer_ip_and_key_are_refused(cluster: Cluster) -> None:
    from ops.models import Block

    blocked_id = new_id("blk")
    key = seeded_key("blocked-" + new_id())
    token = make_signal_token(key, now=int(time.time() * 1000))
    create = sync_to_async(Block.objects.create)
    await create(kind=Block.PEER, value=blocked_id, reason="test")
    await create(kind=Block.IP, value="10.66.0.0/16", reason="test")
    await create(kind=Block.KEY, value=token.split(".")[2], reason="test")
    blocked = {"type": "ERROR", "payload": {"msg": "Blocked", "code": "blocked"}}
    by_id = await SignalClient.connect(cluster.ws(0), blocked_id)
    assert await by_id.recv() == blocked
    assert await by_id.recv() is None
    by_ip = await SignalClient.connect(
        cluster.ws(1), new_id(), headers={"X-Forwarded-For": "10.66.3.4"}
    )
    assert await by_ip.recv() == blocked
    by_key = await SignalClient.connect(cluster.ws(0), peer_id(key), token)
    assert await by_key.recv() == blocked
    fine = await SignalClient.connect(
        cluster.ws(1), new_id(), headers={"X-Forwarded-For": "10.67.0.1"}
    )
    assert await fine.recv() == {"type": "OPEN"}
    await fine.close()


@pytest.mark.usefixtures("shared_blocks")
async def test_a_new_block_closes_a_live_socket(cluster: Cluster) -> None:
    from ops.models import Block

    victim = await (await SignalClient.connect(cluster.ws(1), new_id("late"))).opened()
    await sync_to_async(Block.objects.create)(kind=Block.PEER, value=victim.peer_id)
    assert await victim.recv(timeout=5) == {
        "type": "ERROR",
        "payload": {"msg": "Blocked", "code": "blocked"},
    }
    assert await victim.recv() is None


# --- HTTP and metrics ------------------------------------------------------------------


async def test_http_routes(cluster: Cluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.http()) as client:
        response = await client.get("/signal/peerjs/id", params={"ts": "1", "version": "1.5.5"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["access-control-allow-origin"] == "*"
        assert len(response.text) == 36
        second = await client.get("/signal/peerjs/id")
        assert second.text != response.text
        assert (await client.get("/signal/peerjs/peers")).status_code == 401
        root = await client.get("/signal/")
        assert root.json()["name"] == "PeerJS Server"
        assert (await client.get("/signal/peerjs/other")).status_code == 404
        assert (await client.post("/signal/peerjs/id")).status_code == 405


async def test_counters_reach_metrics(cluster: Cluster) -> None:
    a, b = await pair(cluster)
    await a.send({"type": "ANSWER", "dst": b.peer_id})
    assert await b.recv()
    deadline = time.monotonic() + 8
    text = ""
    async with httpx.AsyncClient(base_url=cluster.http()) as client:
        while time.monotonic() < deadline:
            text = (await client.get("/metrics")).text
            if 'swarm_signal_relayed_total{type="ANSWER"}' in text:
                break
            await asyncio.sleep(0.5)
    assert 'swarm_signal_relayed_total{type="ANSWER"}' in text
    assert "swarm_signal_connected_peers " in text
    connected = [
        line for line in text.splitlines() if line.startswith("swarm_signal_connected_peers ")
    ]
    assert float(connected[0].split()[1]) >= 2
    await a.close()
    await b.close()


# --- the beacon and signaling ----------------------------------------------------------


async def test_the_beacon_skips_a_peer_whose_socket_closed_until_it_holds_one_again(
    cluster: Cluster,
) -> None:
    """A page closed without its goodbye stays on the beacon until its ticket expires; every
    page that announced meanwhile dialed it and waited for EXPIRE. Its socket's close is
    what signaling knows: the beacon (of the process that saw it close) skips its ticket
    until the peer holds a socket again, on any process. A peer that never connected to
    signaling (an HTTP client of the beacon alone) is listed as before."""
    name = "gone-" + new_id()
    keys = {who: seeded_key(f"{name}-{who}") for who in ("left", "back", "http")}
    now = int(time.time() * 1000)
    async with httpx.AsyncClient(timeout=10) as http:

        async def listed(n: int) -> set[str]:
            answer = await http.get(
                f"{cluster.http(n)}/beacon/v1/{name}/peers",
                headers={"x-forwarded-for": "10.77.0.99"},
            )
            assert answer.status_code == 200
            return {p["body"]["peer_id"] for p in answer.json()["peers"]}

        sockets = {}
        for who in ("left", "back"):
            token = make_signal_token(keys[who], now=now)
            client = await SignalClient.connect(cluster.ws(0), peer_id(keys[who]), token)
            sockets[who] = await client.opened()
        for i, who in enumerate(keys):
            answer = await http.post(
                f"{cluster.http(0)}/beacon/v1/{name}/announce",
                json=ticket(keys[who], name, now),
                headers={"x-forwarded-for": f"10.77.0.{i + 1}"},
            )
            assert answer.status_code == 200
        everyone = {peer_id(k) for k in keys.values()}
        assert await listed(0) == everyone
        await sockets["left"].close()
        await sockets["back"].close()
        deadline = time.monotonic() + 5
        while await listed(0) != {peer_id(keys["http"])} and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await listed(0) == {peer_id(keys["http"])}, "both closed: both skipped"
        # "back" reconnects (on the other process when there are two), its ticket unchanged.
        token = make_signal_token(keys["back"], now=int(time.time() * 1000))
        again = await SignalClient.connect(cluster.ws(1), peer_id(keys["back"]), token)
        await again.opened()
        assert await listed(0) == {peer_id(keys["back"]), peer_id(keys["http"])}
        await again.close()
