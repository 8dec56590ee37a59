"""The PostgreSQL fault run against real processes, shared by
``tests/test_faults_postgres.py`` (short) and ``bench/faults.py`` (long): a private
PostgreSQL cluster under two daphnes (and a private Redis), announces under load and
/healthz probes while PostgreSQL is stopped and started again, then a block made after
the restarts, enforced by both beacons and by signaling. Returns what happened; the
caller asserts or prints."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ops.blocks import BLOCKS_VERSION_KEY
from ops.models import Block
from shared.clock import now_ms
from tests.support.fault_beacon import AnnounceLoad, HealthProbe
from tests.support.keys import seeded_key, ticket
from tests.support.live import Server, base_env, start_daphne
from tests.support.pg_cluster import PgCluster
from tests.support.redis_server import RedisServer
from tests.support.signal import SignalClient, new_id


@dataclass
class PgDeployment:
    pg: PgCluster
    redis: RedisServer
    servers: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.redis.stop()
        self.pg.destroy()


def deployment_for(tmp: Path, log_dir: Path) -> PgDeployment:
    """The private servers, not started yet (their URLs are known)."""
    return PgDeployment(PgCluster(log_dir, "faults-pg"), RedisServer(tmp, log_dir))


def launch(deployment: PgDeployment, tmp: Path, log_dir: Path) -> None:
    """Cluster, database and migrations, Redis, two daphnes trusting X-Forwarded-For."""
    try:
        deployment.pg.init()
        deployment.pg.start()
        deployment.pg.create_database()
        deployment.redis.start()
        env = {
            "DATABASE_URL": deployment.pg.url(),
            "REDIS_URL": deployment.redis.url(),
            "SWARM_TRUST_X_FORWARDED_FOR": "1",
            "SWARM_BEACON_PEER_INTERVAL_S": "1",
        }
        deployment.pg.migrate(base_env(tmp, env))
        for n in range(2):
            server = start_daphne(tmp, log_dir, env, name=f"faults-pg-web{n}")
            deployment.servers.append(server)
    except BaseException:
        deployment.stop()
        raise


def start(tmp: Path, log_dir: Path) -> PgDeployment:
    deployment = deployment_for(tmp, log_dir)
    launch(deployment, tmp, log_dir)
    return deployment


def add_block(deployment: PgDeployment, kind: str, value: str) -> None:
    """What the admin does: a Block row, then the version stamp every process watches."""
    with psycopg.connect(deployment.pg.url(), autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {Block._meta.db_table} (kind, value, reason, created_at) "
            "VALUES (%s, %s, 'faults test', now())",
            (kind, value),
        )
    client = deployment.redis.client()
    client.set(BLOCKS_VERSION_KEY, str(time.time_ns()))
    client.close()


@dataclass
class Restart:
    mode: str
    stopped: float
    back: float
    recovered: float | None = None  # the first announce from which all succeeded
    health_down: float | None = None  # the first /healthz 503 after the stop
    health_up: float | None = None  # the first /healthz 200 after PostgreSQL was back
    during: Counter[int] = field(default_factory=Counter)
    slowest_failure: float = 0.0
    health_during: Counter[int] = field(default_factory=Counter)  # first failure..recovered

    def report(self) -> str:
        recovered = f"{self.recovered - self.back:.2f} s" if self.recovered else "never"
        down = f"{self.health_down - self.stopped:.2f} s" if self.health_down else "never"
        up = f"{self.health_up - self.back:.2f} s" if self.health_up else "never"
        return (
            f"PostgreSQL stop -m {self.mode}, started {self.back - self.stopped:.1f} s later: "
            f"announces meanwhile {dict(self.during)} (slowest failure answered in "
            f"{self.slowest_failure:.2f} s), all succeeding again {recovered} after it was "
            f"back; /healthz 503 from {down} after the stop ({dict(self.health_during)} "
            f"while announces failed), 200 again {up} after it was back"
        )


@dataclass
class PgFaultRun:
    rate: float
    restarts: list[Restart]
    beacon_block_s: float
    signal_block_s: float
    held_socket_got: list[dict[str, Any]]
    new_socket_got: dict[str, Any] | None
    after: Counter[int]  # announces from the last recovery to the end
    health_after: Counter[int]
    steady_s: float

    def report(self) -> str:
        lines = [r.report() for r in self.restarts]
        lines.append(
            f"a block made after the restart: enforced by both beacons in "
            f"{self.beacon_block_s:.2f} s, by signaling in {self.signal_block_s:.2f} s "
            f"(held socket got {self.held_socket_got[-1:]}, a new one {self.new_socket_got})"
        )
        lines.append(
            f"from the last recovery on ({self.steady_s:.0f} s at {self.rate:.0f} announces/s, "
            f"two processes): announces {dict(self.after)}, /healthz {dict(self.health_after)}"
        )
        return "\n".join(lines)


async def _wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> float:
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the condition never held")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def run(
    deployment: PgDeployment,
    *,
    restarts: list[tuple[str, float]],
    settle_s: float,
    steady_s: float,
    rate: float = 20.0,
) -> PgFaultRun:
    """``restarts``: (stop mode, seconds down) each, ``settle_s`` apart."""
    servers = [s.url for s in deployment.servers]
    load = AnnounceLoad(servers, f"faults-{uuid.uuid4().hex[:8]}", rate=rate)
    probe = HealthProbe(servers)
    done: list[Restart] = []
    async with httpx.AsyncClient() as client:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(load.run(client)), loop.create_task(probe.run(client))]
        peer = await SignalClient.connect(deployment.servers[1].ws_url, new_id())
        await peer.opened()
        await asyncio.sleep(2)
        for mode, down_s in restarts:
            stopped = time.monotonic()
            await asyncio.to_thread(deployment.pg.stop, mode)
            await asyncio.sleep(down_s)
            await asyncio.to_thread(deployment.pg.start)
            done.append(Restart(mode, stopped, time.monotonic()))
            await asyncio.sleep(settle_s)

        # A block made after the restarts: the key is refused by both beacons, the peer id
        # is closed on the signaling socket it holds and refused on a new one.
        blocked_key = seeded_key(f"faults-blocked-{uuid.uuid4().hex}")
        add_block(deployment, "key", ticket(blocked_key, load.community, now_ms())["pk"])
        add_block(deployment, "peer", peer.peer_id)
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

        beacon_block_s = await _wait_until(refused_everywhere, 10)
        held = await peer.drain(quiet=5)
        signal_block_s = time.monotonic() - blocked_at
        again = await SignalClient.connect(deployment.servers[0].ws_url, peer.peer_id)
        refused = await again.recv(timeout=5)
        await again.close()

        await asyncio.sleep(steady_s)
        await load.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    end = time.monotonic()
    for n, restart in enumerate(done):
        until = done[n + 1].stopped if n + 1 < len(done) else end
        _measure(restart, load, probe, until)
    last = done[-1].recovered or end
    failed = [o.started + o.took for o in load.outcomes if o.status != 200]
    return PgFaultRun(
        rate=rate,
        restarts=done,
        beacon_block_s=beacon_block_s,
        signal_block_s=signal_block_s,
        held_socket_got=held,
        new_socket_got=refused,
        after=load.statuses(last, end),
        # From a second after the last failure answered (a probe may see it until then).
        health_after=probe.statuses(max([last, *failed]) + 1, end),
        steady_s=end - last,
    )


def _measure(restart: Restart, load: AnnounceLoad, probe: HealthProbe, until: float) -> None:
    failures = [
        o for o in load.outcomes if restart.stopped <= o.started < until and o.status != 200
    ]
    restart.during = load.statuses(restart.stopped, restart.back)
    restart.recovered = load.recovered_at(restart.back, until)
    restart.health_down = probe.first(503, restart.stopped)
    restart.health_up = probe.first(200, restart.back)
    if failures and restart.recovered is not None:
        first_failure = min(o.started + o.took for o in failures)
        restart.slowest_failure = max(o.took for o in failures)
        restart.health_during = probe.statuses(first_failure + 0.5, restart.recovered)
