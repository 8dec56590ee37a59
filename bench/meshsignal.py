"""Time to connect to a peer through the mesh vs through the signaling server (same run).

    DATABASE_URL=postgres://... [REDIS_URL=redis://.../N] \\
        .venv/bin/python bench/meshsignal.py [--rounds 10]

Creates a scratch PostgreSQL database beside ``DATABASE_URL``'s (``<name>_meshbench``), a
daphne (signaling), two `manage.py superpeer` processes B and C, and a super-peer T in
this process (tests/support/meshsignal_line.py): T and C are connected only to B. Each
round T dials C and is timed from the dial to its node's verified hello from C (ICE, DTLS,
SCTP, the data channel and the hello frame included), then says bye:

- through the signaling server (PeerJS OFFER/ANSWER over the server's WebSocket);
- through the mesh with the server up (signed offer and answer relayed by B);
- through the mesh with the whole web process stopped (the service picks the mesh itself).

Everything is on loopback on one machine: the figures compare the signaling paths, not
networks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = Path(tempfile.mkdtemp(prefix="bench-meshsignal-"))


def ms(values: list[float]) -> str:
    v = [x * 1000 for x in values]
    return (
        f"median {statistics.median(v):.0f} ms, mean {statistics.fmean(v):.0f} ms,"
        f" min {min(v):.0f}, max {max(v):.0f} (n={len(v)})"
    )


async def run(rounds: int) -> None:
    from bench.common import machine
    from tests.support.live import start_daphne
    from tests.support.meshsignal_line import disconnect, start_line, timed_connect, until

    logs = VAR / "logs"
    logs.mkdir(parents=True)
    web = await asyncio.to_thread(start_daphne, VAR / "web", logs, None, "web")
    line = None
    try:
        line = await start_line(web, VAR, logs, "meshbench")
        t = line.t
        assert t.peer is not None
        server: list[float] = []
        mesh_up: list[float] = []
        mesh_down: list[float] = []
        for _ in range(rounds):
            server.append(await timed_connect(line, mesh=False))
            await disconnect(line)
            mesh_up.append(await timed_connect(line, mesh=True))
            await disconnect(line)
        assert t.meshsig.stats.dials == rounds, "the server-up dials went through the server"
        await asyncio.to_thread(web.stop)
        peer = t.peer
        await until(lambda: not peer.open, 20, "T's signaling socket to close")
        for _ in range(rounds):
            mesh_down.append(await timed_connect(line, mesh=False))
            await disconnect(line)
        assert t.meshsig.stats.dials == 2 * rounds
        print(machine())
        print("T dials C (C two hops away through B), dial -> hello verified:")
        print(f"  through the signaling server:           {ms(server)}")
        print(f"  through the mesh, server up:            {ms(mesh_up)}")
        print(f"  through the mesh, web process stopped:  {ms(mesh_down)}")
        stats = t.meshsig.stats.as_json(t.meshsig.core)
        print(f"  T's mesh signaling: {stats}")
    finally:
        if line is not None:
            await line.stop()
        await asyncio.to_thread(web.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    from bench.common import scratch_database

    os.environ["DATABASE_URL"] = scratch_database("meshbench")
    os.environ["SWARM_VAR_DIR"] = str(VAR / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")
    import django

    django.setup()
    asyncio.run(run(args.rounds))


if __name__ == "__main__":
    main()
