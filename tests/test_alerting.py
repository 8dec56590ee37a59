"""Alert rules and webhook delivery, in-process with a fake clock and a local webhook.

tests/test_capsule_live.py proves the same end to end with a real Celery worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from beacon import probes
from beacon.models import BeaconProbe, RemoteBeacon
from ops import alerts
from ops.models import Alert
from tests.support.capsules import HttpServer, Recorder, webhook
from tests.support.live import free_port

pytestmark = pytest.mark.django_db
MIN = 60_000
T0 = 1_900_000_000_000


@pytest.fixture
def hook(settings: Any) -> Iterator[Recorder]:
    recorder = Recorder()
    server: HttpServer = webhook(recorder)
    settings.SWARM_ALERT_WEBHOOK_URL = server.url + "/hook"
    yield recorder
    server.close()


def record(beacon: RemoteBeacon, at: int, ok: bool) -> None:
    probes.beacon_probe_record(
        beacon=beacon, now=at, ok=ok, latency_ms=12.0 if ok else None, status=None, error=""
    )


def open_alerts(kind: str = Alert.BEACON_UNHEALTHY) -> list[Alert]:
    return list(Alert.objects.filter(kind=kind, resolved_at__isnull=True))


def test_real_probe_of_a_closed_port_is_a_failure_with_a_code() -> None:
    beacon = RemoteBeacon.objects.create(
        name="closed", base_url=f"http://127.0.0.1:{free_port()}/beacon/v1/", timeout_s=1
    )
    probe = probes.beacon_probe(beacon_id=beacon.id, now=T0)
    assert probe is not None
    assert not probe.ok
    assert probe.error == "connect"


def test_real_probe_of_a_working_beacon_measures_latency() -> None:
    from tests.support.capsules import fake_beacon

    server = fake_beacon(lambda: [])
    try:
        beacon = RemoteBeacon.objects.create(name="up", base_url=server.url + "/beacon/v1/")
        probe = probes.beacon_probe(beacon_id=beacon.id, now=T0)
    finally:
        server.close()
    assert probe is not None
    assert probe.ok
    assert probe.status == 200
    assert probe.latency_ms is not None
    assert probe.latency_ms > 0


def test_success_under_80_percent_over_15_minutes_raises_one_alert_and_recovers() -> None:
    beacon = RemoteBeacon.objects.create(name="flaky", base_url="http://127.0.0.1:9/beacon/v1/")
    for i in range(4):  # 4 of 5 ok = 80%: not under the threshold
        record(beacon, T0 + i * MIN, True)
    record(beacon, T0 + 4 * MIN, False)
    assert open_alerts() == []
    record(beacon, T0 + 5 * MIN, False)  # 4 of 6 = 67%
    record(beacon, T0 + 6 * MIN, False)
    [alert] = open_alerts()
    assert alert.subject == "flaky"
    assert "under 80%" in alert.message
    # successes while the failures are still inside the 15-minute window: still open
    for i in range(7, 12):
        record(beacon, T0 + i * MIN, True)
    assert len(open_alerts()) == 1
    assert Alert.objects.count() == 1
    # once the failures have left the window, the next probe resolves it
    record(beacon, T0 + 22 * MIN, True)
    assert open_alerts() == []
    assert Alert.objects.get().resolved_at == T0 + 22 * MIN


def test_too_few_probes_do_not_judge_a_beacon() -> None:
    beacon = RemoteBeacon.objects.create(name="new", base_url="http://127.0.0.1:9/beacon/v1/")
    record(beacon, T0, False)
    record(beacon, T0 + MIN, False)
    assert open_alerts() == []
    record(beacon, T0 + 2 * MIN, False)
    assert len(open_alerts()) == 1


def test_disabling_a_beacon_resolves_its_alert() -> None:
    beacon = RemoteBeacon.objects.create(name="gone", base_url="http://127.0.0.1:9/beacon/v1/")
    for i in range(3):
        record(beacon, T0 + i * MIN, False)
    beacon.enabled = False
    beacon.save()
    assert probes.beacon_probe(beacon_id=beacon.id, now=T0 + 4 * MIN) is None
    assert open_alerts() == []
    assert BeaconProbe.objects.count() == 3


def test_webhook_gets_each_notice_once(hook: Recorder) -> None:
    alert = alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject="main", message="boom", now=T0)
    assert alert is not None
    assert alerts.alert_deliver(alert_id=alert.id, event="raised", now=T0 + 1) == "sent"
    assert alerts.alert_deliver(alert_id=alert.id, event="raised", now=T0 + 2) == "already_sent"
    alerts.alert_resolve(kind=Alert.PUBLISH_FAILING, subject="main", now=T0 + 3)
    assert alerts.alert_deliver(alert_id=alert.id, event="resolved", now=T0 + 4) == "sent"
    assert alerts.alert_deliver(alert_id=alert.id, event="resolved", now=T0 + 5) == "already_sent"
    bodies = hook.bodies()
    assert [b["event"] for b in bodies] == ["alert.raised", "alert.resolved"]
    assert bodies[0]["delivery_id"] == f"alert-{alert.id}-raised"
    assert bodies[0]["alert"]["kind"] == "publish_failing"
    assert bodies[0]["alert"]["subject"] == "main"
    assert "boom" in bodies[0]["text"]
    assert bodies[1]["alert"]["resolved_at"] == T0 + 3


def test_webhook_failure_raises_for_a_retry_and_records_the_error(hook: Recorder) -> None:
    hook.statuses = [500]
    alert = alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject="x", message="m", now=T0)
    assert alert is not None
    with pytest.raises(alerts.WebhookError, match="500"):
        alerts.alert_deliver(alert_id=alert.id, event="raised", now=T0 + 1)
    alert.refresh_from_db()
    assert alert.raised_sent_at is None
    assert "500" in alert.last_delivery_error
    assert alerts.alert_deliver(alert_id=alert.id, event="raised", now=T0 + 2) == "sent"
    alert.refresh_from_db()
    assert alert.raised_sent_at == T0 + 2
    assert alert.delivery_attempts == 2
    assert len(hook.bodies()) == 1


def test_a_recovery_before_the_alert_went_out_sends_both_in_order(hook: Recorder) -> None:
    hook.statuses = [503]
    alert = alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject="y", message="m", now=T0)
    assert alert is not None
    with pytest.raises(alerts.WebhookError):
        alerts.alert_deliver(alert_id=alert.id, event="raised", now=T0 + 1)
    alerts.alert_resolve(kind=Alert.PUBLISH_FAILING, subject="y", now=T0 + 2)
    assert alerts.alert_deliver(alert_id=alert.id, event="resolved", now=T0 + 3) == "sent"
    assert alerts.alert_deliver(alert_id=alert.id, event="raised", now=T0 + 4) == "already_sent"
    assert [b["event"] for b in hook.bodies()] == ["alert.raised", "alert.resolved"]


def test_without_a_webhook_alerts_are_kept_but_not_sent(settings: Any) -> None:
    settings.SWARM_ALERT_WEBHOOK_URL = ""
    alert = alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject="z", message="m", now=T0)
    assert alert is not None
    assert alerts.alert_deliver(alert_id=alert.id, event="raised", now=T0) == "no_webhook"


def test_a_second_raise_while_open_is_ignored_and_a_new_one_after_resolution_counts() -> None:
    first = alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject="m", message="1", now=T0)
    assert first is not None
    assert alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject="m", message="2", now=T0) is None
    alerts.alert_resolve(kind=Alert.PUBLISH_FAILING, subject="m", now=T0 + 1)
    assert alerts.alert_resolve(kind=Alert.PUBLISH_FAILING, subject="m", now=T0 + 2) is None
    second = alerts.alert_raise(kind=Alert.PUBLISH_FAILING, subject="m", message="3", now=T0 + 3)
    assert second is not None
    assert second.id != first.id
