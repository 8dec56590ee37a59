"""The content layer of super-peers wired together in memory (no network): serving, pinning
from whoever advertises, bad holders penalised, room made by evicting unpinned content
oldest first, pinned content kept, replication jobs failing when nobody holds the file."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.chunks import EncryptedFile, encrypt_file
from peers.protocol.encoding import b64url_encode
from peers.protocol.manifest import Manifest, make_manifest, verify_manifest
from peers.protocol.transfer import TransferOptions
from peers.protocol.wire import (
    Chunk,
    ChunkMissing,
    ChunkReq,
    ContentFrame,
    Have,
    Holding,
    ManifestReq,
    decode_frame,
)
from peers.superpeer.fetcher import NO_SOURCE_FAIL_MS, Fetcher
from peers.superpeer.holder import MAX_ADVERTS_PER_PEER, Holder
from peers.superpeer.holdings import HoldingsIndex
from peers.superpeer.models import FetchJob
from peers.superpeer.service import MAX_OUTBOX, Outbox
from peers.superpeer.store import ChunkStore
from peers.superpeer.transport import FramedChannel, FrameTransport

T0 = 1_700_000_000_000


def sealed(size: int, seed: int = 0) -> tuple[EncryptedFile, Manifest]:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    encrypted = encrypt_file(data[:size])
    envelope = make_manifest(
        Ed25519PrivateKey.generate(), encrypted, name=f"f{seed}", mime="x/y", created_at=T0
    )
    return encrypted, verify_manifest(envelope)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Member:
    """One super-peer's content layer, with frames routed as the service routes them."""

    def __init__(self, name: str, root: Path, clock: Clock, quota: int = 10**9) -> None:
        self.peer_id = "p" + (name * 32)[:32]
        self.clock = clock
        self.holder = Holder(ChunkStore(root / name), HoldingsIndex(quota=quota), self.send)
        self.penalized: list[tuple[str, str]] = []
        self.fetcher = Fetcher(
            self.holder,
            penalize=lambda peer, code, _: self.penalized.append((peer, code)),
            clock=clock,
        )
        self.links: dict[str, tuple[Member, str]] = {}  # conn id -> (member, its conn id)
        self.tamper = False
        self.tasks = [
            asyncio.create_task(self.holder.uploader.run()),
            asyncio.create_task(self.fetcher.run_writer()),
        ]

    def send(self, conn_id: str, frame: ContentFrame) -> bool:
        other, back = self.links[conn_id]
        asyncio.get_running_loop().call_soon(other.receive, back, self.peer_id, frame)
        return True

    def receive(self, conn_id: str, peer_id: str, frame: ContentFrame) -> None:
        now = self.clock()
        if isinstance(frame, Have):
            self.fetcher.on_have(peer_id, self.holder.on_have(peer_id, frame), now)
        elif isinstance(frame, ManifestReq):
            self.holder.on_manifest_req(conn_id, frame)
        elif isinstance(frame, ChunkReq):
            self.holder.on_chunk_req(conn_id, frame.manifest, frame.index, frame.chunk)
        else:
            self.fetcher.on_frame(peer_id, frame, now)

    def hold(self, encrypted: EncryptedFile, manifest: Manifest, *, pinned: bool) -> None:
        for chunk in encrypted.chunks:
            self.holder.store.write(chunk.id, chunk.ciphertext)
            self.holder.index.chunk_added(chunk.id, len(chunk.ciphertext))
        self.holder.add_manifest(manifest, pinned=pinned, stored_at=self.clock())

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


class Pipe:
    """The uploader's channel from one member to another (frames decoded on arrival)."""

    def __init__(self, source: Member, target: Member, target_conn: str) -> None:
        self.source, self.target, self.target_conn = source, target, target_conn
        self.open = True
        self.buffered_amount = 0

    async def send(self, value: bytes) -> None:
        frame = decode_frame(value)
        if self.source.tamper and isinstance(frame, Chunk):
            data = bytearray(frame.data)
            data[7] ^= 0xFF
            frame = Chunk(frame.manifest, frame.index, frame.chunk, bytes(data))
        loop = asyncio.get_running_loop()
        loop.call_soon(self.target.receive, self.target_conn, self.source.peer_id, frame)


def connect(a: Member, b: Member) -> None:
    ab, ba = f"{a.peer_id[1]}>{b.peer_id[1]}", f"{b.peer_id[1]}>{a.peer_id[1]}"
    a.links[ab] = (b, ba)
    b.links[ba] = (a, ab)
    a.holder.opened(ab, b.peer_id, Pipe(a, b, ba))
    b.holder.opened(ba, a.peer_id, Pipe(b, a, ab))
    a.fetcher.peer_connected(b.peer_id, a.clock())
    b.fetcher.peer_connected(a.peer_id, b.clock())


