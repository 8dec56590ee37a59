"""Celery tasks of the replication orchestrator: a backfill run, on request or periodic.

Runs are idempotent (a run rebuilds the planner from the database and decides only what
is still needed) and serialized by a row lock, so duplicates cost one short run each.
``acks_late`` with ``reject_on_worker_lost``: a run cut short by a dying worker is handed
out again; its transaction was rolled back, so nothing half-done remains.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError

from ops.enqueue import RELIABLE, backoff
from shared.clock import now_ms

from . import services

log = logging.getLogger(__name__)


@shared_task(name="replication.backfill", bind=True, max_retries=5, **RELIABLE)
def backfill(self, trigger: str = "request") -> int:  # type: ignore[no-untyped-def]
    """One backfill run; returns the number of jobs it handed out."""
    try:
        result = services.backfill_run(now=now_ms(), trigger=trigger)
    except DatabaseError as exc:
        log.warning("backfill run failed (%s), retrying", exc)
        raise self.retry(exc=exc, countdown=backoff(1.0, self.request.retries, 60.0)) from exc
    return result.run.jobs_started


@shared_task(name="replication.backfill_periodic", ignore_result=True)
def backfill_periodic() -> int:
    """The beat entry (every 30 s by default): a run even when nothing asked for one."""
    return services.backfill_run(now=now_ms(), trigger="periodic").run.jobs_started
