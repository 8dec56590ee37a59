"""A private redis-server for fault injection: killed, restarted on the same port, frozen,
its clients' connections dropped.

Never the machine's own Redis: this one listens on a free port, keeps nothing on disk
(``--save "" --appendonly no``), so a restart after SIGKILL starts empty, as a crashed
Redis without persistence does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.support.live import Process, free_port

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, workdir: Path, log_dir: Path, name: str = "redis") -> None:
        self.workdir = workdir
        self.log_dir = log_dir
        self.name = name
        self.port = free_port()
        self.process: Process | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.starts += 1
        log_path = self.log_dir / f"{self.name}-{self.port}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.process = Process(name=self.name, proc=proc, log_path=log_path)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = self.process.log()
                    raise RuntimeError(f"redis-server did not start:\n{log}") from exc
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, and (without persistence) every key is gone."""
        if self.process is not None:
            self.process.kill()

    def restart(self) -> None:
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        if self.process is not None and self.process.proc.poll() is None:
            os.kill(self.process.proc.pid, sig)

    def drop_clients(self, kind: str) -> int:
        """``CLIENT KILL TYPE kind`` (``normal`` or ``pubsub``): Redis closes those
        connections and keeps its data, as a proxy or failover that drops them does."""
        client = self.client()
        try:
            return int(client.execute_command("CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes"))
        finally:
            client.close()

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_timeout=5, socket_connect_timeout=2)

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            self.process.stop()
