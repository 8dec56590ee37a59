"""Chunks on disk, one file per chunk, named by the hex of its SHA-256.

``<root>/<2 hex>/<64 hex>``: hex rather than the chunk id itself because ids are
case-sensitive base64url and a store may sit on a case-insensitive file system (docs/
protocol.md "Chunks"). Every write recomputes the digest and lands atomically
(:func:`shared.atomic.write_atomic` with its temporary in ``<root>/tmp/``): a crash at any
moment leaves either the whole verified chunk or no chunk (plus a temp file that the next
:meth:`ChunkStore.scan` removes).

Blocking file IO: callers on an event loop run writes in a thread (reads of 64 KiB from the
page cache are cheap enough to stay inline).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from peers.protocol.chunks import CHUNK_SIZE, TAG_BYTES, is_digest_id
from peers.protocol.encoding import b64url_decode, b64url_encode
from shared.atomic import write_atomic

from .errors import BAD_CHUNK_ID, CHUNK_MISMATCH, CHUNK_TOO_LARGE, SuperPeerError

logger = logging.getLogger(__name__)

MAX_CHUNK_BYTES = CHUNK_SIZE + TAG_BYTES
TMP_DIR = "tmp"
_HEX = frozenset("0123456789abcdef")


def chunk_hex(chunk_id: str) -> str:
    """The file name of a chunk: the hex of the digest its id spells."""
    if not is_digest_id(chunk_id):
        raise SuperPeerError(BAD_CHUNK_ID, "a chunk id is 43 characters of canonical base64url")
    return b64url_decode(chunk_id, field="chunk", code=BAD_CHUNK_ID).hex()


def chunk_id_of_hex(name: str) -> str | None:
    if len(name) != 64 or not set(name) <= _HEX:
        return None
    return b64url_encode(bytes.fromhex(name))


@dataclass
class ScanReport:
    """What :meth:`ChunkStore.scan` found: the verified chunks and what it removed."""

    chunks: dict[str, int] = field(default_factory=dict)  # chunk id -> bytes
    temp_removed: int = 0
    corrupt: list[str] = field(default_factory=list)  # chunk ids whose bytes did not match
    stray: list[str] = field(default_factory=list)  # files that are not chunks (left alone)

    @property
    def bytes(self) -> int:
        return sum(self.chunks.values())

    def as_json(self) -> dict[str, object]:
        return {
            "chunks": len(self.chunks),
            "bytes": self.bytes,
            "temp_removed": self.temp_removed,
            "corrupt": list(self.corrupt),
            "stray": list(self.stray),
        }


class ChunkStore:
    """Verified, atomic chunk files under ``root``."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.tmp = root / TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, chunk_id: str) -> Path:
        name = chunk_hex(chunk_id)
        return self.root / name[:2] / name

    def has(self, chunk_id: str) -> bool:
        return self.path(chunk_id).is_file()

    def size(self, chunk_id: str) -> int | None:
        try:
            return self.path(chunk_id).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, chunk_id: str) -> bytes | None:
        """The chunk's bytes, or None when it is not held."""
        try:
            return self.path(chunk_id).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, chunk_id: str, data: bytes) -> bool:
        """Store a chunk after checking that ``data`` hashes to ``chunk_id``.

        Returns False when the chunk was already held (nothing written). Raises
        ``chunk_mismatch`` for wrong bytes and ``chunk_too_large`` beyond 64 KiB + tag.
        """
        target = self.path(chunk_id)
        if len(data) > MAX_CHUNK_BYTES:
            raise SuperPeerError(CHUNK_TOO_LARGE, f"a chunk is at most {MAX_CHUNK_BYTES} bytes")
        actual = b64url_encode(hashlib.sha256(data).digest())
        if actual != chunk_id:
            raise SuperPeerError(CHUNK_MISMATCH, f"data hashes to {actual}, not {chunk_id}")
        if target.is_file():
            return False
        target.parent.mkdir(exist_ok=True)
        write_atomic(target, data, mode=0o600, tmp_dir=self.tmp, durable=self.fsync)
        return True

    def delete(self, chunk_id: str) -> int:
        """Remove a chunk; returns the bytes freed (0 when it was not there)."""
        path = self.path(chunk_id)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def scan(self, *, verify: bool = True) -> ScanReport:
        """Walk the store: remove temp files, and with ``verify`` every chunk file whose
        bytes do not hash to its name (logged and reported). Other files are left alone."""
        report = ScanReport()
        for tmp in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                report.temp_removed += 1
        for path in self._chunk_paths(report):
            chunk_id = chunk_id_of_hex(path.name)
            if chunk_id is None or path.parent.name != path.name[:2]:
                report.stray.append(str(path.relative_to(self.root)))
                continue
            data = path.read_bytes()
            if len(data) > MAX_CHUNK_BYTES or (
                verify and hashlib.sha256(data).hexdigest() != path.name
            ):
                logger.warning("chunk store: removed corrupt chunk %s", chunk_id)
                path.unlink()
                report.corrupt.append(chunk_id)
                continue
            report.chunks[chunk_id] = len(data)
        return report

    def verify_all(self) -> list[str]:
        """Chunk ids whose files do not hash to their names (nothing is removed)."""
        bad = []
        for path in self._chunk_paths(ScanReport()):
            chunk_id = chunk_id_of_hex(path.name)
            if chunk_id is not None and hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
                bad.append(chunk_id)
        return bad

    def _chunk_paths(self, report: ScanReport) -> Iterator[Path]:
        for sub in sorted(self.root.iterdir()):
            if sub.name == TMP_DIR:
                continue
            if not sub.is_dir():
                report.stray.append(sub.name)
                continue
            for path in sorted(sub.iterdir()):
                if path.is_file():
                    yield path
                else:
                    report.stray.append(str(path.relative_to(self.root)))