async def settle(*members: Member, until: object = None, rounds: int = 200) -> None:
    """Let frames and chunk writes (fsynced, in a thread) run; tick the fetchers."""
    for _ in range(rounds if until is None else 20 * rounds):
        await asyncio.sleep(0.002)
        if until is not None and until():  # type: ignore[operator]
            return
        for member in members:
            member.fetcher.tick(member.clock())
    if until is not None:
        raise AssertionError("did not settle")


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_pin_is_fetched_from_the_member_that_advertises_it(
    tmp_path: Path, clock: Clock
) -> None:
    a, b = Member("a", tmp_path, clock), Member("b", tmp_path, clock)
    encrypted, manifest = sealed(300_000)
    a.hold(encrypted, manifest, pinned=True)
    connect(a, b)
    await settle(a, b)
    assert b.holder.holders[manifest.id] == {a.peer_id: 5}  # A's have on connect
    b.fetcher.pinned = {manifest.id}
    b.fetcher.start("pin-1", FetchJob.PIN, manifest.id, (), clock())
    await settle(a, b, until=lambda: "pin-1" in b.fetcher.finished)
    assert b.fetcher.finished["pin-1"].state == FetchJob.DONE
    assert b.holder.index.complete(manifest.id)
    assert b.holder.index.manifests[manifest.id].pinned
    assert b.holder.store.verify_all() == []
    assert a.holder.stats.chunks_served == 5
    assert a.holder.stats.manifests_served == 1
    # B now advertises its copy to A.
    b.holder.advertise_changes()
    await settle(a, b)
    assert a.holder.holders[manifest.id][b.peer_id] == 5
    a.close()
    b.close()


async def test_a_holder_sending_bad_chunks_is_penalised_and_another_one_serves(
    tmp_path: Path, clock: Clock
) -> None:
    evil, good, b = (Member(n, tmp_path, clock) for n in ("e", "g", "b"))
    encrypted, manifest = sealed(600_000)
    evil.hold(encrypted, manifest, pinned=True)
    good.hold(encrypted, manifest, pinned=True)
    evil.tamper = True
    connect(evil, b)
    connect(good, b)
    b.fetcher.start("pin-2", FetchJob.PIN, manifest.id, (), clock())
    await settle(evil, good, b, until=lambda: "pin-2" in b.fetcher.finished)
    job = b.fetcher.finished["pin-2"]
    assert job.state == FetchJob.DONE
    assert b.penalized == [(evil.peer_id, "chunk_mismatch")]
    assert job.download.failed == {evil.peer_id: "chunk_mismatch"}
    assert b.fetcher.penalty[evil.peer_id] > clock()
    assert b.holder.store.verify_all() == []
    assert good.holder.stats.chunks_served >= len(manifest.chunks) - evil.holder.stats.chunks_served
    # A later download does not use the penalised holder at all.
    other_encrypted, other = sealed(100_000, seed=9)
    evil.hold(other_encrypted, other, pinned=True)
    evil.holder.advertise_changes()
    await settle(evil, b)
    b.fetcher.start("pin-3", FetchJob.PIN, other.id, (), clock())
    await settle(evil, good, b)
    assert b.fetcher.jobs[other.id].state == FetchJob.WAITING
    for member in (evil, good, b):
        member.close()


async def test_a_missing_chunk_is_fetched_from_another_holder(tmp_path: Path, clock: Clock) -> None:
    partial, full, b = (Member(n, tmp_path, clock) for n in ("p", "f", "b"))
    encrypted, manifest = sealed(400_000)
    full.hold(encrypted, manifest, pinned=True)
    partial.hold(encrypted, manifest, pinned=True)
    lost = manifest.chunks[3]
    partial.holder.store.delete(lost)
    partial.holder.index.chunk_removed(lost)
    connect(partial, b)
    b.fetcher.start("pin-4", FetchJob.PIN, manifest.id, (), clock())
    await settle(partial, b)
    assert b.fetcher.jobs[manifest.id].state == FetchJob.WAITING  # chunk 3: nobody has it
    assert b.holder.index.missing(manifest.id) == [3]
    connect(full, b)
    await settle(partial, full, b, until=lambda: "pin-4" in b.fetcher.finished)
    assert b.holder.index.complete(manifest.id)
    assert partial.holder.stats.chunks_missing == 1
    for member in (partial, full, b):
        member.close()


