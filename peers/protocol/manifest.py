"""File manifests: the signed description of a shared file (docs/protocol.md "Files").

Body ``{file_id, name, mime, size, chunk_size, chunks, created_at, author}``, signed with
domain ``swarm/manifest/v1``. The manifest id, which a share link ``/f/<manifest id>`` names,
is :func:`object_id` of the body. The file key is never in a manifest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .chunks import (
    CHUNK_SIZE,
    MAX_FILE_SIZE,
    TAG_BYTES,
    EncryptedFile,
    check_chunk_id,
    chunk_count,
    chunk_length,
    decrypt_chunk,
    digest_id,
    is_digest_id,
    is_file_id,
)
from .encoding import PEER_ID_RE, peer_id_for_key
from .envelope import DOMAIN_MANIFEST, MAX_SAFE_INTEGER, JsonObject, sign, signing_input, verify
from .errors import (
    BAD_CHUNK,
    BAD_MANIFEST,
    MANIFEST_MISMATCH,
    NOT_YET_VALID,
    PEER_MISMATCH,
    ProtocolError,
)

CLOCK_SKEW_MS = 15_000
MAX_NAME_BYTES = 255
DEFAULT_MIME = "application/octet-stream"
# RFC 6838 restricted names, lowercase only (one spelling per type), no parameters.
MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
# Control characters and bidirectional overrides (which can disguise an extension), and
# path separators: a name is a bare file name.
NAME_FORBIDDEN_RE = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069/\\]")
FIELDS = frozenset(
    {"file_id", "name", "mime", "size", "chunk_size", "chunks", "created_at", "author"}
)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A verified manifest; ``envelope`` is the exact signed object received."""

    id: str
    file_id: str
    name: str
    mime: str
    size: int
    chunk_size: int
    chunks: tuple[str, ...]
    created_at: int
    author: str
    public_key: bytes
    envelope: JsonObject

    def chunk_length(self, index: int) -> int:
        """Plaintext length of chunk ``index``."""
        return chunk_length(self.size, index)

    def ciphertext_length(self, index: int) -> int:
        """Exact byte length a holder must serve for chunk ``index``."""
        return chunk_length(self.size, index) + TAG_BYTES


def object_id(domain: str, body: JsonObject) -> str:
    """Unpadded base64url SHA-256 of ``domain + "\\n" + JCS(body)``: the id of a signed object.

    The signature is left out, so an object has one id however many times it is signed.
    """
    return digest_id(signing_input(domain, body))


def normalize_mime(mime: str | None) -> str:
    """What a sender puts in a manifest for a browser's ``File.type`` (often empty)."""
    candidate = (mime or "").split(";", 1)[0].strip().lower()
    return candidate if MIME_RE.fullmatch(candidate) else DEFAULT_MIME


def is_valid_name(name: object) -> bool:
    if not isinstance(name, str) or name in {"", ".", ".."}:
        return False
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return len(encoded) <= MAX_NAME_BYTES and not NAME_FORBIDDEN_RE.search(name)


def make_manifest(
    private_key: Ed25519PrivateKey,
    encrypted: EncryptedFile,
    *,
    name: str,
    mime: str,
    created_at: int,
) -> JsonObject:
    """Sign the manifest of a sealed file; ``bad_manifest`` if the result would not verify."""
    body: JsonObject = {
        "file_id": encrypted.file_id,
        "name": name,
        "mime": mime,
        "size": encrypted.size,
        "chunk_size": CHUNK_SIZE,
        "chunks": encrypted.chunk_ids,
        "created_at": created_at,
        "author": peer_id_for_key(private_key.public_key().public_bytes_raw()),
    }
    _check_fields(body)
    return sign(DOMAIN_MANIFEST, body, private_key)


