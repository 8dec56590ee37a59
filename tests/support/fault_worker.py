"""The killed-worker run against real processes, shared by ``tests/test_faults_worker.py``
and ``bench/faults.py``: a Celery worker on a private Redis is SIGKILLed in the middle
of publishing a capsule (held there by a remote beacon that does not answer yet); a
second worker must get the same task once the visibility timeout has passed, and
publish the capsule, once, with no new request. The calling process's database is the
workers' (it writes the community, a ticket and the remote beacon)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery

from beacon.models import Capsule, Community, RemoteBeacon
from peers.protocol.capsule import capsule_tickets, parse_trusted_keys, verify_capsule
from shared.clock import now_ms
from tests.support.capsules import fake_beacon, store_ticket
from tests.support.keys import peer_id, seeded_key, ticket
from tests.support.live import ROOT, Process, base_env
from tests.support.worker import start_worker, stop_worker


@dataclass
class WorkerFaultRun:
    visibility_s: float
    task_id: str
    redelivered_s: float  # from the kill to the capsule, published by the second worker
    successor_log: str
    capsules: int
    published_peers: list[str]
    expected_peers: list[str]

    def report(self) -> str:
        return (
            f"worker SIGKILL mid-publish: the same task handed out again and its capsule "
            f"published {self.redelivered_s:.2f} s after the kill (visibility timeout "
            f"{self.visibility_s:.0f} s); capsules published: {self.capsules}"
        )


def worker_env(broker_url: str, visibility_s: int, time_limit_s: int) -> dict[str, str]:
    return {
        "REDIS_URL": broker_url,
        "SWARM_CELERY_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
        "SWARM_CELERY_VISIBILITY_TIMEOUT_S": str(visibility_s),
        "SWARM_CELERY_TASK_TIME_LIMIT_S": str(time_limit_s),
    }


def create_capsule_key(var: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "capsule_key", "create"],
        cwd=ROOT,
        env=base_env(var, env),
        check=True,
        capture_output=True,
    )


def _stored_ticket(community: Community) -> str:
    key = seeded_key(f"{community.name}-peer")
    store_ticket(community, ticket(key, community.name, now_ms()))
    return peer_id(key)


def run(var: Path, log_dir: Path, env: dict[str, str], *, wait_s: float) -> WorkerFaultRun:
    """``env`` from :func:`worker_env`; gives up ``wait_s`` after the kill."""
    community = Community.objects.create(name=f"faults-{uuid.uuid4().hex[:8]}")
    peer = _stored_ticket(community)
    release = threading.Event()
    slow = fake_beacon(lambda: [], hold=release)
    RemoteBeacon.objects.update(enabled=False)
    RemoteBeacon.objects.create(name=f"{community.name}-slow", base_url=f"{slow.url}/beacon/v1/")
    broker = Celery(broker=env["REDIS_URL"])
    victim = start_worker(var, log_dir, env, "faults-victim")
    successor: Process | None = None
    try:
        sent = broker.send_task(
            "beacon.publish_capsule", args=[community.id, now_ms()], queue=env["SWARM_CELERY_QUEUE"]
        )
        if not slow.arrived.wait(30):  # type: ignore[attr-defined]
            raise AssertionError("the worker never reached the remote beacon")
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
        killed = time.monotonic()
        release.set()  # from now on the remote beacon answers at once
        if Capsule.objects.filter(community=community).exists():
            raise AssertionError("the capsule was published before the kill")
        successor = start_worker(var, log_dir, env, "faults-successor")
        while not Capsule.objects.filter(community=community).exists():
            if time.monotonic() - killed > wait_s:
                raise AssertionError("the task was never handed out again")
            time.sleep(0.1)
        redelivered = time.monotonic() - killed
        time.sleep(0.5)  # room for a second capsule, were the task run twice
    finally:
        release.set()
        stop_worker(victim, signal.SIGKILL)
        if successor is not None:
            stop_worker(successor)
        slow.close()
        broker.close()
    return WorkerFaultRun(
        visibility_s=float(env["SWARM_CELERY_VISIBILITY_TIMEOUT_S"]),
        task_id=str(sent.id),
        redelivered_s=redelivered,
        successor_log=successor.log(),
        capsules=Capsule.objects.filter(community=community).count(),
        published_peers=_published_peers(var / "capsules", community.name),
        expected_peers=[peer],
    )


def _published_peers(folder: Path, community: str) -> list[str]:
    keys = parse_trusted_keys(json.loads((folder / "keys.json").read_text()))
    published: Any = json.loads((folder / f"{community}.json").read_text())
    capsule = verify_capsule(published, trusted=keys, now=now_ms(), community=community)
    return [t.peer_id for t in capsule_tickets(capsule, now=now_ms()).tickets]
