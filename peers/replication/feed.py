"""Feeding a freshly built planner from stored facts (no database here: plain values in).

The selectors read the rows into the values below; :func:`feed` turns them into planner
events in the order docs/replication.md "Celery backfill task" gives, so a planner rebuilt
on every run decides as one long-lived planner would:

1. manifests and targets; the snapshot's episodes and backoffs (:func:`load_state`);
2. the live super-peers' statuses, oldest first;
3. the jobs in flight from the snapshot (:func:`restore_jobs`);
4. holdings: the super-peers' own and the adverts they relay, as fresh as their reporter,
   and the adverts they heard by gossip, as fresh as when they were issued (stale after
   the planner's ``holding_ttl_ms``, whether or not their reporter is still live);
5. ``PeerGone`` for every super-peer that stopped or went silent, so neither its own copies
   nor other peers' adverts about it count any more;
6. the jobs' progress as the fetching super-peers wrote it (each new failed source once).

A super-peer is live while its row says running and its ``last_seen`` is younger than the
planner's ``super_peer_ttl_ms``; a dead reporter's relayed adverts are not used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from peers.protocol.encoding import PEER_ID_RE
from peers.protocol.replication.model import (
    MAX_SOURCES,
    REASON_RE,
    CancelJob,
    CommunityTarget,
    HaveAdvert,
    JobReport,
    JobState,
    ManifestInfo,
    PeerGone,
    ReplicationError,
    SuperPeerStatus,
)
from peers.protocol.replication.planner import ReplicationPlanner
from peers.protocol.replication.snapshot import job_slot, load_state, restore_jobs

logger = logging.getLogger(__name__)

# FetchJob row states (peers.superpeer.models.FetchJob) as the planner's report states.
DONE, FAILED, CANCELLED = "done", "failed", "cancelled"


@dataclass(frozen=True, slots=True)
class ManifestFact:
    manifest_id: str
    community: str
    chunk_count: int
    size: int  # bytes of one full copy in a store
    target: int | None = None


@dataclass(frozen=True, slots=True)
class SuperPeerFact:
    peer_id: str
    running: bool
    seen_at: int  # ms
    storage_budget: int
    storage_used: int
    max_jobs: int


@dataclass(frozen=True, slots=True)
class HoldingFact:
    """``holder`` has ``chunks`` verified chunks, as ``reporter`` (a super-peer) knows it:
    its own holding when ``holder == reporter``, else a relayed ``have`` (``keep`` False:
    a copy the holder does not keep, never counted as a replica)."""

    holder: str
    manifest_id: str
    chunks: int
    reporter: str
    keep: bool = True
    gossip: bool = False  # heard by gossip (topic have): valid for the holding TTL
    heard_at: int = 0  # ms, when a gossiped advert was issued


@dataclass(frozen=True, slots=True)
class JobFact:
    """A replication ``FetchJob`` row as its super-peer last wrote it."""

    job_id: str
    fetcher: str
    manifest_id: str
    state: str
    chunks_done: int
    failed_sources: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Facts:
    manifests: tuple[ManifestFact, ...]
    community_targets: Mapping[str, int]
    super_peers: tuple[SuperPeerFact, ...]
    holdings: tuple[HoldingFact, ...]
    jobs: Mapping[str, JobFact]


@dataclass
class Fed:
    """What feeding found beside the planner's own decisions."""

    cancels: list[CancelJob] = field(default_factory=list)  # restored jobs that cannot go on
    orphans: list[JobFact] = field(default_factory=list)  # active rows the planner never had
    bytes_fetched: int = 0  # chunks the jobs added since the last run, in bytes
    refused: dict[str, int] = field(default_factory=dict)  # error code -> facts refused
    live: frozenset[str] = frozenset()  # live super-peers


def is_live(peer: SuperPeerFact, now: int, ttl_ms: int) -> bool:
    return peer.running and now - peer.seen_at < ttl_ms


