"""The Redis fault run against real processes, shared by ``tests/test_faults_redis.py``
(short) and ``bench/faults.py`` (long): pairs of signaling clients relaying across two
daphnes while their private redis-server is killed and restarted empty, has its
subscriptions dropped, is frozen, and has every command connection dropped just before
everyone leaves. Returns what happened; the caller asserts or prints."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import httpx

from tests.support.fault_signal import FaultPeer, Tally, Traffic, describe_outages, tally
from tests.support.live import Server
from tests.support.redis_server import RedisServer


@dataclass
class RedisFaultRun:
    clients: int
    down_s: float
    freeze_s: float
    reopened_s: float  # all sessions open again, from the restart
    relaying_s: float  # then every client received a fresh message
    outages: str
    health_down: list[int]  # /healthz of each process while Redis is down
    health_up_s: float  # from the restart until /healthz answers 200 everywhere
    pubsub_dropped: int
    after_drop_s: float
    after_thaw_s: float
    messages: Tally
    id_taken: int
    emptied_s: float
    stuck: int
    gauge: int
    reopened: dict[str, int]
    stuck_after_reuse: int

    def report(self) -> str:
        return (
            f"redis SIGKILL, restarted empty {self.down_s:.0f} s later: all {self.clients} "
            f"clients open {self.reopened_s:.2f} s after the restart, relaying "
            f"{self.relaying_s:.2f} s later; {self.outages}; /healthz {self.health_down} "
            f"while it was down, 200 everywhere {self.health_up_s:.2f} s after the restart"
            f"\nCLIENT KILL TYPE pubsub ({self.pubsub_dropped} subscriptions): open and "
            f"relaying again in {self.after_drop_s:.2f} s"
            f"\nredis SIGSTOP {self.freeze_s:.0f} s: open and relaying {self.after_thaw_s:.2f} s "
            f"after SIGCONT"
            f"\nmessages: {self.messages.line()}; ID-TAKEN during the run: {self.id_taken}"
            f"\nCLIENT KILL TYPE normal, then everyone leaves: registry empty in "
            f"{self.emptied_s:.2f} s ({self.stuck} ids stuck), connected-peers gauge "
            f"{self.gauge}; every id again with a new token: {self.reopened}, "
            f"{self.stuck_after_reuse} stuck after"
        )


async def run(
    redis: RedisServer,
    servers: list[Server],
    *,
    pairs: int,
    rate: float,
    down_s: float,
    freeze_s: float,
    expire_s: float,
    bound_s: float,
    steady_s: float = 1.5,
) -> RedisFaultRun:
    traffic = Traffic([s.ws_url for s in servers], pairs, rate)
    await traffic.start()
    traffic.sending = True
    await asyncio.sleep(steady_s)

    redis.kill()
    await asyncio.sleep(min(0.5, down_s / 2))
    probe = asyncio.get_running_loop().create_task(healthz(servers))  # answers while down
    await asyncio.sleep(down_s - min(0.5, down_s / 2))
    redis.restart()
    restarted = time.monotonic()
    await traffic.wait_all_open(bound_s)
    reopened = time.monotonic() - restarted
    relaying = await traffic.wait_relaying(bound_s)
    health_down = await probe
    outages = describe_outages(traffic.outages())
    while await healthz(servers) != [200] * len(servers):
        if time.monotonic() - restarted > bound_s:
            break
        await asyncio.sleep(0.1)
    health_up = time.monotonic() - restarted
    await asyncio.sleep(steady_s)

    dropped = redis.drop_clients("pubsub")  # subscriptions gone, registry kept
    lost_at = time.monotonic()
    await asyncio.sleep(0.5)
    await traffic.wait_all_open(bound_s)
    await traffic.wait_relaying(bound_s)
    after_drop = time.monotonic() - lost_at
    await asyncio.sleep(steady_s)

    redis.freeze()
    await asyncio.sleep(freeze_s)
    redis.thaw()
    thawed = time.monotonic()
    await traffic.wait_all_open(bound_s)
    await traffic.wait_relaying(bound_s)
    after_thaw = time.monotonic() - thawed
    await asyncio.sleep(steady_s)

    traffic.sending = False
    await asyncio.sleep(expire_s + 2)  # the last queues expire and are answered
    messages = tally(traffic.peers)
    id_taken = sum(p.id_taken for p in traffic.peers)
    # Every command connection dropped just before everyone leaves: the releases meet
    # dead pooled connections (the registry is intact, so a lost release is a stuck id).
    redis.drop_clients("normal")
    await traffic.leave()
    emptied, stuck = await wait_registry_empty(redis, 15)
    gauge = connected_gauge(servers[0])
    reopened_ids = await reopen_with_new_tokens(traffic.peers)
    _, stuck_after_reuse = await wait_registry_empty(redis, 15)
    return RedisFaultRun(
        clients=2 * pairs,
        down_s=down_s,
        freeze_s=freeze_s,
        reopened_s=reopened,
        relaying_s=relaying,
        outages=outages,
        health_down=health_down,
        health_up_s=health_up,
        pubsub_dropped=dropped,
        after_drop_s=after_drop,
        after_thaw_s=after_thaw,
        messages=messages,
        id_taken=id_taken,
        emptied_s=emptied,
        stuck=stuck,
        gauge=gauge,
        reopened=reopened_ids,
        stuck_after_reuse=stuck_after_reuse,
    )


async def healthz(servers: list[Server]) -> list[int]:
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(*(client.get(f"{s.url}/healthz") for s in servers))
    return [a.status_code for a in answers]


def connected_gauge(server: Server) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(r"^swarm_signal_connected_peers (\d+)", text, re.M)
    if match is None:
        raise AssertionError("no connected-peers gauge in /metrics")
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
