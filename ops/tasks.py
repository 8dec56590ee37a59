"""Operations work run by the Celery worker: alert delivery, metric samples, history pruning.

The task names keep the ``beacon.`` prefix they had before the operations app took these
tasks over: they are wire names, in the beat schedule rows and in messages already queued.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from shared.clock import now_ms

from . import alerts, history
from .enqueue import RELIABLE, backoff


@shared_task(name="beacon.deliver_alert", bind=True, max_retries=8, **RELIABLE)
def deliver_alert(self, alert_id: int, event: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return alerts.alert_deliver(alert_id=alert_id, event=event, now=now_ms())
    except alerts.WebhookError as exc:
        countdown = backoff(settings.SWARM_ALERT_RETRY_BACKOFF_S, self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="beacon.sample_metrics", ignore_result=True)
def sample_metrics() -> int:
    return history.metrics_sample(now=now_ms())


@shared_task(name="beacon.prune_history", ignore_result=True)
def prune_history() -> int:
    return history.history_prune(now=now_ms())
