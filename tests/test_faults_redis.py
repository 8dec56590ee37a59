"""Signaling through Redis faults, against real processes: two daphnes on a private
redis-server, pairs of clients relaying across them while Redis is killed (SIGKILL, then
restarted empty on the same port), its subscriptions dropped (CLIENT KILL TYPE pubsub,
data kept), frozen (SIGSTOP, then SIGCONT), and its command connections dropped just
before everyone leaves (CLIENT KILL TYPE normal).

What must hold: clients get their sessions back within a bound; every message is
delivered or its sender is told (EXPIRE, LEAVE or ERROR); after everyone leaves normally
no id is left in the registry, the connected-peers gauge reads 0 and every plain id can
be taken again with a new token (no ID-TAKEN). The figures are printed (``-s``); the
longer run is ``bench/faults.py``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.fault_signal import FaultPeer, Traffic, describe_outages, tally
from tests.support.live import Server, start_daphne
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PAIRS = 25
RATE = 10.0  # messages per second per client
EXPIRE_MS = 2000
RECOVERY_BOUND_S = 10.0


@dataclass
class Deployment:
    redis: RedisServer
    servers: list[Server]


@pytest.fixture
def deployment(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Deployment]:
    redis = RedisServer(tmp_path_factory.mktemp("faults-redis"), artifacts_dir)
    redis.start()
    env = {"REDIS_URL": redis.url(), "SWARM_SIGNAL_EXPIRE_TIMEOUT_MS": str(EXPIRE_MS)}
    servers: list[Server] = []
    try:
        for n in range(2):
            var = tmp_path_factory.mktemp(f"faults-redis-web{n}")
            servers.append(start_daphne(var, artifacts_dir, env, name=f"faults-redis-web{n}"))
        yield Deployment(redis, servers)
    finally:
        for server in servers:
            server.stop()
        redis.stop()


def connected_gauge(server: Server) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(r"^swarm_signal_connected_peers (\d+)", text, re.M)
    assert match, "no connected-peers gauge in /metrics"
    return int(match.group(1))


async def wait_registry_empty(redis: RedisServer, timeout: float) -> tuple[float, int]:
    """Seconds until no id is registered (or the timeout), and how many are left."""
    client = redis.client()
    started = time.monotonic()
    try:
        while True:
            left = int(client.hlen("swarm:sig:reg"))
            if left == 0 or time.monotonic() - started > timeout:
                return time.monotonic() - started, left
            await asyncio.sleep(0.1)
    finally:
        client.close()


async def reopen_with_new_tokens(peers: list[FaultPeer]) -> dict[str, int]:
    """Each id once more, with a token it never used: how the server answers."""
    outcomes: dict[str, int] = {}

    async def one(peer: FaultPeer) -> None:
        fresh = FaultPeer(peer.peer_id, peer.base)
        task = asyncio.get_running_loop().create_task(fresh.run())
        deadline = time.monotonic() + 10
        while not fresh.is_open and not fresh.answers and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        outcome = "OPEN" if fresh.is_open else (fresh.answers[0].kind if fresh.answers else "-")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        await fresh.leave()
        task.cancel()

    await asyncio.gather(*(one(p) for p in peers))
    return outcomes


async def test_signaling_survives_redis_kill_and_freeze(deployment: Deployment) -> None:
    redis, servers = deployment.redis, deployment.servers
    traffic = Traffic([s.ws_url for s in servers], PAIRS, RATE)
    await traffic.start()
    traffic.sending = True
    await asyncio.sleep(2)

    redis.kill()
    await asyncio.sleep(1.0)
    redis.restart()
    restarted = time.monotonic()
    await traffic.wait_all_open(RECOVERY_BOUND_S)
    reopened = time.monotonic() - restarted
    relaying = await traffic.wait_relaying(RECOVERY_BOUND_S)
    after_kill = describe_outages(traffic.outages())
    await asyncio.sleep(1.5)

    dropped = redis.drop_clients("pubsub")  # subscriptions gone, registry kept
    lost_at = time.monotonic()
    await asyncio.sleep(0.5)
    await traffic.wait_all_open(RECOVERY_BOUND_S)
    await traffic.wait_relaying(RECOVERY_BOUND_S)
    after_drop = time.monotonic() - lost_at
    await asyncio.sleep(1.5)

    redis.freeze()
    await asyncio.sleep(5)
    redis.thaw()
    thawed = time.monotonic()
    await traffic.wait_all_open(RECOVERY_BOUND_S)
    relaying_after_freeze = await traffic.wait_relaying(RECOVERY_BOUND_S)
    thaw_recovery = time.monotonic() - thawed
    await asyncio.sleep(2)

    traffic.sending = False
    await asyncio.sleep(EXPIRE_MS / 1000 + 2)  # the last queues expire and are answered
    result = tally(traffic.peers)
    id_taken = sum(p.id_taken for p in traffic.peers)
    # Every command connection dropped just before everyone leaves: the releases meet
    # dead pooled connections (the registry is intact, so a lost release is a stuck id).
    redis.drop_clients("normal")
    await traffic.leave()
    emptied, stuck = await wait_registry_empty(redis, 15)
    gauge = connected_gauge(servers[0])
    reopened_ids = await reopen_with_new_tokens(traffic.peers)
    _, stuck_after_reuse = await wait_registry_empty(redis, 15)

    print(
        f"\nredis SIGKILL + restart: all {2 * PAIRS} clients open {reopened:.2f} s after the "
        f"restart, relaying {relaying:.2f} s later; {after_kill}"
        f"\nCLIENT KILL TYPE pubsub ({dropped} subscriptions): open and relaying again in "
        f"{after_drop:.2f} s"
        f"\nredis SIGSTOP 5 s: sessions open and relaying {thaw_recovery:.2f} s after SIGCONT "
        f"(relaying check {relaying_after_freeze:.2f} s)"
        f"\nmessages: {result.line()}; ID-TAKEN during the run: {id_taken}"
        f"\nafter CLIENT KILL TYPE normal and everyone leaving: registry empty in "
        f"{emptied:.2f} s ({stuck} ids stuck), connected-peers gauge {gauge}; "
        f"reopening every id with a new token: {reopened_ids}"
    )
    assert result.lost == 0, result.lost_samples
    assert result.duplicates == 0
    assert stuck == 0
    assert gauge == 0
    assert reopened_ids == {"OPEN": 2 * PAIRS}
    assert stuck_after_reuse == 0
