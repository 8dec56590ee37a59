"""Super-peer processes for live tests and benchmarks: `manage.py superpeer` on 127.0.0.1,
with its own var dir and key, pointed at a daphne's signaling and beacon."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.superpeer.config import SuperPeerConfig
from shared import identity
from tests.support.live import ROOT, Process, Server, base_env


def offline_config(tmp_path: Path, **overrides: object) -> SuperPeerConfig:
    """A super-peer configuration for in-process tests: no signaling server answers at
    its address, no beacons, a 1 MiB store under ``tmp_path``."""
    fields: dict[str, object] = {
        "community": "main",
        "signal_url": "http://127.0.0.1:9/signal/",
        "signal_key": "peerjs",
        "beacon_urls": (),
        "store_dir": tmp_path / "chunks",
        "key_path": tmp_path / "key",
        "storage_bytes": 1 << 20,
        **overrides,
    }
    return SuperPeerConfig(**fields)  # type: ignore[arg-type]


def community_name(prefix: str = "sp") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class SuperPeerProcess(Process):
    var_dir: Path = Path()
    key: Ed25519PrivateKey | None = None
    env: dict[str, str] | None = None

    @property
    def peer_id(self) -> str:
        assert self.key is not None
        return identity.peer_id_of(self.key)

    @property
    def store_dir(self) -> Path:
        return self.var_dir / "chunks"


def superpeer_key(var_dir: Path) -> Ed25519PrivateKey:
    """The super-peer's identity under ``var_dir`` (created like ``manage.py swarm_keys``)."""
    return identity.load_or_create(var_dir / "keys" / "superpeer.pem")[0]


def superpeer_env(
    var_dir: Path, web: Server, community: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    return base_env(
        var_dir,
        {
            "SWARM_SUPERPEER_SIGNAL_URL": f"{web.url}/signal/",
            "SWARM_SUPERPEER_BEACON_URLS": f"{web.url}/beacon/v1/",
            "SWARM_SUPERPEER_COMMUNITY": community,
            "SWARM_SUPERPEER_HOST_ADDRESSES": "127.0.0.1",
            "SWARM_SUPERPEER_ANNOUNCE_S": "2",
            "SWARM_SUPERPEER_SYNC_S": "2",
            "SWARM_SUPERPEER_STATUS_S": "0.5",
            # Repair by peers only where a test asks for it: with no backfill run in the
            # test database, a super-peer would start copying the files it sees held alone
            # 75 s after it started, in tests that measure something else.
            "SWARM_SUPERPEER_REPAIR": "false",
            **(overrides or {}),
        },
    )


def start_superpeer(
    var_dir: Path,
    log_dir: Path,
    web: Server,
    community: str,
    overrides: Mapping[str, str] | None = None,
    name: str = "superpeer",
) -> SuperPeerProcess:
    """Start ``manage.py superpeer`` and wait until it reports itself running."""
    key = superpeer_key(var_dir)
    env = superpeer_env(var_dir, web, community, overrides)
    log_path = log_dir / f"{name}-{identity.peer_id_of(key)[:9]}-{int(time.time())}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "superpeer"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    sp = SuperPeerProcess(
        name=name, proc=proc, log_path=log_path, var_dir=var_dir, key=key, env=env
    )
    wait_until(lambda: _running(sp), 30, f"{name} to start", sp)
    return sp


def restart(sp: SuperPeerProcess, log_dir: Path) -> SuperPeerProcess:
    """Start the same super-peer again (same var dir, key and settings)."""
    with sp.log_path.open("ab") as log:
        log.write(b"\n--- restart ---\n")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "superpeer"],
            cwd=ROOT,
            env=sp.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    again = SuperPeerProcess(
        name=sp.name, proc=proc, log_path=sp.log_path, var_dir=sp.var_dir, key=sp.key, env=sp.env
    )
    wait_until(lambda: _running(again, after=sp), 30, f"{sp.name} to restart", again)
    return again


def _running(sp: SuperPeerProcess, after: SuperPeerProcess | None = None) -> bool:
    text = sp.log()
    marker = "--- restart ---" if after is not None else ""
    started = text.rsplit(marker, 1)[-1] if marker else text
    return "super-peer " in started and " manifests" in started


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    *processes: Process,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.proc.poll() is not None:
                raise AssertionError(f"{process.name} exited:\n{process.log()[-4000:]}")
        if predicate():
            return
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in processes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def kill9(sp: SuperPeerProcess) -> None:
    os.kill(sp.proc.pid, signal.SIGKILL)
    sp.proc.wait(10)
