"""Periodic beacon work, run by the Celery worker."""

from __future__ import annotations

from celery import shared_task

from swarmweb.clock import now_ms

from . import services


@shared_task(name="beacon.prune_tickets", ignore_result=True)
def prune_tickets() -> int:
    return services.tickets_prune(now=now_ms())
