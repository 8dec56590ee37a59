"""The content the super-peer holds: serving it, advertising it, making room for more.

:class:`Holder` owns the chunk store, the holdings index and the verified manifests. It
answers ``manifest_req`` from memory, queues ``chunk_req`` on the fair :class:`Uploader`,
keeps track of who else holds what (their ``have`` frames), advertises its own holdings
(``have`` to every new connection, then changes once a second), and evicts unpinned
content, oldest first, when a write needs room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from peers.protocol.manifest import Manifest
from peers.protocol.wire import (
    MAX_HAVE_MANIFESTS,
    Chunk,
    ChunkMissing,
    ContentFrame,
    Have,
    Holding,
    ManifestReq,
    encode_frame,
)
from peers.protocol.wire import Manifest as ManifestFrame

from .errors import STORAGE_FULL, SuperPeerError
from .holdings import HoldingsIndex
from .scheduler import LOW_WATER, Channel, ChunkRequest, Uploader
from .store import ChunkStore

logger = logging.getLogger(__name__)

SendFrame = Callable[[str, ContentFrame], bool]
MAX_ADVERTS_PER_PEER = 4096


@dataclass
class HolderStats:
    chunks_served: int = 0
    chunks_missing: int = 0
    bytes_served: int = 0
    manifests_served: int = 0
    requests_dropped: int = 0
    adverts_dropped: int = 0
    evicted_manifests: int = 0
    evicted_bytes: int = 0
    served_to: dict[str, int] = field(default_factory=dict)  # peer id -> bytes


class Holder:
    def __init__(
        self,
        store: ChunkStore,
        index: HoldingsIndex,
        send: SendFrame,
        *,
        low_water: int = LOW_WATER,
    ) -> None:
        self.store = store
        self.index = index
        self.send = send
        self.manifests: dict[str, Manifest] = {}
        self.holders: dict[str, dict[str, int]] = {}  # manifest id -> peer id -> chunks
        # manifest id -> peers whose advert says keep=False (a cached copy: never a replica)
        self.cached: dict[str, set[str]] = {}
        self.conns: dict[str, str] = {}  # open conn id -> peer id
        self.changed: set[str] = set()  # manifests whose count changed (adverts, database)
        self._unadvertised: set[str] = set()
        self._adverts: dict[str, int] = {}  # peer id -> manifests it advertised
        self.stats = HolderStats()
        self.uploader = Uploader(
            self._read, self._encode, on_sent=self._served, low_water=low_water
        )

    # --- what we hold ---

    def add_manifest(self, manifest: Manifest, *, pinned: bool, stored_at: int) -> None:
        self.manifests[manifest.id] = manifest
        size = sum(manifest.ciphertext_length(i) for i in range(len(manifest.chunks)))
        self.index.add_manifest(
            manifest.id, manifest.chunks, size=size, pinned=pinned, stored_at=stored_at
        )
        self._touch(manifest.id)

    def lengths(self, manifest: Manifest) -> list[int]:
        return [manifest.ciphertext_length(i) for i in range(len(manifest.chunks))]

    def missing_bytes(self, manifest: Manifest) -> int:
        return self.index.missing_bytes(manifest.id, self.lengths(manifest))

    def bytes_held(self, manifest_id: str) -> int:
        manifest = self.manifests.get(manifest_id)
        if manifest is None:
            return 0
        present = self.index.present
        return sum(present.get(c, 0) for c in manifest.chunks)

    async def write_chunk(self, chunk_id: str, data: bytes, *, protect: set[str]) -> bool:
        """Make room (evicting unpinned content, oldest first) and store a verified chunk.
        Raises ``storage_full`` when only pinned or protected content could make room."""
        if self.index.has_chunk(chunk_id):
            return False
        plan = self.index.plan_room(len(data), protect=protect)
        if plan is None:
            raise SuperPeerError(STORAGE_FULL, f"no room for {len(data)} more bytes")
        for manifest_id in plan.manifests:
            self.forget(manifest_id)
            self.stats.evicted_manifests += 1
            logger.info("evicted unpinned manifest %s to make room", manifest_id)
        for victim in plan.chunks:
            self.stats.evicted_bytes += await asyncio.to_thread(self.store.delete, victim)
            self._chunk_gone(victim)
        written = await asyncio.to_thread(self.store.write, chunk_id, data)
        self.index.chunk_added(chunk_id, len(data))
        for manifest_id in self.index.refs.get(chunk_id, ()):
            self._touch(manifest_id)
        return written

    def forget(self, manifest_id: str) -> None:
        """Stop holding a manifest (its chunks listed by no one else become orphans that the
        next eviction frees first)."""
        self.manifests.pop(manifest_id, None)
        self.index.remove_manifest(manifest_id)
        self._touch(manifest_id)

    def _chunk_gone(self, chunk_id: str) -> None:
        owners = list(self.index.refs.get(chunk_id, ()))
        self.index.chunk_removed(chunk_id)
        for manifest_id in owners:
            self._touch(manifest_id)

    def _touch(self, manifest_id: str) -> None:
        self.changed.add(manifest_id)
        self._unadvertised.add(manifest_id)

    # --- connections ---

    def opened(self, conn_id: str, peer_id: str, channel: Channel) -> None:
        self.conns[conn_id] = peer_id
        self.uploader.attach(conn_id, channel)
        adverts = self.index.adverts()
        for start in range(0, len(adverts), MAX_HAVE_MANIFESTS):
            batch = adverts[start : start + MAX_HAVE_MANIFESTS]
            self.send(conn_id, Have(manifests=tuple(Holding(id=m, chunks=n) for m, n in batch)))

    def closed(self, conn_id: str) -> str | None:
        """Forget a connection; returns its peer id when that was its last connection."""
        peer_id = self.conns.pop(conn_id, None)
        self.uploader.detach(conn_id)
        if peer_id is None or peer_id in self.conns.values():
            return None
        for manifest_id in [m for m, h in self.holders.items() if peer_id in h]:
            holders = self.holders[manifest_id]
            del holders[peer_id]
            if not holders:
                del self.holders[manifest_id]
            self._uncache(manifest_id, peer_id)
        self._adverts.pop(peer_id, None)
        return peer_id

    def conn_of(self, peer_id: str) -> str | None:
        return next((c for c, p in self.conns.items() if p == peer_id), None)

    def advertise_changes(self) -> None:
        """Send ``have`` for holdings that changed since the last call to every peer."""
        if not self._unadvertised:
            return
        changes = sorted(self._unadvertised)
        self._unadvertised.clear()
        entries = [Holding(id=m, chunks=min(self.index.held(m), 4096)) for m in changes]
        for start in range(0, len(entries), MAX_HAVE_MANIFESTS):
            frame = Have(manifests=tuple(entries[start : start + MAX_HAVE_MANIFESTS]))
            for conn_id in list(self.conns):
                self.send(conn_id, frame)

    # --- frames from peers ---

    def on_have(self, peer_id: str, frame: Have) -> list[tuple[str, int]]:
        """Record a peer's adverts (at most ``MAX_ADVERTS_PER_PEER`` manifests per peer, so
        adverts cannot fill the memory); returns the ones recorded, for the fetcher."""
        out = []
        for holding in frame.manifests:
            holders = self.holders.setdefault(holding.id, {})
            if holding.chunks > 0:
                if peer_id not in holders:
                    if self._adverts.get(peer_id, 0) >= MAX_ADVERTS_PER_PEER:
                        self.stats.adverts_dropped += 1
                        if not holders:
                            del self.holders[holding.id]
                        continue
                    self._adverts[peer_id] = self._adverts.get(peer_id, 0) + 1
                holders[peer_id] = holding.chunks
                if holding.keep:
                    self._uncache(holding.id, peer_id)
                else:
                    self.cached.setdefault(holding.id, set()).add(peer_id)
            else:
                if peer_id in holders:
                    self._adverts[peer_id] -= 1
                holders.pop(peer_id, None)
                if not holders:
                    del self.holders[holding.id]
                self._uncache(holding.id, peer_id)
            out.append((holding.id, holding.chunks))
        return out

    def _uncache(self, manifest_id: str, peer_id: str) -> None:
        peers = self.cached.get(manifest_id)
        if peers is not None:
            peers.discard(peer_id)
            if not peers:
                del self.cached[manifest_id]

    def on_manifest_req(self, conn_id: str, frame: ManifestReq) -> None:
        manifest = self.manifests.get(frame.id)
        if manifest is not None:
            self.stats.manifests_served += 1
        envelope = None if manifest is None else manifest.envelope
        self.send(conn_id, ManifestFrame(id=frame.id, manifest=envelope))

    def on_chunk_req(self, conn_id: str, manifest: str, index: int, chunk: str) -> None:
        if not self.uploader.request(conn_id, ChunkRequest(manifest, index, chunk)):
            self.stats.requests_dropped += 1

    def _read(self, request: ChunkRequest) -> bytes | None:
        if not self.index.has_chunk(request.chunk):
            return None
        return self.store.read(request.chunk)

    def _encode(self, request: ChunkRequest, data: bytes | None) -> bytes:
        m, i, c = request.manifest, request.index, request.chunk
        if data is None:
            return encode_frame(ChunkMissing(manifest=m, index=i, chunk=c))
        return encode_frame(Chunk(manifest=m, index=i, chunk=c, data=data))

    def _served(self, conn_id: str, request: ChunkRequest, size: int, found: bool) -> None:
        if found:
            self.stats.chunks_served += 1
            self.stats.bytes_served += size
            peer_id = self.conns.get(conn_id, "?")
            self.stats.served_to[peer_id] = self.stats.served_to.get(peer_id, 0) + size
        else:
            self.stats.chunks_missing += 1