def verify_manifest(
    envelope: object,
    *,
    now: int | None = None,
    expected_id: str | None = None,
    skew_ms: int = CLOCK_SKEW_MS,
) -> Manifest:
    """Verify a manifest; ``expected_id`` is the id it was asked for (e.g. from a share link)."""
    verified = verify(envelope, DOMAIN_MANIFEST)
    body = verified.body
    _check_fields(body)
    if verified.peer_id != body["author"]:
        raise ProtocolError(PEER_MISMATCH, "author is not the peer id of the signing key")
    if now is not None and body["created_at"] > now + skew_ms:
        raise ProtocolError(NOT_YET_VALID, "manifest is created in the future")
    manifest_id = object_id(DOMAIN_MANIFEST, body)
    if expected_id is not None and manifest_id != expected_id:
        raise ProtocolError(MANIFEST_MISMATCH, f"manifest id is {manifest_id}, not {expected_id}")
    return Manifest(
        id=manifest_id,
        file_id=body["file_id"],
        name=body["name"],
        mime=body["mime"],
        size=body["size"],
        chunk_size=body["chunk_size"],
        chunks=tuple(body["chunks"]),
        created_at=body["created_at"],
        author=body["author"],
        public_key=verified.public_key,
        envelope=cast(JsonObject, envelope),
    )


def open_chunk(manifest: Manifest, key: bytes, index: int, ciphertext: bytes) -> bytes:
    """Check a received chunk (position, length, id) and decrypt it.

    ``chunk_mismatch`` means the holder sent wrong bytes: discard and fetch elsewhere.
    """
    if type(index) is not int or not 0 <= index < len(manifest.chunks):
        raise ProtocolError(BAD_CHUNK, f"chunk index {index} is outside the manifest")
    check_chunk_id(manifest.chunks[index], ciphertext)
    if len(ciphertext) != manifest.ciphertext_length(index):
        # Unreachable unless the author signed an inconsistent manifest.
        raise ProtocolError(BAD_CHUNK, f"chunk {index} has the wrong length")
    return decrypt_chunk(key, manifest.file_id, index, ciphertext)


def decrypt_file(manifest: Manifest, key: bytes, chunks: Sequence[bytes]) -> bytes:
    """All chunks in order -> the plaintext file."""
    if len(chunks) != len(manifest.chunks):
        raise ProtocolError(BAD_CHUNK, f"expected {len(manifest.chunks)} chunks, got {len(chunks)}")
    return b"".join(open_chunk(manifest, key, i, chunk) for i, chunk in enumerate(chunks))


def _check_fields(body: JsonObject) -> None:
    keys = set(body)
    if keys != FIELDS:
        missing = sorted(FIELDS - keys)
        unknown = sorted(keys - FIELDS)
        detail = f"is missing {missing}" if missing else f"has unknown fields {unknown}"
        raise ProtocolError(BAD_MANIFEST, f"manifest {detail}")
    if not is_file_id(body["file_id"]):
        raise ProtocolError(BAD_MANIFEST, "file_id must be 16 bytes in canonical base64url")
    if not is_valid_name(body["name"]):
        raise ProtocolError(
            BAD_MANIFEST,
            f"name must be 1-{MAX_NAME_BYTES} UTF-8 bytes without control characters or slashes",
        )
    mime = body["mime"]
    if not isinstance(mime, str) or not MIME_RE.fullmatch(mime):
        raise ProtocolError(BAD_MANIFEST, "mime must be a lowercase type/subtype")
    size = body["size"]
    if type(size) is not int or not 0 <= size <= MAX_FILE_SIZE:
        raise ProtocolError(BAD_MANIFEST, f"size must be an integer 0..{MAX_FILE_SIZE}")
    if type(body["chunk_size"]) is not int or body["chunk_size"] != CHUNK_SIZE:
        raise ProtocolError(BAD_MANIFEST, f"chunk_size must be {CHUNK_SIZE}")
    chunks = body["chunks"]
    if not isinstance(chunks, list) or not all(is_digest_id(c) for c in chunks):
        raise ProtocolError(BAD_MANIFEST, "chunks must be a list of chunk ids")
    if len(chunks) != chunk_count(size):
        raise ProtocolError(
            BAD_MANIFEST, f"a {size}-byte file has {chunk_count(size)} chunks, not {len(chunks)}"
        )
    if len(set(chunks)) != len(chunks):
        raise ProtocolError(BAD_MANIFEST, "chunk ids repeat")
    created_at = body["created_at"]
    if type(created_at) is not int or not 0 <= created_at <= MAX_SAFE_INTEGER:
        raise ProtocolError(BAD_MANIFEST, "created_at must be a non-negative integer (ms)")
    author = body["author"]
    if not isinstance(author, str) or not PEER_ID_RE.fullmatch(author):
        raise ProtocolError(BAD_MANIFEST, "author is not a key-bound peer id")
