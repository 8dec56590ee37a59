"""Send beacon tasks by name, after the current transaction commits.

By name, so services need not import the task module (which imports them); after
commit, so a worker never looks for a row that is not there yet; to the queue named
in settings at send time, so deployments (and test runs) sharing a Redis stay apart.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction


def enqueue(name: str, *args: object, countdown: float | None = None) -> None:
    from swarmweb.celery import app

    if countdown is not None:
        # A worker holds a deferred task unacknowledged while it waits: past the visibility
        # timeout it would be handed out again (settings.SWARM_CELERY_MAX_COUNTDOWN_S).
        countdown = min(countdown, settings.SWARM_CELERY_MAX_COUNTDOWN_S)

    def send() -> None:
        app.send_task(
            name, args=list(args), queue=settings.CELERY_TASK_DEFAULT_QUEUE, countdown=countdown
        )

    transaction.on_commit(send)
