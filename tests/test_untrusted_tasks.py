"""Celery task inputs that went stale between enqueue and run (a row deleted meanwhile, a
redelivery): each task finishes as a no-op with its outcome, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beacon import capsule_keys, capsules, tasks
from beacon.models import Capsule, Community, RemoteBeacon
from ops import tasks as ops_tasks
from shared.clock import now_ms

pytestmark = pytest.mark.django_db


@pytest.fixture
def var(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    settings.SWARM_CAPSULE_DIR = tmp_path / "var" / "capsules"
    capsule_keys.create(now=0)
    return Path(settings.VAR_DIR)


def deleted_community_id() -> int:
    community = Community.objects.create(name="gone-before-its-task")
    community_id = community.id
    community.delete()
    return community_id


def test_publishing_for_a_community_deleted_since_the_task_was_queued_is_skipped(
    var: Path,
) -> None:
    outcome = capsules.capsule_publish(community_id=deleted_community_id(), now=now_ms())
    assert outcome == capsules.PublishOutcome(capsule=None, run=None, skipped=True)
    assert not Capsule.objects.exists()


def test_the_publish_task_for_a_deleted_community_succeeds_as_a_no_op(var: Path) -> None:
    result = tasks.publish_capsule.apply(args=(deleted_community_id(), now_ms()))
    assert result.successful(), result.traceback
    assert not Capsule.objects.exists()


def test_alert_delivery_and_probes_of_deleted_rows_are_no_ops() -> None:
    assert ops_tasks.deliver_alert.apply(args=(987_654, "raised")).get() == "missing"
    beacon = RemoteBeacon.objects.create(name="gone", base_url="http://127.0.0.1:1/beacon/v1/")
    beacon_id = beacon.id
    beacon.delete()
    assert tasks.probe_beacon.apply(args=(beacon_id,)).successful()
