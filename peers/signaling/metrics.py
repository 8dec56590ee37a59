"""Signaling counters and the connected-peers gauge in /metrics (ops.metrics)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable

from django.conf import settings

from ops import metrics

log = logging.getLogger(__name__)

# hub counter name -> (metric, label name or "" for none)
COUNTERS: dict[str, tuple[str, str]] = {
    "relayed": ("swarm_signal_relayed_total", "type"),
    "queued": ("swarm_signal_queued_total", "type"),
    "expired": ("swarm_signal_expired_total", ""),
    "refused": ("swarm_signal_refused_total", "reason"),
    "dropped": ("swarm_signal_dropped_total", "reason"),
    "opened": ("swarm_signal_opened_total", "result"),
    "replaced": ("swarm_signal_replaced_total", ""),
    "timed_out": ("swarm_signal_timeouts_total", ""),
    "unrouted": ("swarm_signal_unrouted_total", ""),
    "gone": ("swarm_signal_gone_total", ""),
    "swept": ("swarm_signal_swept_total", "reason"),
}
HELP = {
    "swarm_signal_relayed_total": "Signaling messages delivered to their destination, by type.",
    "swarm_signal_queued_total": "Signaling messages queued for an absent destination, by type.",
    "swarm_signal_expired_total": "Queues nobody collected, one per sender and destination.",
    "swarm_signal_refused_total": "Signaling sockets refused or closed by the server, by reason.",
    "swarm_signal_dropped_total": "Client frames dropped without reply, by reason.",
    "swarm_signal_opened_total": "Signaling ids opened, by result (open or replaced).",
    "swarm_signal_replaced_total": "Sockets closed because a newer connection took their id.",
    "swarm_signal_timeouts_total": "Sockets closed for sending no HEARTBEAT in time.",
    "swarm_signal_unrouted_total": "EXPIREs for messages Redis did not take (per sender, dst).",
    "swarm_signal_gone_total": "EXPIREs sent at once: OFFERs to a peer that left a while ago.",
    "swarm_signal_swept_total": "Registry entries removed or sockets closed by sweeps, by reason.",
}
CONNECTED = "swarm_signal_connected_peers"

for _name, _text in HELP.items():
    metrics.describe(_name, _text)

_local_counts: list[Callable[[], int]] = []


def record(counters: Counter[tuple[str, str]]) -> None:
    """Move the hub's counts into the process's metric counters."""
    if not counters:
        return
    items = list(counters.items())
    counters.clear()
    for (name, label), amount in items:
        metric, label_name = COUNTERS[name]
        labels = {label_name: label} if label_name else {}
        metrics.incr(metric, amount, **labels)


def register_local_count(count: Callable[[], int]) -> None:
    """Without Redis the only directory is in this process's memory."""
    _local_counts.append(count)


def _connected() -> Iterable[metrics.GaugeSample]:
    value = 0
    if settings.REDIS_URL:
        from shared.redis import get_redis

        from .redis_directory import PREFIX

        client = get_redis()
        try:
            value = int(client.hlen(PREFIX + "reg")) if client is not None else 0
        except Exception:
            log.exception("reading the number of signaling peers failed")
            return
    else:
        value = sum(count() for count in _local_counts)
    yield (CONNECTED, "Peers holding an id on the signaling server.", (), float(value))


metrics.register_collector(_connected)
