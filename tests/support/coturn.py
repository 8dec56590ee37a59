"""A real coturn (``turnserver``) for the TURN tests, started with ``use-auth-secret``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.live import free_port

TURNSERVER = shutil.which("turnserver")
MISSING = "turnserver is missing: apt-get install coturn (.ci/run installs it)"


@contextmanager
def run_turnserver(
    secret: str, work: Path, log_dir: Path, *, address: str = "127.0.0.1"
) -> Iterator[int]:
    """coturn listening and relaying on ``address`` (UDP and TCP) with only these options;
    yields its port once it answers, stops it after. Loopback peers are allowed only when
    ``address`` is loopback (the tests on 127.0.0.1 need them)."""
    if TURNSERVER is None:
        raise RuntimeError(MISSING)
    port = free_port()
    log = log_dir / f"turnserver-{port}.log"
    loopback = ["--allow-loopback-peers"] if address.startswith("127.") else []
    proc = subprocess.Popen(
        [
            TURNSERVER,
            "-n",  # no configuration file: only these options
            f"--listening-port={port}",
            f"--listening-ip={address}",
            f"--relay-ip={address}",
            "--use-auth-secret",
            f"--static-auth-secret={secret}",
            "--realm=swarm.test",
            *loopback,
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            f"--db={work / 'turndb'}",
            f"--pidfile={work / 'turnserver.pid'}",
            f"--log-file={log}",
            "--simple-log",
            "--verbose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        # Up once it answers on its TCP port (it listens on UDP and TCP).
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((address, port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"turnserver did not start; see {log}") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
