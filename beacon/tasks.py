"""Periodic beacon work, run by the Celery worker.

Tasks take ids and call a service. Publishing must not be lost when a worker dies: it is
``acks_late`` with ``reject_on_worker_lost`` (``ops.enqueue.RELIABLE``), the broker hands
the message out again, and the service makes a repeat harmless.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from ops.enqueue import RELIABLE, backoff, enqueue
from shared.clock import now_ms

from . import capsules, probes, selectors, services
from .models import RemoteBeacon

log = logging.getLogger(__name__)


@shared_task(name="beacon.prune_tickets", ignore_result=True)
def prune_tickets() -> int:
    return services.tickets_prune(now=now_ms())


@shared_task(name="beacon.publish_all_capsules", ignore_result=True)
def publish_all_capsules() -> int:
    """Queue one publishing task per active community (the 5-minute beat entry)."""
    requested_at = now_ms()
    ids = selectors.active_community_ids(now=requested_at)
    for community_id in ids:
        enqueue("beacon.publish_capsule", community_id, requested_at)
    return len(ids)


@shared_task(name="beacon.publish_capsule", bind=True, max_retries=2, **RELIABLE)
def publish_capsule(self, community_id: int, requested_at: int | None = None) -> None:  # type: ignore[no-untyped-def]
    try:
        capsules.capsule_publish(community_id=community_id, now=now_ms(), requested_at=requested_at)
    except capsules.PublishError as exc:
        if self.request.retries >= self.max_retries:
            log.error("capsule publishing for community %s gave up: %s", community_id, exc.code)
            return
        countdown = backoff(settings.SWARM_CAPSULE_RETRY_BACKOFF_S, self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="beacon.probe_beacons", ignore_result=True)
def probe_beacons() -> int:
    """Queue one probe per enabled remote beacon (the 1-minute beat entry)."""
    ids = list(RemoteBeacon.objects.filter(enabled=True).values_list("id", flat=True))
    for beacon_id in ids:
        enqueue("beacon.probe_beacon", beacon_id)
    return len(ids)


@shared_task(name="beacon.probe_beacon", ignore_result=True)
def probe_beacon(beacon_id: int) -> None:
    probes.beacon_probe(beacon_id=beacon_id, now=now_ms())
