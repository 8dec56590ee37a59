"""Bounded history for the dashboard: counter and gauge samples, pruned by age.

Counters in ``MetricCounter`` only ever grow; sampling them every minute lets the
dashboard show what happened recently (refusals by reason in the last hour) without
adding anything to the paths that count. Apps say what to sample and what else to prune
when they start (``register_counter``, ``register_sampler``, ``register_pruner``), the
way they register /metrics collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings

from . import metrics
from .models import MetricCounter, MetricSample

# now (ms) -> (series name, rendered labels, value) for each gauge series worth keeping
Sampler = Callable[[int], Iterable[tuple[str, str, float]]]
# cutoff (ms) -> rows deleted that are older than it
Pruner = Callable[[int], int]

_counters: list[str] = []
_samplers: list[Sampler] = []
_pruners: list[Pruner] = []


def register_counter(name: str) -> None:
    """Sample every series of counter ``name`` every minute."""
    if name not in _counters:
        _counters.append(name)


def register_sampler(sampler: Sampler) -> None:
    """Store what ``sampler`` returns at every sample."""
    if sampler not in _samplers:
        _samplers.append(sampler)


def register_pruner(pruner: Pruner) -> None:
    """Have ``pruner`` delete its own history older than the cutoff at every prune."""
    if pruner not in _pruners:
        _pruners.append(pruner)


def metrics_sample(*, now: int) -> int:
    """Store the current value of the sampled counters and gauges; returns rows."""
    metrics.flush()  # this process's pending counts belong in the sample too
    rows = [
        MetricSample(name=name, labels=labels, at=now, value=float(value))
        for name, labels, value in MetricCounter.objects.filter(name__in=_counters).values_list(
            "name", "labels", "value"
        )
    ]
    rows += [
        MetricSample(name=name, labels=labels, at=now, value=value)
        for sampler in _samplers
        for name, labels, value in sampler(now)
    ]
    MetricSample.objects.bulk_create(rows)
    return len(rows)


def history_prune(*, now: int) -> int:
    """Delete samples, and what the apps registered, older than SWARM_HISTORY_HOURS;
    returns rows."""
    cutoff = now - settings.SWARM_HISTORY_HOURS * 3_600_000
    deleted = MetricSample.objects.filter(at__lt=cutoff).delete()[0]
    for pruner in _pruners:
        deleted += pruner(cutoff)
    return deleted
