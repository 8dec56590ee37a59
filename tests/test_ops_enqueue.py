"""Sending tasks (ops/enqueue.py): by name once the transaction commits, to the project's
Celery app from any thread, with every delay kept below the broker's visibility timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery
from django.db import connection, transaction

from ops.enqueue import backoff, enqueue
from swarmweb.celery import app

Sent = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    calls: Sent = []

    def send_task(name: str, **options: Any) -> None:
        calls.append((name, options))

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


@pytest.mark.django_db(transaction=True)
def test_a_task_is_sent_after_commit_and_not_on_rollback(sent: Sent, settings: Any) -> None:
    settings.CELERY_TASK_DEFAULT_QUEUE = "q-test"
    with transaction.atomic():
        enqueue("beacon.probe_beacon", 7)
        assert sent == []  # a worker must not look for rows not committed yet
    assert sent == [("beacon.probe_beacon", {"args": [7], "queue": "q-test", "countdown": None})]
    try:
        with transaction.atomic():
            enqueue("beacon.probe_beacon", 8)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert len(sent) == 1


@pytest.mark.django_db(transaction=True)
def test_a_task_sent_from_another_thread_goes_to_the_project_app(sent: Sent) -> None:
    # Services commit in sync_to_async's threads, where Celery's "current" app is not the
    # one made last in the main thread: ops.enqueue sends through the default app.
    done: list[BaseException | None] = []

    def run(target: Callable[[], None]) -> None:
        try:
            target()
            done.append(None)
        except BaseException as exc:
            done.append(exc)
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=run, args=(lambda: enqueue("replication.backfill"),))
    thread.start()
    thread.join(10)
    assert done == [None]
    assert [name for name, _ in sent] == ["replication.backfill"]


@pytest.mark.django_db
def test_countdowns_and_backoff_stay_below_the_visibility_timeout(
    sent: Sent, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SWARM_CELERY_MAX_COUNTDOWN_S = 360
    assert [backoff(10.0, retries) for retries in range(7)] == [10, 20, 40, 80, 160, 320, 360]
    assert backoff(1.0, 10, 60.0) == 60.0  # a smaller cap of the caller's wins
    with django_capture_on_commit_callbacks(execute=True):
        enqueue("beacon.deliver_alert", 1, "raised", countdown=3600)
    assert sent[-1][1]["countdown"] == 360


@pytest.mark.django_db(transaction=True)
def test_another_celery_app_made_later_does_not_take_the_tasks(sent: Sent) -> None:
    # What a test's own broker client does (tests/support/fault_worker.py): the app made
    # last becomes Celery's "current" app in its thread.
    other = Celery("elsewhere", broker="memory://")
    try:
        enqueue("beacon.prune_tickets")
    finally:
        other.close()
    assert [name for name, _ in sent] == ["beacon.prune_tickets"]
