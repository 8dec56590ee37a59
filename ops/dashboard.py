"""The operations dashboard: one admin page (staff only) at /admin/dashboard/.

The page is a frame (the time window, summary cards, open alerts) around the panels the
apps register when they start (:func:`register_panel`): the beacon's communities and
capsules, remote beacons and refusals (``beacon.dashboard``). A panel computes its cards,
its template's context and its charts for the window; reads are bounded (a time window, at
most ``MAX_SERIES`` lines per chart). The charts are drawn in the browser with uPlot from
one JSON blob embedded in the page, each ``.sd-chart[data-chart=<name>]`` from its entry
(``ops/static/ops/dashboard.js``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from shared.clock import now_ms

from .models import Alert

WINDOWS_H = (1, 6, 24)
DEFAULT_HOURS = 6
MAX_SERIES = 8
_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Series = dict[str, Any]
Points = dict[str, list[tuple[int, float | None]]]


@dataclass(frozen=True, slots=True)
class Card:
    """One figure in the row at the top; cards are shown by ``order``."""

    value: int | str
    label: str
    order: int
    state: str = ""  # "", "good", "warn" or "bad"
    element_id: str = ""


@dataclass(frozen=True, slots=True)
class PanelView:
    """What a panel shows for one window."""

    context: dict[str, Any]
    cards: list[Card] = field(default_factory=list)
    charts: dict[str, Series] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Panel:
    """A part of the page: ``build(now_ms, hours)`` gives what ``template`` renders (its
    context is ``p`` there)."""

    name: str
    template: str
    build: Callable[[int, int], PanelView]


_panels: dict[str, Panel] = {}


def register_panel(panel: Panel) -> None:
    """Show ``panel`` on the dashboard, after those registered before it."""
    _panels[panel.name] = panel


def parse_labels(text: str) -> dict[str, str]:
    """The labels of a rendered series, ``{a="x",b="y"}`` -> ``{"a": "x", "b": "y"}``."""
    return dict(_LABEL_RE.findall(text))


def align(points: Points) -> Series:
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


def top(points: Points) -> Points:
    """The ``MAX_SERIES`` lines with the highest peaks, by name."""

    def weight(item: tuple[str, list[tuple[int, float | None]]]) -> float:
        return max((v or 0.0 for _, v in item[1]), default=0.0)

    kept = sorted(points.items(), key=weight, reverse=True)[:MAX_SERIES]
    # by name, so one beacon or community gets the same colour in every chart
    return dict(sorted(kept))


def chart(points: Points) -> Series:
    """A chart of at most ``MAX_SERIES`` lines, ready for uPlot."""
    return align(top(points))


def alerts_view() -> PanelView:
    open_alerts = list(Alert.objects.filter(resolved_at__isnull=True).order_by("-opened_at"))
    count = len(open_alerts)
    card = Card(
        value=count,
        label=f"open alert{'' if count == 1 else 's'}",
        order=40,
        state="bad" if count else "good",
        element_id="sd-alert-count",
    )
    recent = list(Alert.objects.filter(resolved_at__isnull=False)[:5])
    return PanelView(context={"open": open_alerts, "recent": recent}, cards=[card])


def dashboard_context(now: int, hours: int) -> dict[str, Any]:
    alerts = alerts_view()
    panels = []
    cards = list(alerts.cards)
    charts: dict[str, Series] = {}
    for panel in _panels.values():
        view = panel.build(now, hours)
        panels.append({"name": panel.name, "template": panel.template, "context": view.context})
        cards.extend(view.cards)
        charts.update(view.charts)
    cards.sort(key=lambda card: card.order)
    return {
        "now": now,
        "hours": hours,
        "windows": WINDOWS_H,
        "cards": cards,
        "alerts": alerts.context,
        "panels": panels,
        "charts": charts,
    }


def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        hours = int(request.GET.get("hours", str(DEFAULT_HOURS)))
    except ValueError:
        hours = DEFAULT_HOURS
    if hours not in WINDOWS_H:
        hours = DEFAULT_HOURS
    context = {
        **admin.site.each_context(request),
        "title": "Swarm operations",
        **dashboard_context(now_ms(), hours),
    }
    return TemplateResponse(request, "ops/dashboard.html", context)


urlpatterns = [
    path("", admin.site.admin_view(dashboard), name="swarm-dashboard"),
]
