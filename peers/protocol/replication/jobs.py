"""Super-peers, their fetch jobs and the choice of fetcher and sources for the planner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .holdings import HoldingsView
from .model import (
    CancelJob,
    CancelReason,
    FetchJob,
    Health,
    IncompleteReplica,
    PeerHealth,
    SuperPeerStatus,
    peer_key,
)
from .state import (
    Backoff,
    JobSlot,
    ManifestState,
    Outbox,
    ReplicationConfig,
    SuperPeer,
    backoff_delay,
)

# An unmeasured source ranks as if it moved about 1 MB/s (log2 bucket 20).
DEFAULT_SPEED_BUCKET = 20


@dataclass(frozen=True, slots=True)
class Candidate:
    peer: SuperPeer
    sources: tuple[str, ...]


class JobBoard:
    """Which super-peer fetches what from whom, with backoff for failing sources.

    Ranking, best first. Fetchers: fewest past failures on this manifest, already holding
    part of it (resume), lowest share of job slots in use, largest share of storage free,
    XOR-closest to the manifest. Sources: healthy before unmeasured before degraded,
    complete before partial, fewest jobs already leaning on them, fastest (log2 of
    measured bytes/s), XOR-closest to the fetcher (in a Kademlia-style mesh, the peers a
    node is likeliest to be connected to already).
    """

    def __init__(
        self,
        config: ReplicationConfig,
        holdings: HoldingsView,
        manifests: Mapping[str, ManifestState],
        out: Outbox,
    ) -> None:
        self.config = config
        self.holdings = holdings
        self.manifests = manifests
        self.out = out
        self.supers: dict[str, SuperPeer] = {}
        self.jobs: dict[str, JobSlot] = {}
        self.health: dict[str, PeerHealth] = {}
        self.source_backoff: dict[str, Backoff] = {}
        self.fetch_failures: dict[tuple[str, str], int] = {}
        self._source_load: dict[str, int] = {}
        self._peer_keys: dict[str, int] = {}
        self._seq = 0
        # Bumped whenever a super-peer's capacity, a job or a source backoff changes.
        self.changes = 0

    # --- super-peers --------------------------------------------------------------

    def status(self, status: SuperPeerStatus, now: int) -> None:
        peer = self.supers.get(status.peer_id)
        if peer is None:
            peer = SuperPeer(status.peer_id, self.key(status.peer_id), status, now)
            self.supers[status.peer_id] = peer
            self.changes += 1
        elif (peer.status, peer.used, peer.full, peer.online) != (
            status,
            status.storage_used,
            False,
            True,
        ):
            self.changes += 1
        peer.status = status
        peer.seen_at = now
        peer.used = status.storage_used
        peer.full = False
        peer.online = True

    def forget_holder(self, peer_id: str) -> None:
        """Drop what is kept about a peer that holds nothing any more (not a super-peer)."""
        if peer_id not in self.supers:
            self.health.pop(peer_id, None)
            self._peer_keys.pop(peer_id, None)

    def forget_peer(self, peer_id: str) -> None:
        self.changes += 1
        self.health.pop(peer_id, None)
        self._peer_keys.pop(peer_id, None)
        peer = self.supers.pop(peer_id, None)
        if peer is not None:
            for job_id in sorted(peer.jobs):
                self.cancel(job_id, CancelReason.FETCHER_GONE)

    def expire_super_peers(self, now: int) -> None:
        for peer in sorted(self.supers.values(), key=lambda s: s.peer_id):
            if peer.online and peer.seen_at + self.config.super_peer_ttl_ms <= now:
                peer.online = False
                self.changes += 1
                for job_id in sorted(peer.jobs):
                    self.cancel(job_id, CancelReason.FETCHER_GONE)

    def slots(self, peer: SuperPeer) -> int:
        return min(peer.status.max_jobs, self.config.max_jobs_per_super_peer)

    def has_slot(self, peer: SuperPeer) -> bool:
        return (
            peer.online
            and not peer.full
            and len(peer.jobs) < self.slots(peer)
            and self.free(peer) > 0
        )

    def open_peers(self) -> dict[str, int]:
        """Super-peers able to take a job now, with their free bytes."""
        return {p.peer_id: self.free(p) for p in self.supers.values() if self.has_slot(p)}

    def free(self, peer: SuperPeer) -> int:
        reserved = sum(self.jobs[job_id].reserved for job_id in peer.jobs)
        return peer.status.storage_budget - peer.used - reserved

    # --- choices ------------------------------------------------------------------

    def pick(self, m: ManifestState, now: int, open_peers: Mapping[str, int]) -> Candidate | None:
        """The best of ``open_peers`` (from :meth:`open_peers`) to fetch ``m`` now, with
        its sources; None if none can."""
        manifest_id = m.info.manifest_id
        size, count = m.info.size, m.info.chunk_count
        busy = {self.jobs[job_id].job.fetcher for job_id in m.jobs}
        ranked: list[tuple[tuple[int, int, float, float, int], SuperPeer]] = []
        for peer_id, free in open_peers.items():
            if peer_id in busy:
                continue
            peer = self.supers[peer_id]
            holding = self.holdings.get(peer_id, manifest_id)
            if holding is not None and holding.complete:
                continue
            held = holding.chunks if holding is not None else 0
            if size - size * held // count > free:
                continue
            key = (
                self.fetch_failures.get((manifest_id, peer.peer_id), 0),
                0 if holding is not None else 1,
                len(peer.jobs) / self.slots(peer),
                -free / max(1, peer.status.storage_budget),
                peer.key ^ m.key,
            )
            ranked.append((key, peer))
        for _, peer in sorted(ranked, key=lambda item: item[0]):
            sources = self.sources(m, peer, now)
            if sources:
                return Candidate(peer, sources)
        return None

    def sources(self, m: ManifestState, fetcher: SuperPeer, now: int) -> tuple[str, ...]:
        ranked: list[tuple[tuple[int, int, int, int, int], str]] = []
        for holding in self.holdings.holders(m.info.manifest_id).values():
            holder = holding.holder
            if holder == fetcher.peer_id:
                continue
            backoff = self.source_backoff.get(holder)
            if backoff is not None and backoff.until > now:
                continue
            health = self.health.get(holder)
            health_rank, speed = 1, DEFAULT_SPEED_BUCKET
            if health is not None:
                health_rank = 0 if health.health is Health.HEALTHY else 2
                if health.bytes_per_s is not None:
                    speed = health.bytes_per_s.bit_length()
            key = (
                health_rank,
                0 if holding.complete else 1,
                self._source_load.get(holder, 0),
                -speed,
                fetcher.key ^ self.key(holder),
            )
            ranked.append((key, holder))
        ranked.sort()
        return tuple(holder for _, holder in ranked[: self.config.max_sources_per_job])

    # --- jobs ---------------------------------------------------------------------

    def start(self, m: ManifestState, candidate: Candidate, now: int) -> FetchJob:
        self.changes += 1
        peer = candidate.peer
        holding = self.holdings.get(peer.peer_id, m.info.manifest_id)
        held = holding.chunks if holding is not None else 0
        self._seq += 1
        job = FetchJob(
            job_id=f"{self.config.job_id_prefix}{self._seq}",
            fetcher=peer.peer_id,
            manifest_id=m.info.manifest_id,
            community=m.info.community,
            sources=candidate.sources,
            chunk_count=m.info.chunk_count,
            size=m.info.size,
            attempt=m.failures + 1,
            issued_at=now,
            deadline=now + self.config.job_timeout_ms,
        )
        reserved = m.info.size - m.info.size * held // m.info.chunk_count
        self.jobs[job.job_id] = JobSlot(job, held, held, now, reserved)
        m.jobs.add(job.job_id)
        peer.jobs.add(job.job_id)
        first = job.sources[0]
        self._source_load[first] = self._source_load.get(first, 0) + 1
        self.out.jobs.append(job)
        return job

    def end(self, job_id: str) -> JobSlot:
        self.changes += 1
        slot = self.jobs.pop(job_id)
        job = slot.job
        m = self.manifests.get(job.manifest_id)
        if m is not None:
            m.jobs.discard(job_id)
        peer = self.supers.get(job.fetcher)
        if peer is not None:
            peer.jobs.discard(job_id)
            peer.used += max(0, job.size * (slot.chunks - slot.start_chunks) // job.chunk_count)
        first = job.sources[0]
        load = self._source_load.get(first, 0) - 1
        if load > 0:
            self._source_load[first] = load
        else:
            self._source_load.pop(first, None)
        return slot

    def job_of(self, m: ManifestState, fetcher: str) -> str | None:
        for job_id in m.jobs:
            if self.jobs[job_id].job.fetcher == fetcher:
                return job_id
        return None

    def succeed(self, job_id: str) -> None:
        slot = self.jobs[job_id]
        slot.chunks = slot.job.chunk_count
        self.end(job_id)
        job = slot.job
        m = self.manifests[job.manifest_id]
        m.failures = 0
        m.retry_at = 0
        self.fetch_failures.pop((job.manifest_id, job.fetcher), None)
        for source in job.sources:
            if source not in slot.failed:
                self.source_backoff.pop(source, None)

    def cancel(self, job_id: str, reason: CancelReason) -> JobSlot:
        slot = self.end(job_id)
        job = slot.job
        self.out.cancels.append(CancelJob(job.job_id, job.fetcher, job.manifest_id, reason))
        self.note_incomplete(job.fetcher, job.manifest_id)
        return slot

    def failed(self, m: ManifestState, slot: JobSlot, now: int) -> None:
        """The job ended without a full copy: back the manifest off, remember the fetcher."""
        cfg = self.config
        m.failures += 1
        m.retry_at = now + backoff_delay(m.failures, cfg.retry_base_ms, cfg.retry_max_ms)
        key = (m.info.manifest_id, slot.job.fetcher)
        self.fetch_failures[key] = self.fetch_failures.get(key, 0) + 1

    def note_incomplete(self, holder: str, manifest_id: str) -> None:
        holding = self.holdings.get(holder, manifest_id)
        m = self.manifests.get(manifest_id)
        if holding is not None and not holding.complete and m is not None:
            self.out.incomplete.append(
                IncompleteReplica(holder, manifest_id, holding.chunks, m.info.chunk_count)
            )

    def source_failed(self, source: str, now: int) -> None:
        self.changes += 1
        cfg = self.config
        backoff = self.source_backoff.setdefault(source, Backoff())
        backoff.failures += 1
        delay = backoff_delay(
            backoff.failures, cfg.source_backoff_base_ms, cfg.source_backoff_max_ms
        )
        backoff.until = now + delay

    def forget_old_backoffs(self, now: int) -> None:
        # A source that behaved for a whole maximum backoff starts afresh.
        horizon = now - self.config.source_backoff_max_ms
        for peer_id in [p for p, b in self.source_backoff.items() if b.until <= horizon]:
            del self.source_backoff[peer_id]

    def forget_manifest(self, manifest_id: str) -> None:
        for key in [k for k in self.fetch_failures if k[0] == manifest_id]:
            del self.fetch_failures[key]

    def key(self, peer_id: str) -> int:
        key = self._peer_keys.get(peer_id)
        if key is None:
            key = self._peer_keys[peer_id] = peer_key(peer_id)
        return key
