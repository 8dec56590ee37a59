"""The replication planner: keeps every manifest at its redundancy target (DESIGN section 8).

Sans-IO: adapters feed facts with ``handle(event, now)`` and call ``tick(now)`` after a
batch of events and at ``next_deadline()``; ``tick`` returns a :class:`Plan` of fetch jobs
for super-peers, cancellations, expired holdings, incomplete replicas and alerts. Nothing
here reads a clock, a socket or a database, so the Celery backfill task, the super-peer
and the simulation in ``bench/replication_sim.py`` all drive the same code.

Rules (docs/replication.md has the full model):
- a replica is a live holder with every chunk verified; partial holders are sources only;
- browsers count as replicas but only super-peers (peers that send a status) get jobs;
- a super-peer gets a job only with a free job slot and room for the whole manifest;
- failures back off exponentially, per manifest and per source.
"""

from __future__ import annotations

from .holdings import HoldingsView
from .jobs import JobBoard
from .model import (
    BAD_ADVERT,
    BAD_REPORT,
    MANIFEST_CONFLICT,
    UNKNOWN_MANIFEST,
    CancelReason,
    CommunityTarget,
    Event,
    FetchJob,
    ForgetManifest,
    HaveAdvert,
    HoldingExpired,
    JobReport,
    JobState,
    ManifestInfo,
    ManifestTarget,
    PeerGone,
    PeerHealth,
    Plan,
    ReplicationError,
    SuperPeerStatus,
    manifest_key,
)
from .state import (
    JobSlot,
    ManifestState,
    ManifestStatus,
    Outbox,
    ReplicationConfig,
    Summary,
)
from .targets import TargetTracker

__all__ = ["ReplicationConfig", "ReplicationPlanner"]

STORAGE_FULL = "storage_full"
MAX_TIME = 2**63


