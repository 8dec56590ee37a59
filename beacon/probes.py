"""Remote beacon health: probes (latency, success) and the success-rate alert rule."""

from __future__ import annotations

from django.conf import settings

from ops import alerts, metrics
from ops.models import Alert

from . import federation, selectors
from .models import BeaconProbe, RemoteBeacon

metrics.describe("swarm_beacon_probes_total", "Remote beacon probes, by beacon and result.")


def beacon_probe(*, beacon_id: int, now: int) -> BeaconProbe | None:
    """Probe one remote beacon's ``/peers``, record it, and apply the health rule."""
    beacon = RemoteBeacon.objects.filter(id=beacon_id).first()
    if beacon is None:
        return None
    if not beacon.enabled:
        alerts.alert_resolve(kind=Alert.BEACON_UNHEALTHY, subject=beacon.name, now=now)
        return None
    result = federation.probe(
        federation.Remote(beacon.name, beacon.base_url, beacon.timeout_s),
        settings.SWARM_COMMUNITY,
    )
    return beacon_probe_record(
        beacon=beacon,
        now=now,
        ok=result.ok,
        latency_ms=result.latency_ms,
        status=result.status,
        error=result.error,
    )


def beacon_probe_record(
    *,
    beacon: RemoteBeacon,
    now: int,
    ok: bool,
    latency_ms: float | None,
    status: int | None,
    error: str,
) -> BeaconProbe:
    probe = BeaconProbe.objects.create(
        beacon=beacon, at=now, ok=ok, latency_ms=latency_ms, status=status, error=error[:200]
    )
    metrics.incr("swarm_beacon_probes_total", beacon=beacon.name, result="ok" if ok else "failed")
    beacon_health_check(beacon=beacon, now=now)
    return probe


def beacon_health_check(*, beacon: RemoteBeacon, now: int) -> None:
    """Raise an alert when the success rate over the window is under the threshold
    (given enough probes to judge), resolve it when it is back above."""
    window_ms = settings.SWARM_BEACON_HEALTH_WINDOW_S * 1000
    total, good = selectors.beacon_success(beacon.id, since=now - window_ms)
    if total < settings.SWARM_BEACON_HEALTH_MIN_PROBES:
        return
    rate = good / total
    minimum: float = settings.SWARM_BEACON_HEALTH_MIN_RATE
    if rate < minimum:
        alerts.alert_raise(
            kind=Alert.BEACON_UNHEALTHY,
            subject=beacon.name,
            message=f"success {rate:.0%} over the last {window_ms // 60_000} min "
            f"({good}/{total} probes), under {minimum:.0%}",
            now=now,
        )
    else:
        alerts.alert_resolve(kind=Alert.BEACON_UNHEALTHY, subject=beacon.name, now=now)
