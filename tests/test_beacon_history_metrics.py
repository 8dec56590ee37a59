"""The beacon's health gauges at /metrics (beacon/metrics.py) and the bounded history
(ops/history.py: history_prune with what the beacon registers, the periodic task
beacon.prune_history)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from beacon.models import BeaconProbe, CapsuleRun, Community, RemoteBeacon
from ops import history, tasks
from ops.models import MetricSample
from shared.clock import now_ms

pytestmark = pytest.mark.django_db
MIN = 60_000
HOUR = 3_600_000


def gauges() -> dict[str, float]:
    """The /metrics samples as {"name{labels}": value}."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    samples = {}
    for line in response.content.decode().splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def probe(beacon: RemoteBeacon, at: int, ok: bool, latency_ms: float | None = None) -> None:
    BeaconProbe.objects.create(beacon=beacon, at=at, ok=ok, latency_ms=latency_ms)


def run(community: Community, at: int, ok: bool) -> None:
    CapsuleRun.objects.create(
        community=community, started_at=at - 10, finished_at=at, ok=ok, error="" if ok else "x"
    )


def test_remote_beacon_success_ratio_and_latency_gauges(settings: Any) -> None:
    settings.SWARM_BEACON_HEALTH_WINDOW_S = 900
    now = now_ms()
    flaky = RemoteBeacon.objects.create(name="flaky", base_url="http://127.0.0.1:9/beacon/v1/")
    down = RemoteBeacon.objects.create(name="down", base_url="http://127.0.0.1:9/beacon/v1/")
    RemoteBeacon.objects.create(name="fresh", base_url="http://127.0.0.1:9/beacon/v1/")
    off = RemoteBeacon.objects.create(
        name="off", base_url="http://127.0.0.1:9/beacon/v1/", enabled=False
    )
    # Outside the 15-minute window: not in the ratio (a success, so the ratio would rise).
    probe(flaky, now - 20 * MIN, True, 5.0)
    probe(flaky, now - 10 * MIN, True, 40.0)
    probe(flaky, now - 8 * MIN, False)
    probe(flaky, now - 6 * MIN, True, 25.5)  # the last success: its latency is the gauge
    probe(flaky, now - 4 * MIN, False)
    probe(flaky, now - 2 * MIN, False)
    probe(down, now - 3 * MIN, False)
    probe(down, now - 20 * MIN, True, 7.0)  # an old success still gives the last latency
    probe(off, now - MIN, True, 3.0)

    samples = gauges()
    assert samples['swarm_remote_beacon_success_ratio{beacon="flaky"}'] == pytest.approx(2 / 5)
    assert samples['swarm_remote_beacon_latency_ms{beacon="flaky"}'] == 25.5
    assert samples['swarm_remote_beacon_success_ratio{beacon="down"}'] == 0
    assert samples['swarm_remote_beacon_latency_ms{beacon="down"}'] == 7
    # No probes: no ratio to report; disabled beacons are not reported.
    reported = {s for s in samples if s.startswith("swarm_remote_beacon_")}
    assert reported == {
        'swarm_remote_beacon_success_ratio{beacon="flaky"}',
        'swarm_remote_beacon_latency_ms{beacon="flaky"}',
        'swarm_remote_beacon_success_ratio{beacon="down"}',
        'swarm_remote_beacon_latency_ms{beacon="down"}',
    }

    settings.SWARM_BEACON_HEALTH_WINDOW_S = 30 * 60  # the window is the setting's
    assert gauges()['swarm_remote_beacon_success_ratio{beacon="flaky"}'] == pytest.approx(3 / 6)


def test_capsule_failure_streak_gauge_counts_the_latest_failures_in_a_row() -> None:
    now = now_ms()
    failing = Community.objects.create(name="failing")
    recovered = Community.objects.create(name="recovered")
    Community.objects.create(name="never-run")
    run(failing, now - 5000, True)
    run(failing, now - 4000, False)
    run(failing, now - 3000, False)
    run(failing, now - 2000, False)
    run(recovered, now - 4000, False)
    run(recovered, now - 3000, True)

    samples = gauges()
    assert samples['swarm_capsule_failure_streak{community="failing"}'] == 3
    # A streak of 0 without any capsule is not worth a series.
    assert 'swarm_capsule_failure_streak{community="recovered"}' not in samples
    assert 'swarm_capsule_failure_streak{community="never-run"}' not in samples

    run(failing, now - 1000, True)
    assert 'swarm_capsule_failure_streak{community="failing"}' not in gauges()
    run(recovered, now - 500, False)
    assert gauges()['swarm_capsule_failure_streak{community="recovered"}'] == 1


def _rows(now: int, ages_ms: list[int]) -> None:
    main = Community.objects.get_or_create(name="main")[0]
    beacon = RemoteBeacon.objects.get_or_create(
        name="remote", defaults={"base_url": "http://127.0.0.1:9/beacon/v1/"}
    )[0]
    for age in ages_ms:
        MetricSample.objects.create(name="swarm_beacon_live_tickets", at=now - age, value=age)
        probe(beacon, now - age, True, 1.0)
        run(main, now - age, True)


def _ages() -> dict[str, list[int]]:
    return {
        "samples": sorted(MetricSample.objects.values_list("value", flat=True)),
        "probes": sorted(BeaconProbe.objects.values_list("at", flat=True)),
        "runs": sorted(CapsuleRun.objects.values_list("finished_at", flat=True)),
    }


def test_history_prune_deletes_samples_probes_and_runs_older_than_the_setting(
    settings: Any,
) -> None:
    settings.SWARM_HISTORY_HOURS = 24
    now = 1_900_000_000_000
    ages = [0, HOUR, 24 * HOUR, 24 * HOUR + 1, 30 * HOUR]
    _rows(now, ages)
    assert history.history_prune(now=now) == 3 * 2
    kept = _ages()
    assert kept["samples"] == [0, HOUR, 24 * HOUR]
    assert kept["probes"] == sorted(now - a for a in (0, HOUR, 24 * HOUR))
    assert kept["runs"] == sorted(now - a for a in (0, HOUR, 24 * HOUR))
    assert history.history_prune(now=now) == 0

    settings.SWARM_HISTORY_HOURS = 1  # the bound is the setting's
    assert history.history_prune(now=now) == 3
    assert _ages()["samples"] == [0, HOUR]


def test_prune_history_task_uses_the_clock_and_is_scheduled_hourly(settings: Any) -> None:
    from django_celery_beat.models import PeriodicTask

    settings.SWARM_HISTORY_HOURS = 2
    now = now_ms()
    _rows(now, [MIN, 3 * HOUR])
    assert tasks.prune_history.name == "beacon.prune_history"
    assert tasks.prune_history() == 3
    assert _ages()["samples"] == [MIN]
    scheduled = PeriodicTask.objects.get(task="beacon.prune_history")
    assert scheduled.enabled
    assert scheduled.interval is not None
    assert (scheduled.interval.every, scheduled.interval.period) == (3600, "seconds")
