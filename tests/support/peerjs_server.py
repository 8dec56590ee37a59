"""The reference PeerJS server (npm ``peer``) on 127.0.0.1, for interop tests and benchmarks."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.live import ROOT, Server, free_port

PEERJS_BIN = ROOT / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"


@dataclass
class ReferenceServer(Server):
    key: str = "peerjs"
    path: str = "/"

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        # The server keeps no state worth a graceful exit, and it lingers on SIGTERM while
        # WebSockets are open: kill it, which is also what a crash looks like to clients.
        super().stop(sig, timeout)


def start_reference_server(
    log_dir: Path, *extra: str, port: int = 0, path: str = "/"
) -> ReferenceServer:
    """``node peer/dist/bin/peerjs.js --host 127.0.0.1 --port <free> --path <path>``, ready
    once its id endpoint answers."""
    port = port or free_port()
    log_path = log_dir / f"peerjs-server-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                "node",
                str(PEERJS_BIN),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--path",
                path,
                *extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ReferenceServer(
        name="peerjs-reference", proc=proc, log_path=log_path, port=port, path=path
    )
    id_url = f"{server.url}{path}{server.key}/id"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peerjs server exited:\n{server.log()}")
        try:
            if httpx.get(id_url, timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"peerjs server did not start:\n{server.log()}")