async def test_room_is_made_by_evicting_unpinned_content_oldest_first(
    tmp_path: Path, clock: Clock
) -> None:
    files = [sealed(130_000, seed=i) for i in range(4)]  # 2 chunks, 130,032 bytes each
    size = 130_000 + 2 * 16
    a = Member("a", tmp_path, clock)
    b = Member("b", tmp_path, clock, quota=3 * size)
    for encrypted, manifest in files:
        a.hold(encrypted, manifest, pinned=True)
    b.hold(*files[0], pinned=True)
    clock.now += 1
    b.hold(*files[1], pinned=False)  # older unpinned
    clock.now += 1
    b.hold(*files[2], pinned=False)  # newer unpinned
    connect(a, b)
    b.fetcher.start("pin-5", FetchJob.PIN, files[3][1].id, (), clock())
    await settle(a, b, until=lambda: "pin-5" in b.fetcher.finished)
    assert b.fetcher.finished["pin-5"].state == FetchJob.DONE
    assert set(b.holder.manifests) == {files[0][1].id, files[2][1].id, files[3][1].id}
    assert b.holder.index.used == 3 * size
    assert b.holder.stats.evicted_manifests == 1
    assert b.holder.store.verify_all() == []
    # Withdrawn from the others: B advertises 0 chunks of the evicted manifest.
    b.holder.advertise_changes()
    await settle(a, b)
    assert b.peer_id not in a.holder.holders.get(files[1][1].id, {})
    a.close()
    b.close()


async def test_pinned_content_is_never_evicted_so_the_job_fails_storage_full(
    tmp_path: Path, clock: Clock
) -> None:
    files = [sealed(130_000, seed=i) for i in range(3)]
    size = 130_000 + 2 * 16
    a = Member("a", tmp_path, clock)
    b = Member("b", tmp_path, clock, quota=2 * size)
    a.hold(*files[2], pinned=True)
    b.hold(*files[0], pinned=True)
    b.hold(*files[1], pinned=True)
    connect(a, b)
    b.fetcher.start("job-6", FetchJob.REPLICATION, files[2][1].id, (a.peer_id,), clock())
    await settle(a, b, until=lambda: "job-6" in b.fetcher.finished)
    job = b.fetcher.finished["job-6"]
    assert (job.state, job.reason) == (FetchJob.FAILED, "storage_full")
    assert set(b.holder.manifests) >= {files[0][1].id, files[1][1].id}
    assert b.holder.index.complete(files[0][1].id)
    assert b.holder.index.complete(files[1][1].id)
    a.close()
    b.close()


async def test_a_replication_job_with_no_holder_fails_no_source_but_a_pin_waits(
    tmp_path: Path, clock: Clock
) -> None:
    b = Member("b", tmp_path, clock)
    _, manifest = sealed(70_000)
    _, other = sealed(70_000, seed=1)
    b.fetcher.start("job-7", FetchJob.REPLICATION, manifest.id, ("p" + "z" * 32,), clock())
    b.fetcher.start("pin-7", FetchJob.PIN, other.id, (), clock())
    await settle(b, rounds=5)
    assert b.fetcher.jobs[manifest.id].state == FetchJob.WAITING
    clock.now += NO_SOURCE_FAIL_MS
    await settle(b, rounds=5)
    job = b.fetcher.finished["job-7"]
    assert (job.state, job.reason) == (FetchJob.FAILED, "no_source")
    assert b.fetcher.jobs[other.id].state == FetchJob.WAITING  # a pin waits for a holder
    b.close()


async def test_pins_waiting_for_a_holder_do_not_keep_later_jobs_from_running(
    tmp_path: Path, clock: Clock
) -> None:
    """Found by the soak: pins of files whose sharers left before the super-peer fetched
    them waited forever in all four job slots, and nothing later was ever fetched."""
    a, b = Member("a", tmp_path, clock), Member("b", tmp_path, clock)
    gone = [sealed(70_000, seed=10 + i)[1] for i in range(b.fetcher.max_jobs + 1)]
    for i, manifest in enumerate(gone):
        b.fetcher.start(f"pin-gone-{i}", FetchJob.PIN, manifest.id, (), clock())
    await settle(b, rounds=5)
    assert all(b.fetcher.jobs[m.id].state == FetchJob.WAITING for m in gone)
    assert b.fetcher.active() == 0
    encrypted, manifest = sealed(200_000, seed=3)
    a.hold(encrypted, manifest, pinned=True)
    connect(a, b)
    b.fetcher.start("job-new", FetchJob.REPLICATION, manifest.id, (a.peer_id,), clock())
    await settle(a, b, until=lambda: "job-new" in b.fetcher.finished)
    assert b.fetcher.finished["job-new"].state == FetchJob.DONE
    assert b.holder.index.complete(manifest.id)
    assert all(b.fetcher.jobs[m.id].state == FetchJob.WAITING for m in gone), "still waiting"
    a.close()
    b.close()


