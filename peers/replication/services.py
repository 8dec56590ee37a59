"""The backfill run: rebuild the planner from the database, tick it, carry out its plan.

One run at a time (the :class:`PlannerState` row is locked for the whole run), each in one
transaction: the jobs it hands out, its cancellations and the bookkeeping it saves commit
together, and the super-peers are told after the commit (``peers.superpeer.services``). Runs are
idempotent: a run with nothing new decides nothing new.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from ops import alerts
from ops import metrics as counters
from ops.enqueue import enqueue
from ops.models import Alert as AlertRow
from peers.protocol.replication.model import (
    Alert,
    AlertKind,
    AlertResolved,
    CancelJob,
    CancelReason,
    Plan,
    ReplicationError,
)
from peers.protocol.replication.planner import ReplicationPlanner
from peers.protocol.replication.snapshot import dump_state
from peers.protocol.replication.state import ReplicationConfig
from peers.superpeer import services as superpeer_services
from peers.superpeer.models import FileManifest

from . import metrics, reports, selectors
from .feed import Fed, feed
from .models import Advert, BackfillRun, PlannerState, ReplicaStatus

logger = logging.getLogger(__name__)

TASK = "replication.backfill"
MIN_DELAY_S = 0.25  # a run scheduled for "now" waits at least this long (no hot loop)
ALERT_KINDS = {
    AlertKind.UNDER_TARGET: AlertRow.REPLICA_UNDER_TARGET,
    AlertKind.LOST: AlertRow.REPLICA_LOST,
}


def replication_config(*, prefix: str = "j") -> ReplicationConfig:
    """The planner's configuration from settings (docs/configuration.md "Replication")."""

    def ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    retry_base = ms(settings.SWARM_REPLICATION_RETRY_BASE_S)
    return ReplicationConfig(
        default_target=settings.SWARM_REPLICATION_TARGET,
        holding_ttl_ms=ms(settings.SWARM_REPLICATION_HOLDING_TTL_S),
        super_peer_ttl_ms=ms(settings.SWARM_REPLICATION_SUPERPEER_TTL_S),
        job_timeout_ms=ms(settings.SWARM_REPLICATION_JOB_TIMEOUT_S),
        retry_base_ms=retry_base,
        retry_max_ms=max(retry_base, 600_000),
        alert_after_ms=ms(settings.SWARM_REPLICATION_ALERT_AFTER_S),
        lost_grace_ms=ms(settings.SWARM_REPLICATION_LOST_GRACE_S),
        max_jobs_per_super_peer=settings.SWARM_REPLICATION_MAX_JOBS_PER_SUPERPEER,
        job_id_prefix=prefix,
    )


def request_backfill(trigger: str, *, countdown: float | None = None) -> None:
    """Ask a worker for a run (after the current transaction commits)."""
    enqueue(TASK, trigger[:32], countdown=countdown)


@dataclass(frozen=True)
class RunResult:
    run: BackfillRun
    plan: Plan
    next_deadline: int | None


def backfill_run(*, now: int, trigger: str) -> RunResult:
    """One run at time ``now`` (ms). Returns the run row, the plan and the next time the
    planner has work without new events."""
    started = time.monotonic()
    with transaction.atomic():
        state, _ = PlannerState.objects.get_or_create(pk=1)
        state = PlannerState.objects.select_for_update().get(pk=1)
        run = BackfillRun.objects.create(trigger=trigger[:32], started_at=_at(now))
        planner = ReplicationPlanner(replication_config(prefix=f"b{run.pk}-"))
        # Adverts heard by gossip and not heard again within the holding TTL are stale.
        reports.gossip_adverts_expire(now, planner.config.holding_ttl_ms)
        snapshot = state.snapshot if isinstance(state.snapshot, dict) else {}
        job_ids = [j["job"][0] for j in snapshot.get("jobs", []) if _job_entry(j)]
        facts = selectors.load_facts(job_ids=job_ids)
        fed = feed(planner, facts, snapshot, now)
        plan = planner.tick(now)
        _carry_out(plan, fed, now)
        _save_statuses(planner, plan, now)
        deadline = planner.next_deadline()
        summary = planner.summary()
        state.snapshot = dump_state(planner)
        state.bytes_fetched += fed.bytes_fetched
        _schedule(state, deadline, now)
        state.save()
        run.manifests = summary.manifests
        run.under_target = summary.under_target
        run.lost = summary.lost
        run.super_peers = summary.super_peers_online
        run.jobs_in_flight = summary.jobs
        run.jobs_started = len(plan.jobs)
        run.jobs_cancelled = len(plan.cancels) + len(fed.cancels) + len(fed.orphans)
        run.alerts = len(plan.alerts)
        run.bytes_fetched = fed.bytes_fetched
        run.duration_ms = int((time.monotonic() - started) * 1000)
        if fed.refused:
            run.error = ", ".join(f"{k}: {v}" for k, v in sorted(fed.refused.items()))[:200]
        run.save()
        _prune_history()
    counters.incr(metrics.RUNS, trigger=trigger[:32])
    if plan.jobs:
        counters.incr(metrics.JOBS_STARTED, len(plan.jobs))
    for cancel in plan.cancels:
        counters.incr(metrics.JOBS_CANCELLED, reason=cancel.reason.value)
    if fed.bytes_fetched:
        counters.incr(metrics.BYTES_FETCHED, fed.bytes_fetched)
    return RunResult(run, plan, deadline)


