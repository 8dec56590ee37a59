"""The reference PeerJS server (npm ``peer``) on 127.0.0.1, for interop tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PEERJS_BIN = ROOT / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ReferenceServer:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    key: str = "peerjs"
    path: str = "/"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        # The server keeps no state worth a graceful exit, and it lingers on SIGTERM while
        # WebSockets are open: kill it, which is also what a crash looks like to clients.
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_reference_server(log_dir: Path, *extra: str, port: int = 0) -> ReferenceServer:
    """``node peer/dist/bin/peerjs.js --host 127.0.0.1 --port <free> --path /``, ready to use."""
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
                "/",
                *extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ReferenceServer(proc, port, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peerjs server exited:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/peerjs/id", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"peerjs server did not start:\n{server.log()}")
