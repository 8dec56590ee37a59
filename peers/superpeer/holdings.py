"""What the super-peer holds, in memory: manifests, chunk presence, bytes, quota, eviction.

Pure (no IO): the service feeds it the store scan and every write and delete, and asks it
what to evict. A chunk may be listed by several manifests (nothing stops two manifests from
naming the same ciphertext), so presence is per chunk and manifests only reference chunks:
a chunk is freed only when every manifest that lists it goes.

Eviction: when a write would pass the quota, chunks no manifest lists go first, then
unpinned manifests, oldest ``stored_at`` first (ties by id). Pinned manifests and the
``protect``-ed ones (being fetched) are never evicted, nor is a chunk one of them lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class Held:
    manifest_id: str
    chunks: tuple[str, ...]
    size: int  # bytes of a full copy (ciphertext)
    pinned: bool
    stored_at: int  # ms since the epoch: eviction order
    present: int = 0  # chunks of this manifest in the store


@dataclass(frozen=True)
class Eviction:
    """Manifests to forget and chunk files to delete to make room; ``freed`` bytes."""

    manifests: tuple[str, ...] = ()
    chunks: tuple[str, ...] = ()
    freed: int = 0


@dataclass
class HoldingsIndex:
    quota: int
    manifests: dict[str, Held] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)  # chunk id -> bytes
    refs: dict[str, set[str]] = field(default_factory=dict)  # chunk id -> manifest ids
    used: int = 0

    # --- facts ---

    def load(self, chunks: Mapping[str, int]) -> None:
        """The chunks a store scan found."""
        for chunk_id, size in chunks.items():
            self.chunk_added(chunk_id, size)

    def add_manifest(
        self, manifest_id: str, chunks: Iterable[str], *, size: int, pinned: bool, stored_at: int
    ) -> Held:
        """Track a manifest (again: only the pin changes)."""
        held = self.manifests.get(manifest_id)
        if held is not None:
            held.pinned = pinned
            return held
        ids = tuple(chunks)
        held = Held(manifest_id, ids, size, pinned, stored_at)
        for chunk_id in ids:
            self.refs.setdefault(chunk_id, set()).add(manifest_id)
            if chunk_id in self.present:
                held.present += 1
        self.manifests[manifest_id] = held
        return held

    def remove_manifest(self, manifest_id: str) -> list[str]:
        """Forget a manifest; returns its chunks that are held and now listed by no one
        (the caller deletes their files and reports :meth:`chunk_removed`)."""
        held = self.manifests.pop(manifest_id, None)
        if held is None:
            return []
        unreferenced = []
        for chunk_id in held.chunks:
            owners = self.refs.get(chunk_id)
            if owners is None:
                continue
            owners.discard(manifest_id)
            if not owners:
                del self.refs[chunk_id]
                if chunk_id in self.present:
                    unreferenced.append(chunk_id)
        return unreferenced

    def set_pinned(self, manifest_id: str, pinned: bool) -> None:
        held = self.manifests.get(manifest_id)
        if held is not None:
            held.pinned = pinned

    def chunk_added(self, chunk_id: str, size: int) -> None:
        if chunk_id in self.present:
            return
        self.present[chunk_id] = size
        self.used += size
        for manifest_id in self.refs.get(chunk_id, ()):
            self.manifests[manifest_id].present += 1

    def chunk_removed(self, chunk_id: str) -> None:
        size = self.present.pop(chunk_id, None)
        if size is None:
            return
        self.used -= size
        for manifest_id in self.refs.get(chunk_id, ()):
            self.manifests[manifest_id].present -= 1

    # --- queries ---

    def has_chunk(self, chunk_id: str) -> bool:
        return chunk_id in self.present

    def held(self, manifest_id: str) -> int:
        held = self.manifests.get(manifest_id)
        return 0 if held is None else held.present

    def complete(self, manifest_id: str) -> bool:
        held = self.manifests.get(manifest_id)
        return held is not None and held.present == len(held.chunks)

    def missing(self, manifest_id: str) -> list[int]:
        """Indexes of the manifest's chunks not in the store."""
        held = self.manifests.get(manifest_id)
        if held is None:
            return []
        return [i for i, chunk_id in enumerate(held.chunks) if chunk_id not in self.present]

    def missing_bytes(self, manifest_id: str, lengths: Iterable[int]) -> int:
        held = self.manifests.get(manifest_id)
        if held is None:
            return 0
        return sum(
            length
            for chunk_id, length in zip(held.chunks, lengths, strict=True)
            if chunk_id not in self.present
        )

    def orphans(self) -> list[str]:
        """Chunks in the store that no tracked manifest lists."""
        return sorted(c for c in self.present if not self.refs.get(c))

    def adverts(self) -> list[tuple[str, int]]:
        """(manifest id, chunks held) for every manifest with at least one chunk."""
        return sorted((m, h.present) for m, h in self.manifests.items() if h.present > 0)

    def pinned_bytes(self) -> int:
        return sum(
            size
            for chunk_id, size in self.present.items()
            if any(self.manifests[m].pinned for m in self.refs.get(chunk_id, ()))
        )

    # --- quota ---

    def plan_room(self, need: int, *, protect: Iterable[str] = ()) -> Eviction | None:
        """What to evict so that ``need`` more bytes fit the quota; None if impossible
        without touching pinned or protected content (``storage_full``)."""
        free = self.quota - self.used
        if need <= free:
            return Eviction()
        keep = set(protect)
        manifests: list[str] = []
        chunks: list[str] = []
        freed = 0
        for chunk_id in self.orphans():
            chunks.append(chunk_id)
            freed += self.present[chunk_id]
            if need <= free + freed:
                return Eviction(tuple(manifests), tuple(chunks), freed)
        gone: set[str] = set()
        taken: set[str] = set()
        candidates = sorted(
            (h for h in self.manifests.values() if not h.pinned and h.manifest_id not in keep),
            key=lambda h: (h.stored_at, h.manifest_id),
        )
        for held in candidates:
            gone.add(held.manifest_id)
            manifests.append(held.manifest_id)
            for chunk_id in held.chunks:
                freeable = chunk_id in self.present and self.refs.get(chunk_id, set()) <= gone
                if freeable and chunk_id not in taken:
                    taken.add(chunk_id)
                    chunks.append(chunk_id)
                    freed += self.present[chunk_id]
            if need <= free + freed:
                return Eviction(tuple(manifests), tuple(chunks), freed)
        return None
