"""Super-peers as real processes (`manage.py superpeer`) on aiortc over loopback, finding
each other through a real daphne (beacon + /signal/), controlled through Redis and
PostgreSQL: one is told to pin a file another holds and ends with a verified copy; a source
killed with SIGKILL mid-download does not stop the download, and its store comes back whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.manifest import Manifest, decrypt_file
from peers.superpeer.models import FetchJob, Holding, SuperPeer
from peers.superpeer.seed import Seeded, hold, seed_file
from peers.superpeer.services import superpeer_pin
from peers.superpeer.store import ChunkStore
from peers.superpeer.supervision import pin_job_id
from shared.identity import peer_id_of
from tests.support.live import Server, start_daphne
from tests.support.superpeer import (
    community_name,
    kill9,
    restart,
    start_superpeer,
    superpeer_key,
    wait_until,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("sp-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1", "SWARM_BEACON_IP_BURST": "500"},
        name="sp-web",
    )
    yield server
    server.stop()


def connected(peer_id: str, *others: str) -> bool:
    row = SuperPeer.objects.filter(peer_id=peer_id).first()
    peers = {c["peer_id"] for c in row.connections} if row else set()
    return set(others) <= peers


def complete(peer_id: str, manifest_id: str) -> bool:
    return Holding.objects.filter(
        superpeer__peer_id=peer_id, manifest__manifest_id=manifest_id, complete=True
    ).exists()


def job(peer_id: str, manifest_id: str) -> FetchJob:
    return FetchJob.objects.get(job_id=pin_job_id(manifest_id, peer_id))


def read_file(store_dir: Path, manifest: Manifest, key: bytes) -> bytes:
    store = ChunkStore(store_dir)
    chunks = [store.read(chunk_id) for chunk_id in manifest.chunks]
    assert None not in chunks
    return decrypt_file(manifest, key, chunks)  # type: ignore[arg-type]


def test_a_super_peer_told_to_pin_fetches_a_verified_copy_from_another(
    web: Server, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Two super-peers exchange content both ways at once: B pins A's file, A pins B's."""
    community = community_name()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_key = superpeer_key(a_dir)
    data = os.urandom(3 * MIB + 1234)
    seeded = seed_file(
        ChunkStore(a_dir / "chunks"),
        peer_id=peer_id_of(a_key),
        author=Ed25519PrivateKey.generate(),  # a browser shared it; A keeps it
        data=data,
        name="report.pdf",
        community=community,
    )
    manifest_id = seeded.manifest.id
    other_data = os.urandom(2 * MIB + 77)
    other = seed_file(
        ChunkStore(b_dir / "chunks"),
        peer_id=peer_id_of(superpeer_key(b_dir)),
        author=Ed25519PrivateKey.generate(),  # another browser's file; B keeps it
        data=other_data,
        name="notes.txt",
        community=community,
    )
    a = start_superpeer(a_dir, artifacts_dir, web, community, name="sp-a")
    # B syncs with the database only once a minute: the pin reaches it by the channel layer.
    b = start_superpeer(
        b_dir, artifacts_dir, web, community, {"SWARM_SUPERPEER_SYNC_S": "60"}, name="sp-b"
    )
    try:
        wait_until(lambda: connected(b.peer_id, a.peer_id), 30, "B connected to A", a, b)
        superpeer_pin(manifest_id, peer_id=b.peer_id)
        superpeer_pin(other.manifest.id, peer_id=a.peer_id)
        wait_until(lambda: complete(b.peer_id, manifest_id), 30, "B's copy", a, b)
        wait_until(lambda: complete(a.peer_id, other.manifest.id), 30, "A's copy", a, b)
        assert job(a.peer_id, other.manifest.id).state == FetchJob.DONE
        fetched = job(b.peer_id, manifest_id)
        assert fetched.state == FetchJob.DONE
        assert fetched.chunks_done == fetched.chunks_total == len(seeded.manifest.chunks)
        assert fetched.failed_sources == []
        b_row = SuperPeer.objects.get(peer_id=b.peer_id)
        stored = [seeded.manifest, other.manifest]  # B's own file and its copy of A's
        assert b_row.storage_used == sum(m.size + 16 * len(m.chunks) for m in stored)
        wait_until(
            lambda: (
                SuperPeer.objects.get(peer_id=a.peer_id).stats.get("chunks_served", 0)
                >= len(seeded.manifest.chunks)
            ),
            10,
            "A's served counter",
            a,
        )
    finally:
        b.stop()
        a.stop()
    assert b.proc.returncode == 0, b.log()[-3000:]
    assert SuperPeer.objects.get(peer_id=b.peer_id).state == SuperPeer.STOPPED
    store = ChunkStore(b.store_dir)
    assert store.verify_all() == []
    assert read_file(b.store_dir, seeded.manifest, seeded.key) == data
    holding = Holding.objects.get(superpeer__peer_id=b.peer_id, manifest__manifest_id=manifest_id)
    assert holding.pinned
    assert holding.chunks_held == len(seeded.manifest.chunks)
    assert a.proc.returncode == 0, a.log()[-3000:]
    assert ChunkStore(a.store_dir).verify_all() == []
    assert read_file(a.store_dir, other.manifest, other.key) == other_data
    a_holding = Holding.objects.get(
        superpeer__peer_id=a.peer_id, manifest__manifest_id=other.manifest.id
    )
    assert a_holding.pinned
    assert a_holding.chunks_held == len(other.manifest.chunks)


