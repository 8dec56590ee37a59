"""Fetching one manifest and its chunks from whoever holds them (sans-IO).

Inputs: sources (peers that advertised the manifest with ``have``, or that a job names),
answers (``manifest``, ``chunk``, ``chunk_missing``), the loss of a source, and ``now`` in ms.
Outputs (:meth:`Download.take_actions`): requests to send, verified chunks to store, and
sources that failed. Every chunk is checked before it is handed out for storage: the id
asked for must be the manifest's id at that index, the bytes must hash to it and have the
length the manifest implies. A source that sends a bad chunk (or a bad manifest) is dropped
from this download and reported; its request goes to another source.

Requests are pipelined: at most ``per_source`` outstanding per source and ``window`` in all;
complete sources are preferred to partial ones, then the least loaded. A request without an
answer after ``request_timeout_ms`` goes to another source; ``max_timeouts`` in a row and
the source is dropped.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from peers.protocol.chunks import TAG_BYTES, chunk_length
from peers.protocol.encoding import b64url_encode
from peers.protocol.errors import CHUNK_MISMATCH, ProtocolError
from peers.protocol.manifest import Manifest, verify_manifest

BAD_CHUNK = "bad_chunk"
TIMEOUT = "timeout"
MISSING = "missing"


@dataclass(frozen=True)
class DownloadConfig:
    per_source: int = 8
    window: int = 32
    request_timeout_ms: int = 15_000
    max_timeouts: int = 3


@dataclass(frozen=True)
class AskManifest:
    peer_id: str
    manifest_id: str


@dataclass(frozen=True)
class AskChunk:
    peer_id: str
    manifest_id: str
    index: int
    chunk_id: str


@dataclass(frozen=True)
class StoreChunk:
    index: int
    chunk_id: str
    data: bytes
    source: str


@dataclass(frozen=True)
class SourceFailed:
    peer_id: str
    code: str  # chunk_mismatch, bad_chunk, bad_manifest (and other manifest codes), timeout
    message: str


@dataclass(frozen=True)
class ManifestReady:
    manifest: Manifest


Action = AskManifest | AskChunk | StoreChunk | SourceFailed | ManifestReady


@dataclass
class Source:
    peer_id: str
    chunks: int  # advertised chunks held (the chunk count when complete)
    outstanding: dict[int, int] = field(default_factory=dict)  # index -> asked at
    lacks: set[int] = field(default_factory=set)
    no_manifest: bool = False
    timeouts: int = 0
    served: int = 0


class Download:
    """One manifest being fetched; ``missing`` are the indexes not yet in the store."""

    def __init__(
        self,
        manifest_id: str,
        *,
        manifest: Manifest | None = None,
        missing: Iterable[int] | None = None,
        now: int,
        config: DownloadConfig | None = None,
    ) -> None:
        self.manifest_id = manifest_id
        self.manifest: Manifest | None = None
        self.config = config or DownloadConfig()
        self.sources: dict[str, Source] = {}
        self.failed: dict[str, str] = {}  # peer id -> code: dropped from this download
        self.lacking: set[str] = set()  # sources that answered chunk_missing
        self.missing: set[int] = set()  # not stored yet (asked or not)
        self.total = 0
        self.manifest_asked: dict[str, int] = {}  # peer id -> asked at
        self.started_at = now
        self.last_progress = now
        self._actions: list[Action] = []
        self._queue: list[int] = []  # heap of missing indexes not asked anywhere
        self._queued: set[int] = set()
        self._parked: set[int] = set()  # missing, but every current source lacks them
        self._asked: dict[int, set[str]] = {}  # index -> peers ever asked for it
        if manifest is not None:
            self._set_manifest(manifest, missing)

    # --- state ---

    @property
    def complete(self) -> bool:
        return self.manifest is not None and not self.missing

    @property
    def done(self) -> int:
        return self.total - len(self.missing)

    def in_flight(self) -> int:
        return sum(len(s.outstanding) for s in self.sources.values())

    def stalled(self) -> bool:
        """Nothing asked and nobody to ask: waiting for a source to appear."""
        if self.complete:
            return False
        if self.manifest is None:
            return not self.manifest_asked
        return self.in_flight() == 0

    def failed_sources(self) -> list[str]:
        return sorted(set(self.failed) | self.lacking)

    def take_actions(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> int | None:
        times = [at for s in self.sources.values() for at in s.outstanding.values()]
        times += list(self.manifest_asked.values())
        return min(times) + self.config.request_timeout_ms if times else None

    # --- inputs ---

    def add_source(self, peer_id: str, chunks: int, now: int) -> None:
        """A peer holds ``chunks`` chunks of the manifest (0 withdraws it)."""
        if peer_id in self.failed:
            return
        if chunks <= 0:
            self.remove_source(peer_id, now)
            return
        source = self.sources.get(peer_id)
        if source is None:
            self.sources[peer_id] = Source(peer_id, chunks)
        else:
            source.chunks = chunks
            source.lacks.clear()  # a fresh advert: worth asking again
            source.no_manifest = False
        self._unpark()
        self._fill(now)

    def remove_source(self, peer_id: str, now: int) -> None:
        source = self.sources.pop(peer_id, None)
        self.manifest_asked.pop(peer_id, None)
        if source is not None:
            self._requeue(source)
        self._fill(now)

    def manifest_received(self, peer_id: str, envelope: object, now: int) -> None:
        if self.manifest is not None or peer_id not in self.manifest_asked:
            return  # not asked, or answered already: ignored
        del self.manifest_asked[peer_id]
        if envelope is None:
            source = self.sources.get(peer_id)
            if source is not None:
                source.no_manifest = True
            self._fill(now)
            return
        try:
            manifest = verify_manifest(envelope, now=now, expected_id=self.manifest_id)
        except ProtocolError as exc:
            self._fail(peer_id, exc.code, exc.message)
            self._fill(now)
            return
        self.last_progress = now
        self._set_manifest(manifest, None)
        self._actions.append(ManifestReady(manifest))
        self._fill(now)

    def manifest_known(self, manifest: Manifest, now: int) -> None:
        """A verified manifest found another way (a probe, the database)."""
        if self.manifest is not None or manifest.id != self.manifest_id:
            return
        self.manifest_asked.clear()
        self.last_progress = now
        self._set_manifest(manifest, None)
        self._actions.append(ManifestReady(manifest))
        self._fill(now)

    def already_held(self, indexes: Iterable[int]) -> None:
        """Chunks the store turned out to hold already (found when the manifest arrived)."""
        for index in indexes:
            self.missing.discard(index)
            self._parked.discard(index)

    def chunk_received(
        self, peer_id: str, index: int, chunk_id: str, data: bytes, now: int
    ) -> None:
        manifest = self.manifest
        if manifest is None or peer_id in self.failed or peer_id not in self._asked.get(index, ()):
            return  # never asked of this peer, or the peer was dropped: ignored
        source = self.sources.get(peer_id)
        if source is not None:
            source.outstanding.pop(index, None)
        if index not in self.missing:
            self._fill(now)
            return  # a late answer for a chunk stored from another source
        try:
            self._check_chunk(manifest, index, chunk_id, data)
        except ProtocolError as exc:
            self._fail(peer_id, exc.code, exc.message)
            self._requeue_index(index)
            self._fill(now)
            return
        self.missing.discard(index)
        self._parked.discard(index)
        for other in self.sources.values():
            other.outstanding.pop(index, None)
        self.last_progress = now
        if source is not None:
            source.served += 1
            source.timeouts = 0
        self._actions.append(StoreChunk(index, chunk_id, data, peer_id))
        self._fill(now)

    def chunk_missing(self, peer_id: str, index: int, now: int) -> None:
        source = self.sources.get(peer_id)
        if source is None or index not in source.outstanding:
            return
        del source.outstanding[index]
        source.lacks.add(index)
        self.lacking.add(peer_id)
        self._requeue_index(index)
        self._fill(now)

    def store_failed(self, index: int, now: int) -> None:
        """The write of a handed-out chunk failed: fetch it again."""
        if self.manifest is not None and 0 <= index < self.total:
            self.missing.add(index)
            self._requeue_index(index)
        self._fill(now)

    def tick(self, now: int) -> None:
        limit = self.config.request_timeout_ms
        for source in list(self.sources.values()):
            late = [i for i, at in source.outstanding.items() if now - at >= limit]
            for index in late:
                del source.outstanding[index]
                self._requeue_index(index)
            if late:
                source.timeouts += 1
                if source.timeouts >= self.config.max_timeouts:
                    self._fail(source.peer_id, TIMEOUT, f"{source.timeouts} requests timed out")
        for peer_id, at in list(self.manifest_asked.items()):
            if now - at >= limit:
                self._fail(peer_id, TIMEOUT, "the manifest request timed out")
        self._fill(now)

    # --- internals ---

    def _set_manifest(self, manifest: Manifest, missing: Iterable[int] | None) -> None:
        self.manifest = manifest
        self.total = len(manifest.chunks)
        indexes = range(self.total) if missing is None else missing
        self.missing = {i for i in indexes if 0 <= i < self.total}
        self._queue = sorted(self.missing)
        self._queued = set(self.missing)

    def _check_chunk(self, manifest: Manifest, index: int, chunk_id: str, data: bytes) -> None:
        if manifest.chunks[index] != chunk_id:
            raise ProtocolError(BAD_CHUNK, f"chunk {index} of this manifest is not {chunk_id}")
        actual = b64url_encode(hashlib.sha256(data).digest())
        if actual != chunk_id:
            raise ProtocolError(CHUNK_MISMATCH, f"chunk {index} hashes to {actual}")
        if len(data) != chunk_length(manifest.size, index) + TAG_BYTES:
            raise ProtocolError(BAD_CHUNK, f"chunk {index} has the wrong length")

    def _fail(self, peer_id: str, code: str, message: str) -> None:
        self.failed[peer_id] = code
        self._actions.append(SourceFailed(peer_id, code, message))
        source = self.sources.pop(peer_id, None)
        self.manifest_asked.pop(peer_id, None)
        if source is not None:
            self._requeue(source)

    def _requeue(self, source: Source) -> None:
        indexes = list(source.outstanding)
        source.outstanding.clear()
        for index in indexes:
            self._requeue_index(index)

    def _requeue_index(self, index: int) -> None:
        if index not in self.missing or index in self._queued:
            return
        if any(index in s.outstanding for s in self.sources.values()):
            return
        heapq.heappush(self._queue, index)
        self._queued.add(index)

    def _unpark(self) -> None:
        for index in self._parked:
            if index in self.missing and index not in self._queued:
                heapq.heappush(self._queue, index)
                self._queued.add(index)
        self._parked.clear()

    def _fill(self, now: int) -> None:
        if self.manifest is None:
            self._ask_manifest(now)
            return
        chunks = self.manifest.chunks
        budget = self.config.window - self.in_flight()
        waiting: list[int] = []  # servable, but every source able to is busy
        while budget > 0 and self._queue:
            index = heapq.heappop(self._queue)
            self._queued.discard(index)
            if index not in self.missing:
                continue
            capable = [s for s in self.sources.values() if index not in s.lacks]
            if not capable:
                self._parked.add(index)
                continue
            options = [s for s in capable if len(s.outstanding) < self.config.per_source]
            if not options:
                waiting.append(index)
                if len(waiting) > self.config.window:
                    break  # every source is saturated: stop looking
                continue
            source = min(
                options,
                key=lambda s: (s.chunks < self.total, len(s.outstanding), s.timeouts, s.peer_id),
            )
            source.outstanding[index] = now
            self._asked.setdefault(index, set()).add(source.peer_id)
            self._actions.append(AskChunk(source.peer_id, self.manifest_id, index, chunks[index]))
            budget -= 1
        for index in waiting:
            heapq.heappush(self._queue, index)
            self._queued.add(index)

    def _ask_manifest(self, now: int) -> None:
        if self.manifest_asked:
            return
        options = [s for s in self.sources.values() if not s.no_manifest]
        source = min(options, key=lambda s: (-s.chunks, s.peer_id), default=None)
        if source is not None:
            self.manifest_asked[source.peer_id] = now
            self._actions.append(AskManifest(source.peer_id, self.manifest_id))