class ReplicationPlanner:
    """Holdings, targets and jobs of one orchestrator; see the module docstring."""

    def __init__(self, config: ReplicationConfig | None = None) -> None:
        self.config = config or ReplicationConfig()
        self.holdings = HoldingsView(
            ttl_ms=self.config.holding_ttl_ms,
            max_per_manifest=self.config.max_holders_per_manifest,
        )
        self._manifests: dict[str, ManifestState] = {}
        self._out = Outbox()
        self.board = JobBoard(self.config, self.holdings, self._manifests, self._out)
        self.targets = TargetTracker(self.config, self.holdings, self._out)
        self._dirty: set[str] = set()
        # Target and registration changes; with the holdings' and the board's counters this
        # tells whether anything could make a fruitless planning pass fruitful.
        self._changes = 0
        self._idle: tuple[tuple[int, int, int], int] | None = None
        self._now = 0

    # --- inputs -------------------------------------------------------------------

    def handle(self, event: Event, now: int) -> None:
        """Feed one fact learned at ``now``; raises :class:`ReplicationError` on bad input
        and then has changed nothing."""
        before = self._now
        now = self._clock(now)
        try:
            self._dispatch(event, now)
        except ReplicationError:
            self._now = before
            raise

    def _dispatch(self, event: Event, now: int) -> None:
        if isinstance(event, HaveAdvert):
            self._advert(event, now)
        elif isinstance(event, JobReport):
            self._report(event, now)
        elif isinstance(event, SuperPeerStatus):
            self.board.status(event, now)
        elif isinstance(event, PeerHealth):
            self.board.health[event.peer_id] = event
        elif isinstance(event, PeerGone):
            for holding in self.holdings.remove_holder(event.peer_id):
                self._dirty.add(holding.manifest_id)
            self.board.forget_peer(event.peer_id)
        elif isinstance(event, ManifestInfo):
            self._register(event)
        elif isinstance(event, ManifestTarget):
            self._manifest(event.manifest_id).target = event.target
            self._dirty.add(event.manifest_id)
            self._changes += 1
        elif isinstance(event, CommunityTarget):
            self.targets.community_targets[event.community] = event.target
            self._changes += 1
            self._dirty.update(
                mid for mid, m in self._manifests.items() if m.info.community == event.community
            )
        elif isinstance(event, ForgetManifest):
            self._forget(event.manifest_id)
        else:
            raise TypeError(f"not a replication event: {type(event).__name__}")

    def tick(self, now: int) -> Plan:
        """Apply expiries, re-evaluate what changed, raise alerts and assign new jobs."""
        now = self._clock(now)
        for holding in self.holdings.expire(now):
            self._out.expired.append(
                HoldingExpired(holding.holder, holding.manifest_id, holding.last_seen)
            )
            self._dirty.add(holding.manifest_id)
            if not self.holdings.holds_anything(holding.holder):
                self.board.forget_holder(holding.holder)
        self.board.expire_super_peers(now)
        self.board.forget_old_backoffs(now)
        self._expire_jobs(now)
        self._check_jobs()
        for manifest_id in sorted(self._dirty):
            if manifest_id in self._manifests:
                self.targets.evaluate(self._manifests[manifest_id], now)
        self._dirty.clear()
        self.targets.raise_alerts(now)
        self.targets.wake(now)
        self._assign(now)
        return self._out.flush()

    def next_deadline(self) -> int | None:
        """The earliest time at which ``tick`` has something to do without new events."""
        cfg = self.config
        times = [self.holdings.next_expiry()]
        times += [s.seen_at + cfg.super_peer_ttl_ms for s in self.board.supers.values() if s.online]
        times += [slot.last_progress + cfg.job_timeout_ms for slot in self.board.jobs.values()]
        times += [m.retry_at for m in self.targets.under.values() if m.retry_at > self._now]
        times.append(self.targets.next_alert())
        present = [t for t in times if t is not None]
        return min(present) if present else None

    # --- queries ------------------------------------------------------------------

    def target(self, manifest_id: str) -> int:
        return self._target(self._manifest(manifest_id))

    def status(self, manifest_id: str) -> ManifestStatus:
        m = self._manifest(manifest_id)
        holders = self.holdings.holders(manifest_id).values()
        return ManifestStatus(
            manifest_id=manifest_id,
            community=m.info.community,
            target=self._target(m),
            replicas=self.holdings.replicas(manifest_id),
            complete=tuple(sorted(h.holder for h in holders if h.counts)),
            cached=tuple(sorted(h.holder for h in holders if h.complete and not h.kept)),
            partial=tuple(sorted(h.holder for h in holders if not h.complete)),
            jobs=tuple(sorted(m.jobs)),
            under_since=m.under_since,
            lost=m.lost_since is not None,
            retry_at=m.retry_at,
        )

    def summary(self) -> Summary:
        return Summary(
            manifests=len(self._manifests),
            at_target=len(self._manifests) - len(self.targets.under),
            under_target=len(self.targets.under),
            lost=len(self.targets.lost),
            jobs=len(self.board.jobs),
            super_peers_online=sum(1 for s in self.board.supers.values() if s.online),
        )

    def active_jobs(self) -> tuple[FetchJob, ...]:
        return tuple(slot.job for _, slot in sorted(self.board.jobs.items()))

    def under_target(self) -> tuple[str, ...]:
        return tuple(sorted(self.targets.under))

    # --- event handlers -----------------------------------------------------------

    def _register(self, info: ManifestInfo) -> None:
        existing = self._manifests.get(info.manifest_id)
        if existing is None:
            key = manifest_key(info.manifest_id)
            self._manifests[info.manifest_id] = ManifestState(info, key, info.target)
        else:
            old = existing.info
            if (old.community, old.chunk_count, old.size) != (
                info.community,
                info.chunk_count,
                info.size,
            ):
                raise ReplicationError(
                    MANIFEST_CONFLICT, "manifest is registered with another community or size"
                )
            existing.target = info.target
        self._dirty.add(info.manifest_id)
        self._changes += 1

    def _forget(self, manifest_id: str) -> None:
        m = self._manifests.get(manifest_id)
        if m is None:
            return
        for job_id in sorted(m.jobs):
            self.board.cancel(job_id, CancelReason.FORGOTTEN)
        self.holdings.remove_manifest(manifest_id)
        self.targets.forget(m)
        del self._manifests[manifest_id]
        self._dirty.discard(manifest_id)
        self._changes += 1
        self.board.forget_manifest(manifest_id)

    def _advert(self, advert: HaveAdvert, now: int) -> None:
        m = self._manifest(advert.manifest_id)
        count = m.info.chunk_count
        if advert.chunks > count:
            raise ReplicationError(BAD_ADVERT, f"chunks exceeds the manifest's {count} chunks")
        if advert.chunks == 0:
            self.holdings.remove(advert.holder, advert.manifest_id)
        else:
            self._record(advert.holder, m, advert.chunks, now, kept=advert.keep)
        if advert.chunks == count:
            job_id = self.board.job_of(m, advert.holder)
            if job_id is not None:
                self.board.succeed(job_id)
        self._dirty.add(advert.manifest_id)

    def _report(self, report: JobReport, now: int) -> None:
        m = self._manifest(report.manifest_id)
        count = m.info.chunk_count
        if report.chunks > count:
            raise ReplicationError(BAD_REPORT, f"chunks exceeds the manifest's {count} chunks")
        slot = self.board.jobs.get(report.job_id)
        if slot is not None and (slot.job.fetcher, slot.job.manifest_id) != (
            report.fetcher,
            report.manifest_id,
        ):
            raise ReplicationError(BAD_REPORT, "report does not match the job's fetcher/manifest")
        if report.fetcher in report.failed_sources:
            raise ReplicationError(BAD_REPORT, "a fetcher cannot report itself as a failed source")
        for source in report.failed_sources:
            self.board.source_failed(source, now)
        if report.chunks > 0:
            self._record(report.fetcher, m, report.chunks, now)
        self._dirty.add(report.manifest_id)
        if slot is None:
            return  # a late report (job expired or cancelled): only the holding mattered
        slot.failed.update(report.failed_sources)
        if report.state is JobState.PROGRESS:
            if report.chunks > slot.chunks:
                slot.chunks = report.chunks
                slot.last_progress = now
            return
        slot.chunks = max(slot.chunks, report.chunks)
        if report.state is JobState.DONE and report.chunks == count:
            self.board.succeed(report.job_id)
            return
        self.board.end(report.job_id)
        self.board.failed(m, slot, now)
        self.board.note_incomplete(report.fetcher, report.manifest_id)
        peer = self.board.supers.get(report.fetcher)
        if report.reason == STORAGE_FULL and peer is not None:
            peer.full = True
            self.board.changes += 1

    # --- tick phases --------------------------------------------------------------

    def _expire_jobs(self, now: int) -> None:
        timeout = self.config.job_timeout_ms
        for job_id, slot in sorted(self.board.jobs.items()):
            if slot.last_progress + timeout <= now:
                self.board.cancel(job_id, CancelReason.TIMEOUT)
                self.board.failed(self._manifests[slot.job.manifest_id], slot, now)

    def _check_jobs(self) -> None:
        by_manifest: dict[str, list[JobSlot]] = {}
        for _, slot in sorted(self.board.jobs.items()):
            by_manifest.setdefault(slot.job.manifest_id, []).append(slot)
        for manifest_id, slots in by_manifest.items():
            holders = self.holdings.holders(manifest_id)
            keep: list[JobSlot] = []
            for slot in slots:
                if any(source in holders for source in slot.job.sources):
                    keep.append(slot)
                else:
                    self.board.cancel(slot.job.job_id, CancelReason.NO_SOURCE)
            target = self._target(self._manifests[manifest_id])
            room = max(0, target - self.holdings.replicas(manifest_id))
            # Keep the jobs furthest along; drop the rest once others reached the target.
            keep.sort(key=lambda s: (-s.chunks, s.job.issued_at, s.job.job_id))
            for slot in keep[room:]:
                self.board.cancel(slot.job.job_id, CancelReason.TARGET_MET)

    def _assign(self, now: int) -> None:
        board, holdings = self.board, self.holdings
        open_peers = board.open_peers()
        if not open_peers:
            return
        # A pass that found nothing to do finds nothing again until some fact changes or
        # a backoff ends: skip it (super-peers with free slots but no room for anything
        # under target would otherwise cost a full scan every tick).
        signature = (holdings.changes, board.changes, self._changes)
        if self._idle is not None and self._idle[0] == signature and now < self._idle[1]:
            return
        self._idle = None
        started = 0

        def visit(m: ManifestState) -> bool:
            nonlocal started
            manifest_id = m.info.manifest_id
            if m.retry_at > now:
                self.targets.sleep(m)
                return True
            if holdings.holder_count(manifest_id) == 0:
                return True
            need = self._target(m) - holdings.replicas(manifest_id) - len(m.jobs)
            for _ in range(need):
                candidate = board.pick(m, now, open_peers)
                if candidate is None:
                    break
                board.start(m, candidate, now)
                started += 1
                peer = candidate.peer
                if board.has_slot(peer):
                    open_peers[peer.peer_id] = board.free(peer)
                else:
                    del open_peers[peer.peer_id]
            return bool(open_peers)

        # Fewest replicas first (one more loss could make them unrecoverable), then the
        # largest shortfall, then the longest under target.
        self.targets.visit_by_urgency(visit)
        if started == 0:
            wake = [b.until for b in board.source_backoff.values() if b.until > now]
            sleeper = self.targets.next_wake()
            if sleeper is not None:
                wake.append(sleeper)
            self._idle = (signature, min(wake, default=MAX_TIME))

    # --- helpers ------------------------------------------------------------------

    def _clock(self, now: int) -> int:
        if type(now) is not int or now < 0:
            raise TypeError("now must be a non-negative integer (ms)")
        # Adapters in several processes may disagree by a few ms: time never runs back.
        self._now = max(self._now, now)
        return self._now

    def _manifest(self, manifest_id: str) -> ManifestState:
        m = self._manifests.get(manifest_id)
        if m is None:
            raise ReplicationError(UNKNOWN_MANIFEST, "manifest is not registered")
        return m

    def _target(self, m: ManifestState) -> int:
        return self.targets.target(m)

    def _record(
        self, holder: str, m: ManifestState, chunks: int, now: int, *, kept: bool = True
    ) -> None:
        self.holdings.record(
            holder,
            m.info.manifest_id,
            chunks=chunks,
            chunk_count=m.info.chunk_count,
            now=now,
            kept=kept,
            protected=self.board.supers,
        )
