"""GCRA token buckets by key, in integers (mirror: static/swarm/protocol/ratelimit.js).

One interval per token and a burst saved up: a key may take a token when its theoretical
arrival time (``tat``) is at most ``(burst - 1) * interval`` ahead of now. Bounded: beyond
``max_keys`` the least recently used key is forgotten. The mesh signaling and the DHT hold
their limits per connection, per origin and per peer with it, the same way in both languages.
"""

from __future__ import annotations

from collections import OrderedDict


class GcraBuckets:
    """Token buckets by key: ``tat`` is the theoretical arrival time of each key."""

    def __init__(self, interval_ms: int, burst: int, max_keys: int) -> None:
        self.interval = interval_ms
        self.tolerance = (burst - 1) * interval_ms
        self.max_keys = max_keys
        self.tat: OrderedDict[str, int] = OrderedDict()

    def take(self, key: str, now: int) -> bool:
        tat = max(self.tat.get(key, now), now)
        if tat - now > self.tolerance:
            return False
        self.tat[key] = tat + self.interval
        self.tat.move_to_end(key)
        while len(self.tat) > self.max_keys:
            self.tat.popitem(last=False)
        return True

    def prune(self, now: int) -> None:
        for key in [k for k, tat in self.tat.items() if tat <= now]:
            del self.tat[key]
