"""Capsules end to end: a real Celery worker on the test Redis and database, real daphne
processes serving them, a second daphne (its own SQLite store) as a federated beacon,
a local webhook for alerts, and a worker killed with SIGKILL in the middle of a run.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from beacon import capsule_files, capsules
from beacon.models import Capsule, CapsuleRun, Community, RemoteBeacon
from ops import alerts
from ops.models import Alert
from peers.protocol.capsule import capsule_tickets, parse_trusted_keys, verify_capsule
from shared.clock import now_ms
from swarmweb.celery import app as celery_app
from tests.support.capsules import HttpServer, Recorder, fake_beacon, webhook
from tests.support.keys import peer_id, seeded_key, ticket
from tests.support.live import ROOT, Process, Server, base_env, free_port, start_daphne
from tests.support.worker import start_worker as start_celery_worker
from tests.support.worker import stop_worker

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

FAST = {
    "SWARM_CAPSULE_RETRY_BACKOFF_S": "0.2",
    "SWARM_ALERT_RETRY_BACKOFF_S": "0.2",
    "SWARM_FEDERATION_BACKOFF_S": "0.1",
    "SWARM_FEDERATION_RETRIES": "1",
}


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Deployment:
    var: Path
    queue: str
    hook: Recorder
    hook_url: str
    web: Server
    artifacts: Path


def start_worker(deployment: Deployment, queue: str, name: str) -> Process:
    env = {**FAST, "SWARM_CELERY_QUEUE": queue, "SWARM_ALERT_WEBHOOK_URL": deployment.hook_url}
    return start_celery_worker(deployment.var, deployment.artifacts, env, name)


@pytest.fixture(scope="module")
def deployment(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Deployment]:
    var = tmp_path_factory.mktemp("capsule-var")
    subprocess.run(
        [sys.executable, "manage.py", "capsule_key", "create"],
        cwd=ROOT,
        env=base_env(var),
        check=True,
        capture_output=True,
    )
    recorder = Recorder()
    hook: HttpServer = webhook(recorder)
    web = start_daphne(var, artifacts_dir, name="capsule-web")
    queue = f"capsule-test-{uuid.uuid4().hex[:8]}"
    deployment = Deployment(var, queue, recorder, hook.url + "/hook", web, artifacts_dir)
    worker = start_worker(deployment, queue, "capsule-worker")
    yield deployment
    stop_worker(worker)
    web.stop()
    hook.close()


@pytest.fixture(scope="module")
def remote_beacon(
    tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    """Another deployment: its own daphne and its own store (SQLite), no shared Redis."""
    var = tmp_path_factory.mktemp("remote-var")
    store = {"DATABASE_URL": f"sqlite:///{var / 'remote.sqlite3'}", "REDIS_URL": ""}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=base_env(var, store),
        check=True,
    )
    server = start_daphne(var, artifacts_dir, store, name="remote-beacon")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _same_deployment(settings: Any, deployment: Deployment) -> None:
    """Services called in the test process act on the deployment the worker serves."""
    settings.VAR_DIR = deployment.var
    settings.SWARM_CAPSULE_DIR = deployment.var / "capsules"
    settings.CELERY_TASK_DEFAULT_QUEUE = deployment.queue
    settings.SWARM_ALERT_WEBHOOK_URL = deployment.hook_url


def send(deployment: Deployment, task: str, *args: object, queue: str | None = None) -> None:
    celery_app.send_task(task, args=list(args), queue=queue or deployment.queue)


def announce(server: Server, community: str, label: str) -> str:
    key = seeded_key(label)
    response = httpx.post(
        f"{server.url}/beacon/v1/{community}/announce",
        json=ticket(key, community, now_ms()),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return peer_id(key)


def served(deployment: Deployment, community: str) -> httpx.Response:
    return httpx.get(f"{deployment.web.url}/capsules/{community}.json", timeout=10)


def trusted_now(deployment: Deployment) -> list[Any]:
    keys = httpx.get(f"{deployment.web.url}/capsules/keys.json", timeout=10)
    return parse_trusted_keys(keys.json())


def test_worker_publishes_local_and_federated_peers_and_drops_forged_ones(
    deployment: Deployment, remote_beacon: Server
) -> None:
    name = f"fed-{uuid.uuid4().hex[:8]}"
    local = {announce(deployment.web, name, f"{name}-local-{i}") for i in range(2)}
    remote = {announce(remote_beacon, name, f"{name}-remote-{i}") for i in range(2)}
    forged = ticket(seeded_key(f"{name}-forged"), name, now_ms())
    forged["body"]["nonce"] = "Zm9yZ2VkLTEyMzQ"
    stale = ticket(seeded_key(f"{name}-stale"), name, now_ms() - 200_000)
    liar = fake_beacon(lambda: [forged, stale])
    try:
        RemoteBeacon.objects.create(name="honest", base_url=f"{remote_beacon.url}/beacon/v1/")
        RemoteBeacon.objects.create(name="liar", base_url=f"{liar.url}/beacon/v1/")
        community = Community.objects.get(name=name)
        send(deployment, "beacon.publish_capsule", community.id, now_ms())
        wait_for(lambda: Capsule.objects.filter(community=community).exists(), "a capsule")
    finally:
        liar.close()
    response = served(deployment, name)
    assert response.status_code == 200
    capsule = verify_capsule(
        response.json(), trusted=trusted_now(deployment), now=now_ms(), community=name
    )
    peers = {t.peer_id for t in capsule_tickets(capsule, now=now_ms()).tickets}
    assert peers == local | remote
    run = CapsuleRun.objects.get(community=community)
    assert run.dropped == {"bad_signature": 1, "expired": 1}
    assert (run.local_count, run.remote_count) == (2, 4)
    path = deployment.var / "capsules" / f"{name}.json"
    assert path.read_bytes() == response.content
    assert int(response.headers["cache-control"].split("max-age=")[1]) > 590


def hide_keys(deployment: Deployment) -> Callable[[], None]:
    keys = deployment.var / "keys" / "capsule"
    hidden = deployment.var / "keys" / "capsule-hidden"
    keys.rename(hidden)
    return lambda: hidden.rename(keys)


def test_two_failed_runs_raise_one_alert_and_one_webhook_then_recovery_resolves_it(
    deployment: Deployment,
) -> None:
    community = Community.objects.create(name=f"fail-{uuid.uuid4().hex[:8]}")
    before = len(deployment.hook.bodies(None))
    restore = hide_keys(deployment)
    try:
        # one task: the first attempt and its two retries (with backoff) all fail
        send(deployment, "beacon.publish_capsule", community.id, now_ms())
        wait_for(
            lambda: CapsuleRun.objects.filter(community=community, ok=False).count() == 3,
            "three failed runs",
        )
        wait_for(lambda: len(deployment.hook.bodies(None)) > before, "the webhook")
        time.sleep(1.0)  # room for a duplicate delivery, if there were one
    finally:
        restore()
    alert = Alert.objects.get(subject=community.name)
    assert alert.kind == Alert.PUBLISH_FAILING
    notices = deployment.hook.bodies(None)[before:]
    assert [n["event"] for n in notices] == ["alert.raised"]
    assert notices[0]["alert"]["subject"] == community.name
    wait_for(lambda: Alert.objects.get(id=alert.id).raised_sent_at, "delivery marked sent")

    send(deployment, "beacon.publish_capsule", community.id, now_ms())
    wait_for(lambda: Alert.objects.get(id=alert.id).resolved_sent_at, "the recovery notice")
    notices = deployment.hook.bodies(None)[before:]
    assert [n["event"] for n in notices] == ["alert.raised", "alert.resolved"]
    assert Alert.objects.filter(subject=community.name).count() == 1
    metrics = httpx.get(f"{deployment.web.url}/metrics", timeout=10).text
    assert 'swarm_alerts_open{kind="publish_failing"} 0' in metrics


def test_one_failed_run_raises_no_alert(deployment: Deployment) -> None:
    community = Community.objects.create(name=f"once-{uuid.uuid4().hex[:8]}")
    before = len(deployment.hook.bodies(None))
    restore = hide_keys(deployment)
    try:
        with pytest.raises(capsules.PublishError):
            capsules.capsule_publish(community_id=community.id, now=now_ms())
    finally:
        restore()
    capsules.capsule_publish(community_id=community.id, now=now_ms())
    time.sleep(1.0)  # a delivery, had one been queued, would reach the webhook by now
    assert not Alert.objects.filter(subject=community.name).exists()
    assert len(deployment.hook.bodies(None)) == before


def test_webhook_errors_are_retried_by_the_worker_until_delivered_once(
    deployment: Deployment,
) -> None:
    before = len(deployment.hook.bodies(None))
    deployment.hook.statuses = [500, 502]
    subject = f"retry-{uuid.uuid4().hex[:8]}"
    alert = alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject=subject, message="m", now=1)
    assert alert is not None
    wait_for(lambda: Alert.objects.get(id=alert.id).raised_sent_at, "delivery after retries")
    statuses = [r["status"] for r in deployment.hook.requests[before:]]
    assert statuses == [500, 502, 200]
    assert Alert.objects.get(id=alert.id).delivery_attempts == 3


def test_beacon_failing_probes_raise_one_alert(deployment: Deployment) -> None:
    before = len(deployment.hook.bodies(None))
    name = f"down-{uuid.uuid4().hex[:8]}"
    beacon = RemoteBeacon.objects.create(
        name=name, base_url=f"http://127.0.0.1:{free_port()}/beacon/v1/", timeout_s=1
    )
    for n in range(1, 5):
        send(deployment, "beacon.probe_beacon", beacon.id)
        wait_for(lambda n=n: beacon.probes.count() == n, f"probe {n}")
    wait_for(lambda: len(deployment.hook.bodies(None)) > before, "the webhook")
    assert Alert.objects.filter(kind=Alert.BEACON_UNHEALTHY, subject=name).count() == 1
    notices = deployment.hook.bodies(None)[before:]
    assert [(n["event"], n["alert"]["kind"]) for n in notices] == [
        ("alert.raised", "beacon_unhealthy")
    ]


def test_worker_killed_mid_publish_leaves_the_previous_capsule_and_the_next_run_succeeds(
    deployment: Deployment,
) -> None:
    name = f"kill-{uuid.uuid4().hex[:8]}"
    announce(deployment.web, name, f"{name}-peer")
    community = Community.objects.get(name=name)
    first = capsules.capsule_publish(community_id=community.id, now=now_ms()).capsule
    assert first is not None
    path = capsule_files.capsule_path(name)
    previous = path.read_bytes()

    release = threading.Event()
    slow = fake_beacon(lambda: [], hold=release)
    RemoteBeacon.objects.update(enabled=False)
    RemoteBeacon.objects.create(name=f"{name}-slow", base_url=f"{slow.url}/beacon/v1/")
    queue = f"{deployment.queue}-kill"
    victim = start_worker(deployment, queue, "capsule-victim")
    try:
        send(deployment, "beacon.publish_capsule", community.id, now_ms(), queue=queue)
        assert slow.arrived.wait(30), "the worker never reached the remote beacon"  # type: ignore[attr-defined]
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
    finally:
        release.set()
        stop_worker(victim, signal.SIGKILL)
    assert path.read_bytes() == previous
    assert served(deployment, name).content == previous
    assert Capsule.objects.filter(community=community).count() == 1

    successor = start_worker(deployment, queue, "capsule-successor")
    try:
        send(deployment, "beacon.publish_capsule", community.id, now_ms(), queue=queue)
        wait_for(lambda: Capsule.objects.filter(community=community).count() == 2, "next run")
    finally:
        stop_worker(successor)
        slow.close()
    fresh = path.read_bytes()
    assert fresh != previous
    verify_capsule(json.loads(fresh), trusted=trusted_now(deployment), now=now_ms(), community=name)
    assert served(deployment, name).content == fresh
