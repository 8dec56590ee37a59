"""Keeping the shared registry true to the sockets, sans-IO: decisions, not Redis calls.

Two pieces, each with ``now`` (ms) passed in:

- :class:`Reconciler` compares the registry entries that name this process with the
  sockets this process holds. An entry no socket of ours owns (its release was lost,
  or a claim was answered after its socket went) is an *orphan*: released. A socket
  whose id the registry no longer gives it (Redis lost it, or a newer holder took it
  and the kick was lost) is a *ghost*: closed, so its client reconnects. Either must be
  seen on consecutive reviews for ``grace_ms`` before anything is done, so that claims
  and releases in flight while a review reads Redis are never mistaken for either.
- :class:`Retries` keeps operations that must not be lost (releasing an id) and says
  when to try each again: doubling delays up to a cap, until it succeeds.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

Holder = tuple[str, int]  # (proc, conn) as the registry names it


@dataclass(frozen=True, slots=True)
class Review:
    release: tuple[tuple[str, int], ...] = ()  # (peer_id, conn): orphan entries of ours
    close: tuple[int, ...] = ()  # conns of ghost sockets
    forget: tuple[str, ...] = ()  # ids in our set whose entry is someone else's or gone


class Reconciler:
    def __init__(self, proc: str, grace_ms: int) -> None:
        self.proc = proc
        self.grace_ms = grace_ms
        self._orphans: dict[tuple[str, int], int] = {}  # -> first seen
        self._ghosts: dict[tuple[str, int], int] = {}

    def review(
        self,
        *,
        entries: Mapping[str, Holder | None],
        held: Mapping[str, int],
        claiming: Mapping[str, int],
        now: int,
    ) -> Review:
        """``entries``: the registry's holder of every id this process has in its set or
        holds (None: no entry); ``held``: id -> conn of this process's open, registered
        sockets; ``claiming``: id -> conn of those whose claim is in flight."""
        orphans: set[tuple[str, int]] = set()
        forget: list[str] = []
        for peer_id, holder in entries.items():
            if holder is None or holder[0] != self.proc:
                if peer_id not in held:
                    forget.append(peer_id)
                continue
            conn = holder[1]
            if held.get(peer_id) != conn and claiming.get(peer_id) != conn:
                orphans.add((peer_id, conn))
        ghosts = {
            (peer_id, conn)
            for peer_id, conn in held.items()
            if entries.get(peer_id, None) != (self.proc, conn)
        }
        release = self._due(self._orphans, orphans, now)
        close = self._due(self._ghosts, ghosts, now)
        return Review(
            release=tuple(sorted(release)),
            close=tuple(sorted(conn for _, conn in close)),
            forget=tuple(sorted(forget)),
        )

    def _due(
        self, seen: dict[tuple[str, int], int], suspects: set[tuple[str, int]], now: int
    ) -> list[tuple[str, int]]:
        for key in list(seen):
            if key not in suspects:
                del seen[key]  # resolved by itself (a claim or release landed)
        due = []
        for key in suspects:
            first = seen.setdefault(key, now)
            if first < now and now - first >= self.grace_ms:
                due.append(key)
                del seen[key]
        return due


@dataclass(slots=True)
class _Pending:
    due: int
    attempts: int


class Retries(Generic[K]):
    """Operations to retry until they succeed: the first try is due at once, each
    failure doubles the delay (``base_ms``, ``2 * base_ms``... up to ``cap_ms``). At most
    ``limit`` are kept; past it the newest are refused (the caller has a fallback: for
    releases, the reconciler)."""

    def __init__(self, base_ms: int, cap_ms: int, limit: int = 100_000) -> None:
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.limit = limit
        self._pending: dict[K, _Pending] = {}

    def add(self, key: K, now: int) -> bool:
        """Keep ``key`` (due now); False if the queue is full."""
        if key in self._pending:
            self._pending[key].due = now
            return True
        if len(self._pending) >= self.limit:
            return False
        self._pending[key] = _Pending(now, 0)
        return True

    def due(self, now: int) -> list[K]:
        return [key for key, p in self._pending.items() if p.due <= now]

    def succeeded(self, key: K) -> None:
        self._pending.pop(key, None)

    def failed(self, key: K, now: int) -> None:
        pending = self._pending.get(key)
        if pending is None:
            return
        pending.attempts += 1
        delay = min(self.cap_ms, self.base_ms * 2 ** (pending.attempts - 1))
        pending.due = now + delay

    def next_due(self) -> int | None:
        return min((p.due for p in self._pending.values()), default=None)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending
