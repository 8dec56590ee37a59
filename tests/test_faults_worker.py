"""A Celery worker killed (SIGKILL) in the middle of publishing a capsule, against real
processes: the task is handed out again to another worker once the visibility timeout
has passed, and the capsule gets published, once, with no new request.

The workers run on a private redis-server with a 5 s visibility timeout (the default is
10 minutes); the task is held mid-run by a remote beacon that does not answer until the
first worker is dead. The figures are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery

from beacon.models import Capsule, Community, PresenceTicket, RemoteBeacon
from peers.protocol.capsule import capsule_tickets, parse_trusted_keys, verify_capsule
from swarmweb.clock import now_ms
from tests.support.capsules import fake_beacon
from tests.support.keys import peer_id, seeded_key, ticket
from tests.support.live import ROOT, base_env
from tests.support.redis_server import RedisServer
from tests.support.worker import start_worker, stop_worker

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

VISIBILITY_S = 5
TIME_LIMIT_S = 3
RESTORE_EVERY_S = 1  # settings: max(1, min(10, visibility // 10))


@dataclass
class Setup:
    var: Path
    redis: RedisServer
    env: dict[str, str]
    artifacts: Path


@pytest.fixture
def setup(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Setup]:
    var = tmp_path_factory.mktemp("faults-worker-var")
    redis = RedisServer(tmp_path_factory.mktemp("faults-worker-redis"), artifacts_dir)
    redis.start()
    env = {
        "REDIS_URL": redis.url(),
        "SWARM_CELERY_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
        "SWARM_CELERY_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
        "SWARM_CELERY_TASK_TIME_LIMIT_S": str(TIME_LIMIT_S),
    }
    subprocess.run(
        [sys.executable, "manage.py", "capsule_key", "create"],
        cwd=ROOT,
        env=base_env(var, env),
        check=True,
        capture_output=True,
    )
    yield Setup(var, redis, env, artifacts_dir)
    redis.stop()


def stored_ticket(community: Community, label: str) -> str:
    key = seeded_key(label)
    envelope = ticket(key, community.name, now_ms())
    body = envelope["body"]
    PresenceTicket.objects.create(
        community=community,
        peer_id=body["peer_id"],
        public_key=envelope["pk"],
        issued_at=body["issued_at"],
        expires_at=body["expires_at"],
        nonce=body["nonce"],
        envelope=json.dumps(envelope, separators=(",", ":")),
    )
    return peer_id(key)


def test_a_task_whose_worker_was_killed_is_handed_out_again_and_completes(setup: Setup) -> None:
    community = Community.objects.create(name=f"faults-{uuid.uuid4().hex[:8]}")
    peer = stored_ticket(community, f"{community.name}-peer")
    release = threading.Event()
    slow = fake_beacon(lambda: [], hold=release)
    RemoteBeacon.objects.update(enabled=False)
    RemoteBeacon.objects.create(name=f"{community.name}-slow", base_url=f"{slow.url}/beacon/v1/")
    broker = Celery(broker=setup.redis.url())
    victim = start_worker(setup.var, setup.artifacts, setup.env, "faults-victim")
    successor = None
    try:
        sent = broker.send_task(
            "beacon.publish_capsule",
            args=[community.id, now_ms()],
            queue=setup.env["SWARM_CELERY_QUEUE"],
        )
        assert slow.arrived.wait(30), "the worker never reached the remote beacon"  # type: ignore[attr-defined]
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
        killed = time.monotonic()
        release.set()  # from now on the remote beacon answers at once
        assert not Capsule.objects.filter(community=community).exists()

        successor = start_worker(setup.var, setup.artifacts, setup.env, "faults-successor")
        deadline = killed + VISIBILITY_S + RESTORE_EVERY_S + 15
        while not Capsule.objects.filter(community=community).exists():
            assert time.monotonic() < deadline, "the task was never handed out again"
            time.sleep(0.1)
        redelivered = time.monotonic() - killed
        log = successor.log()
    finally:
        release.set()
        stop_worker(victim, signal.SIGKILL)
        if successor is not None:
            stop_worker(successor)
        slow.close()

    print(
        f"\nworker SIGKILL mid-publish: the task was handed out again and its capsule "
        f"published {redelivered:.2f} s after the kill (visibility timeout {VISIBILITY_S} s)"
    )
    assert f"[{sent.id}] received" in log  # the same task, not a new one
    assert redelivered >= VISIBILITY_S - 1  # handed out because it timed out, not before
    assert Capsule.objects.filter(community=community).count() == 1
    folder = setup.var / "capsules"
    keys = parse_trusted_keys(json.loads((folder / "keys.json").read_text()))
    published = json.loads((folder / f"{community.name}.json").read_text())
    capsule = verify_capsule(published, trusted=keys, now=now_ms(), community=community.name)
    assert [t.peer_id for t in capsule_tickets(capsule, now=now_ms()).tickets] == [peer]
