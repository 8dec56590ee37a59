"""Beacon gauges for /metrics."""

from __future__ import annotations

from collections.abc import Iterable

from swarmweb import metrics
from swarmweb.clock import now_ms


def _live_tickets() -> Iterable[metrics.GaugeSample]:
    from .selectors import live_counts

    for name, live in live_counts(now=now_ms()):
        yield (
            "swarm_beacon_live_tickets",
            "Live presence tickets per community.",
            (("community", name),),
            float(live),
        )


def register() -> None:
    metrics.register_collector(_live_tickets)
