"""Three super-peers in a line for mesh signaling's live test and benchmark: B and C are
`manage.py superpeer` processes, T a :class:`SuperPeerService` in this process (so a test
can ask it to dial and watch its node). T and C know only B (no beacons, B as their seed,
a mesh target of 1), so they are never connected to each other unless told to."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peers.peerjs.ice import IceConfig
from peers.superpeer.config import SuperPeerConfig
from peers.superpeer.service import SuperPeerService, now_ms
from tests.support.live import Process, Server
from tests.support.superpeer import SuperPeerProcess, start_superpeer

ONLY_B = {"SWARM_SUPERPEER_BEACON_URLS": "", "SWARM_SUPERPEER_MESH_TARGET": "1"}


@dataclass
class MeshLine:
    b: SuperPeerProcess
    c: SuperPeerProcess
    t: SuperPeerService

    @property
    def processes(self) -> tuple[Process, ...]:
        return (self.b, self.c)

    async def stop(self) -> None:
        await self.t.shutdown()
        for process in self.processes:
            await asyncio.to_thread(process.stop)


async def until(
    predicate: Callable[[], object], timeout: float, what: str, *processes: Process
) -> None:
    """Poll ``predicate`` every 10 ms without blocking the event loop (T runs on it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.proc.poll() is not None:
                raise AssertionError(f"{process.name} exited:\n{process.log()[-4000:]}")
        if predicate():
            return
        await asyncio.sleep(0.01)
    logs = "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in processes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def reaches(t: SuperPeerService, via: str, peer_id: str) -> bool:
    """T's neighbour ``via`` says (``reach``) that it is connected to ``peer_id``."""
    return any(n.peer_id == via and peer_id in n.reach for n in t.meshsig.core.neighbours.values())


async def start_line(web: Server, base: Path, logs: Path, community: str) -> MeshLine:
    """B and C as processes, T in this loop; stopped again if the line cannot be made (a
    failed set-up must leave no super-peer holding the test database)."""
    started: list[SuperPeerProcess] = []
    t: SuperPeerService | None = None
    try:
        b = await asyncio.to_thread(
            start_superpeer, base / "b", logs, web, community, ONLY_B, "mesh-b"
        )
        started.append(b)
        c = await asyncio.to_thread(
            start_superpeer,
            base / "c",
            logs,
            web,
            community,
            {**ONLY_B, "SWARM_SUPERPEER_SEEDS": b.peer_id},
            "mesh-c",
        )
        started.append(c)
        config = SuperPeerConfig(
            community=community,
            signal_url=f"{web.url}/signal/",
            signal_key="peerjs",
            beacon_urls=(),
            store_dir=base / "t" / "chunks",
            key_path=base / "t" / "key",
            storage_bytes=1 << 20,
            ice=IceConfig(host_addresses=("127.0.0.1",)),
            seeds=(b.peer_id,),
            mesh_target=1,
            use_channel_layer=False,
        )
        t = SuperPeerService(config)
        await t.start()
        line = MeshLine(b, c, t)
        await until(lambda: reaches(t, b.peer_id, c.peer_id), 60, "B to reach T and C", b, c)
        if t._is_connected(c.peer_id):
            # T's DHT joining may have dialed C (B named it among the closest): apart again.
            await disconnect(line)
        return line
    except BaseException:
        if t is not None:
            await t.shutdown()
        for process in started:
            await asyncio.to_thread(process.stop)
        raise


async def timed_connect(line: MeshLine, *, mesh: bool) -> float:
    """Seconds from T's dial of C (through the mesh, or as the service chooses) until its
    node has verified C's hello; the connection stays open."""
    t, c = line.t, line.c.peer_id
    started = time.perf_counter()
    if mesh:
        assert t.dial_through_mesh(c) is not None
    else:
        t.dial(c)
    await until(lambda: t._is_connected(c), 60, "T connected to C", *line.processes)
    return time.perf_counter() - started


async def disconnect(line: MeshLine) -> None:
    """T says bye to C and waits until the DataConnection is gone."""
    t, c = line.t, line.c.peer_id
    assert t.node is not None
    assert t.peer is not None
    for conn in [x for x in t.node.mesh.conns.values() if x.peer_id == c]:
        t.node.mesh.close(conn, "leaving", now_ms())
    t.pump()
    peer = t.peer
    await until(
        lambda: not any(dc.peer == c for dc in peer.connections()),
        20,
        "T's connection to C to close",
        *line.processes,
    )
    await asyncio.sleep(0.3)  # C hears the bye
