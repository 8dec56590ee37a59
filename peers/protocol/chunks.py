"""Encrypted file chunks (docs/protocol.md "Files").

A file is cut into 64 KiB chunks, each sealed with AES-256-GCM under a per-file random key.
The nonce is ``4 zero bytes || uint64_be(index)`` and the associated data binds the chunk to
its file and position: ``b"swarm/chunk/v1" || 0x00 || file_id (16 raw bytes) || uint64_be(index)``.
A chunk's id is the unpadded base64url SHA-256 of its ciphertext.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .encoding import PEER_ID_RE, b64url_decode, b64url_encode
from .errors import (
    BAD_CHUNK,
    BAD_KEY,
    BAD_MANIFEST,
    CHUNK_MISMATCH,
    DECRYPT_FAILED,
    ProtocolError,
)

CHUNK_SIZE = 64 * 1024
MAX_CHUNKS = 4096
# 256 MiB: keeps the chunk list of a manifest (43-character ids) inside one 256 KiB frame.
MAX_FILE_SIZE = CHUNK_SIZE * MAX_CHUNKS
KEY_BYTES = 32
FILE_ID_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK_AAD_DOMAIN = b"swarm/chunk/v1"
SHARE_FRAGMENT_PREFIX = "k="
SHARE_HINTS_PREFIX = "&h="
MAX_SHARE_HINTS = 4  # peer ids a share link names as holders to dial first

# Canonical unpadded base64url of 32 bytes (the last character carries 2 zero bits) and of
# 16 bytes (4 zero bits): one spelling per value, checked without decoding.
DIGEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")
FILE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{21}[AQgw]$")


def digest_id(data: bytes) -> str:
    """Unpadded base64url of SHA-256(data): the id of a chunk (and of signed objects)."""
    return b64url_encode(hashlib.sha256(data).digest())


def is_digest_id(value: object) -> bool:
    return isinstance(value, str) and bool(DIGEST_ID_RE.fullmatch(value))


def is_file_id(value: object) -> bool:
    return isinstance(value, str) and bool(FILE_ID_RE.fullmatch(value))


def new_file_key() -> bytes:
    """A fresh 32-byte AES-256 key; one per file, never reused for other content."""
    return secrets.token_bytes(KEY_BYTES)


def new_file_id() -> str:
    return b64url_encode(secrets.token_bytes(FILE_ID_BYTES))


def chunk_count(size: int) -> int:
    """Chunks of a ``size``-byte file: ceil(size / CHUNK_SIZE); an empty file has none."""
    return -(-size // CHUNK_SIZE)


def chunk_length(size: int, index: int) -> int:
    """Plaintext length of chunk ``index`` in a ``size``-byte file."""
    if not 0 <= index < chunk_count(size):
        raise ProtocolError(BAD_CHUNK, f"chunk index {index} is outside the file")
    return min(CHUNK_SIZE, size - index * CHUNK_SIZE)


def chunk_nonce(index: int) -> bytes:
    _check_index(index)
    return struct.pack(">IQ", 0, index)


def chunk_aad(file_id: str, index: int) -> bytes:
    _check_index(index)
    return CHUNK_AAD_DOMAIN + b"\x00" + _file_id_bytes(file_id) + struct.pack(">Q", index)


def encrypt_chunk(key: bytes, file_id: str, index: int, plaintext: bytes) -> bytes:
    """Seal one chunk; the result is ``len(plaintext) + 16`` bytes."""
    if not isinstance(plaintext, bytes):
        raise ProtocolError(BAD_CHUNK, "chunk data must be bytes")
    if len(plaintext) > CHUNK_SIZE:
        raise ProtocolError(BAD_CHUNK, f"a chunk holds at most {CHUNK_SIZE} bytes")
    aes = AESGCM(check_file_key(key))
    return aes.encrypt(chunk_nonce(index), plaintext, chunk_aad(file_id, index))


def decrypt_chunk(key: bytes, file_id: str, index: int, ciphertext: bytes) -> bytes:
    """Open one chunk; a wrong key, file, index or any altered byte gives ``decrypt_failed``."""
    if not isinstance(ciphertext, bytes):
        raise ProtocolError(BAD_CHUNK, "chunk data must be bytes")
    if not TAG_BYTES <= len(ciphertext) <= CHUNK_SIZE + TAG_BYTES:
        raise ProtocolError(BAD_CHUNK, "chunk ciphertext length is out of range")
    aes = AESGCM(check_file_key(key))
    try:
        return aes.decrypt(chunk_nonce(index), ciphertext, chunk_aad(file_id, index))
    except InvalidTag as exc:
        raise ProtocolError(
            DECRYPT_FAILED, f"chunk {index} does not open under this key and file"
        ) from exc


def check_chunk_id(expected_id: str, ciphertext: bytes) -> None:
    """Recompute a received chunk's id; a mismatch means discard it and ask another holder."""
    if not isinstance(ciphertext, bytes):
        raise ProtocolError(BAD_CHUNK, "chunk data must be bytes")
    actual = digest_id(ciphertext)
    if actual != expected_id:
        raise ProtocolError(CHUNK_MISMATCH, f"chunk hashes to {actual}, expected {expected_id}")