def _job_entry(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("job"), list)
        and bool(entry["job"])
        and isinstance(entry["job"][0], str)
    )


def _carry_out(plan: Plan, fed: Fed, now: int) -> None:
    for job in plan.jobs:
        superpeer_services.superpeer_dispatch_fetch(job)
    for cancel in [*plan.cancels, *fed.cancels]:
        superpeer_services.superpeer_cancel_fetch(cancel)
    for row in fed.orphans:
        # An active job the planner does not know (its bookkeeping was lost): stop it,
        # the planner hands out what is still needed.
        orphan = CancelJob(row.job_id, row.fetcher, row.manifest_id, CancelReason.FORGOTTEN)
        superpeer_services.superpeer_cancel_fetch(orphan)
    for expired in plan.expired:
        Advert.objects.filter(holder=expired.holder, manifest_id=expired.manifest_id).delete()
    for alert in plan.alerts:
        _raise(alert, now)
    for resolved in plan.resolved:
        _resolve(resolved, now)
    for incomplete in plan.incomplete:
        logger.info(
            "incomplete replica: %s holds %d/%d chunks of %s",
            incomplete.holder,
            incomplete.chunks,
            incomplete.chunk_count,
            incomplete.manifest_id,
        )


def _raise(alert: Alert, now: int) -> None:
    what = "has no holder left" if alert.kind is AlertKind.LOST else "is under its target"
    message = (
        f"{alert.manifest_id} ({alert.community}) {what}: "
        f"{alert.replicas}/{alert.target} replicas since {alerts.format_ms(alert.since)}"
    )
    alerts.alert_raise(
        kind=ALERT_KINDS[alert.kind], subject=alert.manifest_id, message=message, now=now
    )


def _resolve(resolved: AlertResolved, now: int) -> None:
    alerts.alert_resolve(kind=ALERT_KINDS[resolved.kind], subject=resolved.manifest_id, now=now)


def _save_statuses(planner: ReplicationPlanner, plan: Plan, now: int) -> None:
    """Write each manifest's replica count and state where it changed."""
    incomplete = {(i.holder, i.manifest_id): i for i in plan.incomplete}
    existing = {s.manifest.manifest_id: s for s in ReplicaStatus.objects.select_related("manifest")}
    manifests = dict(FileManifest.objects.values_list("manifest_id", "id"))
    checked = _at(now)
    changed: list[ReplicaStatus] = []
    created: list[ReplicaStatus] = []
    fields = [
        "community",
        "effective_target",
        "replicas",
        "state",
        "holders",
        "jobs",
        "under_since",
        "lost_since",
        "retry_at",
    ]
    for manifest_id, pk in manifests.items():
        try:
            status = planner.status(manifest_id)
        except ReplicationError:  # not registered (refused): leave its row as it was
            continue
        holders = (
            [{"peer": p, "kind": "replica"} for p in status.complete]
            + [{"peer": p, "kind": "cached"} for p in status.cached]
            + [
                {
                    "peer": p,
                    "kind": "incomplete" if (p, manifest_id) in incomplete else "partial",
                }
                for p in status.partial
            ]
        )
        if status.target == 0:
            state = ReplicaStatus.OFF
        elif status.lost:
            state = ReplicaStatus.LOST
        elif status.replicas < status.target:
            state = ReplicaStatus.UNDER
        else:
            state = ReplicaStatus.OK
        values = {
            "community": status.community,
            "effective_target": status.target,
            "replicas": status.replicas,
            "state": state,
            "holders": holders,
            "jobs": list(status.jobs),
            "under_since": _dt(status.under_since),
            "lost_since": None,
            "retry_at": _dt(status.retry_at) if status.retry_at > now else None,
        }
        row = existing.get(manifest_id)
        if status.lost:
            values["lost_since"] = (row.lost_since if row is not None else None) or checked
        if row is None:
            created.append(ReplicaStatus(manifest_id=pk, checked_at=checked, **values))
            continue
        if any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.checked_at = checked
            changed.append(row)
    if created:
        ReplicaStatus.objects.bulk_create(created, ignore_conflicts=True)
    if changed:
        ReplicaStatus.objects.bulk_update(changed, [*fields, "checked_at"], batch_size=500)


def _schedule(state: PlannerState, deadline: int | None, now: int) -> None:
    """Ask for a run at the planner's next deadline, unless one is already due sooner."""
    if deadline is None:
        return
    pending = state.next_run_ms
    if pending is not None and now < pending <= deadline:
        return
    # A far deadline gets an earlier run, which schedules the next one (a task may not
    # wait in a worker longer than settings.SWARM_CELERY_MAX_COUNTDOWN_S).
    countdown = min(
        max(MIN_DELAY_S, (deadline - now) / 1000), settings.SWARM_CELERY_MAX_COUNTDOWN_S
    )
    state.next_run_ms = now + int(countdown * 1000)
    request_backfill("deadline", countdown=countdown)


def _prune_history() -> None:
    keep = settings.SWARM_REPLICATION_HISTORY_RUNS
    cutoff = BackfillRun.objects.order_by("-id").values_list("id", flat=True)[keep : keep + 1]
    oldest_kept = list(cutoff)
    if oldest_kept:
        BackfillRun.objects.filter(id__lte=oldest_kept[0]).delete()


def _at(ms: int) -> datetime:
    # Exact to the millisecond (a float division can be a microsecond off, and then every
    # run would see every row as changed).
    return datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=ms % 1000 * 1000)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else _at(ms)
