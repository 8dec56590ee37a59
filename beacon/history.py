"""Bounded history for the dashboard: counter samples, probes and runs, pruned by age.

Counters in ``MetricCounter`` only ever grow; sampling them every minute lets the
dashboard show what happened recently (refusals by reason in the last hour) without
adding anything to the announce path.
"""

from __future__ import annotations

from django.conf import settings

from .models import BeaconProbe, CapsuleRun, MetricCounter, MetricSample
from .selectors import live_counts

SAMPLED_COUNTERS = ("swarm_beacon_announces_total",)
LIVE_TICKETS = "swarm_beacon_live_tickets"


def metrics_sample(*, now: int) -> int:
    """Store the current value of the sampled counters and live tickets; returns rows."""
    from swarmweb import metrics

    metrics.flush()  # this process's pending counts belong in the sample too
    rows = [
        MetricSample(name=name, labels=labels, at=now, value=float(value))
        for name, labels, value in MetricCounter.objects.filter(
            name__in=SAMPLED_COUNTERS
        ).values_list("name", "labels", "value")
    ]
    rows += [
        MetricSample(name=LIVE_TICKETS, labels=f'{{community="{name}"}}', at=now, value=live)
        for name, live in live_counts(now=now)
    ]
    MetricSample.objects.bulk_create(rows)
    return len(rows)


def history_prune(*, now: int) -> int:
    """Delete samples, probes and runs older than SWARM_HISTORY_HOURS; returns rows."""
    cutoff = now - settings.SWARM_HISTORY_HOURS * 3_600_000
    deleted = 0
    deleted += MetricSample.objects.filter(at__lt=cutoff).delete()[0]
    deleted += BeaconProbe.objects.filter(at__lt=cutoff).delete()[0]
    deleted += CapsuleRun.objects.filter(finished_at__lt=cutoff).delete()[0]
    return deleted
