"""Signaling through the mesh between super-peers on aiortc over loopback: T (in this
process) and C (a `manage.py superpeer` process) are connected only to B (another
process). With the signaling server up T dials C through it, then again through the mesh
(each path needs its figures: peers/protocol/dialpath.py); then the whole web process
(signaling) is stopped and T dials C again: the offer and answer go through B as signed
`signal` frames, the DataConnection opens and both sides exchange the swarm hello."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from peers.protocol.dialpath import DialPaths
from peers.superpeer.models import SuperPeer
from shared.clock import now_ms
from tests.support.aio_thread import LoopThread
from tests.support.live import start_daphne
from tests.support.meshsignal_line import (
    MeshLine,
    disconnect,
    start_line,
    timed_connect,
    until,
)
from tests.support.superpeer import community_name

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def status(peer_id: str) -> dict[str, Any]:
    row = SuperPeer.objects.filter(peer_id=peer_id).first()
    return {} if row is None else {"connections": row.connections, "stats": row.stats}


def peers_of(row: dict[str, Any]) -> set[str]:
    return {x["peer_id"] for x in row.get("connections", [])}


def test_two_super_peers_connect_through_a_third_with_the_signaling_server_stopped(
    live_db: None, tmp_path: Path, artifacts_dir: Path
) -> None:
    web = start_daphne(tmp_path / "web", artifacts_dir, None, "mesh-web")
    loop = LoopThread()
    line: MeshLine | None = None
    try:
        line = loop.run(start_line(web, tmp_path, artifacts_dir, community_name("mesh")), 120)
        t, b, c = line.t, line.b, line.c
        assert t.peer is not None
        assert t.peer.open
        # B's reach adverts (every 5 s) name C: T knows a route to it through the mesh.
        loop.run(until(lambda: t.meshsig.core.has_route(c.peer_id, now_ms()), 20, "a route"), 30)
        # Fresh figures (T's dial to B counted one for the server): each path has none.
        t.dial_paths = DialPaths()
        through_server = loop.run(timed_connect(line, mesh=False), 90)
        assert t.meshsig.stats.dials == 0, "the server was up, no figures yet: through it"
        loop.run(disconnect(line), 60)
        # With the server up, the next dial goes through the mesh: each path needs figures
        # (peers/protocol/dialpath.py).
        through_mesh_up = loop.run(timed_connect(line, mesh=False), 90)
        assert t.meshsig.stats.dials == 1, "the server was up, the mesh had no figure yet"
        figures = t.dial_paths.data()
        assert figures["routed"] == 2, figures
        assert figures["server"]["samples"] == figures["mesh"]["samples"] == 1, figures
        loop.run(disconnect(line), 60)

        web.stop()
        peer = t.peer
        loop.run(until(lambda: not peer.open, 20, "T's signaling socket to close"), 30)
        through_mesh = loop.run(timed_connect(line, mesh=False), 90)  # the service picks
        print(
            f"\nT -> C open with hello: through the signaling server {through_server * 1000:.0f}"
            f" ms, through the mesh with the server up {through_mesh_up * 1000:.0f} ms,"
            f" through the mesh (server stopped) {through_mesh * 1000:.0f} ms"
        )
        assert t.meshsig.stats.dials == 2
        assert t.meshsig.stats.retries == 0, "B's reach named C: no flood to retry"
        [conn] = [dc for dc in peer.connections() if dc.peer == c.peer_id]
        assert conn.open
        assert conn.serialization == "raw"
        assert t.node is not None
        [node_conn] = [x for x in t.node.mesh.conns.values() if x.peer_id == c.peer_id]
        assert node_conn.state == "open", "T verified C's hello"
        assert "signal" in node_conn.caps

        # C verified T's hello too (its status lists open connections), and took one offer
        # through the mesh; B relayed the offer and the answer.
        # (Their rows are written every 0.5 s: read until they show it.)
        def written() -> bool:
            c_row, b_row = status(c.peer_id), status(b.peer_id)
            return (
                t.peer_id in peers_of(c_row)
                and c_row["stats"].get("meshsignal", {}).get("offers") == 2
                and b_row["stats"].get("meshsignal", {}).get("core", {}).get("relayed", 0) >= 4
            )

        deadline = time.monotonic() + 15
        while not written() and time.monotonic() < deadline:
            time.sleep(0.1)
        c_row = status(c.peer_id)
        assert t.peer_id in peers_of(c_row), c_row
        assert c_row["stats"]["meshsignal"]["offers"] == 2
        b_row = status(b.peer_id)
        assert b_row["stats"]["meshsignal"]["core"]["relayed"] >= 4, b_row["stats"]
        assert peers_of(b_row) >= {t.peer_id, c.peer_id}
    finally:
        if line is not None:
            loop.run(line.stop(), 60)
        # T's ORM calls ran in the loop's threads: give their connections back so the test
        # database can be dropped
        loop.run(sync_to_async(connections.close_all)())
        loop.run(asyncio.to_thread(connections.close_all))
        loop.close()
        # and the pool's idle ones (PostgreSQL; the pool is made again when next needed)
        close_pool = getattr(connections["default"], "close_pool", None)
        if close_pool is not None:
            close_pool()
        web.stop()
