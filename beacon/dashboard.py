"""The beacon's panel of the operations dashboard (``ops.dashboard``), and its action.

Live tickets per community, capsule freshness and peer counts, remote beacon latency
and success over time, and recent refusals by reason; "Publish now" per community
(``/admin/dashboard/publish/<id>/``). Live tickets are sampled every minute and expired
probes and runs pruned with the rest of the dashboard's history (``ops.history``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from ops import dashboard, history
from ops.dashboard import Card, Panel, PanelView, Points, Series, chart, parse_labels
from ops.models import MetricSample
from shared.clock import now_ms

from . import capsules, selectors
from .models import BeaconProbe, Capsule, CapsuleRun, Community, RemoteBeacon

SUCCESS_BUCKET_MS = 300_000
LIVE_TICKETS = "swarm_beacon_live_tickets"
ANNOUNCES = "swarm_beacon_announces_total"


def community_rows(now: int) -> list[dict[str, Any]]:
    minimum: int = settings.SWARM_CAPSULE_MIN_PEERS
    live = dict(selectors.live_counts(now=now))
    newest: dict[int, tuple[int, int, int]] = {}
    for cid, issued, expires, peers in Capsule.objects.order_by("issued_at", "id").values_list(
        "community_id", "issued_at", "expires_at", "peer_count"
    ):
        newest[cid] = (issued, expires, peers)
    rows = []
    for community in Community.objects.order_by("name"):
        last_run = CapsuleRun.objects.filter(community=community).order_by("-id").first()
        capsule = newest.get(community.id)
        rows.append(
            {
                "id": community.id,
                "name": community.name,
                "is_open": community.is_open,
                "live": live.get(community.name, 0),
                "capsule": None
                if capsule is None
                else {
                    "age_s": max(0, now - capsule[0]) // 1000,
                    "expires_in_s": (capsule[1] - now) // 1000,
                    "fresh": capsule[1] > now,
                    "peers": capsule[2],
                    "undersized": capsule[2] < minimum,
                },
                "last_run": last_run,
                "streak": selectors.capsule_failure_streak(community.id),
            }
        )
    return rows


def beacon_rows(now: int) -> list[dict[str, Any]]:
    window = settings.SWARM_BEACON_HEALTH_WINDOW_S * 1000
    rows = []
    for beacon in RemoteBeacon.objects.order_by("name"):
        total, good = selectors.beacon_success(beacon.id, since=now - window)
        last = BeaconProbe.objects.filter(beacon=beacon).order_by("-at").first()
        rate = good / total if total else None
        rows.append(
            {
                "beacon": beacon,
                "probes": total,
                "rate": rate,
                "healthy": rate is None or rate >= settings.SWARM_BEACON_HEALTH_MIN_RATE,
                "last": last,
            }
        )
    return rows


def beacon_charts(since: int) -> tuple[Series, Series]:
    latency: Points = defaultdict(list)
    buckets: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for name, at, ok, ms in (
        BeaconProbe.objects.filter(at__gte=since)
        .order_by("at")
        .values_list("beacon__name", "at", "ok", "latency_ms")
    ):
        latency[name].append((at, round(ms, 1) if ok and ms is not None else None))
        bucket = buckets[name][at - at % SUCCESS_BUCKET_MS]
        bucket[0] += 1
        bucket[1] += int(ok)
    success: Points = {
        name: [(at, round(100 * good / total, 1)) for at, (total, good) in sorted(b.items())]
        for name, b in buckets.items()
    }
    return chart(dict(latency)), chart(success)


def live_ticket_chart(since: int) -> Series:
    points: Points = defaultdict(list)
    for labels, at, value in (
        MetricSample.objects.filter(name=LIVE_TICKETS, at__gte=since)
        .order_by("at")
        .values_list("labels", "at", "value")
    ):
        points[parse_labels(labels).get("community", "?")].append((at, value))
    return chart(dict(points))


def capsule_peer_chart(since: int) -> Series:
    points: Points = defaultdict(list)
    for name, at, peers in (
        CapsuleRun.objects.filter(ok=True, finished_at__gte=since)
        .order_by("finished_at")
        .values_list("community__name", "finished_at", "peer_count")
    ):
        points[name].append((at, float(peers)))
    return chart(dict(points))


def refusals(since: int, now: int) -> tuple[Series, list[dict[str, Any]]]:
    """Refusals per sample interval by reason, and totals for the last hour and day."""
    by_reason: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for labels, at, value in (
        MetricSample.objects.filter(name=ANNOUNCES, at__gte=min(since, now - 86_400_000))
        .order_by("at")
        .values_list("labels", "at", "value")
    ):
        by_reason[parse_labels(labels).get("result", "?")].append((at, value))
    refusal_points: Points = {}
    table: list[dict[str, Any]] = []
    for reason, samples in sorted(by_reason.items()):
        deltas = [(at, max(0.0, value - prev)) for (_, prev), (at, value) in pairwise(samples)]
        if reason != "accepted":
            refusal_points[reason] = [(at, d) for at, d in deltas if at >= since]
        table.append(
            {
                "reason": reason,
                "hour": int(sum(d for at, d in deltas if at >= now - 3_600_000)),
                "day": int(sum(d for _, d in deltas)),
                "refusal": reason != "accepted",
            }
        )
    table.sort(key=lambda row: (not row["refusal"], -int(row["day"])))
    return chart(refusal_points), table


def panel_view(now: int, hours: int) -> PanelView:
    since = now - hours * 3_600_000
    latency, success = beacon_charts(since)
    refusal_chart, refusal_table = refusals(since, now)
    communities = community_rows(now)
    beacons = beacon_rows(now)
    live = sum(row["live"] for row in communities)
    fresh = sum(1 for row in communities if row["capsule"] and row["capsule"]["fresh"])
    with_capsule = sum(1 for row in communities if row["capsule"])
    healthy = sum(1 for row in beacons if row["healthy"])
    places = "community" if len(communities) == 1 else "communities"
    refused = sum(r["hour"] for r in refusal_table if r["refusal"])
    cards = [
        Card(live, f"live tickets in {len(communities)} {places}", 10, element_id="sd-live"),
        Card(
            f"{fresh}/{with_capsule}",
            "fresh capsules",
            20,
            state="warn" if fresh < with_capsule else "",
        ),
        Card(
            f"{healthy}/{len(beacons)}",
            "remote beacons healthy",
            30,
            state="bad" if healthy < len(beacons) else "",
        ),
        Card(refused, "announces refused, last hour", 50),
    ]
    context = {
        "min_peers": settings.SWARM_CAPSULE_MIN_PEERS,
        "communities": communities,
        "beacons": beacons,
        "refusal_table": refusal_table,
    }
    charts = {
        "live_tickets": live_ticket_chart(since),
        "capsule_peers": capsule_peer_chart(since),
        "beacon_latency": latency,
        "beacon_success": success,
        "refusals": refusal_chart,
    }
    return PanelView(context=context, cards=cards, charts=charts)


def _sample_live_tickets(now: int) -> list[tuple[str, str, float]]:
    return [
        (LIVE_TICKETS, f'{{community="{name}"}}', float(live))
        for name, live in selectors.live_counts(now=now)
    ]


def _prune(cutoff: int) -> int:
    deleted = BeaconProbe.objects.filter(at__lt=cutoff).delete()[0]
    deleted += CapsuleRun.objects.filter(finished_at__lt=cutoff).delete()[0]
    return deleted


def register() -> None:
    """Put the beacon on the dashboard, with the history its charts read."""
    history.register_counter(ANNOUNCES)
    history.register_sampler(_sample_live_tickets)
    history.register_pruner(_prune)
    dashboard.register_panel(Panel("beacon", "beacon/dashboard.html", panel_view))


@require_POST
def publish_now(request: HttpRequest, community_id: int) -> HttpResponse:
    community = get_object_or_404(Community, id=community_id)
    publish_and_report(request, [community])
    return HttpResponseRedirect(reverse("swarm-dashboard"))


def publish_and_report(request: HttpRequest, communities: Iterable[Community]) -> None:
    """Publish synchronously and tell the operator what came of it (admin messages)."""
    for community in communities:
        try:
            outcome = capsules.capsule_publish(community_id=community.id, now=now_ms())
        except capsules.PublishError as exc:
            messages.error(request, f"{community.name}: publishing failed: {exc.code}: {exc}")
            continue
        capsule = outcome.capsule
        if capsule is None:
            continue
        level = messages.SUCCESS
        note = ""
        if capsule.peer_count < settings.SWARM_CAPSULE_MIN_PEERS:
            level = messages.WARNING
            note = f" (under the minimum of {settings.SWARM_CAPSULE_MIN_PEERS})"
        messages.add_message(
            request,
            level,
            f"{community.name}: capsule published with {capsule.peer_count} peers{note}",
        )


urlpatterns = [
    path(
        "publish/<int:community_id>/",
        admin.site.admin_view(publish_now),
        name="swarm-dashboard-publish",
    ),
]
