"""Signaling deployments other than the shared test clusters: a restricted configuration
(concurrent limit across processes, key-bound ids only, discovery), a process killed
under its peers, and a process whose Redis is unreachable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from peers.protocol.signal_token import make_signal_token
from tests.support.keys import peer_id, seeded_key
from tests.support.live import Server, start_daphne
from tests.support.redis_server import RedisServer
from tests.support.signal import Cluster, SignalClient, new_id, start_cluster

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def restricted(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Cluster]:
    """Two processes, three ids at most, key-bound ids only, discovery on. On a Redis of
    their own: the limit counts every id in the directory, and ids of processes other tests
    killed stay there until they are reaped."""
    redis = RedisServer(tmp_path_factory.mktemp("signal-restricted-redis"), artifacts_dir)
    redis.start()
    try:
        started = start_cluster(
            "restricted",
            2,
            tmp_path_factory.mktemp("signal-restricted"),
            artifacts_dir,
            {
                "SWARM_SIGNAL_CONCURRENT_LIMIT": "3",
                "SWARM_SIGNAL_PLAIN_IDS": "false",
                "SWARM_SIGNAL_ALLOW_DISCOVERY": "true",
                "SWARM_SIGNAL_KEY": "swarmkey",
                "REDIS_URL": redis.url(0),
            },
            redis=True,
        )
        yield started
        started.stop()
    finally:
        redis.stop()


def _key_client(n: int) -> tuple[str, str]:
    key = seeded_key(f"restricted-{n}-{new_id()}")
    return peer_id(key), make_signal_token(key, now=int(time.time() * 1000))


async def test_concurrent_limit_plain_ids_off_and_discovery(restricted: Cluster) -> None:
    plain = await SignalClient.connect(restricted.ws(0), new_id(), key="swarmkey")
    assert await plain.recv() == {
        "type": "ERROR",
        "payload": {
            "msg": "Only key-bound ids are allowed on this server",
            "code": "plain_ids_disabled",
        },
    }
    clients = []
    for n in range(3):
        pid, token = _key_client(n)
        clients.append(
            await (
                await SignalClient.connect(restricted.ws(n), pid, token, key="swarmkey")
            ).opened()
        )
    pid, token = _key_client(9)
    fourth = await SignalClient.connect(restricted.ws(1), pid, token, key="swarmkey")
    assert await fourth.recv() == {
        "type": "ERROR",
        "payload": {"msg": "Server has reached its concurrent user limit"},
    }
    async with httpx.AsyncClient(base_url=restricted.http(1)) as http:
        listed = (await http.get("/signal/swarmkey/peers")).json()
        assert sorted(listed) == sorted(c.peer_id for c in clients)
        assert (await http.get("/signal/swarmkey/id")).status_code == 403
    for client in clients:
        await client.close()


@pytest.fixture
def doomed(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Cluster]:
    started = start_cluster(
        "doomed", 2, tmp_path_factory.mktemp("signal-doomed"), artifacts_dir, {}, redis=True
    )
    yield started
    started.stop()


async def test_peer_on_a_dead_process_gets_the_sender_a_leave(doomed: Cluster) -> None:
    a = await (await SignalClient.connect(doomed.ws(0), new_id("a"))).opened()
    b = await (await SignalClient.connect(doomed.ws(1), new_id("b"))).opened()
    server: Server = doomed.servers[1]
    server.kill()  # no chance to release its ids
    await a.send({"type": "OFFER", "dst": b.peer_id, "payload": 1})
    assert await a.recv() == {"type": "LEAVE", "src": b.peer_id, "dst": a.peer_id}
    again = await SignalClient.connect(doomed.ws(0), b.peer_id, "another-token")
    assert await again.recv() == {"type": "OPEN"}
    await again.close()
    await a.close()


@pytest.fixture
def no_redis(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    """A web process whose Redis cannot be reached (nothing listens on port 9)."""
    server = start_daphne(
        tmp_path_factory.mktemp("signal-no-redis"),
        artifacts_dir,
        {"REDIS_URL": "redis://127.0.0.1:9/0", "SWARM_SIGNAL_ALLOW_DISCOVERY": "true"},
        "signal-no-redis",
        ready="/signal/",
    )
    yield server
    server.stop()


async def test_unreachable_redis_gets_unavailable_not_a_crash(no_redis: Server) -> None:
    for _ in range(2):  # and again: a failed start is retried, not remembered
        client = await SignalClient.connect(no_redis.ws_url, new_id())
        assert await client.recv(timeout=10) == {
            "type": "ERROR",
            "payload": {"msg": "Server unavailable, try again", "code": "unavailable"},
        }
        assert await client.recv() is None
    async with httpx.AsyncClient(base_url=no_redis.url, timeout=10) as http:
        assert (await http.get("/signal/peerjs/peers")).status_code == 503
        assert (await http.get("/signal/peerjs/id")).status_code == 200
