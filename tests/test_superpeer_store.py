"""The super-peer's chunk store and holdings index: verified atomic writes, crash recovery,
quota and eviction order, pinned content kept, the start-up scan."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from peers.protocol.chunks import digest_id
from peers.superpeer.errors import SuperPeerError
from peers.superpeer.holdings import HoldingsIndex
from peers.superpeer.store import ChunkStore, chunk_hex

ROOT = Path(__file__).resolve().parent.parent


def blob(n: int, size: int = 1000) -> bytes:
    return hashlib.sha256(str(n).encode()).digest() * (size // 32) + bytes(size % 32)


@pytest.fixture
def store(tmp_path: Path) -> ChunkStore:
    return ChunkStore(tmp_path / "chunks")


# --- chunk store ---


def test_write_verifies_the_hash_and_reads_back(store: ChunkStore) -> None:
    data = blob(1)
    chunk_id = digest_id(data)
    assert store.write(chunk_id, data) is True
    assert store.read(chunk_id) == data
    assert store.path(chunk_id).name == hashlib.sha256(data).hexdigest()
    assert store.path(chunk_id).parent.name == hashlib.sha256(data).hexdigest()[:2]
    assert store.write(chunk_id, data) is False  # already held: nothing written


def test_write_with_wrong_bytes_is_refused_and_leaves_nothing(store: ChunkStore) -> None:
    chunk_id = digest_id(blob(1))
    with pytest.raises(SuperPeerError) as err:
        store.write(chunk_id, blob(2))
    assert err.value.code == "chunk_mismatch"
    assert store.read(chunk_id) is None
    assert list(store.tmp.iterdir()) == []


def test_oversized_chunk_and_malformed_ids_are_refused(store: ChunkStore) -> None:
    big = bytes(65553)
    with pytest.raises(SuperPeerError) as err:
        store.write(digest_id(big), big)
    assert err.value.code == "chunk_too_large"
    for bad in ["", "../../etc/passwd", "A" * 42 + "B", digest_id(b"x")[:-1], "a/" + "b" * 41]:
        with pytest.raises(SuperPeerError) as err:
            store.path(bad)
        assert err.value.code == "bad_chunk_id"


def test_delete_returns_the_bytes_freed(store: ChunkStore) -> None:
    data = blob(3, 5000)
    chunk_id = digest_id(data)
    store.write(chunk_id, data)
    assert store.delete(chunk_id) == 5000
    assert store.delete(chunk_id) == 0
    assert not store.has(chunk_id)


def test_scan_removes_temp_files_and_corrupt_chunks_and_reports_them(store: ChunkStore) -> None:
    good = [blob(i) for i in range(3)]
    for data in good:
        store.write(digest_id(data), data)
    # A chunk whose bytes rotted on disk, one truncated, a temp file from a crash.
    rotten = blob(10)
    rotten_path = store.path(digest_id(rotten))
    rotten_path.parent.mkdir(exist_ok=True)
    rotten_path.write_bytes(b"\x00" + rotten[1:])
    truncated = blob(11)
    store.path(digest_id(truncated)).parent.mkdir(exist_ok=True)
    store.path(digest_id(truncated)).write_bytes(truncated[:10])
    (store.tmp / "abc.1234.tmp").write_bytes(b"half a chunk")
    (store.root / "README").write_text("not a chunk")

    report = store.scan()
    assert report.chunks == {digest_id(d): len(d) for d in good}
    assert sorted(report.corrupt) == sorted([digest_id(rotten), digest_id(truncated)])
    assert report.temp_removed == 1
    assert report.stray == ["README"]
    assert not rotten_path.exists()
    assert list(store.tmp.iterdir()) == []
    assert store.verify_all() == []
    assert store.scan().as_json() == {
        "chunks": 3,
        "bytes": 3000,
        "temp_removed": 0,
        "corrupt": [],
        "stray": ["README"],
    }


WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from peers.protocol.chunks import digest_id
    from peers.superpeer.store import ChunkStore
    store = ChunkStore(Path(sys.argv[1]))
    n = 0
    while True:
        data = hashlib.sha256(str(n).encode()).digest() * 2048  # 64 KiB
        store.write(digest_id(data), data)
        n += 1
        if n == 20:
            print("writing", flush=True)
    """
)


def test_kill_during_writes_leaves_only_whole_verified_chunks(tmp_path: Path) -> None:
    root = tmp_path / "chunks"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"writing\n"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    store = ChunkStore(root)
    report = store.scan()
    assert report.corrupt == []
    assert len(report.chunks) >= 20
    assert all(size == 65536 for size in report.chunks.values())
    assert store.verify_all() == []
    assert list(store.tmp.iterdir()) == []
    # Every chunk the writer made before the kill is there, in sequence, without holes.
    expected = [digest_id(hashlib.sha256(str(n).encode()).digest() * 2048) for n in range(20)]
    assert set(expected) <= set(report.chunks)


