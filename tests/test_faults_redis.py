"""Signaling through Redis faults, against real processes: two daphnes on a private
redis-server, pairs of clients relaying across them while Redis is killed (SIGKILL, then
restarted empty on the same port), its subscriptions dropped (CLIENT KILL TYPE pubsub,
data kept), frozen (SIGSTOP, then SIGCONT), and its command connections dropped just
before everyone leaves (CLIENT KILL TYPE normal). The run is tests/support/fault_redis.py.

What must hold: clients get their sessions back within a bound (and /healthz says 503
while Redis is down, 200 once it is back); every message is
delivered or its sender is told (EXPIRE, LEAVE or ERROR); after everyone leaves no id
is left in the registry, the connected-peers gauge reads 0 and every plain id can be
taken again with a new token (no ID-TAKEN). The figures are printed (``-s``); the
longer run is ``bench/faults.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import fault_redis
from tests.support.live import Server, start_daphne
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PAIRS = 25
EXPIRE_MS = 2000


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


async def test_signaling_survives_redis_kill_drops_and_freeze(deployment: Deployment) -> None:
    result = await fault_redis.run(
        deployment.redis,
        deployment.servers,
        pairs=PAIRS,
        rate=10.0,
        down_s=1.0,
        freeze_s=5.0,
        expire_s=EXPIRE_MS / 1000,
        bound_s=10.0,
    )
    print("\n" + result.report())
    assert result.reopened_s + result.relaying_s < 10.0
    assert result.health_down == [503, 503]
    assert result.health_up_s < 10.0
    assert result.messages.lost == 0, result.messages.lost_samples
    assert result.messages.duplicates == 0
    assert result.stuck == 0
    assert result.gauge == 0
    assert result.reopened == {"OPEN": 2 * PAIRS}
    assert result.stuck_after_reuse == 0
