"""Targets, the manifests under them or lost, in order of urgency, and their alerts."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from .holdings import HoldingsView
from .model import Alert, AlertKind, AlertResolved
from .state import ManifestState, Outbox, ReplicationConfig

# (replicas, replicas - target, under since, manifest id): smallest is most urgent.
Urgency = tuple[int, int, int, str]


class TargetTracker:
    """Keeps, for the manifests whose facts changed, whether they are under target or lost
    and since when, an urgency queue of those under target, and the alerts that fall due.

    The queue and the alert timers are heaps with lazy deletion, so a tick costs the
    entries it visits, not a sort of every manifest under target.
    """

    def __init__(self, config: ReplicationConfig, holdings: HoldingsView, out: Outbox) -> None:
        self.config = config
        self.holdings = holdings
        self.out = out
        self.community_targets: dict[str, int] = {}
        self.under: dict[str, ManifestState] = {}
        self.lost: dict[str, ManifestState] = {}
        self._queue: list[Urgency] = []
        self._queued: dict[str, Urgency] = {}
        # (due, manifest id, kind); an entry is stale once its episode ended or alerted.
        self._due: list[tuple[int, str, AlertKind]] = []
        # (retry at, manifest id): manifests backing off, out of the queue until then.
        self._sleeping: list[tuple[int, str]] = []

    def target(self, m: ManifestState) -> int:
        if m.target is not None:
            return m.target
        return self.community_targets.get(m.info.community, self.config.default_target)

    def evaluate(self, m: ManifestState, now: int) -> None:
        manifest_id = m.info.manifest_id
        replicas = self.holdings.replicas(manifest_id)
        target = self.target(m)
        if replicas < target:
            if m.under_since is None:
                m.under_since = now
                self.under[manifest_id] = m
                heapq.heappush(
                    self._due,
                    (now + self.config.alert_after_ms, manifest_id, AlertKind.UNDER_TARGET),
                )
            if self.holdings.holder_count(manifest_id) == 0:
                self._queued.pop(manifest_id, None)  # lost: nothing to plan
            elif m.retry_at > now:
                self._queued.pop(manifest_id, None)
                heapq.heappush(self._sleeping, (m.retry_at, manifest_id))
            else:
                self._enqueue(manifest_id, self._urgency(m, replicas, target))
        elif m.under_since is not None:
            m.under_since = None
            del self.under[manifest_id]
            self._queued.pop(manifest_id, None)
            if m.under_alerted:
                m.under_alerted = False
                self.out.resolved.append(
                    AlertResolved(AlertKind.UNDER_TARGET, manifest_id, replicas, target)
                )
        if self.holdings.holder_count(manifest_id) == 0 and target > 0:
            if m.lost_since is None:
                m.lost_since = now
                self.lost[manifest_id] = m
                heapq.heappush(
                    self._due, (now + self.config.lost_grace_ms, manifest_id, AlertKind.LOST)
                )
        elif m.lost_since is not None:
            m.lost_since = None
            del self.lost[manifest_id]
            if m.lost_alerted:
                m.lost_alerted = False
                self.out.resolved.append(
                    AlertResolved(AlertKind.LOST, manifest_id, replicas, target)
                )

    def forget(self, m: ManifestState) -> None:
        manifest_id = m.info.manifest_id
        target = self.target(m)
        for kind, alerted in (
            (AlertKind.UNDER_TARGET, m.under_alerted),
            (AlertKind.LOST, m.lost_alerted),
        ):
            if alerted:
                self.out.resolved.append(AlertResolved(kind, manifest_id, 0, target))
        self.under.pop(manifest_id, None)
        self.lost.pop(manifest_id, None)
        self._queued.pop(manifest_id, None)

    def raise_alerts(self, now: int) -> None:
        while self._due and self._due[0][0] <= now:
            due, manifest_id, kind = heapq.heappop(self._due)
            if kind is AlertKind.UNDER_TARGET:
                m = self.under.get(manifest_id)
                if (
                    m is None
                    or m.under_alerted
                    or m.under_since != due - self.config.alert_after_ms
                ):
                    continue
                m.under_alerted = True
                since = m.under_since
            else:
                m = self.lost.get(manifest_id)
                if m is None or m.lost_alerted or m.lost_since != due - self.config.lost_grace_ms:
                    continue
                m.lost_alerted = True
                since = m.lost_since
            self.out.alerts.append(
                Alert(
                    kind,
                    manifest_id,
                    m.info.community,
                    self.holdings.replicas(manifest_id),
                    self.target(m),
                    since,
                )
            )

    def next_alert(self) -> int | None:
        while self._due:
            due, manifest_id, kind = self._due[0]
            m = (self.under if kind is AlertKind.UNDER_TARGET else self.lost).get(manifest_id)
            if m is not None:
                alerted = m.under_alerted if kind is AlertKind.UNDER_TARGET else m.lost_alerted
                if not alerted:
                    return due
            heapq.heappop(self._due)
        return None

    def sleep(self, m: ManifestState) -> None:
        """Take a manifest backing off out of the queue until ``m.retry_at``."""
        manifest_id = m.info.manifest_id
        if self._queued.pop(manifest_id, None) is not None:
            heapq.heappush(self._sleeping, (m.retry_at, manifest_id))

    def wake(self, now: int) -> None:
        """Put back in the queue the manifests whose backoff ended."""
        while self._sleeping and self._sleeping[0][0] <= now:
            _, manifest_id = heapq.heappop(self._sleeping)
            m = self.under.get(manifest_id)
            if m is not None and m.retry_at <= now and self.holdings.holder_count(manifest_id):
                replicas = self.holdings.replicas(manifest_id)
                self._enqueue(manifest_id, self._urgency(m, replicas, self.target(m)))

    def next_wake(self) -> int | None:
        return self._sleeping[0][0] if self._sleeping else None

    def visit_by_urgency(self, visit: Callable[[ManifestState], bool]) -> None:
        """Call ``visit`` on manifests under target, most urgent first, until it says stop."""
        seen: list[Urgency] = []
        try:
            while self._queue:
                key = heapq.heappop(self._queue)
                manifest_id = key[3]
                if self._queued.get(manifest_id) != key:
                    continue  # stale: the manifest's urgency changed or it is at target
                seen.append(key)
                if not visit(self.under[manifest_id]):
                    break
        finally:
            for key in seen:
                if self._queued.get(key[3]) == key:  # not put to sleep meanwhile
                    heapq.heappush(self._queue, key)

    @staticmethod
    def _urgency(m: ManifestState, replicas: int, target: int) -> Urgency:
        return (replicas, replicas - target, m.under_since or 0, m.info.manifest_id)

    def _enqueue(self, manifest_id: str, key: Urgency) -> None:
        if self._queued.get(manifest_id) == key:
            return
        self._queued[manifest_id] = key
        heapq.heappush(self._queue, key)
        if len(self._queue) > 2 * len(self._queued) + 64:
            self._queue = list(self._queued.values())
            heapq.heapify(self._queue)
