"""One manifest being fetched by the super-peer: the shared scheduler
(:class:`peers.protocol.transfer.Transfer`, the one the browser runs too) plus the checks.

The scheduler decides whom to ask for what and when; this layer checks every answer before
the scheduler hears of it: a manifest must verify and be the one asked for; a chunk must be
labelled with the manifest's id at its index, hash to it and have the length the manifest
implies. Outputs (:meth:`Download.take_actions`): requests to send, verified chunks to store,
sources that failed, the verified manifest, and the end of the job when it gives up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from peers.protocol import transfer as core
from peers.protocol.chunks import TAG_BYTES, chunk_length
from peers.protocol.encoding import b64url_encode
from peers.protocol.errors import CHUNK_MISMATCH, ProtocolError
from peers.protocol.manifest import Manifest, verify_manifest

BAD_CHUNK = "bad_chunk"
TIMEOUT = core.DROP_TIMEOUT


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
    code: str  # chunk_mismatch, bad_chunk, the manifest codes (penalised); timeout (not)
    message: str


@dataclass(frozen=True)
class ManifestReady:
    manifest: Manifest


@dataclass(frozen=True)
class GaveUp:
    """Waited longer than the job's give-up timeout (only jobs that have one)."""

    code: str
    message: str


Action = AskManifest | AskChunk | StoreChunk | SourceFailed | ManifestReady | GaveUp


class Download:
    """One manifest being fetched; ``has_chunk`` says which chunk ids the store holds."""

    def __init__(
        self,
        manifest_id: str,
        *,
        has_chunk: Callable[[str], bool],
        manifest: Manifest | None = None,
        now: int,
        options: core.TransferOptions | None = None,
    ) -> None:
        self.manifest_id = manifest_id
        self.manifest = manifest
        self.has_chunk = has_chunk
        self.lacking: set[str] = set()  # sources that answered chunk_missing
        self._actions: list[Action] = []
        count = None if manifest is None else len(manifest.chunks)
        held = [] if manifest is None else self._held(manifest)
        self.transfer = core.Transfer(
            manifest_id, now=now, chunk_count=count, held=held, options=options
        )

    # --- state ---

    @property
    def complete(self) -> bool:
        return self.transfer.phase == "complete"

    @property
    def total(self) -> int:
        return self.transfer.count

    @property
    def done(self) -> int:
        return self.transfer.held_count

    @property
    def waiting(self) -> bool:
        """Nobody to ask: waiting for a source to appear."""
        return self.transfer.waiting is not None

    @property
    def failed(self) -> dict[str, str]:
        """Peers dropped from this download -> why."""
        return self.transfer.dropped

    def in_flight(self) -> int:
        return self.transfer.in_flight()

    def failed_sources(self) -> list[str]:
        return sorted(set(self.transfer.dropped) | self.lacking)

    def next_deadline(self, now: int) -> int | None:
        return self.transfer.next_deadline(now)

    def take_actions(self) -> list[Action]:
        for action in self.transfer.take_actions():
            match action:
                case core.AskManifest(peer_id):
                    self._actions.append(AskManifest(peer_id, self.manifest_id))
                case core.AskChunk(peer_id, index) if self.manifest is not None:
                    chunk_id = self.manifest.chunks[index]
                    self._actions.append(AskChunk(peer_id, self.manifest_id, index, chunk_id))
                case core.Penalize(peer_id, code, message) | core.SourceDropped(
                    peer_id, code, message
                ):
                    self._actions.append(SourceFailed(peer_id, code, message))
                case core.Failed(code, message):
                    self._actions.append(GaveUp(code, message))
        out, self._actions = self._actions, []
        return out

    # --- inputs ---

    def peer_opened(self, peer_id: str, now: int) -> None:
        """A connected peer: asked for the manifest when no holder answers."""
        self.transfer.peer_opened(peer_id, now)

    def add_source(self, peer_id: str, chunks: int, now: int) -> None:
        """A peer holds ``chunks`` chunks of the manifest (0 withdraws it)."""
        self.transfer.have(peer_id, chunks, now)

    def remove_source(self, peer_id: str, now: int) -> None:
        """The peer is gone (or penalised elsewhere): its requests go to the others."""
        self.transfer.peer_closed(peer_id, now)

    def manifest_received(self, peer_id: str, envelope: object, now: int) -> None:
        if not self.transfer.awaits_manifest_from(peer_id):
            return  # not asked, or timed out already: ignored
        if envelope is None:
            self.transfer.manifest_absent(peer_id, now)
            return
        try:
            manifest = verify_manifest(envelope, now=now, expected_id=self.manifest_id)
        except ProtocolError as exc:
            self.transfer.manifest_rejected(peer_id, exc.code, exc.message, now)
            return
        if self.manifest is None:
            self.manifest = manifest
            self._actions.append(ManifestReady(manifest))
        chunks = self.manifest.chunks
        self.transfer.manifest_ready(peer_id, len(chunks), self._held(self.manifest), now)

    def chunk_received(
        self, peer_id: str, index: int, chunk_id: str, data: bytes, now: int
    ) -> None:
        manifest = self.manifest
        if manifest is None or not self.transfer.expects(peer_id, index):
            return  # never asked of this peer, or the peer was dropped: ignored
        try:
            check_chunk(manifest, index, chunk_id, data)
        except ProtocolError as exc:
            self.transfer.chunk_rejected(peer_id, index, exc.code, exc.message, now)
            return
        if self.transfer.chunk_accepted(peer_id, index, len(data), now):
            self._actions.append(StoreChunk(index, chunk_id, data, peer_id))

    def chunk_missing(self, peer_id: str, index: int, now: int) -> None:
        if self.transfer.expects(peer_id, index):
            self.lacking.add(peer_id)
        self.transfer.chunk_missing(peer_id, index, now)

    def store_failed(self, indexes: Iterable[int], now: int) -> None:
        """Chunks handed out for storage are not in the store (the write failed, or they
        were evicted meanwhile): fetch them again."""
        for index in indexes:
            self.transfer.chunk_lost(index, now)

    def tick(self, now: int) -> None:
        self.transfer.tick(now)

    def _held(self, manifest: Manifest) -> list[int]:
        return [i for i, chunk_id in enumerate(manifest.chunks) if self.has_chunk(chunk_id)]


def check_chunk(manifest: Manifest, index: int, chunk_id: str, data: bytes) -> None:
    """The chunk at ``index`` is the manifest's: its id, its hash and its length."""
    if manifest.chunks[index] != chunk_id:
        raise ProtocolError(BAD_CHUNK, f"chunk {index} of this manifest is not {chunk_id}")
    actual = b64url_encode(hashlib.sha256(data).digest())
    if actual != chunk_id:
        raise ProtocolError(CHUNK_MISMATCH, f"chunk {index} hashes to {actual}")
    if len(data) != chunk_length(manifest.size, index) + TAG_BYTES:
        raise ProtocolError(BAD_CHUNK, f"chunk {index} has the wrong length")
