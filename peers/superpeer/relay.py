"""Reporting what other peers hold to the replication orchestrator (docs/replication.md).

The super-peer hears ``have`` adverts from the peers connected to it. :class:`AdvertRelay`
(pure) turns them into rows for the backfill planner: it diffs what the holder knows now
against what it last wrote (``replication.Advert`` rows, one per holder, manifest and
reporting super-peer), so a departure, a withdrawal or a copy becoming complete is one
write, and says when the planner should run again. It also learns the manifests others
advertise: the planner can protect only what the server knows, so a manifest id nobody
here holds is asked once of its advertiser (``manifest_req``) and, once verified, saved.
:class:`GossipAdverts` keeps the adverts heard by gossip (topic ``have``) for a TTL and
turns them into rows reported via gossip.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from peers.protocol.errors import ProtocolError
from peers.protocol.manifest import Manifest, verify_manifest
from peers.protocol.wire import Holding

MAX_ASKED = 10_000  # manifest_req in flight for learning, across peers
ASK_TIMEOUT_MS = 30_000  # an unanswered question is dropped: the next advertiser is asked

Key = tuple[str, str]  # (holder, manifest id)


@dataclass(frozen=True)
class AdvertChanges:
    upsert: tuple[tuple[str, str, int, bool], ...]  # (holder, manifest id, chunks, keep)
    delete: tuple[Key, ...]
    reset: bool  # first write since start: drop every row this super-peer wrote before


@dataclass
class AdvertRelay:
    written: dict[Key, tuple[int, bool]] | None = None  # None until the first write
    known: set[str] = field(default_factory=set)  # manifest ids saved or held
    asked: dict[Key, int] = field(default_factory=dict)  # -> asked at (ms)
    backfill_wanted: bool = True  # a run when we start: what we hold may be news

    # --- adverts to rows ---

    def changes(
        self,
        holders: Mapping[str, Mapping[str, int]],
        cached: Mapping[str, Collection[str]] | None = None,
    ) -> AdvertChanges:
        """What to write for ``holders`` (manifest id -> peer id -> chunks); ``cached``
        (manifest id -> peer ids) names the copies advertised with ``keep`` False."""
        cached = cached or {}
        now = {
            (peer, m): (n, peer not in cached.get(m, ()))
            for m, peers in holders.items()
            for peer, n in peers.items()
            if n > 0
        }
        before = self.written or {}
        upsert = tuple(
            sorted(
                (p, m, n, keep)
                for (p, m), (n, keep) in now.items()
                if before.get((p, m)) != (n, keep)
            )
        )
        delete = tuple(sorted(k for k in before if k not in now))
        return AdvertChanges(upsert, delete, self.written is None)

    def written_ok(self, changes: AdvertChanges) -> None:
        written = {} if changes.reset or self.written is None else self.written
        for key in changes.delete:
            written.pop(key, None)
        for peer, manifest_id, chunks, keep in changes.upsert:
            written[(peer, manifest_id)] = (chunks, keep)
        self.written = written
        if changes.upsert or changes.delete:
            self.backfill_wanted = True

    # --- learning manifests ---

    def to_learn(self, peer_id: str, adverts: list[tuple[str, int]], now: int) -> list[str]:
        """Manifest ids to ask ``peer_id`` for (each asked once of one peer at a time)."""
        for key in [k for k, at in self.asked.items() if now - at >= ASK_TIMEOUT_MS]:
            del self.asked[key]
        out = []
        for manifest_id, chunks in adverts:
            if chunks <= 0 or manifest_id in self.known or len(self.asked) >= MAX_ASKED:
                continue
            if any(m == manifest_id for _, m in self.asked):
                continue
            self.asked[(peer_id, manifest_id)] = now
            out.append(manifest_id)
        return out

    def learned(
        self, peer_id: str, manifest_id: str, envelope: object, now: int
    ) -> Manifest | None:
        """The answer to one of our questions: the verified manifest to save, or None (not
        asked, nil, or not verifying: asked again of the next advertiser)."""
        if self.asked.pop((peer_id, manifest_id), None) is None or envelope is None:
            return None
        try:
            manifest = verify_manifest(envelope, now=now, expected_id=manifest_id)
        except ProtocolError:
            return None
        self.known.add(manifest_id)
        self.backfill_wanted = True
        return manifest


# --- adverts heard by gossip ---

MAX_GOSSIP_ADVERTS = 100_000  # across holders: valid gossip under throwaway keys is cheap
MAX_GOSSIP_ADVERTS_PER_HOLDER = 4096  # as for direct adverts (holder.py)


@dataclass(frozen=True)
class GossipChanges:
    upsert: tuple[tuple[str, str, int, bool, int], ...]  # (holder, manifest, chunks, keep, heard)
    delete: tuple[Key, ...]


@dataclass
class GossipAdverts:
    """Adverts heard by gossip (topic ``have``) from holders this super-peer may not be
    connected to. Each (holder, manifest) is valid until ``heard_at + ttl_ms`` (``heard_at``
    is the gossip's ``issued_at``, never later than its arrival); a newer advert refreshes
    it, ``chunks`` 0 withdraws it. What changed since the last write is written as
    ``Advert`` rows reported via gossip (:meth:`changes`, :meth:`written_ok`)."""

    ttl_ms: int
    max_total: int = MAX_GOSSIP_ADVERTS
    max_per_holder: int = MAX_GOSSIP_ADVERTS_PER_HOLDER
    heard: dict[Key, tuple[int, bool, int]] = field(default_factory=dict)  # chunks, keep, at
    per_holder: dict[str, int] = field(default_factory=dict)
    dirty: set[Key] = field(default_factory=set)  # to write: upsert if heard, else delete
    news: bool = False  # a holding appeared, changed or went: the planner should look
    dropped: int = 0  # entries refused by the bounds

    def on_gossip(self, holder: str, holdings: Iterable[Holding], issued_at: int, now: int) -> int:
        """Record a delivered ``have`` gossip of ``holder``; returns the entries taken."""
        at = min(issued_at, now)
        taken = 0
        for h in holdings:
            key = (holder, h.id)
            known = self.heard.get(key)
            if known is not None and known[2] > at:
                continue  # an older advert arriving late
            if h.chunks == 0:
                if known is not None:
                    self._forget(key)
                continue
            if known is None:
                count = self.per_holder.get(holder, 0)
                if count >= self.max_per_holder or len(self.heard) >= self.max_total:
                    self.dropped += 1
                    continue
                self.per_holder[holder] = count + 1
            if known is None or known[:2] != (h.chunks, h.keep):
                self.news = True
            self.heard[key] = (h.chunks, h.keep, at)
            self.dirty.add(key)
            taken += 1
        return taken

    def expire(self, now: int) -> list[Key]:
        """Forget what was not heard again within ``ttl_ms``."""
        gone = [k for k, (_, _, at) in self.heard.items() if now - at >= self.ttl_ms]
        for key in gone:
            self._forget(key)
        return gone

    def holders(self, manifest_id: str, now: int) -> dict[str, int]:
        """Live gossiped holders of ``manifest_id``: peer id -> chunks."""
        return {
            holder: chunks
            for (holder, m), (chunks, _, at) in self.heard.items()
            if m == manifest_id and now - at < self.ttl_ms
        }

    def _forget(self, key: Key) -> None:
        del self.heard[key]
        holder = key[0]
        left = self.per_holder.get(holder, 1) - 1
        if left > 0:
            self.per_holder[holder] = left
        else:
            self.per_holder.pop(holder, None)
        self.dirty.add(key)
        self.news = True

    def changes(self) -> GossipChanges:
        upsert = []
        delete = []
        for key in sorted(self.dirty):
            state = self.heard.get(key)
            if state is None:
                delete.append(key)
            else:
                upsert.append((key[0], key[1], *state))
        return GossipChanges(tuple(upsert), tuple(delete))

    def written_ok(self, changes: GossipChanges) -> None:
        """What ``changes`` wrote is no longer dirty, unless it changed meanwhile."""
        for holder, manifest_id, chunks, keep, at in changes.upsert:
            if self.heard.get((holder, manifest_id)) == (chunks, keep, at):
                self.dirty.discard((holder, manifest_id))
        for key in changes.delete:
            if key not in self.heard:
                self.dirty.discard(key)
