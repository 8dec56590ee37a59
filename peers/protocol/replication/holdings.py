"""Who holds which manifest: the planner's view of adverts, with expiry of stale ones."""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Holding:
    """``holder`` had ``chunks`` verified chunks of a manifest when last seen.

    ``kept``: the holder means to keep its copy (a super-peer, a browser that opted in);
    a copy that is not kept (a browser's cache) is a source but never a replica.
    """

    holder: str
    manifest_id: str
    chunks: int
    complete: bool
    last_seen: int
    kept: bool = True

    @property
    def counts(self) -> bool:
        """Counts toward the target: every chunk verified and meant to be kept."""
        return self.complete and self.kept


class HoldingsView:
    """Holdings by manifest and by holder; a holding not refreshed for ``ttl_ms`` expires.

    At most ``max_per_manifest`` holders are kept per manifest, so a flood of adverts for
    one manifest costs bounded memory: a newcomer displaces the least useful holding
    (one that does not count before one that does, then the longest unseen) among the
    unprotected ones.
    """

    def __init__(self, *, ttl_ms: int, max_per_manifest: int) -> None:
        self.ttl_ms = ttl_ms
        self.max_per_manifest = max_per_manifest
        self._by_manifest: dict[str, dict[str, Holding]] = {}
        self._by_holder: dict[str, set[str]] = {}
        self._counted: dict[str, int] = {}
        # Bumped whenever what someone holds changes (not when an advert only refreshes).
        self.changes = 0
        # (expires_at, holder, manifest): entries go stale when a holding is refreshed or
        # removed and are skipped when popped.
        self._expiry: list[tuple[int, str, str]] = []

    def holders(self, manifest_id: str) -> Mapping[str, Holding]:
        return self._by_manifest.get(manifest_id, {})

    def get(self, holder: str, manifest_id: str) -> Holding | None:
        return self._by_manifest.get(manifest_id, {}).get(holder)

    def held_by(self, holder: str) -> frozenset[str]:
        return frozenset(self._by_holder.get(holder, ()))

    def holds_anything(self, holder: str) -> bool:
        return holder in self._by_holder

    def replicas(self, manifest_id: str) -> int:
        """Live holders keeping every chunk: the only thing that counts toward a target."""
        return self._counted.get(manifest_id, 0)

    def holder_count(self, manifest_id: str) -> int:
        return len(self._by_manifest.get(manifest_id, ()))

    def __iter__(self) -> Iterator[Holding]:
        for per_manifest in self._by_manifest.values():
            yield from per_manifest.values()

    def record(
        self,
        holder: str,
        manifest_id: str,
        *,
        chunks: int,
        chunk_count: int,
        now: int,
        kept: bool = True,
        protected: Container[str] = (),
    ) -> bool:
        """Record what ``holder`` holds now; ``chunks`` >= 1. False when refused for room."""
        per_manifest = self._by_manifest.setdefault(manifest_id, {})
        holding = Holding(
            holder, manifest_id, min(chunks, chunk_count), chunks >= chunk_count, now, kept
        )
        previous = per_manifest.get(holder)
        if previous is None and len(per_manifest) >= self.max_per_manifest:
            victim = self._victim(per_manifest, counts=holding.counts, protected=protected)
            if victim is None:
                return False
            self.remove(victim.holder, manifest_id)
            per_manifest = self._by_manifest.setdefault(manifest_id, {})
        if previous is None or (previous.chunks, previous.complete, previous.kept) != (
            holding.chunks,
            holding.complete,
            holding.kept,
        ):
            self.changes += 1
        if previous is not None and previous.counts:
            self._counted[manifest_id] -= 1
        per_manifest[holder] = holding
        self._by_holder.setdefault(holder, set()).add(manifest_id)
        if holding.counts:
            self._counted[manifest_id] = self._counted.get(manifest_id, 0) + 1
        heapq.heappush(self._expiry, (now + self.ttl_ms, holder, manifest_id))
        return True

    def remove(self, holder: str, manifest_id: str) -> Holding | None:
        per_manifest = self._by_manifest.get(manifest_id)
        if per_manifest is None:
            return None
        holding = per_manifest.pop(holder, None)
        if holding is None:
            return None
        self.changes += 1
        if holding.counts:
            self._counted[manifest_id] -= 1
        if not per_manifest:
            del self._by_manifest[manifest_id]
            self._counted.pop(manifest_id, None)
        held = self._by_holder.get(holder)
        if held is not None:
            held.discard(manifest_id)
            if not held:
                del self._by_holder[holder]
        return holding

    def remove_holder(self, holder: str) -> list[Holding]:
        return [
            holding
            for manifest_id in sorted(self._by_holder.get(holder, ()))
            if (holding := self.remove(holder, manifest_id)) is not None
        ]

    def remove_manifest(self, manifest_id: str) -> list[Holding]:
        return [
            holding
            for holder in sorted(self._by_manifest.get(manifest_id, {}))
            if (holding := self.remove(holder, manifest_id)) is not None
        ]

    def expire(self, now: int) -> list[Holding]:
        """Drop every holding last seen ``ttl_ms`` or more before ``now``."""
        expired: list[Holding] = []
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, holder, manifest_id = heapq.heappop(self._expiry)
            holding = self.get(holder, manifest_id)
            if holding is None or holding.last_seen + self.ttl_ms != expires_at:
                continue
            self.remove(holder, manifest_id)
            expired.append(holding)
        return expired

    def next_expiry(self) -> int | None:
        while self._expiry:
            expires_at, holder, manifest_id = self._expiry[0]
            holding = self.get(holder, manifest_id)
            if holding is not None and holding.last_seen + self.ttl_ms == expires_at:
                return expires_at
            heapq.heappop(self._expiry)
        return None

    @staticmethod
    def _victim(
        per_manifest: Mapping[str, Holding], *, counts: bool, protected: Container[str]
    ) -> Holding | None:
        candidates = [h for h in per_manifest.values() if h.holder not in protected]
        if not counts:
            candidates = [h for h in candidates if not h.counts]
        if not candidates:
            return None
        return min(candidates, key=lambda h: (h.counts, h.complete, h.last_seen, h.holder))