async def test_nobody_advertises_it_so_every_peer_is_asked_for_the_manifest(
    tmp_path: Path, clock: Clock
) -> None:
    a, b = Member("a", tmp_path, clock), Member("b", tmp_path, clock)
    encrypted, manifest = sealed(200_000)
    a.hold(encrypted, manifest, pinned=True)
    a.holder.index.adverts = lambda: []  # type: ignore[method-assign]  # a peer that never says have
    connect(a, b)
    await settle(a, b)
    assert manifest.id not in b.holder.holders
    b.fetcher.start("pin-8", FetchJob.PIN, manifest.id, (), clock())
    await settle(a, b)
    assert b.fetcher.jobs[manifest.id].state == FetchJob.WAITING  # adverts come first
    clock.now += TransferOptions().probe_after_ms  # no advert by then: peers are asked
    await settle(a, b, until=lambda: "pin-8" in b.fetcher.finished)
    assert b.holder.index.complete(manifest.id)
    a.close()
    b.close()


def test_chunk_frames_are_answered_missing_for_unknown_chunks(tmp_path: Path) -> None:
    holder = Holder(ChunkStore(tmp_path), HoldingsIndex(quota=1000), lambda c, f: True)
    missing = holder._encode(ChunkReqRef("A" * 43, 2, "B" * 42 + "A"), None)
    assert isinstance(decode_frame(missing), ChunkMissing)


class ChunkReqRef:
    def __init__(self, manifest: str, index: int, chunk: str) -> None:
        self.manifest, self.index, self.chunk = manifest, index, chunk


def test_adverts_per_peer_are_capped_and_forgotten_with_the_peer(tmp_path: Path) -> None:
    holder = Holder(ChunkStore(tmp_path), HoldingsIndex(quota=1000), lambda c, f: True)
    holder.conns["c1"] = "p" + "x" * 32
    flood = "p" + "x" * 32
    ids = [b64url_encode(hashlib.sha256(str(i).encode()).digest()) for i in range(4200)]
    recorded = 0
    for start in range(0, len(ids), 256):
        frame = Have(manifests=tuple(Holding(id=m, chunks=1) for m in ids[start : start + 256]))
        recorded += len(holder.on_have(flood, frame))
    assert recorded == MAX_ADVERTS_PER_PEER
    assert holder.stats.adverts_dropped == 4200 - MAX_ADVERTS_PER_PEER
    assert len(holder.holders) == MAX_ADVERTS_PER_PEER
    # A withdrawal frees a place; the next new advert takes it.
    holder.on_have(flood, Have(manifests=(Holding(id=ids[0], chunks=0),)))
    assert len(holder.on_have(flood, Have(manifests=(Holding(id=ids[-1], chunks=2),)))) == 1
    assert holder.closed("c1") == flood
    assert holder.holders == {}


def test_copies_advertised_as_not_kept_are_tracked_until_kept_withdrawn_or_gone(
    tmp_path: Path,
) -> None:
    holder = Holder(ChunkStore(tmp_path), HoldingsIndex(quota=1000), lambda c, f: True)
    peer = "p" + "k" * 32
    holder.conns["c1"] = peer
    a, b = (b64url_encode(hashlib.sha256(x).digest()) for x in (b"a", b"b"))
    holder.on_have(peer, Have(manifests=(Holding(a, 3, keep=False), Holding(b, 3, keep=False))))
    assert holder.holders == {a: {peer: 3}, b: {peer: 3}}
    assert holder.cached == {a: {peer}, b: {peer}}
    holder.on_have(peer, Have(manifests=(Holding(a, 3), Holding(b, 0))))
    assert holder.cached == {}
    holder.on_have(peer, Have(manifests=(Holding(a, 3, keep=False),)))
    assert holder.closed("c1") == peer
    assert (holder.holders, holder.cached) == ({}, {})


class StuckConnection:
    """A peer that never reads: every send waits forever."""

    peer = "p" + "s" * 32
    buffered_amount = 0

    def __init__(self) -> None:
        self.sent = 0
        self.closed = False

    async def send(self, value: bytes) -> None:
        self.sent += 1
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed = True


async def test_a_peer_that_never_reads_is_closed_when_its_outbox_is_full() -> None:
    conn = StuckConnection()
    outbox = Outbox(FramedChannel(conn, FrameTransport("raw")), conn)  # type: ignore[arg-type]
    for _ in range(MAX_OUTBOX):
        outbox.put(b"frame")
    await asyncio.sleep(0)
    assert not outbox.closing
    outbox.put(b"frame")  # one waits in send, MAX_OUTBOX - 1 queued: room for one more
    outbox.put(b"one too many")
    assert outbox.closing
    outbox.put(b"after")  # dropped
    assert outbox.queue.qsize() == MAX_OUTBOX + 1  # the frames and the close marker
    outbox.task.cancel()
