"""Connection health from ping/pong, mirror of static/swarm/protocol/health.js.

Round-trip time, loss, and idleness: degraded after 90 s without a frame from the peer,
stale after 180 s (the node then closes and redials).
"""

from __future__ import annotations

from typing import Literal

from .wire import MAX_UINT32, Ping, Pong

PING_INTERVAL_MS = 15_000
PONG_TIMEOUT_MS = 10_000
DEGRADED_AFTER_MS = 90_000
STALE_AFTER_MS = 180_000
RTT_WEIGHT = 0.25  # EWMA, as TCP's smoothed RTT (RFC 6298 uses 1/8; peers are fewer)
LOSS_WINDOW = 20
MAX_OUTSTANDING = 8

HealthState = Literal["ok", "degraded", "stale"]


class Health:
    """Ping schedule, RTT and loss of one connection; all times are the caller's ``now``."""

    def __init__(
        self,
        now: int,
        *,
        ping_interval_ms: int = PING_INTERVAL_MS,
        pong_timeout_ms: int = PONG_TIMEOUT_MS,
    ) -> None:
        self.ping_interval_ms = ping_interval_ms
        self.pong_timeout_ms = pong_timeout_ms
        self.last_received = now
        self.next_ping_at = now
        self.seq = 0
        self.outstanding: dict[int, int] = {}  # n -> sent at, oldest first
        self.rtt: float | None = None
        self.last_rtt: int | None = None
        self.min_rtt: int | None = None  # the path's delay without queues (sizes send buffers)
        self.pings_sent = 0
        self.pongs_received = 0
        self.outcomes: list[bool] = []  # recent pings: True = answered, False = lost

    def received(self, now: int) -> None:
        """Any frame from the peer proves it is alive."""
        self.last_received = now

    def ping_due(self, now: int) -> Ping | None:
        """The ping to send now, or None."""
        self._expire(now)
        if now < self.next_ping_at:
            return None
        self.next_ping_at = now + self.ping_interval_ms
        self.seq = (self.seq + 1) & MAX_UINT32
        if len(self.outstanding) >= MAX_OUTSTANDING:
            del self.outstanding[next(iter(self.outstanding))]
        self.outstanding[self.seq] = now
        self.pings_sent += 1
        return Ping(n=self.seq, ts=now)

    def pong(self, frame: Pong, now: int) -> int | None:
        """A pong for one of our pings: the RTT sample, or None for an unknown pong."""
        sent_at = self.outstanding.get(frame.n)
        if sent_at is None or sent_at != frame.ts:
            return None
        del self.outstanding[frame.n]
        sample = max(0, now - sent_at)
        self.last_rtt = sample
        self.min_rtt = sample if self.min_rtt is None else min(self.min_rtt, sample)
        self.rtt = sample if self.rtt is None else self.rtt + RTT_WEIGHT * (sample - self.rtt)
        self.pongs_received += 1
        self._record(True)
        return sample

    def _expire(self, now: int) -> None:
        for n, sent_at in list(self.outstanding.items()):
            if now - sent_at < self.pong_timeout_ms:
                continue
            del self.outstanding[n]
            self._record(False)

    def _record(self, answered: bool) -> None:
        self.outcomes.append(answered)
        if len(self.outcomes) > LOSS_WINDOW:
            self.outcomes.pop(0)

    @property
    def loss(self) -> float:
        """Fraction of the recent pings that went unanswered (0..1)."""
        if not self.outcomes:
            return 0.0
        return self.outcomes.count(False) / len(self.outcomes)

    def state(self, now: int) -> HealthState:
        idle = now - self.last_received
        if idle >= STALE_AFTER_MS:
            return "stale"
        if idle >= DEGRADED_AFTER_MS:
            return "degraded"
        return "ok"

    def next_deadline(self, now: int) -> int:
        """When this connection next needs attention (ping, pong timeout, idle threshold)."""
        deadline = self.next_ping_at
        for sent_at in self.outstanding.values():
            deadline = min(deadline, sent_at + self.pong_timeout_ms)
        for threshold in (DEGRADED_AFTER_MS, STALE_AFTER_MS):
            at = self.last_received + threshold
            if at > now:
                deadline = min(deadline, at)
        return deadline
