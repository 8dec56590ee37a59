"""Repair by peers on the super-peer: the adapter of :class:`RepairCore`
(docs/replication.md "Repair by peers").

One core per super-peer (self id: its peer id). It hears the manifests the super-peer knows
(its own, those it learned from advertisers, those the database holds), the replica adverts
(``have`` frames, ``have`` gossip, its own copies), departures, the ``repair`` gossip of
other volunteers (a ``backfill_at`` counts as worker evidence only from peers whose
``hello`` named the ``superpeer`` capability) and the newest backfill run, read at each
status write. Every ``tick_s`` it runs the core; each manifest the core chooses it for is
fetched as a job of kind ``repair`` through the ordinary fetcher path, whose end goes back
to the core (``fetch_ended``). The finished copy is a holding like any other (not pinned):
advertised in ``have`` and written as a complete holding, so the planner counts it as a
replica. While the worker is live (or during the warm-up) the core decides nothing.
Every ``announce_s`` it publishes its own announcement on gossip topic ``repair``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from peers.protocol.errors import ProtocolError
from peers.protocol.manifest import Manifest
from peers.protocol.repair import REPAIR_TOPIC, RepairConfig, RepairCore, RepairDecision
from peers.protocol.wire import Holding
from peers.superpeer.models import FetchJob
from shared.db import db_sync_to_async

from . import db
from .config import RepairSettings
from .fetcher import REPAIR, Job
from .holder import Holder
from .relay import GossipAdverts

logger = logging.getLogger(__name__)

MANIFESTS_PER_READ = 2000  # manifests taken from the database at one status write
MAX_SUPERPEERS = 1024  # peers remembered as super-peers (by their hello)
MAX_SOURCES = 8  # complete holders named to a repair job (dialed first)
# Connected holders' adverts are given to the core again this often (they say ``have`` only
# when something changes; the core forgets an advert after its holding TTL, 10 minutes).
REFRESH_MS = 60_000

StartJob = Callable[[str, str, str, tuple[str, ...], int], None]  # id, kind, manifest, sources
CancelJob = Callable[[str, str, int], None]  # job id, reason, now
Publish = Callable[[str, object], None]  # topic, data


def repair_job_id(manifest_id: str, peer_id: str) -> str:
    return f"repair-{manifest_id}-{peer_id[1:9]}"


@dataclass
class RepairStats:
    started: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0  # dropped by the core: the target was met meanwhile
    announced: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # repair gossip refused, by code
    db_errors: int = 0


class SuperPeerRepair:
    def __init__(
        self,
        peer_id: str,
        settings: RepairSettings,
        *,
        holder: Holder,
        quota: int,
        clock: Callable[[], int],
        start_job: StartJob,
        cancel_job: CancelJob,
        publish: Publish,
        holding_ttl_ms: int = 600_000,
    ) -> None:
        self.peer_id = peer_id
        self.settings = settings
        self.holder = holder
        self.quota = quota
        self.clock = clock
        self.start_job = start_job
        self.cancel_job = cancel_job
        self.publish = publish
        config = RepairConfig(
            default_target=settings.target,
            holding_ttl_ms=holding_ttl_ms,
            warmup_ms=settings.warmup_ms,
            worker_grace_ms=settings.worker_grace_ms,
        )
        self.core = RepairCore(peer_id, clock(), config)
        self.superpeers: dict[str, None] = {}  # peer ids whose hello named "superpeer"
        # manifests known (id -> chunk count, bytes of a stored copy); the core hears of
        # one once someone advertises it, so its pass covers only manifests with holders
        self.catalog: dict[str, tuple[int, int]] = {}
        self.jobs: dict[str, str] = {}  # manifest id -> repair job id, in flight
        self.own: set[str] = set()  # manifests whose own copy the core was told of
        self.backfill_at = 0  # when the newest backfill run ended (ms), 0: none seen
        self.manifest_cursor = 0  # the last database manifest row taken
        self.db_ok: bool | None = None  # the last read's outcome (None: none yet)
        self.worker_live = False
        self.next_announce_at = 0
        self.next_refresh_at = 0
        self.last_announcement: dict[str, object] | None = None
        self.stats = RepairStats()

    # --- what it hears ---

    def peer_opened(self, peer_id: str, caps: Iterable[str]) -> None:
        """A hello: its ``superpeer`` capability makes the peer's ``backfill_at`` evidence."""
        if "superpeer" not in caps:
            return
        self.superpeers.pop(peer_id, None)
        self.superpeers[peer_id] = None
        while len(self.superpeers) > MAX_SUPERPEERS:
            del self.superpeers[next(iter(self.superpeers))]

    def peer_gone(self, peer_id: str) -> None:
        """The peer's last connection closed: its adverts and announcement go."""
        self._safely(self.core.holder_gone, peer_id)

    def have(self, peer_id: str, recorded: Iterable[tuple[str, int]], now: int) -> None:
        """A ``have`` frame's entries as the holder recorded them (0 chunks withdraws)."""
        for manifest_id, chunks in recorded:
            keep = peer_id not in self.holder.cached.get(manifest_id, ())
            self._advert(peer_id, manifest_id, chunks, keep, now)

    def have_gossip(
        self, origin: str, holdings: Iterable[Holding], gossip: GossipAdverts, now: int
    ) -> None:
        """A ``have`` gossip, as :class:`GossipAdverts` took it (its bounds hold here too)."""
        for h in holdings:
            heard = gossip.heard.get((origin, h.id))
            if heard is None:  # withdrawn, or refused by the bounds
                self._advert(origin, h.id, 0, True, now)
            else:
                chunks, keep, at = heard
                self._advert(origin, h.id, chunks, keep, at)

    def announcement(self, origin: str, data: object, issued_at: int, now: int) -> None:
        """A ``repair`` gossip; refused (and counted by code) when it is not well formed."""
        superpeer = origin in self.superpeers
        try:
            self.core.announcement(origin, data, issued_at, now, superpeer=superpeer)
        except ProtocolError as exc:
            self.stats.refused[exc.code] = self.stats.refused.get(exc.code, 0) + 1
            logger.info("refused a repair gossip from %s: %s", origin, exc.code)

    def learned(self, manifest: Manifest) -> None:
        """A verified manifest (learned from an advertiser)."""
        self._know(manifest.id, len(manifest.chunks), sum(self.holder.lengths(manifest)))

    def facts(self, facts: db.RepairFacts, now: int) -> None:
        """What a status write read: the newest backfill run, manifests saved meanwhile."""
        if facts.backfill_at > 0:
            self.backfill_at = max(self.backfill_at, facts.backfill_at)
            self._safely(self.core.worker_seen, min(facts.backfill_at, now))
        for pk, manifest_id, chunk_count, size in facts.manifests:
            self.manifest_cursor = max(self.manifest_cursor, pk)
            self._know(manifest_id, chunk_count, size)

    def worker_job(self, now: int) -> None:
        """A ``replication.fetch`` from the planner: the worker ran just now."""
        self._safely(self.core.worker_seen, now)

    async def read_database(self) -> None:
        """Read :class:`db.RepairFacts` off the event loop; with the database gone it
        learns nothing new (and says so once)."""
        try:
            facts = await db_sync_to_async(db.repair_facts)(
                self.manifest_cursor, MANIFESTS_PER_READ
            )
        except Exception as exc:
            self.stats.db_errors += 1
            if self.db_ok is not False:
                logger.warning("repair: database not readable, no backfill seen: %r", exc)
            self.db_ok = False
            return
        self.db_ok = True
        self.facts(facts, self.clock())

    def job_ended(self, job: Job) -> None:
        """The fetcher ended a job; one of ours goes back to the core."""
        job_id = self.jobs.get(job.manifest_id)
        if job_id is None or job_id not in (job.job_id, *job.aliases):
            return
        del self.jobs[job.manifest_id]
        now = self.clock()
        ok = job.state == FetchJob.DONE
        self._safely(self.core.fetch_ended, job.manifest_id, ok, now)
        if ok:
            self.stats.done += 1
            self._own_copies(now)
        else:
            self.stats.failed += 1
        logger.info("repair %s ended: %s %s", job.manifest_id, job.state, job.reason)

    # --- what it does ---

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                self.poll()
            except Exception:
                logger.exception("repair tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.tick_s)

    def poll(self) -> RepairDecision:
        """Tick the core; announce when the period came."""
        now = self.clock()
        decision = self.tick(now)
        if now >= self.next_announce_at:
            self.announce()
            self.next_announce_at = now + int(self.settings.announce_s * 1000)
        return decision

    def announce(self) -> dict[str, object]:
        data = self.core.own_announcement(self.backfill_at).data()
        self.publish(REPAIR_TOPIC, data)
        self.stats.announced += 1
        self.last_announcement = data
        return data

    def tick(self, now: int) -> RepairDecision:
        self._refresh(now)
        decision = self.core.tick(now)
        self.worker_live = decision.worker_live
        for manifest_id in decision.cancel:
            job_id = self.jobs.pop(manifest_id, None)
            if job_id is not None:
                self.stats.cancelled += 1
                self.cancel_job(job_id, "target_met", now)
        for manifest_id in decision.fetch:
            job_id = repair_job_id(manifest_id, self.peer_id)
            self.jobs[manifest_id] = job_id  # before: the job may end at once
            self.stats.started += 1
            logger.info("repair: fetching %s", manifest_id)
            self.start_job(job_id, REPAIR, manifest_id, self._sources(manifest_id, now), now)
        return decision

    def _refresh(self, now: int) -> None:
        """Its own manifests, copies and budget; every ``REFRESH_MS`` the adverts of
        connected holders again (kept live while they stay connected)."""
        for manifest_id, manifest in self.holder.manifests.items():
            if manifest_id not in self.catalog:
                self.learned(manifest)
        self._own_copies(now)
        if now >= self.next_refresh_at:
            self.next_refresh_at = now + REFRESH_MS
            cached = self.holder.cached
            for manifest_id, holders in self.holder.holders.items():
                for peer_id, chunks in holders.items():
                    keep = peer_id not in cached.get(manifest_id, ())
                    self._advert(peer_id, manifest_id, chunks, keep, now)
        in_flight = sum(self.holder.bytes_held(m) for m in self.jobs)
        spare = max(0, self.quota - self.holder.index.used + in_flight)
        self.core.set_self(opted_in=True, spare=spare, max_active=self.settings.slots)

    def _own_copies(self, now: int) -> None:
        held = {m: h.present for m, h in self.holder.index.manifests.items() if h.present > 0}
        for manifest_id in self.own - held.keys():
            self._advert(self.peer_id, manifest_id, 0, True, now)
        for manifest_id, chunks in held.items():
            self._advert(self.peer_id, manifest_id, chunks, True, now)
        self.own = set(held)

    def _know(self, manifest_id: str, chunk_count: int, size: int) -> None:
        self.catalog[manifest_id] = (chunk_count, size)
        if manifest_id in self.core.holdings or manifest_id in self.core.manifests:
            self._safely(self.core.manifest, manifest_id, chunk_count, size)

    def _advert(self, holder: str, manifest_id: str, chunks: int, keep: bool, at: int) -> None:
        self._safely(self.core.advert, holder, manifest_id, chunks, keep, at)
        if chunks > 0 and manifest_id not in self.core.manifests:
            known = self.catalog.get(manifest_id)
            if known is not None:
                self._safely(self.core.manifest, manifest_id, *known)

    def _sources(self, manifest_id: str, now: int) -> tuple[str, ...]:
        """Complete holders the core knows of (the fetcher dials them first)."""
        info = self.core.manifests.get(manifest_id)
        if info is None:
            return ()
        held = self.core.holdings.get(manifest_id, {})
        complete = [
            peer_id
            for peer_id, h in held.items()
            if peer_id != self.peer_id and h.expires_at > now and h.chunks >= info.chunk_count
        ]
        return tuple(sorted(complete)[:MAX_SOURCES])

    def _safely(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except ProtocolError as exc:  # a fact the core refuses (bad id, count out of range)
            logger.debug("repair: %s refused %s: %s", fn.__name__, args[:2], exc.code)

    def stats_json(self, now: int) -> dict[str, Any]:
        return {
            "worker_live": self.core.worker_live(now),
            "warming_up": now - self.core.started_at < self.core.config.warmup_ms,
            "backfill_at": self.backfill_at,
            "database": self.db_ok,
            "manifests": len(self.catalog),
            "advertised": len(self.core.manifests),
            "volunteers": len(self.core.volunteers),
            "fetching": len(self.jobs),
            "started": self.stats.started,
            "done": self.stats.done,
            "failed": self.stats.failed,
            "cancelled": self.stats.cancelled,
            "announced": self.stats.announced,
            "refused": dict(self.stats.refused),
            "db_errors": self.stats.db_errors,
        }