def feed(planner: ReplicationPlanner, facts: Facts, snapshot: object, now: int) -> Fed:
    """Feed ``facts`` (and the previous run's ``snapshot``, or ``{}``) into a new planner.

    A bad snapshot is logged and ignored (the run starts afresh); a fact the planner
    refuses is counted by code and skipped."""
    fed = Fed()

    def handle(event: object, at: int) -> bool:
        try:
            planner.handle(event, at)  # type: ignore[arg-type]
        except ReplicationError as exc:
            fed.refused[exc.code] = fed.refused.get(exc.code, 0) + 1
            return False
        return True

    manifests = {m.manifest_id: m for m in facts.manifests}
    for community, target in sorted(facts.community_targets.items()):
        handle(CommunityTarget(community, target), 0)
    for m in facts.manifests:
        handle(ManifestInfo(m.manifest_id, m.community, m.chunk_count, m.size, m.target), 0)
    snapshot = snapshot or {}
    if snapshot:
        try:
            load_state(planner, snapshot)
        except (ReplicationError, TypeError, ValueError) as exc:
            logger.warning("replication snapshot ignored: %s", exc)
            snapshot = {}

    ttl = planner.config.super_peer_ttl_ms
    live = {p.peer_id: p for p in facts.super_peers if is_live(p, now, ttl)}
    fed.live = frozenset(live)
    for peer in sorted(live.values(), key=lambda p: (p.seen_at, p.peer_id)):
        status = SuperPeerStatus(
            peer.peer_id, peer.storage_budget, peer.storage_used, peer.max_jobs
        )
        handle(status, peer.seen_at)
    if snapshot:
        try:
            fed.cancels = restore_jobs(planner, snapshot)
        except (ReplicationError, TypeError, ValueError) as exc:
            logger.warning("replication snapshot jobs ignored: %s", exc)

    # Progress since the last run, counted before holdings can end a job (a complete
    # copy ends its job as soon as it is advertised).
    for job in planner.active_jobs():
        row, slot = facts.jobs.get(job.job_id), job_slot(planner, job.job_id)
        if row is not None and slot is not None and row.fetcher == job.fetcher:
            now_held = (
                job.chunk_count if row.state == DONE else min(row.chunks_done, job.chunk_count)
            )
            added = max(0, now_held - slot.chunks)
            fed.bytes_fetched += manifests[job.manifest_id].size * added // job.chunk_count
    adverts = _holdings(
        facts.holdings, live, manifests, now=now, ttl_ms=planner.config.holding_ttl_ms
    )
    for advert, at in adverts:
        handle(advert, at)
    for peer in facts.super_peers:
        if peer.peer_id not in live and PEER_ID_RE.fullmatch(peer.peer_id):
            handle(PeerGone(peer.peer_id), now)

    known = {job.job_id for job in planner.active_jobs()}
    for job_id in sorted(known):
        slot = job_slot(planner, job_id)
        row = facts.jobs.get(job_id)
        if slot is None or row is None:
            continue
        m = manifests[slot.job.manifest_id]
        report = _report(row, slot.job.fetcher, m.chunk_count, already=slot.failed)
        if report is not None:
            handle(report, now)
    restored = {c.job_id for c in fed.cancels}
    fed.orphans = [
        row
        for job_id, row in sorted(facts.jobs.items())
        if row.state not in (DONE, FAILED, CANCELLED)
        and job_id not in known
        and job_id not in restored
    ]
    return fed


def _holdings(
    holdings: Iterable[HoldingFact],
    live: Mapping[str, SuperPeerFact],
    manifests: Mapping[str, ManifestFact],
    *,
    now: int,
    ttl_ms: int,
) -> list[tuple[HaveAdvert, int]]:
    """One advert per (holder, manifest): the most chunks any live reporter (or a gossip
    heard less than ``ttl_ms`` ago) knows of, as fresh as the freshest of them, kept when
    the freshest report says so; oldest first."""
    best: dict[tuple[str, str], tuple[int, int, bool]] = {}
    for h in holdings:
        m = manifests.get(h.manifest_id)
        if m is None or h.chunks <= 0:
            continue
        if h.gossip:
            at = min(h.heard_at, now)
            if now - at >= ttl_ms:
                continue  # stale: not heard again within the holding TTL
        else:
            reporter = live.get(h.reporter)
            if reporter is None:
                continue
            at = reporter.seen_at
        key = (h.holder, h.manifest_id)
        chunks = min(h.chunks, m.chunk_count)
        seen, most, keep = best.get(key, (-1, 0, h.keep))
        if at > seen:
            keep = h.keep
        elif at == seen:
            keep = keep and h.keep  # reporters disagree at the same time: not counted
        best[key] = (max(seen, at), max(most, chunks), keep)
    out = []
    for (holder, manifest_id), (seen, chunks, keep) in best.items():
        try:
            out.append((HaveAdvert(holder, manifest_id, chunks, keep), seen))
        except ReplicationError:
            continue  # a relayed holder id that is not key-bound: nothing to plan with
    out.sort(key=lambda pair: (pair[1], pair[0].holder, pair[0].manifest_id))
    return out


def _report(row: JobFact, fetcher: str, chunk_count: int, *, already: set[str]) -> JobReport | None:
    """The planner's view of a job row; failed sources it already knows are left out (a
    source backs off once per failure, not once per run)."""
    if row.fetcher != fetcher:
        return None
    failed = tuple(
        s
        for s in sorted(set(row.failed_sources) - already)
        if PEER_ID_RE.fullmatch(s) and s != fetcher
    )[:MAX_SOURCES]
    chunks = max(0, min(row.chunks_done, chunk_count))
    if row.state == DONE:
        return JobReport(row.job_id, fetcher, row.manifest_id, JobState.DONE, chunk_count, failed)
    if row.state in (FAILED, CANCELLED):
        reason = row.reason if REASON_RE.fullmatch(row.reason or "") else "error"
        if row.state == CANCELLED and not row.reason:
            reason = "cancelled"
        return JobReport(
            row.job_id, fetcher, row.manifest_id, JobState.FAILED, chunks, failed, reason
        )
    return JobReport(row.job_id, fetcher, row.manifest_id, JobState.PROGRESS, chunks, failed)
