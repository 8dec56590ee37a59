"""Signaling test helpers: a raw PeerJS-protocol WebSocket client and signaling clusters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.live import Server, start_daphne

HEARTBEAT_EVERY_S = 0.4


def new_id(prefix: str = "p") -> str:
    """A fresh plain PeerJS id (letters and digits only)."""
    return prefix + uuid.uuid4().hex[:12]


class SignalClient:
    """One PeerJS signaling socket, driven frame by frame."""

    def __init__(self, ws: ClientConnection, peer_id: str) -> None:
        self.ws = ws
        self.peer_id = peer_id
        self._beat: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        base: str,
        peer_id: str | None,
        token: str | None = "tok",
        *,
        key: str | None = "peerjs",
        heartbeat: bool = True,
        headers: Mapping[str, str] | None = None,
        path: str = "/signal/",
        source: str | None = None,
    ) -> SignalClient:
        """``source``: the local address to connect from (any of 127.0.0.0/8 on loopback)."""
        params = []
        if key is not None:
            params.append(f"key={key}")
        if peer_id is not None:
            params.append(f"id={peer_id}")
        if token is not None:
            params.append(f"token={token}")
        params.append("version=1.5.5")
        url = f"{base}{path}peerjs?{'&'.join(params)}"
        extra: dict[str, Any] = {"local_addr": (source, 0)} if source else {}
        ws = await connect(
            url,
            additional_headers=headers,
            open_timeout=5,
            close_timeout=1,
            max_size=2**22,
            **extra,
        )
        client = cls(ws, peer_id or "")
        if heartbeat:
            client._beat = asyncio.get_running_loop().create_task(client._heartbeats())
        return client

    async def _heartbeats(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY_S)
                await self.ws.send('{"type":"HEARTBEAT"}')

    def stop_heartbeats(self) -> None:
        if self._beat is not None:
            self._beat.cancel()

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self, timeout: float = 3.0) -> dict[str, Any] | None:
        """The next frame as JSON; None if the socket closed; TimeoutError if none came."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed:
            return None
        return dict(json.loads(raw))

    async def drain(self, quiet: float = 0.5) -> list[dict[str, Any]]:
        """Every frame until ``quiet`` seconds pass without one (or the socket closes)."""
        frames: list[dict[str, Any]] = []
        while True:
            try:
                frame = await self.recv(timeout=quiet)
            except TimeoutError:
                return frames
            if frame is None:
                return frames
            frames.append(frame)

    async def opened(self) -> SignalClient:
        frame = await self.recv()
        if frame != {"type": "OPEN"}:
            raise AssertionError(f"{self.peer_id} expected OPEN, got {frame}")
        return self

    async def silent(self, seconds: float = 0.3) -> bool:
        """No frame (and no close) within ``seconds``."""
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        except ConnectionClosed:
            return False
        return False

    async def closed(self, timeout: float = 3.0) -> bool:
        """The server closed the socket within ``timeout`` (frames before it are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
            except ConnectionClosed:
                return True
            except TimeoutError:
                return False
        return False

    async def close(self) -> None:
        self.stop_heartbeats()
        await self.ws.close()


@dataclass
class Cluster:
    """One or more web processes serving one signaling directory."""

    name: str
    servers: list[Server]
    env: dict[str, str] = field(default_factory=dict)

    def ws(self, n: int = 0) -> str:
        """The n-th client's server: clients alternate between processes."""
        return self.servers[n % len(self.servers)].ws_url

    def http(self, n: int = 0) -> str:
        return self.servers[n % len(self.servers)].url

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_cluster(
    name: str,
    processes: int,
    tmp: Path,
    log_dir: Path,
    overrides: Mapping[str, str],
    *,
    redis: bool,
) -> Cluster:
    env = dict(overrides)
    if not redis:
        env["REDIS_URL"] = ""  # the embedded default: the directory in process memory
    elif not os.environ.get("REDIS_URL"):
        pytest.skip("several signaling processes need REDIS_URL")
    servers = [
        start_daphne(tmp / f"{name}-{n}", log_dir, env, name=f"signal-{name}-{n}")
        for n in range(processes)
    ]
    return Cluster(name, servers, env)
