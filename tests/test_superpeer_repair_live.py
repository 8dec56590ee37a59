"""Repair by peers between real super-peer processes (`manage.py superpeer`, aiortc over
loopback, a real daphne for signaling and beacon, PostgreSQL and Redis): A holds a file
alone, no backfill run is in the database and no worker runs; B, with a short warm-up,
fetches it as a repair job of its own and then holds it completely (a complete holding the
planner counts as a replica; no `FetchJob` row, no pin). A backfill run appearing in the
database is seen by B at its next status write: the worker is live again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.replication.models import BackfillRun
from peers.superpeer.models import FetchJob, Holding, Pin, SuperPeer
from peers.superpeer.seed import seed_file
from peers.superpeer.store import ChunkStore
from shared.identity import peer_id_of
from tests.support.live import Server, start_daphne
from tests.support.superpeer import community_name, start_superpeer, superpeer_key, wait_until
from tests.test_superpeer_live import read_file

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
MIB = 1024 * 1024
REPAIR = {
    "SWARM_SUPERPEER_REPAIR": "true",
    "SWARM_REPAIR_WARMUP_S": "2",
    "SWARM_REPAIR_TICK_S": "0.5",
    "SWARM_REPAIR_ANNOUNCE_S": "2",
}


@pytest.fixture(scope="module")
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("repair-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1", "SWARM_BEACON_IP_BURST": "500"},
        name="repair-web",
    )
    yield server
    server.stop()


def repair_stats(peer_id: str) -> dict[str, Any]:
    row = SuperPeer.objects.filter(peer_id=peer_id).first()
    return {} if row is None else dict((row.stats or {}).get("repair", {}))


def complete(peer_id: str, manifest_id: str) -> bool:
    return Holding.objects.filter(
        superpeer__peer_id=peer_id, manifest__manifest_id=manifest_id, complete=True
    ).exists()


def test_a_super_peer_repairs_a_file_held_alone_without_the_worker(
    web: Server, tmp_path: Path, artifacts_dir: Path
) -> None:
    BackfillRun.objects.all().delete()
    community = community_name("repair")
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    data = os.urandom(2 * MIB + 321)
    seeded = seed_file(
        ChunkStore(a_dir / "chunks"),
        peer_id=peer_id_of(superpeer_key(a_dir)),
        author=Ed25519PrivateKey.generate(),  # a browser shared it; A keeps it, alone
        data=data,
        name="alone.bin",
        community=community,
        pinned=False,
    )
    manifest_id = seeded.manifest.id
    a = start_superpeer(a_dir, artifacts_dir, web, community, name="repair-a")
    b = start_superpeer(b_dir, artifacts_dir, web, community, REPAIR, name="repair-b")
    try:
        wait_until(lambda: complete(b.peer_id, manifest_id), 60, "B's repair copy", a, b)
        wait_until(lambda: repair_stats(b.peer_id).get("done") == 1, 10, "B's stats", b)
        stats = repair_stats(b.peer_id)
        assert stats["worker_live"] is False
        assert stats["started"] == 1
        assert stats["failed"] == 0
        assert stats["database"] is True
        assert repair_stats(a.peer_id) == {}, "A runs without repair (the tests' default)"
        holding = Holding.objects.get(
            superpeer__peer_id=b.peer_id, manifest__manifest_id=manifest_id
        )
        assert holding.chunks_held == len(seeded.manifest.chunks)
        assert not holding.pinned, "a repair copy is not pinned"
        assert not Pin.objects.filter(peer_id=b.peer_id).exists()
        assert not FetchJob.objects.filter(peer_id=b.peer_id).exists(), "no job row"

        # The worker comes back: B sees its run at its next status write and stops.
        BackfillRun.objects.create(trigger="test", started_at=datetime.now(UTC), duration_ms=5)
        wait_until(lambda: repair_stats(b.peer_id).get("worker_live") is True, 10, "worker seen", b)
    finally:
        b.stop()
        a.stop()
    assert b.proc.returncode == 0, b.log()[-3000:]
    assert ChunkStore(b.store_dir).verify_all() == []
    assert read_file(b.store_dir, seeded.manifest, seeded.key) == data
