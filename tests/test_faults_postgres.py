"""The beacon and signaling through a PostgreSQL restart, against real processes: a
private PostgreSQL cluster, two daphnes on it (and a private Redis), announces under
load while PostgreSQL is stopped (immediate: as in a crash) and started again.

What must hold: announces answer 503 (never hang, never 500) while PostgreSQL is away,
succeed again within 5 s of it being back and stay so; /healthz says 503 while they
fail and 200 once they work; a block added after the restart (a read of the block list
through the connection used outside requests, the one that used to stay broken) is
enforced by the beacon and by signaling. The figures are printed (``-s``); the longer
run is ``bench/faults.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from swarmweb.clock import now_ms
from tests.support.fault_beacon import AnnounceLoad, HealthProbe
from tests.support.keys import seeded_key, ticket
from tests.support.live import Server, base_env, start_daphne
from tests.support.pg_cluster import PgCluster, missing
from tests.support.redis_server import RedisServer
from tests.support.signal import SignalClient, new_id

pytestmark = [pytest.mark.live]

# Announces wait up to 5 s for a connection (beacon/store.py ACQUIRE_TIMEOUT_S): a
# shorter outage fails none of them.
OUTAGE_S = 7.0
RECOVERY_BOUND_S = 5.0
STEADY_S = 5.0  # announces keep working this long after the block check


@dataclass
class Deployment:
    pg: PgCluster
    redis: RedisServer
    servers: list[Server]


@pytest.fixture
def deployment(
    tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Deployment]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    pg = PgCluster(artifacts_dir, "faults-pg")
    redis = RedisServer(tmp_path_factory.mktemp("faults-pg-redis"), artifacts_dir)
    servers: list[Server] = []
    try:
        pg.init()
        pg.start()
        pg.create_database()
        redis.start()
        env = {
            "DATABASE_URL": pg.url(),
            "REDIS_URL": redis.url(),
            "SWARM_TRUST_X_FORWARDED_FOR": "1",
            "SWARM_BEACON_PEER_INTERVAL_S": "1",
        }
        var = tmp_path_factory.mktemp("faults-pg-var")
        pg.migrate(base_env(var, env))
        for n in range(2):
            servers.append(start_daphne(var, artifacts_dir, env, name=f"faults-pg-web{n}"))
        yield Deployment(pg, redis, servers)
    finally:
        for server in servers:
            server.stop()
        redis.stop()
        pg.destroy()


def add_block(deployment: Deployment, kind: str, value: str) -> None:
    """What the admin does: a Block row, then the version stamp every process watches."""
    with psycopg.connect(deployment.pg.url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO beacon_block (kind, value, reason, created_at) "
            "VALUES (%s, %s, 'faults test', now())",
            (kind, value),
        )
    client = deployment.redis.client()
    client.set("swarm:blocks:version", str(time.time_ns()))
    client.close()


async def wait_until(predicate: object, timeout: float) -> float:
    started = time.monotonic()
    while not await predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise TimeoutError
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_beacon_and_signaling_survive_a_postgresql_restart(deployment: Deployment) -> None:
    servers = [s.url for s in deployment.servers]
    load = AnnounceLoad(servers, f"faults-{uuid.uuid4().hex[:8]}", rate=20.0)
    probe = HealthProbe(servers)
    async with httpx.AsyncClient() as client:
        tasks = [
            asyncio.get_running_loop().create_task(load.run(client)),
            asyncio.get_running_loop().create_task(probe.run(client)),
        ]
        signal_peer = await SignalClient.connect(deployment.servers[1].ws_url, new_id())
        await signal_peer.opened()
        await asyncio.sleep(2)

        stopped = time.monotonic()
        await asyncio.to_thread(deployment.pg.stop, "immediate")
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(deployment.pg.start)
        back = time.monotonic()
        await asyncio.sleep(RECOVERY_BOUND_S + 1)

        # A block made after the restart: the key is refused by both beacons, the peer id
        # is closed on the signaling socket it holds and refused on a new one.
        blocked_key = seeded_key(f"faults-blocked-{uuid.uuid4().hex}")
        envelope_pk = ticket(blocked_key, load.community, now_ms())["pk"]
        add_block(deployment, "key", envelope_pk)
        add_block(deployment, "peer", signal_peer.peer_id)
        blocked_at = time.monotonic()

        async def refused_everywhere() -> bool:
            statuses = []
            for url in servers:
                response = await client.post(
                    f"{url}/beacon/v1/{load.community}/announce",
                    json=ticket(blocked_key, load.community, now_ms()),
                    headers={"X-Forwarded-For": "10.78.0.1"},
                    timeout=10,
                )
                statuses.append(response.status_code)
            return statuses == [403, 403]

        beacon_block_s = await wait_until(refused_everywhere, 10)
        closed = await signal_peer.drain(quiet=5)
        signal_block_s = time.monotonic() - blocked_at
        again = await SignalClient.connect(deployment.servers[0].ws_url, signal_peer.peer_id)
        refused = await again.recv(timeout=5)
        await again.close()

        await asyncio.sleep(STEADY_S)
        await load.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        end = time.monotonic()

    recovered = load.recovered_at(back)
    assert recovered is not None, f"announces never recovered: {load.statuses(back, end)}"
    failures = [o for o in load.outcomes if o.status != 200 and o.started >= stopped]
    first_failure = min(o.started + o.took for o in failures)
    last_failure = max(o.started + o.took for o in failures)
    outage = load.statuses(stopped, back)
    health_down = probe.first(503, stopped)
    health_up = probe.first(200, back)
    slowest = max(o.took for o in failures)
    print(
        f"\nPostgreSQL stopped (immediate) for {back - stopped:.1f} s under {load.rate:.0f} "
        f"announces/s on two processes: announces during the outage {dict(outage)} (the "
        f"slowest failure answered in {slowest:.2f} s); all succeed again "
        f"{recovered - back:.2f} s after PostgreSQL was back, and every one of the "
        f"{sum(load.statuses(recovered, end).values())} in the {end - recovered:.0f} s after"
        f"\n/healthz: 503 from {(health_down or end) - stopped:.2f} s after the stop, 200 "
        f"again {(health_up or end) - back:.2f} s after PostgreSQL was back"
        f"\na block made after the restart: enforced by both beacons in {beacon_block_s:.2f} s, "
        f"by signaling in {signal_block_s:.2f} s (held socket got {closed[-1:]}, "
        f"a new one {refused})"
    )
    assert set(failures_by_status := {o.status for o in failures}) <= {503}, failures_by_status
    assert recovered - back <= RECOVERY_BOUND_S
    assert set(load.statuses(recovered, end)) == {200}
    # /healthz follows what announces get: 503 while they fail, 200 once they work.
    assert set(probe.statuses(first_failure + 0.5, recovered)) == {503}
    assert set(probe.statuses(max(recovered, last_failure) + 1, end)) == {200}
    assert health_up is not None
    assert health_up - back <= RECOVERY_BOUND_S + 1
    assert closed, "the blocked peer's socket got nothing"
    assert closed[-1]["payload"]["code"] == "blocked"
    assert refused is not None
    assert refused["payload"]["code"] == "blocked"
