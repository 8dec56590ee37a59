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

from .replication_holdings import HoldingsView
from .replication_jobs import JobBoard
from .replication_model import (
    BAD_ADVERT,
    BAD_REPORT,
    MANIFEST_CONFLICT,
    UNKNOWN_MANIFEST,
    Alert,
    AlertKind,
    AlertResolved,
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
from .replication_state import (
    JobSlot,
    ManifestState,
    ManifestStatus,
    Outbox,
    ReplicationConfig,
    Summary,
)

__all__ = ["ReplicationConfig", "ReplicationPlanner"]

STORAGE_FULL = "storage_full"


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
        self._community_targets: dict[str, int] = {}
        self._under: dict[str, ManifestState] = {}
        self._lost: dict[str, ManifestState] = {}
        self._dirty: set[str] = set()
        self._now = 0

    # --- inputs -------------------------------------------------------------------

    def handle(self, event: Event, now: int) -> None:
        """Feed one fact learned at ``now``; raises :class:`ReplicationError` on bad input."""
        now = self._clock(now)
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
        elif isinstance(event, CommunityTarget):
            self._community_targets[event.community] = event.target
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
        self.board.expire_super_peers(now)
        self.board.forget_old_backoffs(now)
        self._expire_jobs(now)
        self._check_jobs()
        for manifest_id in sorted(self._dirty):
            if manifest_id in self._manifests:
                self._evaluate(self._manifests[manifest_id], now)
        self._dirty.clear()
        self._raise_alerts(now)
        self._assign(now)
        return self._out.flush()

    def next_deadline(self) -> int | None:
        """The earliest time at which ``tick`` has something to do without new events."""
        cfg = self.config
        times = [self.holdings.next_expiry()]
        times += [s.seen_at + cfg.super_peer_ttl_ms for s in self.board.supers.values() if s.online]
        times += [slot.last_progress + cfg.job_timeout_ms for slot in self.board.jobs.values()]
        for m in self._under.values():
            if m.retry_at > self._now:
                times.append(m.retry_at)
            if not m.under_alerted and m.under_since is not None:
                times.append(m.under_since + cfg.alert_after_ms)
        times += [
            m.lost_since + cfg.lost_grace_ms
            for m in self._lost.values()
            if m.lost_since is not None and not m.lost_alerted
        ]
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
            complete=tuple(sorted(h.holder for h in holders if h.complete)),
            partial=tuple(sorted(h.holder for h in holders if not h.complete)),
            jobs=tuple(sorted(m.jobs)),
            under_since=m.under_since,
            lost=m.lost_since is not None,
            retry_at=m.retry_at,
        )

    def summary(self) -> Summary:
        return Summary(
            manifests=len(self._manifests),
            at_target=len(self._manifests) - len(self._under),
            under_target=len(self._under),
            lost=len(self._lost),
            jobs=len(self.board.jobs),
            super_peers_online=sum(1 for s in self.board.supers.values() if s.online),
        )

    def active_jobs(self) -> tuple[FetchJob, ...]:
        return tuple(slot.job for _, slot in sorted(self.board.jobs.items()))

    def under_target(self) -> tuple[str, ...]:
        return tuple(sorted(self._under))

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

    def _forget(self, manifest_id: str) -> None:
        m = self._manifests.get(manifest_id)
        if m is None:
            return
        for job_id in sorted(m.jobs):
            self.board.cancel(job_id, CancelReason.FORGOTTEN)
        self.holdings.remove_manifest(manifest_id)
        target = self._target(m)
        for kind, alerted in (
            (AlertKind.UNDER_TARGET, m.under_alerted),
            (AlertKind.LOST, m.lost_alerted),
        ):
            if alerted:
                self._out.resolved.append(AlertResolved(kind, manifest_id, 0, target))
        del self._manifests[manifest_id]
        self._under.pop(manifest_id, None)
        self._lost.pop(manifest_id, None)
        self._dirty.discard(manifest_id)
        self.board.forget_manifest(manifest_id)

    def _advert(self, advert: HaveAdvert, now: int) -> None:
        m = self._manifest(advert.manifest_id)
        count = m.info.chunk_count
        if advert.chunks > count:
            raise ReplicationError(BAD_ADVERT, f"chunks exceeds the manifest's {count} chunks")
        if advert.chunks == 0:
            self.holdings.remove(advert.holder, advert.manifest_id)
        else:
            self._record(advert.holder, m, advert.chunks, now)
        if advert.chunks == count:
            job_id = self.board.job_of(m, advert.holder)
            if job_id is not None:
                self.board.succeed(job_id, failed_sources=())
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
        if report.state is JobState.PROGRESS:
            if report.chunks > slot.chunks:
                slot.chunks = report.chunks
                slot.last_progress = now
            return
        slot.chunks = max(slot.chunks, report.chunks)
        if report.state is JobState.DONE and report.chunks == count:
            self.board.succeed(report.job_id, failed_sources=report.failed_sources)
            return
        self.board.end(report.job_id)
        self.board.failed(m, slot, now)
        self.board.note_incomplete(report.fetcher, report.manifest_id)
        peer = self.board.supers.get(report.fetcher)
        if report.reason == STORAGE_FULL and peer is not None:
            peer.full = True

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

    def _evaluate(self, m: ManifestState, now: int) -> None:
        manifest_id = m.info.manifest_id
        replicas = self.holdings.replicas(manifest_id)
        target = self._target(m)
        if replicas < target:
            if m.under_since is None:
                m.under_since = now
                self._under[manifest_id] = m
        elif m.under_since is not None:
            m.under_since = None
            del self._under[manifest_id]
            if m.under_alerted:
                m.under_alerted = False
                self._out.resolved.append(
                    AlertResolved(AlertKind.UNDER_TARGET, manifest_id, replicas, target)
                )
        if self.holdings.holder_count(manifest_id) == 0 and target > 0:
            if m.lost_since is None:
                m.lost_since = now
                self._lost[manifest_id] = m
        elif m.lost_since is not None:
            m.lost_since = None
            del self._lost[manifest_id]
            if m.lost_alerted:
                m.lost_alerted = False
                self._out.resolved.append(
                    AlertResolved(AlertKind.LOST, manifest_id, replicas, target)
                )

    def _raise_alerts(self, now: int) -> None:
        cfg = self.config
        for _, m in sorted(self._under.items()):
            since = m.under_since
            if since is not None and not m.under_alerted and now - since >= cfg.alert_after_ms:
                m.under_alerted = True
                self._out.alerts.append(self._alert(AlertKind.UNDER_TARGET, m, since))
        for _, m in sorted(self._lost.items()):
            since = m.lost_since
            if since is not None and not m.lost_alerted and now - since >= cfg.lost_grace_ms:
                m.lost_alerted = True
                self._out.alerts.append(self._alert(AlertKind.LOST, m, since))

    def _assign(self, now: int) -> None:
        board, holdings = self.board, self.holdings
        open_peers = board.open_peers()
        if not open_peers:
            return

        def urgency(m: ManifestState) -> tuple[int, int, int, str]:
            replicas = holdings.replicas(m.info.manifest_id)
            return (replicas, replicas - self._target(m), m.under_since or 0, m.info.manifest_id)

        # Fewest replicas first (one more loss could make them unrecoverable), then the
        # largest shortfall, then the longest under target.
        for m in sorted(self._under.values(), key=urgency):
            manifest_id = m.info.manifest_id
            if m.retry_at > now or holdings.holder_count(manifest_id) == 0:
                continue
            need = self._target(m) - holdings.replicas(manifest_id) - len(m.jobs)
            for _ in range(need):
                candidate = board.pick(m, now, open_peers)
                if candidate is None:
                    break
                board.start(m, candidate, now)
                peer = candidate.peer
                if board.has_slot(peer):
                    open_peers[peer.peer_id] = board.free(peer)
                else:
                    del open_peers[peer.peer_id]
                    if not open_peers:
                        return

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
        if m.target is not None:
            return m.target
        return self._community_targets.get(m.info.community, self.config.default_target)

    def _record(self, holder: str, m: ManifestState, chunks: int, now: int) -> None:
        self.holdings.record(
            holder,
            m.info.manifest_id,
            chunks=chunks,
            chunk_count=m.info.chunk_count,
            now=now,
            protected=self.board.supers,
        )

    def _alert(self, kind: AlertKind, m: ManifestState, since: int) -> Alert:
        manifest_id = m.info.manifest_id
        return Alert(
            kind,
            manifest_id,
            m.info.community,
            self.holdings.replicas(manifest_id),
            self._target(m),
            since,
        )
