"""Reporting what other peers hold to the replication orchestrator (docs/replication.md).

The super-peer hears ``have`` adverts from the peers connected to it. :class:`AdvertRelay`
(pure) turns them into rows for the backfill planner: it diffs what the holder knows now
against what it last wrote (``replication.Advert`` rows, one per holder, manifest and
reporting super-peer), so a departure, a withdrawal or a copy becoming complete is one
write, and says when the planner should run again. It also learns the manifests others
advertise: the planner can protect only what the server knows, so a manifest id nobody
here holds is asked once of its advertiser (``manifest_req``) and, once verified, saved.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from peers.protocol.errors import ProtocolError
from peers.protocol.manifest import Manifest, verify_manifest

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
