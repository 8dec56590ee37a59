"""Real server processes on 127.0.0.1 for integration tests (daphne, celery)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> int:
    """A free port whose next one is free too (a web process and the super-peer's door on
    the port after it, as the Procfile has them)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two free ports in a row")


def database_url_for_tests() -> str:
    """The URL of the database pytest-django created, so servers see the tests' rows."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class Server(Process):
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


# Every simulated user of a test or benchmark connects from 127.0.0.1, which the
# per-address limits (docs/operations.md "Abuse limits") would take for one client doing
# the work of hundreds. Servers start with them off; tests/test_abuse_live.py turns them on.
LOOPBACK_LIMITS_OFF = {
    "SWARM_HTTP_MAX_CONNECTIONS_PER_IP": "0",
    "SWARM_SIGNAL_IDS_PER_IP": "0",
    "SWARM_SIGNAL_IDS_PER_NETWORK": "0",
    "SWARM_SIGNAL_SOCKETS_PER_IP": "0",
    "SWARM_SIGNAL_SOCKETS_PER_NETWORK": "0",
    "SWARM_COMMUNITY_NEW_PER_IP_HOUR": "0",
    "SWARM_COMMUNITY_NEW_PER_HOUR": "0",
}


def base_env(var_dir: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(
        {
            "DATABASE_URL": database_url_for_tests(),
            "SWARM_VAR_DIR": str(var_dir),
            "DJANGO_SECRET_KEY": "test-secret-key-not-for-production",
            "PYTHONUNBUFFERED": "1",
            **LOOPBACK_LIMITS_OFF,
        }
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    env.update(overrides or {})
    return env


def start_daphne(
    var_dir: Path,
    log_dir: Path,
    overrides: Mapping[str, str] | None = None,
    name: str = "web",
    *,
    ready: str = "/healthz",
) -> Server:
    """A daphne with the tests' environment, started once ``ready`` answers (e.g. "/signal/"
    where /healthz cannot: a process whose Redis is unreachable)."""
    port = free_port()
    env = base_env(var_dir, overrides)
    return spawn_daphne(env, log_dir / f"{name}-{port}.log", name=name, port=port, ready=ready)


def spawn_daphne(
    env: Mapping[str, str],
    log_path: Path,
    *,
    name: str,
    port: int | None = None,
    ready: str = "/healthz",
    append: bool = False,
    app: str = "swarmweb.asgi:application",
    host: str = "127.0.0.1",
) -> Server:
    """daphne serving ``app`` (the project by default) on ``host`` (127.0.0.1 unless a test
    needs another address) with exactly ``env`` (benchmarks build their own), logging to
    ``log_path``; returns once ``ready`` answers below 500."""
    port = port or free_port()
    with log_path.open("ab" if append else "wb") as log:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "daphne"),
                "-b",
                host,
                "-p",
                str(port),
                app,
            ],
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(name=name, proc=proc, log_path=log_path, port=port, env=dict(env), host=host)
    wait_http(server, ready)
    return server


def wait_http(server: Server, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log()[-4000:]}")
        try:
            if httpx.get(server.url + path, timeout=2).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(
        f"{server.name} did not answer {path} in {timeout}s ({last}):\n{server.log()}"
    )
