"""The super-peer's adapter of repair by peers (peers/superpeer/repair.py) with a fake clock,
a real holder and fetcher, and recorders for the jobs and gossip it hands out: nothing in
the warm-up nor while a backfill worker is live, one repair job per under-target manifest
it is chosen for, the job's end told to the core, a job dropped when the target is met,
its announcement every period, bad repair gossip refused with its code; then the service's
wiring (hello capabilities, gossip delivered by its node, the status stats) and the
database read at a status write (a backfill run seen, the database gone)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import OperationalError

from peers.protocol.chunks import encrypt_file
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.errors import BAD_BODY, BAD_REPAIR
from peers.protocol.gossip import make_gossip
from peers.protocol.manifest import make_manifest, verify_manifest
from peers.protocol.repair import REPAIR_TOPIC, RETRY_MS
from peers.protocol.wire import Have, Hello, Holding, encode_frame
from peers.replication.models import BackfillRun
from peers.superpeer import db
from peers.superpeer.config import RepairSettings
from peers.superpeer.fetcher import NO_SOURCE_FAIL_MS, REPAIR, Fetcher, Job
from peers.superpeer.holder import Holder
from peers.superpeer.holdings import HoldingsIndex
from peers.superpeer.models import FetchJob, SuperPeer
from peers.superpeer.relay import GossipAdverts
from peers.superpeer.repair import SuperPeerRepair, repair_job_id
from peers.superpeer.service import SuperPeerService
from peers.superpeer.store import ChunkStore
from peers.superpeer.supervision import Supervisor
from shared.clock import now_ms
from tests.support.keys import peer_id, seeded_key, ticket
from tests.support.superpeer import offline_config

T0 = 1_700_000_000_000
WARMUP = 75_000
GRACE = 180_000
QUOTA = 1 << 20
SIZE = 4 * 1024  # bytes of a stored copy of each test manifest
CHUNKS = 4


def pid(name: str) -> str:
    return peer_id_for_key(hashlib.sha256(name.encode()).digest())


def mid(n: int) -> str:
    return b64url_encode(hashlib.sha256(f"manifest-{n}".encode()).digest())


SELF = pid("the-super-peer")
A, B, C, D = pid("a"), pid("b"), pid("c"), pid("d")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Rig:
    """The adapter with a real holder and fetcher; jobs and gossip are recorded."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.clock = Clock()
        self.holder = Holder(ChunkStore(tmp_path / "chunks"), HoldingsIndex(quota=QUOTA), self.send)
        self.fetcher = Fetcher(self.holder, penalize=lambda *_: None, clock=self.clock)
        self.started: list[tuple[str, str, str, tuple[str, ...]]] = []
        self.cancelled: list[tuple[str, str]] = []
        self.published: list[tuple[int, str, object]] = []
        self.gossip = GossipAdverts(ttl_ms=600_000)
        self.repair = SuperPeerRepair(
            SELF,
            RepairSettings(**{"warmup_ms": WARMUP, "worker_grace_ms": GRACE, **settings}),
            holder=self.holder,
            quota=QUOTA,
            clock=self.clock,
            start_job=self.start_job,
            cancel_job=self.cancel_job,
            publish=lambda topic, data: self.published.append((self.clock.now, topic, data)),
        )
        self.fetcher.on_end = self.repair.job_ended

    def send(self, conn_id: str, frame: object) -> bool:
        return True

    def start_job(
        self, job_id: str, kind: str, manifest_id: str, sources: tuple[str, ...], now: int
    ) -> None:
        self.started.append((job_id, kind, manifest_id, sources))
        self.fetcher.start(job_id, kind, manifest_id, sources, now)

    def cancel_job(self, job_id: str, reason: str, now: int) -> None:
        self.cancelled.append((job_id, reason))
        self.fetcher.cancel(job_id, reason, now)

    def know(self, *numbers: int) -> None:
        rows = [(n, mid(n), CHUNKS, SIZE) for n in numbers]
        self.repair.facts(db.RepairFacts(0, rows), self.clock.now)

    def have(self, holder: str, n: int, chunks: int = CHUNKS, keep: bool = True) -> None:
        """A ``have`` frame from a connected peer, as the service routes it."""
        frame = Have(manifests=(Holding(mid(n), chunks, keep),))
        recorded = self.holder.on_have(holder, frame)
        self.repair.have(holder, recorded, self.clock.now)

    def gossiped(self, holder: str, n: int, chunks: int = CHUNKS, keep: bool = True) -> None:
        holdings = [Holding(mid(n), chunks, keep)]
        self.gossip.on_gossip(holder, holdings, self.clock.now, self.clock.now)
        self.repair.have_gossip(holder, holdings, self.gossip, self.clock.now)

    def at(self, ms: int) -> Rig:
        self.clock.now = T0 + ms
        return self

    def jobs(self) -> list[str]:
        return [manifest for _, _, manifest, _ in self.started]


