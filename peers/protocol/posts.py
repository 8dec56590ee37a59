"""Signed post entries (docs/protocol.md "Posts").

Each entry is one step of its author's append-only log, signed with domain ``swarm/post/v1``:
``{author, seq, prev, created_at, kind, text, target, attachments, name}``. The entry hash,
which ``prev`` and ``target`` refer to, is :func:`~peers.protocol.manifest.object_id` of the
body. Chain rules (seq, prev, forks) live in :mod:`peers.protocol.postlog`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .chunks import is_digest_id
from .encoding import PEER_ID_RE, peer_id_for_key
from .envelope import DOMAIN_POST, MAX_SAFE_INTEGER, JsonObject, sign, verify
from .errors import BAD_POST, NOT_YET_VALID, PEER_MISMATCH, ProtocolError
from .manifest import object_id

KIND_POST = "post"
KIND_EDIT = "edit"
KIND_DELETE = "delete"
KINDS = frozenset({KIND_POST, KIND_EDIT, KIND_DELETE})
MAX_TEXT_BYTES = 8192
MAX_NAME_BYTES = 64
MAX_ATTACHMENTS = 16
CLOCK_SKEW_MS = 15_000
FIELDS = frozenset(
    {"author", "seq", "prev", "created_at", "kind", "text", "target", "attachments", "name"}
)
# Text keeps tabs and line breaks; names are one line. Neither may carry bidi overrides in
# the name (which could disguise who is speaking).
TEXT_FORBIDDEN_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NAME_FORBIDDEN_RE = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True, slots=True)
class PostEntry:
    """A verified entry; ``envelope`` is the exact signed object received."""

    hash: str
    author: str
    seq: int
    prev: str | None
    created_at: int
    kind: str
    text: str
    target: str | None
    attachments: tuple[str, ...]
    name: str
    public_key: bytes
    envelope: JsonObject


def make_post(
    private_key: Ed25519PrivateKey,
    *,
    seq: int,
    prev: str | None,
    created_at: int,
    kind: str = KIND_POST,
    text: str = "",
    target: str | None = None,
    attachments: Sequence[str] = (),
    name: str = "",
) -> JsonObject:
    """Sign one log entry; raises ``bad_post`` if it would not verify."""
    body: JsonObject = {
        "author": peer_id_for_key(private_key.public_key().public_bytes_raw()),
        "seq": seq,
        "prev": prev,
        "created_at": created_at,
        "kind": kind,
        "text": text,
        "target": target,
        "attachments": list(attachments),
        "name": name,
    }
    _check_fields(body)
    return sign(DOMAIN_POST, body, private_key)


def entry_hash(body: JsonObject) -> str:
    return object_id(DOMAIN_POST, body)


def verify_post(
    envelope: object, *, now: int | None = None, skew_ms: int = CLOCK_SKEW_MS
) -> PostEntry:
    """Verify one entry on its own (signature, fields, author); not its place in the log."""
    verified = verify(envelope, DOMAIN_POST)
    body = verified.body
    _check_fields(body)
    if verified.peer_id != body["author"]:
        raise ProtocolError(PEER_MISMATCH, "author is not the peer id of the signing key")
    if now is not None and body["created_at"] > now + skew_ms:
        raise ProtocolError(NOT_YET_VALID, "post is created in the future")
    return PostEntry(
        hash=entry_hash(body),
        author=body["author"],
        seq=body["seq"],
        prev=body["prev"],
        created_at=body["created_at"],
        kind=body["kind"],
        text=body["text"],
        target=body["target"],
        attachments=tuple(body["attachments"]),
        name=body["name"],
        public_key=verified.public_key,
        envelope=cast(JsonObject, envelope),
    )


def utf8_length(text: str) -> int | None:
    """UTF-8 length, or None for strings with lone surrogates (not valid Unicode text)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _check_fields(body: JsonObject) -> None:
    keys = set(body)
    if keys != FIELDS:
        missing = sorted(FIELDS - keys)
        unknown = sorted(keys - FIELDS)
        detail = f"is missing {missing}" if missing else f"has unknown fields {unknown}"
        raise ProtocolError(BAD_POST, f"post {detail}")
    author = body["author"]
    if not isinstance(author, str) or not PEER_ID_RE.fullmatch(author):
        raise ProtocolError(BAD_POST, "author is not a key-bound peer id")
    seq = body["seq"]
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise ProtocolError(BAD_POST, "seq must be a non-negative integer")
    prev = body["prev"]
    if seq == 0 and prev is not None:
        raise ProtocolError(BAD_POST, "the first entry (seq 0) has prev null")
    if seq > 0 and not is_digest_id(prev):
        raise ProtocolError(BAD_POST, "prev must be the hash of the previous entry")
    created_at = body["created_at"]
    if type(created_at) is not int or not 0 <= created_at <= MAX_SAFE_INTEGER:
        raise ProtocolError(BAD_POST, "created_at must be a non-negative integer (ms)")
    kind = body["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise ProtocolError(BAD_POST, "kind must be post, edit or delete")
    text = body["text"]
    length = utf8_length(text) if isinstance(text, str) else None
    if length is None or length > MAX_TEXT_BYTES or TEXT_FORBIDDEN_RE.search(text):
        raise ProtocolError(
            BAD_POST, f"text must be at most {MAX_TEXT_BYTES} UTF-8 bytes of printable text"
        )
    attachments = body["attachments"]
    if (
        not isinstance(attachments, list)
        or len(attachments) > MAX_ATTACHMENTS
        or not all(is_digest_id(a) for a in attachments)
        or len(set(attachments)) != len(attachments)
    ):
        raise ProtocolError(
            BAD_POST, f"attachments must be up to {MAX_ATTACHMENTS} distinct manifest ids"
        )
    target = body["target"]
    if kind == KIND_POST and target is not None:
        raise ProtocolError(BAD_POST, "a post has target null")
    if kind != KIND_POST and not is_digest_id(target):
        raise ProtocolError(BAD_POST, "an edit or delete names the hash of its target post")
    if kind == KIND_DELETE and (text or attachments):
        raise ProtocolError(BAD_POST, "a delete carries no text or attachments")
    if kind != KIND_DELETE and not text and not attachments:
        raise ProtocolError(BAD_POST, f"an empty {kind}: it needs text or attachments")
    name = body["name"]
    name_length = utf8_length(name) if isinstance(name, str) else None
    if name_length is None or name_length > MAX_NAME_BYTES or NAME_FORBIDDEN_RE.search(name):
        raise ProtocolError(
            BAD_POST, f"name must be at most {MAX_NAME_BYTES} UTF-8 bytes on one line"
        )
