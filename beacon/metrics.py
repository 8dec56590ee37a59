"""Beacon gauges for /metrics: live tickets, capsules, remote beacons."""

from __future__ import annotations

from collections.abc import Iterable

from ops import metrics
from shared.clock import now_ms


def _live_tickets() -> Iterable[metrics.GaugeSample]:
    from .selectors import live_counts

    for name, live in live_counts(now=now_ms()):
        yield (
            "swarm_beacon_live_tickets",
            "Live presence tickets per community.",
            (("community", name),),
            float(live),
        )


def _capsules_and_remotes() -> Iterable[metrics.GaugeSample]:
    from django.conf import settings

    from .models import BeaconProbe, Capsule, Community, RemoteBeacon
    from .selectors import beacon_success, capsule_failure_streak, reported_community_ids

    now = now_ms()
    reported = reported_community_ids(now=now)
    newest: dict[str, tuple[int, int]] = {}
    for name, issued_at, peers in (
        Capsule.objects.filter(community_id__in=reported)
        .order_by("issued_at", "id")
        .values_list("community__name", "issued_at", "peer_count")
    ):
        newest[name] = (issued_at, peers)
    for name, (issued_at, peers) in sorted(newest.items()):
        labels = (("community", name),)
        yield (
            "swarm_capsule_age_seconds",
            "Seconds since the newest capsule of a community was issued.",
            labels,
            max(0, now - issued_at) / 1000,
        )
        yield (
            "swarm_capsule_peers",
            "Peers in the newest capsule of a community.",
            labels,
            float(peers),
        )
    with_runs = Community.objects.filter(id__in=reported, capsule_runs__isnull=False).distinct()
    for community_id, name in with_runs.values_list("id", "name"):
        streak = capsule_failure_streak(community_id)
        if streak or name in newest:
            yield (
                "swarm_capsule_failure_streak",
                "Consecutive failed capsule publishing runs of a community.",
                (("community", name),),
                float(streak),
            )
    window = settings.SWARM_BEACON_HEALTH_WINDOW_S * 1000
    for beacon_id, name in RemoteBeacon.objects.filter(enabled=True).values_list("id", "name"):
        total, good = beacon_success(beacon_id, since=now - window)
        if total:
            yield (
                "swarm_remote_beacon_success_ratio",
                "Share of successful probes of a remote beacon over the health window.",
                (("beacon", name),),
                good / total,
            )
        last = BeaconProbe.objects.filter(beacon_id=beacon_id, ok=True).order_by("-at").first()
        if last is not None and last.latency_ms is not None:
            yield (
                "swarm_remote_beacon_latency_ms",
                "Latency of the last successful probe of a remote beacon.",
                (("beacon", name),),
                last.latency_ms,
            )


def register() -> None:
    metrics.register_collector(_live_tickets)
    metrics.register_collector(_capsules_and_remotes)
