"""The operations dashboard: one admin page (staff only) at /admin/dashboard/.

Live tickets per community, capsule freshness and peer counts, remote beacon latency
and success over time, open alerts and recent refusals by reason. The reads are
bounded (a time window, at most ``MAX_SERIES`` lines per chart); the charts are drawn
in the browser with uPlot from the JSON embedded in the page.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from shared.clock import now_ms

from . import capsules, history, selectors
from .models import Alert, BeaconProbe, Capsule, CapsuleRun, Community, MetricSample, RemoteBeacon

WINDOWS_H = (1, 6, 24)
MAX_SERIES = 8
SUCCESS_BUCKET_MS = 300_000
_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Series = dict[str, Any]


def _labels(text: str) -> dict[str, str]:
    return dict(_LABEL_RE.findall(text))


def align(points: dict[str, list[tuple[int, float | None]]]) -> Series:
    """uPlot's shape: one x axis (seconds) and one value list per line, None in gaps."""
    xs = sorted({at for series in points.values() for at, _ in series})
    index = {at: i for i, at in enumerate(xs)}
    lines = []
    for label, series in points.items():
        values: list[float | None] = [None] * len(xs)
        for at, value in series:
            values[index[at]] = value
        lines.append({"label": label, "values": values})
    return {"x": [at / 1000 for at in xs], "series": lines}


def _top(points: dict[str, list[tuple[int, float | None]]]) -> dict[str, Any]:
    def weight(item: tuple[str, list[tuple[int, float | None]]]) -> float:
        return max((v or 0.0 for _, v in item[1]), default=0.0)

    kept = sorted(points.items(), key=weight, reverse=True)[:MAX_SERIES]
    # by name, so one beacon or community gets the same colour in every chart
    return dict(sorted(kept))


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
    latency: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
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
    success: dict[str, list[tuple[int, float | None]]] = {
        name: [(at, round(100 * good / total, 1)) for at, (total, good) in sorted(b.items())]
        for name, b in buckets.items()
    }
    return align(_top(dict(latency))), align(_top(success))


def live_ticket_chart(since: int) -> Series:
    points: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    for labels, at, value in (
        MetricSample.objects.filter(name=history.LIVE_TICKETS, at__gte=since)
        .order_by("at")
        .values_list("labels", "at", "value")
    ):
        points[_labels(labels).get("community", "?")].append((at, value))
    return align(_top(dict(points)))


def capsule_peer_chart(since: int) -> Series:
    points: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    for name, at, peers in (
        CapsuleRun.objects.filter(ok=True, finished_at__gte=since)
        .order_by("finished_at")
        .values_list("community__name", "finished_at", "peer_count")
    ):
        points[name].append((at, float(peers)))
    return align(_top(dict(points)))


def refusals(since: int, now: int) -> tuple[Series, list[dict[str, Any]]]:
    """Refusals per sample interval by reason, and totals for the last hour and day."""
    by_reason: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for labels, at, value in (
        MetricSample.objects.filter(
            name="swarm_beacon_announces_total", at__gte=min(since, now - 86_400_000)
        )
        .order_by("at")
        .values_list("labels", "at", "value")
    ):
        by_reason[_labels(labels).get("result", "?")].append((at, value))
    chart: dict[str, list[tuple[int, float | None]]] = {}
    table: list[dict[str, Any]] = []
    for reason, samples in sorted(by_reason.items()):
        deltas = [(at, max(0.0, value - prev)) for (_, prev), (at, value) in pairwise(samples)]
        if reason != "accepted":
            chart[reason] = [(at, d) for at, d in deltas if at >= since]
        table.append(
            {
                "reason": reason,
                "hour": int(sum(d for at, d in deltas if at >= now - 3_600_000)),
                "day": int(sum(d for _, d in deltas)),
                "refusal": reason != "accepted",
            }
        )
    table.sort(key=lambda row: (not row["refusal"], -int(row["day"])))
    return align(_top(chart)), table


def dashboard_context(now: int, hours: int) -> dict[str, Any]:
    since = now - hours * 3_600_000
    latency, success = beacon_charts(since)
    refusal_chart, refusal_table = refusals(since, now)
    communities = community_rows(now)
    beacons = beacon_rows(now)
    open_alerts = list(Alert.objects.filter(resolved_at__isnull=True).order_by("-opened_at"))
    return {
        "now": now,
        "hours": hours,
        "windows": WINDOWS_H,
        "min_peers": settings.SWARM_CAPSULE_MIN_PEERS,
        "communities": communities,
        "beacons": beacons,
        "open_alerts": open_alerts,
        "recent_alerts": list(Alert.objects.filter(resolved_at__isnull=False)[:5]),
        "refusal_table": refusal_table,
        "totals": {
            "live": sum(row["live"] for row in communities),
            "communities": len(communities),
            "fresh": sum(1 for row in communities if row["capsule"] and row["capsule"]["fresh"]),
            "with_capsule": sum(1 for row in communities if row["capsule"]),
            "beacons_ok": sum(1 for row in beacons if row["healthy"]),
            "beacons": len(beacons),
            "alerts": len(open_alerts),
            "refused_hour": sum(r["hour"] for r in refusal_table if r["refusal"]),
        },
        "charts": {
            "live_tickets": live_ticket_chart(since),
            "capsule_peers": capsule_peer_chart(since),
            "beacon_latency": latency,
            "beacon_success": success,
            "refusals": refusal_chart,
        },
    }


def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        hours = int(request.GET.get("hours", "6"))
    except ValueError:
        hours = 6
    if hours not in WINDOWS_H:
        hours = 6
    context = {
        **admin.site.each_context(request),
        "title": "Swarm operations",
        **dashboard_context(now_ms(), hours),
    }
    return TemplateResponse(request, "admin/swarm_dashboard.html", context)


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
    path("", admin.site.admin_view(dashboard), name="swarm-dashboard"),
    path(
        "publish/<int:community_id>/",
        admin.site.admin_view(publish_now),
        name="swarm-dashboard-publish",
    ),
]