def test_a_write_interrupted_before_rename_leaves_only_a_temp_file(
    store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = blob(5)
    chunk_id = digest_id(data)

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # the process dies between fsync and rename

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write(chunk_id, data)
    monkeypatch.undo()
    assert not store.has(chunk_id)
    assert len(list(store.tmp.iterdir())) == 1
    report = store.scan()
    assert report.temp_removed == 1
    assert report.chunks == {}


def test_chunk_file_names_are_hex_so_ids_differing_in_case_do_not_collide(
    store: ChunkStore,
) -> None:
    a, b = blob(20), blob(21)
    assert chunk_hex(digest_id(a)) != chunk_hex(digest_id(b))
    assert chunk_hex(digest_id(a)) == chunk_hex(digest_id(a)).lower()


# --- holdings index: quota and eviction ---


def ids(*names: str) -> list[str]:
    return [digest_id(name.encode()) for name in names]


def index_with(quota: int) -> HoldingsIndex:
    index = HoldingsIndex(quota=quota)
    for name, chunks, pinned, stored_at in [
        ("old", ["o1", "o2"], False, 100),
        ("mid", ["m1", "m2"], False, 200),
        ("pin", ["p1", "p2"], True, 50),
        ("new", ["n1", "n2"], False, 300),
    ]:
        index.add_manifest(name, ids(*chunks), size=2000, pinned=pinned, stored_at=stored_at)
        for chunk_id in ids(*chunks):
            index.chunk_added(chunk_id, 1000)
    return index


def test_room_is_free_under_the_quota() -> None:
    index = index_with(10_000)
    assert index.used == 8000
    plan = index.plan_room(2000)
    assert plan is not None
    assert plan.manifests == ()
    assert plan.chunks == ()


def test_eviction_takes_unpinned_manifests_oldest_first() -> None:
    index = index_with(8000)
    plan = index.plan_room(1000)
    assert plan is not None
    assert plan.manifests == ("old",)
    assert sorted(plan.chunks) == sorted(ids("o1", "o2"))
    plan = index.plan_room(3000)
    assert plan is not None
    assert plan.manifests == ("old", "mid")
    assert plan.freed == 4000


def test_pinned_content_is_never_evicted_even_when_that_means_storage_full() -> None:
    index = index_with(8000)
    plan = index.plan_room(6000)
    assert plan is not None
    assert plan.manifests == ("old", "mid", "new")
    assert not set(plan.chunks) & set(ids("p1", "p2"))
    assert index.plan_room(6001) is None


def test_protected_manifests_being_fetched_are_not_evicted() -> None:
    index = index_with(8000)
    plan = index.plan_room(1000, protect={"old"})
    assert plan is not None
    assert plan.manifests == ("mid",)


def test_unreferenced_chunks_go_before_any_manifest() -> None:
    index = index_with(9000)
    index.chunk_added(digest_id(b"orphan"), 1000)
    plan = index.plan_room(1000)
    assert plan is not None
    assert plan.manifests == ()
    assert plan.chunks == (digest_id(b"orphan"),)


def test_a_chunk_shared_with_a_pinned_manifest_stays() -> None:
    index = HoldingsIndex(quota=3000)
    shared = digest_id(b"shared")
    index.add_manifest("a", [shared, digest_id(b"a2")], size=2000, pinned=False, stored_at=1)
    index.add_manifest("b", [shared, digest_id(b"b2")], size=2000, pinned=True, stored_at=2)
    for chunk_id in (shared, digest_id(b"a2"), digest_id(b"b2")):
        index.chunk_added(chunk_id, 1000)
    plan = index.plan_room(1000)
    assert plan is not None
    assert plan.manifests == ("a",)
    assert plan.chunks == (digest_id(b"a2"),)
    assert index.remove_manifest("a") == [digest_id(b"a2")]
    assert index.held("b") == 2


def test_counts_follow_chunks_added_and_removed() -> None:
    index = HoldingsIndex(quota=10_000)
    chunks = ids("c0", "c1", "c2")
    index.chunk_added(chunks[1], 100)  # found by the scan before the manifest is known
    index.add_manifest("m", chunks, size=300, pinned=False, stored_at=1)
    assert index.held("m") == 1
    assert index.missing("m") == [0, 2]
    index.chunk_added(chunks[0], 100)
    index.chunk_added(chunks[2], 100)
    index.chunk_added(chunks[2], 100)  # twice: counted once
    assert index.complete("m")
    assert index.used == 300
    assert index.adverts() == [("m", 3)]
    index.chunk_removed(chunks[0])
    assert index.held("m") == 2
    assert not index.complete("m")
    assert index.used == 200
    assert index.missing_bytes("m", [100, 100, 100]) == 100