def test_nothing_in_the_warm_up_then_one_job_per_under_target_manifest(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.know(1, 2, 3, 4, 5)  # 5: nobody holds it (lost, or not heard of yet)
    rig.have(A, 1)  # one kept copy: under target, something to copy from
    for holder in (A, B, C):  # at target
        rig.have(holder, 2)
    rig.have(A, 3, chunks=2)  # only a partial copy: nothing to copy from
    rig.gossiped(B, 4, keep=False)  # a cached copy: a source, not a replica

    rig.at(WARMUP - 1).repair.poll()
    assert rig.started == [], "nothing decided in the warm-up"

    decision = rig.at(WARMUP).repair.poll()
    assert sorted(decision.fetch) == sorted([mid(1), mid(4)])
    assert sorted(rig.started) == sorted(
        [
            (repair_job_id(mid(1), SELF), REPAIR, mid(1), (A,)),
            (repair_job_id(mid(4), SELF), REPAIR, mid(4), (B,)),
        ]
    )
    assert set(rig.fetcher.jobs) == {mid(1), mid(4)}
    assert {job.kind for job in rig.fetcher.jobs.values()} == {REPAIR}

    rig.at(WARMUP + 5000).repair.poll()
    assert len(rig.started) == 2, "a manifest in flight is not started again"
    stats = rig.repair.stats_json(rig.clock.now)
    assert (stats["fetching"], stats["started"], stats["worker_live"]) == (2, 2, False)
    assert (stats["manifests"], stats["advertised"]) == (5, 4)


def test_only_the_chosen_volunteers_fetch(tmp_path: Path) -> None:
    """With many volunteers announced, the super-peer fetches only the manifests whose
    ranking puts it among the ``target - replicas`` first (the core's rendezvous rank)."""
    rig = Rig(tmp_path, target=2)
    numbers = list(range(1, 21))
    rig.know(*numbers)
    volunteers = [pid(f"volunteer-{i}") for i in range(6)]
    for volunteer in volunteers:
        data = {"spare": 1 << 30, "slots": 4, "backfill_at": 0}
        rig.repair.announcement(volunteer, data, T0, T0)
    for n in numbers:
        rig.have(A, n)  # one replica each: one more wanted, by the best-ranked volunteer
    rig.at(WARMUP)
    rig.repair._refresh(rig.clock.now)
    core = rig.repair.core
    ours = {mid(n) for n in numbers if core.view(mid(n), rig.clock.now).chosen == (SELF,)}
    assert 0 < len(ours) < len(numbers)
    rig.repair.tick(rig.clock.now)
    assert set(rig.jobs()) <= ours
    assert len(rig.jobs()) == min(4, len(ours)), "as many as its slots allow"


def test_no_job_while_the_worker_is_live_and_only_super_peers_are_believed(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.know(1)
    rig.have(A, 1)
    # A browser claiming a recent backfill run is not believed.
    recent = {"spare": 0, "slots": 0, "backfill_at": T0 + WARMUP - 1000}
    rig.repair.announcement(B, recent, T0, T0)
    assert not rig.repair.core.worker_live(T0 + WARMUP)
    # A peer whose hello named the superpeer capability is.
    rig.repair.peer_opened(C, ("gossip", "superpeer"))
    rig.repair.announcement(C, recent, T0, T0 + WARMUP)
    decision = rig.at(WARMUP).repair.poll()
    assert decision.worker_live
    assert rig.started == []
    assert rig.repair.stats_json(rig.clock.now)["worker_live"] is True
    # The evidence the super-peer reads itself, at each status write.
    rig.at(WARMUP + GRACE - 2000)
    rig.repair.facts(db.RepairFacts(T0 + WARMUP + 10_000, []), rig.clock.now)
    assert rig.repair.poll().worker_live
    assert rig.started == []
    # A replication job from the planner is evidence too.
    rig.at(WARMUP + 10_000 + GRACE - 1000).repair.worker_job(rig.clock.now)
    assert rig.at(WARMUP + 10_000 + GRACE).repair.poll().worker_live
    # The worker is silent for the grace period: repair starts.
    rig.at(WARMUP + 10_000 + 2 * GRACE - 1000).repair.poll()
    assert rig.jobs() == [mid(1)]
    assert rig.repair.last_announcement is not None
    assert rig.repair.last_announcement["backfill_at"] == T0 + WARMUP + 10_000


def test_a_failed_job_goes_back_to_the_core_and_a_done_one_frees_its_slot(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.know(1)
    rig.gossiped(A, 1)  # a holder that is not connected: the job finds no source
    rig.at(WARMUP).repair.poll()
    assert rig.jobs() == [mid(1)]
    rig.at(WARMUP + NO_SOURCE_FAIL_MS + 1)
    rig.fetcher.tick(rig.clock.now)  # the fetcher gives up: its end reaches the core
    assert mid(1) not in rig.fetcher.jobs
    assert rig.repair.jobs == {}
    assert rig.repair.core.active == {}
    assert rig.repair.stats.failed == 1
    assert rig.repair.core.retry_at == {mid(1): rig.clock.now + RETRY_MS}
    rig.repair.poll()
    assert len(rig.started) == 1, "out of that manifest's ranking for retry_ms"
    rig.at(WARMUP + NO_SOURCE_FAIL_MS + 1 + RETRY_MS).repair.poll()
    assert len(rig.started) == 2, "tried again after retry_ms"

    # This time it ends done (as the fetcher says when the copy is complete).
    job = rig.fetcher.jobs[mid(1)]
    other = Job("pin-x", FetchJob.PIN, mid(1), job.download, state=FetchJob.DONE)
    rig.repair.job_ended(other)
    assert rig.repair.stats.done == 0, "another job of the same manifest: not ours"
    rig.repair.job_ended(Job(job.job_id, REPAIR, mid(1), job.download, state=FetchJob.DONE))
    assert rig.repair.stats.done == 1
    assert rig.repair.jobs == {}
    assert mid(1) not in rig.repair.core.active
    assert rig.repair.core.retry_at == {}


def test_the_own_complete_copy_is_a_replica(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    encrypted = encrypt_file(b"y" * 70_000)
    manifest = verify_manifest(
        make_manifest(Ed25519PrivateKey.generate(), encrypted, name="g", mime="x/y", created_at=T0)
    )
    rig.holder.add_manifest(manifest, pinned=False, stored_at=T0)
    for chunk_id in manifest.chunks:
        rig.holder.index.chunk_added(chunk_id, 100)
    rig.have(A, 1)
    rig.know(1)
    rig.at(WARMUP).repair.poll()
    view = rig.repair.core.view(manifest.id, rig.clock.now)
    assert (view.replicas, view.target) == (1, 3), "its own copy, learned from the holder"
    assert manifest.id not in rig.jobs(), "it holds a complete copy: nothing to fetch"


def test_a_job_is_dropped_when_the_target_is_met_meanwhile(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.know(1)
    rig.have(A, 1)
    rig.at(WARMUP).repair.poll()
    [(job_id, _, _, _)] = rig.started
    rig.gossiped(B, 1)
    rig.gossiped(C, 1)
    rig.at(WARMUP + 5000).repair.poll()
    assert rig.cancelled == [(job_id, "target_met")]
    assert mid(1) not in rig.fetcher.jobs
    assert rig.repair.stats.cancelled == 1
    assert rig.repair.stats.failed == 0, "a job the core dropped is not a failure"
    assert rig.repair.core.retry_at == {}


def test_a_connected_holders_advert_stays_live_past_the_holding_ttl(tmp_path: Path) -> None:
    """A peer says ``have`` once; while it stays connected its copy still counts."""
    rig = Rig(tmp_path)
    rig.know(1)
    rig.have(A, 1)
    for holder in (B, C):
        rig.have(holder, 1)
    for ms in range(WARMUP, 900_000, 5000):
        assert rig.at(ms).repair.poll().fetch == ()
    assert rig.repair.core.view(mid(1), rig.clock.now).replicas == 3
    assert rig.gossip.heard == {}


def test_a_departure_takes_the_holders_adverts_away(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.know(1)
    rig.holder.conns["conn-a"] = A
    rig.have(A, 1)
    assert rig.holder.closed("conn-a") == A  # its last connection: the service tells both
    rig.repair.peer_gone(A)
    rig.at(WARMUP).repair.poll()
    assert rig.started == [], "its only holder left: nothing to copy from"


def test_the_announcement_every_period_with_its_spare_slots_and_backfill(tmp_path: Path) -> None:
    rig = Rig(tmp_path, announce_s=60.0)
    rig.know(1)
    rig.have(A, 1)
    for ms in (0, 5000, 59_999, 60_000, 65_000, WARMUP, 120_000):
        rig.at(ms).repair.poll()
    assert [(at - T0, topic) for at, topic, _ in rig.published] == [
        (0, REPAIR_TOPIC),
        (60_000, REPAIR_TOPIC),
        (120_000, REPAIR_TOPIC),
    ]
    assert rig.published[0][2] == {"spare": QUOTA, "slots": 4, "backfill_at": 0}
    # After the warm-up one repair is in flight: its size is reserved, one slot taken.
    assert rig.published[2][2] == {"spare": QUOTA - SIZE, "slots": 3, "backfill_at": 0}
    rig.repair.facts(db.RepairFacts(T0 - GRACE, []), rig.clock.now)
    assert rig.at(180_000).repair.poll().fetch == ()
    assert rig.published[-1][2] == {"spare": QUOTA - SIZE, "slots": 3, "backfill_at": T0 - GRACE}


@pytest.mark.parametrize(
    ("origin", "data", "code"),
    [
        (A, {"spare": -1, "slots": 1, "backfill_at": 0}, BAD_BODY),
        (A, {"spare": 1, "slots": 65, "backfill_at": 0}, BAD_BODY),
        (A, {"spare": 1, "slots": 1, "backfill_at": 0, "holder": B}, BAD_BODY),
        (A, {"spare": 1, "slots": True, "backfill_at": 0}, BAD_BODY),
        (A, [1, 2, 3], BAD_BODY),
        ("not-a-peer-id", {"spare": 1, "slots": 1, "backfill_at": 0}, BAD_REPAIR),
    ],
)
def test_a_bad_repair_gossip_is_refused_with_its_code(
    tmp_path: Path, origin: str, data: object, code: str
) -> None:
    rig = Rig(tmp_path)
    rig.repair.peer_opened(A, ("superpeer",))
    rig.repair.announcement(origin, data, T0, T0)
    assert rig.repair.stats.refused == {code: 1}
    assert rig.repair.core.volunteers == {}
    assert rig.repair.core.worker_seen_at is None


# --- the service's wiring ---


@pytest.fixture(scope="module", autouse=True)
async def _close_thread_connections() -> Any:
    """ORM calls ran in asgiref's thread: close their connections so the test database can
    be dropped."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()
    await asyncio.to_thread(connections.close_all)


def hello(key: Ed25519PrivateKey, caps: tuple[str, ...], now: int) -> bytes:
    frame = Hello(ticket=ticket(key, "main", now, ttl_ms=600_000), caps=caps, agent="test")
    return encode_frame(frame)


def repair_gossip(key: Ed25519PrivateKey, data: object, now: int, origin: str = "") -> bytes:
    frame = make_gossip(
        key, origin=origin or peer_id(key), community="main", topic=REPAIR_TOPIC, now=now,
        data=data,
    )  # fmt: skip
    return encode_frame(frame)


@pytest.mark.django_db(transaction=True)
async def test_the_service_wires_hello_gossip_jobs_and_status(tmp_path: Path) -> None:
    config = offline_config(
        tmp_path, use_channel_layer=False, repair=RepairSettings(warmup_ms=0, announce_s=3600)
    )
    service = SuperPeerService(config, key=seeded_key("repair-super-peer"))
    repair = service.repair
    assert repair is not None
    now = now_ms()
    node = service.node = service.make_node(now)
    other_sp, browser = seeded_key("repair-other-sp"), seeded_key("repair-browser")
    node.opened("c1", peer_id(other_sp), False, now)
    node.receive("c1", hello(other_sp, ("gossip", "superpeer"), now), now)
    node.opened("c2", peer_id(browser), False, now)
    node.receive("c2", hello(browser, ("gossip",), now), now)
    service.pump()
    assert peer_id(other_sp) in repair.superpeers
    assert peer_id(browser) not in repair.superpeers

    # A browser's recent backfill_at is not evidence; bad gossip never reaches the adapter.
    recent = {"spare": 1 << 20, "slots": 2, "backfill_at": now - 1000}
    node.receive("c2", repair_gossip(browser, recent, now), now)
    node.receive("c2", repair_gossip(browser, {**recent, "slots": -1}, now), now)
    forged = repair_gossip(browser, recent, now + 1, origin=peer_id(other_sp))
    node.receive("c2", forged, now)
    service.pump()
    assert set(repair.core.volunteers) == {peer_id(browser)}
    assert node.stats.dropped.get("gossip_repair_bad_body") == 1
    # signed by the browser in another's name: a violation of the forwarder, never delivered
    assert node.stats.dropped == {"gossip_repair_bad_body": 1, "peer_mismatch": 1}
    assert repair.core.worker_seen_at is None

    # A have gossip of a manifest it knows: the adapter starts a repair job through the
    # service's fetcher path (the holder becomes a hint to dial).
    repair.facts(db.RepairFacts(0, [(1, mid(1), CHUNKS, SIZE)]), now)
    have = {"manifests": [{"id": mid(1), "chunks": CHUNKS}]}
    frame = make_gossip(
        browser, origin=peer_id(browser), community="main", topic="have", now=now, data=have
    )
    node.receive("c2", encode_frame(frame), now)
    service.pump()
    repair.poll()
    assert service.fetcher.jobs[mid(1)].kind == REPAIR
    assert node.book.entries[peer_id(browser)].hint

    # A super-peer's recent backfill_at is: nothing more starts, the status says so.
    node.receive("c1", repair_gossip(other_sp, recent, now), now)
    service.pump()
    assert repair.core.worker_live(now_ms())
    await Supervisor(service).persist()
    row = await sync_to_async(SuperPeer.objects.get)(peer_id=service.peer_id)
    assert row.stats["repair"]["worker_live"] is True
    assert row.stats["repair"]["fetching"] == 1
    assert row.stats["repair"]["database"] is True


@pytest.mark.django_db(transaction=True)
async def test_the_status_write_reads_the_newest_backfill_run_and_survives_a_database_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(tmp_path)
    encrypted = encrypt_file(b"z" * 3000)
    manifest = verify_manifest(
        make_manifest(Ed25519PrivateKey.generate(), encrypted, name="h", mime="x/y", created_at=T0)
    )
    await sync_to_async(db.save_manifest)(manifest)
    started = datetime.fromtimestamp((T0 - 5000) / 1000, UTC)
    await sync_to_async(BackfillRun.objects.create)(
        trigger="t", started_at=started, duration_ms=250
    )
    await rig.repair.read_database()
    assert rig.repair.backfill_at == T0 - 5000 + 250
    assert rig.repair.core.worker_live(T0)
    assert rig.repair.catalog[manifest.id] == (len(manifest.chunks), 3000 + 16)
    rig.have(A, 0)  # an advert of another manifest: nothing
    assert rig.repair.core.manifests == {}, "heard of by the core once someone holds it"
    frame = Have(manifests=(Holding(manifest.id, 1),))
    rig.repair.have(A, rig.holder.on_have(A, frame), T0)
    assert rig.repair.core.manifests[manifest.id].chunk_count == len(manifest.chunks)
    assert rig.repair.db_ok is True

    def gone(*_: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(db, "repair_facts", gone)
    await rig.repair.read_database()
    await rig.repair.read_database()
    assert rig.repair.db_ok is False
    assert rig.repair.stats.db_errors == 2
    assert rig.repair.backfill_at == T0 - 5000 + 250, "nothing new learned, nothing lost"
