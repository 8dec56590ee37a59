"""Alerts: raised by the apps' rules (capsule publishing, remote beacon health, replica
counts), delivered once to a webhook, resolved on recovery with a recovery notice.

At most one alert is open per (kind, subject) (a partial unique constraint), so a rule
that keeps firing raises one alert, not one per run. Delivery happens in the
``beacon.deliver_alert`` task (``ops.tasks``) with the alert row locked: a notice already
marked sent is never posted again. A worker killed after the POST but before the mark may post it
twice, so every notice carries a stable ``delivery_id`` for receivers to deduplicate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q

from . import metrics
from .enqueue import enqueue
from .models import Alert

log = logging.getLogger(__name__)

RAISED = "raised"
RESOLVED = "resolved"
EVENTS = (RAISED, RESOLVED)

metrics.describe("swarm_alerts_total", "Alerts raised and resolved, by kind and event.")
metrics.describe("swarm_alert_webhooks_total", "Alert webhook deliveries, by result.")


class WebhookError(Exception):
    """The webhook did not take the notice (network error or non-2xx); retry later."""


def alert_raise(*, kind: str, subject: str, message: str, now: int) -> Alert | None:
    """Open an alert unless one is open for (kind, subject); return it if it is new."""
    if Alert.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).exists():
        return None
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                kind=kind, subject=subject, message=message[:500], opened_at=now
            )
    except IntegrityError:  # another worker opened it first
        return None
    log.warning("alert raised: %s %s: %s", kind, subject, message)
    metrics.incr("swarm_alerts_total", kind=kind, event=RAISED)
    enqueue("beacon.deliver_alert", alert.id, RAISED)
    return alert


def alert_resolve(*, kind: str, subject: str, now: int) -> Alert | None:
    """Resolve the open alert for (kind, subject), if any, and send the recovery notice."""
    alert = Alert.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).first()
    if alert is None:
        return None
    if not Alert.objects.filter(id=alert.id, resolved_at__isnull=True).update(resolved_at=now):
        return None  # resolved concurrently
    alert.resolved_at = now
    log.info("alert resolved: %s %s", kind, subject)
    metrics.incr("swarm_alerts_total", kind=kind, event=RESOLVED)
    enqueue("beacon.deliver_alert", alert.id, RESOLVED)
    return alert


def notice(alert: Alert, event: str) -> dict[str, object]:
    """The webhook's JSON body (``text`` makes it readable by chat webhooks as is)."""
    what = "ALERT" if event == RAISED else "RESOLVED"
    return {
        "event": f"alert.{event}",
        "delivery_id": f"alert-{alert.id}-{event}",
        "alert": {
            "id": alert.id,
            "kind": alert.kind,
            "subject": alert.subject,
            "message": alert.message,
            "opened_at": alert.opened_at,
            "resolved_at": alert.resolved_at,
        },
        "text": f"[swarm] {what} {alert.get_kind_display()}: {alert.subject}"
        + (f" ({alert.message})" if event == RAISED else ""),
    }


def alert_deliver(*, alert_id: int, event: str, now: int) -> str:
    """Post one notice (and, for a recovery, the alert itself first if it never went out).

    Returns ``sent``, ``already_sent``, ``no_webhook`` or ``missing``; raises
    ``WebhookError`` when the webhook failed (the task retries with backoff).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown alert event {event!r}")
    url: str = settings.SWARM_ALERT_WEBHOOK_URL
    try:
        with transaction.atomic():
            alert = Alert.objects.select_for_update().filter(id=alert_id).first()
            if alert is None:
                return "missing"
            pending = [e for e in EVENTS[: EVENTS.index(event) + 1] if not _sent(alert, e)]
            if event not in pending:
                return "already_sent"
            if not url:
                return "no_webhook"
            for step in pending:
                _post(url, notice(alert, step))
                setattr(alert, f"{step}_sent_at", now)
                alert.delivery_attempts += 1
                alert.last_delivery_error = ""
                alert.save(
                    update_fields=[
                        f"{step}_sent_at",
                        "delivery_attempts",
                        "last_delivery_error",
                    ]
                )
    except WebhookError as error:
        Alert.objects.filter(id=alert_id).update(
            last_delivery_error=str(error)[:300], delivery_attempts=F("delivery_attempts") + 1
        )
        metrics.incr("swarm_alert_webhooks_total", result="failed")
        raise
    metrics.incr("swarm_alert_webhooks_total", result="sent")
    return "sent"


def _sent(alert: Alert, event: str) -> bool:
    return getattr(alert, f"{event}_sent_at") is not None


def _post(url: str, payload: dict[str, object]) -> None:
    try:
        response = httpx.post(
            url,
            content=json.dumps(payload).encode(),
            headers={"content-type": "application/json", "user-agent": "swarm-alerts/1"},
            timeout=settings.SWARM_ALERT_WEBHOOK_TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise WebhookError(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise WebhookError(f"webhook answered {response.status_code}")


def format_ms(value: int | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _open_alerts() -> Iterable[metrics.GaugeSample]:
    open_by_kind = dict(
        Alert.objects.values_list("kind").annotate(n=Count("id", filter=Q(resolved_at=None)))
    )
    for kind, _ in Alert.KINDS:
        yield (
            "swarm_alerts_open",
            "Open alerts, by kind.",
            (("kind", kind),),
            float(open_by_kind.get(kind, 0)),
        )


def register_metrics() -> None:
    metrics.register_collector(_open_alerts)
