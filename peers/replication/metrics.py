"""Replication figures at /metrics: gauges from the stored state at scrape time, and the
counters the backfill run adds to (``swarm_replication_*_total``)."""

from __future__ import annotations

from collections.abc import Iterator

from ops import metrics
from ops.metrics import GaugeSample
from peers.superpeer.models import FetchJob

from .models import PlannerState, ReplicaStatus

RUNS = "swarm_replication_runs_total"
JOBS_STARTED = "swarm_replication_jobs_started_total"
JOBS_CANCELLED = "swarm_replication_jobs_cancelled_total"
BYTES_FETCHED = "swarm_replication_bytes_fetched_total"


def _gauges() -> Iterator[GaugeSample]:
    from . import selectors

    states = selectors.status_counts()
    yield (
        "swarm_replication_manifests_under_target",
        "Manifests with fewer complete verified replicas than their target.",
        (),
        float(states.get(ReplicaStatus.UNDER, 0) + states.get(ReplicaStatus.LOST, 0)),
    )
    yield (
        "swarm_replication_manifests_lost",
        "Manifests no live holder has any chunk of.",
        (),
        float(states.get(ReplicaStatus.LOST, 0)),
    )
    yield (
        "swarm_replication_manifests",
        "Manifests tracked by the replication orchestrator.",
        (),
        float(sum(states.values())),
    )
    jobs = selectors.job_counts()
    for state, _ in FetchJob.STATES:
        yield (
            "swarm_replication_jobs",
            "Replication fetch jobs, by state.",
            (("state", state),),
            float(jobs.get(state, 0)),
        )
    fetched = PlannerState.objects.values_list("bytes_fetched", flat=True).first() or 0
    yield (
        "swarm_replication_bytes_fetched",
        "Bytes the replication jobs have fetched into super-peers (verified chunks).",
        (),
        float(fetched),
    )


def register() -> None:
    metrics.describe(RUNS, "Backfill runs, by trigger.")
    metrics.describe(JOBS_STARTED, "Replication jobs handed to super-peers.")
    metrics.describe(JOBS_CANCELLED, "Replication jobs cancelled, by reason.")
    metrics.describe(BYTES_FETCHED, "Bytes of verified chunks replication jobs added.")
    metrics.register_collector(_gauges)