@dataclass(frozen=True, slots=True)
class EncryptedChunk:
    index: int
    id: str
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class EncryptedFile:
    """A file sealed for sharing: what goes in its manifest, plus the chunks to serve."""

    file_id: str
    key: bytes
    size: int
    chunks: tuple[EncryptedChunk, ...]

    @property
    def chunk_ids(self) -> list[str]:
        return [chunk.id for chunk in self.chunks]


def iter_encrypt(data: bytes, *, key: bytes, file_id: str) -> Iterator[EncryptedChunk]:
    """Seal ``data`` chunk by chunk (memory stays at one chunk beyond the input)."""
    if len(data) > MAX_FILE_SIZE:
        raise ProtocolError(BAD_CHUNK, f"files are at most {MAX_FILE_SIZE} bytes")
    view = memoryview(data)
    for index in range(chunk_count(len(data))):
        plain = bytes(view[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE])
        sealed = encrypt_chunk(key, file_id, index, plain)
        yield EncryptedChunk(index=index, id=digest_id(sealed), ciphertext=sealed)


def encrypt_file(
    data: bytes, *, key: bytes | None = None, file_id: str | None = None
) -> EncryptedFile:
    """Seal a whole file under a fresh key and file id (given ones are for test vectors)."""
    key = new_file_key() if key is None else key
    file_id = new_file_id() if file_id is None else file_id
    chunks = tuple(iter_encrypt(data, key=key, file_id=file_id))
    return EncryptedFile(file_id=file_id, key=key, size=len(data), chunks=chunks)


def check_file_key(key: object) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ProtocolError(BAD_KEY, "a file key is 32 bytes")
    return key


def share_fragment(key: bytes, hints: Iterable[str] = ()) -> str:
    """The URL fragment (without ``#``) that carries a file key in a share link, and after
    ``&h=`` up to :data:`MAX_SHARE_HINTS` peer ids that held the file (comma-separated)."""
    out = SHARE_FRAGMENT_PREFIX + b64url_encode(check_file_key(key))
    ids = [h for h in dict.fromkeys(hints) if isinstance(h, str) and PEER_ID_RE.fullmatch(h)]
    if ids:
        out += SHARE_HINTS_PREFIX + ",".join(ids[:MAX_SHARE_HINTS])
    return out


def _fragment_parts(fragment: object) -> list[str]:
    if not isinstance(fragment, str):
        raise ProtocolError(BAD_KEY, "share fragment must be a string")
    return fragment.removeprefix("#").split("&")


def parse_share_fragment(fragment: object) -> bytes:
    """The file key from ``k=<b64url>`` (a leading ``#`` is allowed, and ``&``-separated
    parameters after it); ``bad_key`` otherwise."""
    text = _fragment_parts(fragment)[0]
    if not text.startswith(SHARE_FRAGMENT_PREFIX):
        raise ProtocolError(BAD_KEY, "share fragment must be k=<key>")
    key = b64url_decode(text[len(SHARE_FRAGMENT_PREFIX) :], field="k", code=BAD_KEY)
    return check_file_key(key)


def parse_share_hints(fragment: object) -> tuple[str, ...]:
    """The holder hints of a share fragment: valid peer ids only, at most
    :data:`MAX_SHARE_HINTS`, duplicates removed; anything else in ``h=`` is ignored (a hint is
    only a peer to dial first, never trusted for anything)."""
    out: list[str] = []
    for part in _fragment_parts(fragment)[1:]:
        if not part.startswith("h="):
            continue
        for peer_id in part[2:].split(","):
            if PEER_ID_RE.fullmatch(peer_id) and peer_id not in out:
                out.append(peer_id)
    return tuple(out[:MAX_SHARE_HINTS])


def _check_index(index: int) -> None:
    if type(index) is not int or not 0 <= index < MAX_CHUNKS:
        raise ProtocolError(BAD_CHUNK, f"chunk index must be 0..{MAX_CHUNKS - 1}")


def _file_id_bytes(file_id: str) -> bytes:
    if not is_file_id(file_id):
        raise ProtocolError(BAD_MANIFEST, "file_id must be 16 bytes in canonical base64url")
    return b64url_decode(file_id, field="file_id", code=BAD_MANIFEST)
