"""Sending tasks: by name after the current transaction commits, and retry delays.

By name, so services need not import the task module (which imports them); after
commit, so a worker never looks for a row that is not there yet; to the queue named
in settings at send time, so deployments (and test runs) sharing a Redis stay apart;
through Celery's default app, which the project makes its own (``swarmweb/celery.py``):
the "current" app would be whichever app was made last in the sending thread.

A worker holds a deferred task (a countdown, a retry) unacknowledged while it waits:
past the broker's visibility timeout it would be handed out again. So every delay is
capped at ``settings.SWARM_CELERY_MAX_COUNTDOWN_S``, what is left of that timeout once a
task has run its longest.
"""

from __future__ import annotations

from celery.app import default_app
from django.conf import settings
from django.db import transaction

# Options of the tasks whose work must not be lost when a worker dies: the broker hands
# the message out again, and the service makes a repeat harmless.
RELIABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


def enqueue(name: str, *args: object, countdown: float | None = None) -> None:
    """Send task ``name`` with ``args`` once the current transaction commits."""
    if countdown is not None:
        countdown = min(countdown, settings.SWARM_CELERY_MAX_COUNTDOWN_S)

    def send() -> None:
        default_app.send_task(
            name, args=list(args), queue=settings.CELERY_TASK_DEFAULT_QUEUE, countdown=countdown
        )

    transaction.on_commit(send)


def backoff(base_s: float, retries: int, cap_s: float = 3600.0) -> float:
    """Doubling delays, never past ``cap_s`` nor past what a worker may hold a task
    waiting (settings.SWARM_CELERY_MAX_COUNTDOWN_S, below the visibility timeout)."""
    cap = min(cap_s, settings.SWARM_CELERY_MAX_COUNTDOWN_S)
    return float(min(cap, base_s * 2**retries))
