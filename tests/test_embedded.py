"""The embedded default of `make run`: no Redis, no PostgreSQL; SQLite, in-process
channel layer and kombu's filesystem broker under SWARM_VAR_DIR."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from shared.clock import now_ms
from tests.support.keys import seeded_key, ticket
from tests.support.live import ROOT, VENV_BIN, free_port_pair

pytestmark = pytest.mark.live


def embedded_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DATABASE_URL"} and not k.startswith("SWARM_")
    }
    env.update({"SWARM_VAR_DIR": str(var_dir), "SWARM_PORT": str(port), "PYTHONUNBUFFERED": "1"})
    return env


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def door_refuses_a_bad_token(door: str) -> bool:
    """Whether a door answers, closing a socket without a valid token with 4401 bad_token."""

    async def knock() -> bool:
        try:
            async with ws_connect(f"{door}?id=x&token=y") as ws:
                await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as closed:
            return closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (
                4401,
                "bad_token",
            )
        except OSError:
            return False
        return False

    return asyncio.run(knock())


def test_procfile_starts_web_worker_and_beat_with_no_servers_and_says_where_to_go(
    tmp_path: Path,
) -> None:
    port = free_port_pair()  # the super-peer's door goes on the next one
    env = embedded_env(tmp_path / "var", port)
    for command in (["migrate", "--noinput"], ["swarm_keys"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)
    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "honcho"), "start", "-f", "Procfile"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def web_up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(web_up, 60, "web /healthz")
        # The ready process says where to go and how to make an admin account.
        wait_for(lambda: f"Swarm is up: open {url}/" in log_path.read_text(), 30, "the ready line")
        assert "manage.py createsuperuser" in log_path.read_text()
        health = httpx.get(f"{url}/healthz", timeout=5).json()
        assert health["ok"], health
        wait_for(
            lambda: "celery@" in log_path.read_text() and " ready." in log_path.read_text(),
            60,
            "worker ready",
        )
        wait_for(lambda: "beat: Starting" in log_path.read_text(), 60, "beat")
        # The super-peer keeps its door on the next port, and the page names it.
        door = f"ws://127.0.0.1:{port + 1}/"
        assert f'"doors": ["{door}"]' in httpx.get(f"{url}/", timeout=5).text
        wait_for(lambda: door_refuses_a_bad_token(door), 60, "the super-peer's door")

        key = seeded_key("embedded")
        response = httpx.post(
            f"{url}/beacon/v1/main/announce", json=ticket(key, "main", now_ms()), timeout=10
        )
        assert response.status_code == 200, response.text

        # A task sent through the filesystem broker is run by the worker.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); "
                "from beacon.tasks import prune_tickets; prune_tickets.delay()",
            ],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "swarmweb.settings"},
            check=True,
        )
        wait_for(
            lambda: (
                "beacon.prune_tickets" in log_path.read_text()
                and "succeeded" in log_path.read_text()
            ),
            60,
            "worker to run beacon.prune_tickets",
        )
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    assert (tmp_path / "var" / "swarm.sqlite3").exists()