def copy_to(seeded: Seeded, source_dir: Path, target_dir: Path, community: str) -> None:
    source = ChunkStore(source_dir / "chunks")
    chunks = [source.read(c) for c in seeded.manifest.chunks]
    hold(
        ChunkStore(target_dir / "chunks"),
        peer_id=peer_id_of(superpeer_key(target_dir)),
        manifest=seeded.manifest,
        chunks=chunks,  # type: ignore[arg-type]
        community=community,
    )


def test_kill_9_of_a_source_mid_download_the_download_finishes_and_its_store_is_whole(
    web: Server, tmp_path: Path, artifacts_dir: Path
) -> None:
    community = community_name()
    s1_dir, s2_dir, c_dir = tmp_path / "s1", tmp_path / "s2", tmp_path / "c"
    author = Ed25519PrivateKey.generate()
    big = os.urandom(40 * MIB)
    other = os.urandom(16 * MIB + 5)
    f = seed_file(
        ChunkStore(s1_dir / "chunks"),
        peer_id=peer_id_of(superpeer_key(s1_dir)),
        author=author,
        data=big,
        name="big.bin",
        community=community,
    )
    copy_to(f, s1_dir, s2_dir, community)
    f2 = seed_file(
        ChunkStore(s2_dir / "chunks"),
        peer_id=peer_id_of(superpeer_key(s2_dir)),
        author=author,
        data=other,
        name="other.bin",
        community=community,
    )
    fast = {"SWARM_SUPERPEER_REQUEST_TIMEOUT_S": "3", "SWARM_SUPERPEER_SYNC_S": "1"}
    s1 = start_superpeer(s1_dir, artifacts_dir, web, community, fast, name="sp-s1")
    s2 = start_superpeer(s2_dir, artifacts_dir, web, community, fast, name="sp-s2")
    c = start_superpeer(
        c_dir, artifacts_dir, web, community, {**fast, "SWARM_SUPERPEER_STATUS_S": "0.2"}, "sp-c"
    )
    procs = [s1, s2, c]
    try:
        wait_until(
            lambda: (
                connected(c.peer_id, s1.peer_id, s2.peer_id) and connected(s1.peer_id, s2.peer_id)
            ),
            30,
            "everyone connected",
            *procs,
        )
        superpeer_pin(f2.manifest.id, peer_id=s1.peer_id)  # S1 writes while it serves
        superpeer_pin(f.manifest.id, peer_id=c.peer_id)
        total = len(f.manifest.chunks)
        wait_until(
            lambda: FetchJob.objects.filter(
                job_id=pin_job_id(f.manifest.id, c.peer_id), chunks_done__gte=total // 8
            ).exists(),
            60,
            "C's download under way",
            *procs,
            interval=0.02,
        )
        served_before = SuperPeer.objects.get(peer_id=s1.peer_id).stats.get("chunks_served", 0)
        kill9(s1)
        progress_at_kill = job(c.peer_id, f.manifest.id).chunks_done
        assert progress_at_kill < total, "the download ended before the kill: use a bigger file"
        s1_writing = FetchJob.objects.get(job_id=pin_job_id(f2.manifest.id, s1.peer_id))

        wait_until(lambda: complete(c.peer_id, f.manifest.id), 90, "C's copy", s2, c)
        done = job(c.peer_id, f.manifest.id)
        assert done.state == FetchJob.DONE
        # C was fetching from S1 when it died (S1 had served chunks, C's copy was not complete);
        # S1 is dead, so the rest came from S2. Whether C dropped S1 for requests that timed
        # out (then S1 is among its failed sources) or for its connection closing first (then
        # it is simply gone) depends on which C notices first; both move the work to S2.
        assert served_before > 0

        s1 = restart(s1, artifacts_dir)
        procs[0] = s1
        scan = SuperPeer.objects.get(peer_id=s1.peer_id).last_scan
        assert scan["corrupt"] == []
        wait_until(lambda: complete(s1.peer_id, f2.manifest.id), 90, "S1 resumes its pin", s1, s2)
    finally:
        for proc in procs:
            proc.stop()
    print(
        f"killed S1 at {progress_at_kill}/{total} chunks of C's download; S1's own pin was "
        f"{s1_writing.state} at {s1_writing.chunks_done}/{s1_writing.chunks_total}"
    )
    s1_store = ChunkStore(s1.store_dir)
    assert s1_store.verify_all() == []
    assert s1_store.scan().corrupt == []
    assert read_file(s1.store_dir, f.manifest, f.key) == big
    assert read_file(s1.store_dir, f2.manifest, f2.key) == other
    assert read_file(c.store_dir, f.manifest, f.key) == big
