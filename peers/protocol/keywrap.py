"""File keys wrapped for one recipient, and the X25519 keys they are wrapped to.

A peer's X25519 key is a separate key pair, announced in an object signed by its Ed25519
identity (domain ``swarm/xkey/v1``): browsers keep the identity as a non-extractable
WebCrypto key, so it cannot be converted to X25519. It is derived from the identity's seed
(``x25519_from_identity_seed``), so whoever restores the identity (a backup, Shamir shares)
can open the file keys wrapped to it before. Wrapping (docs/protocol.md "Files"):

- ``shared = X25519(ephemeral, recipient)``,
- ``okm = HKDF-SHA256(ikm=shared, salt=epk || recipient_pk, info="swarm/keywrap/v1", L=44)``,
- AES-256-GCM key ``okm[:32]``, nonce ``okm[32:44]`` (a fresh ephemeral key per wrap),
- associated data ``"swarm/keywrap/v1\\n" + file_id + "\\n" + to`` (ASCII).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .chunks import KEY_BYTES, check_file_key, is_file_id
from .encoding import PEER_ID_RE, b64url_decode, b64url_encode, peer_id_for_key
from .envelope import MAX_SAFE_INTEGER, JsonObject, sign, verify
from .errors import (
    BAD_BODY,
    BAD_KEY,
    BAD_WRAPPED_KEY,
    DECRYPT_FAILED,
    NOT_YET_VALID,
    PEER_MISMATCH,
    WRONG_FILE,
    WRONG_RECIPIENT,
    ProtocolError,
)

DOMAIN_XKEY = "swarm/xkey/v1"
WRAP_VERSION = 1
WRAP_ALG = "x25519-hkdf-sha256-aes256gcm"
WRAP_INFO = b"swarm/keywrap/v1"
XKEY_INFO = b"swarm/xkey/v1"  # HKDF info of the X25519 key derived from an identity seed
WRAP_FIELDS = frozenset({"v", "alg", "file_id", "to", "epk", "ct"})
XKEY_FIELDS = frozenset({"peer_id", "x25519", "created_at"})
X25519_BYTES = 32
WRAPPED_CT_BYTES = KEY_BYTES + 16
CLOCK_SKEW_MS = 15_000
_B64_32_RE = re.compile(r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")
# A fixed scalar for the low-order probe: any key whose shared secret with it is all zeros
# (which X25519 refuses) would make every wrap to it readable by anyone.
_PROBE = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"swarm/xkey/probe").digest())


@dataclass(frozen=True, slots=True)
class KeyAnnouncement:
    """A verified binding of an X25519 public key to a peer id."""

    peer_id: str
    x25519: bytes
    created_at: int
    envelope: JsonObject


def x25519_from_identity_seed(seed: bytes) -> X25519PrivateKey:
    """The X25519 key of an identity: HKDF-SHA256(ikm=Ed25519 seed, no salt,
    info="swarm/xkey/v1", L=32) as the X25519 private scalar (clamped by X25519 itself)."""
    if len(seed) != 32:
        raise ProtocolError(BAD_KEY, "an identity seed is 32 bytes")
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=XKEY_INFO).derive(seed)
    return X25519PrivateKey.from_private_bytes(raw)


def x25519_public(private_key: X25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes_raw()


def check_x25519_public(raw: bytes) -> X25519PublicKey:
    """A usable X25519 public key: 32 bytes and not of small order (``bad_key`` otherwise)."""
    if len(raw) != X25519_BYTES:
        raise ProtocolError(BAD_KEY, "an X25519 key is 32 bytes")
    public = X25519PublicKey.from_public_bytes(raw)
    try:
        _PROBE.exchange(public)
    except ValueError as exc:
        raise ProtocolError(BAD_KEY, "X25519 key is of small order") from exc
    return public


def make_key_announcement(
    identity: Ed25519PrivateKey, x25519_key: X25519PrivateKey, *, created_at: int
) -> JsonObject:
    """Sign ``{peer_id, x25519, created_at}`` with the identity key."""
    body: JsonObject = {
        "peer_id": peer_id_for_key(identity.public_key().public_bytes_raw()),
        "x25519": b64url_encode(x25519_public(x25519_key)),
        "created_at": created_at,
    }
    return sign(DOMAIN_XKEY, body, identity)


def verify_key_announcement(
    envelope: object, *, now: int | None = None, skew_ms: int = CLOCK_SKEW_MS
) -> KeyAnnouncement:
    """Verify an X25519 key announcement; the newest ``created_at`` per peer wins."""
    verified = verify(envelope, DOMAIN_XKEY)
    body = verified.body
    if set(body) != XKEY_FIELDS:
        raise ProtocolError(BAD_BODY, f"key announcement fields must be {sorted(XKEY_FIELDS)}")
    peer_id = body["peer_id"]
    if not isinstance(peer_id, str) or not PEER_ID_RE.fullmatch(peer_id):
        raise ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id")
    created_at = body["created_at"]
    if type(created_at) is not int or not 0 <= created_at <= MAX_SAFE_INTEGER:
        raise ProtocolError(BAD_BODY, "created_at must be a non-negative integer (ms)")
    if verified.peer_id != peer_id:
        raise ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key")
    raw = b64url_decode(body["x25519"], field="x25519", code=BAD_KEY)
    check_x25519_public(raw)
    if now is not None and created_at > now + skew_ms:
        raise ProtocolError(NOT_YET_VALID, "key announcement is created in the future")
    return KeyAnnouncement(
        peer_id=peer_id, x25519=raw, created_at=created_at, envelope=cast(JsonObject, envelope)
    )


def wrap_file_key(
    file_key: bytes,
    *,
    file_id: str,
    recipient: str,
    recipient_key: bytes,
    ephemeral: X25519PrivateKey | None = None,
) -> JsonObject:
    """Wrap ``file_key`` for peer ``recipient`` whose X25519 public key is ``recipient_key``.

    ``ephemeral`` is for test vectors only: a reused ephemeral key reuses the AES nonce.
    """
    check_file_key(file_key)
    if not is_file_id(file_id):
        raise ProtocolError(BAD_WRAPPED_KEY, "file_id must be 16 bytes in canonical base64url")
    if not PEER_ID_RE.fullmatch(recipient):
        raise ProtocolError(BAD_WRAPPED_KEY, "recipient is not a key-bound peer id")
    public = check_x25519_public(recipient_key)
    ephemeral = X25519PrivateKey.generate() if ephemeral is None else ephemeral
    epk = x25519_public(ephemeral)
    aes_key, nonce = derive_aead(ephemeral.exchange(public), epk, recipient_key)
    ct = AESGCM(aes_key).encrypt(nonce, file_key, _aad(file_id, recipient))
    return {
        "v": WRAP_VERSION,
        "alg": WRAP_ALG,
        "file_id": file_id,
        "to": recipient,
        "epk": b64url_encode(epk),
        "ct": b64url_encode(ct),
    }


def unwrap_file_key(
    wrapped: object,
    *,
    private_key: X25519PrivateKey,
    peer_id: str,
    file_id: str | None = None,
) -> bytes:
    """The file key in ``wrapped`` for this peer; ``file_id`` pins the file it must be for."""
    if not isinstance(wrapped, dict):
        raise ProtocolError(BAD_WRAPPED_KEY, "wrapped key must be a JSON object")
    if set(wrapped) != WRAP_FIELDS:
        raise ProtocolError(BAD_WRAPPED_KEY, f"wrapped key fields must be {sorted(WRAP_FIELDS)}")
    if type(wrapped["v"]) is not int or wrapped["v"] != WRAP_VERSION:
        raise ProtocolError(BAD_WRAPPED_KEY, "unsupported wrapped key version")
    if wrapped["alg"] != WRAP_ALG:
        raise ProtocolError(BAD_WRAPPED_KEY, "unsupported wrapping algorithm")
    if not is_file_id(wrapped["file_id"]):
        raise ProtocolError(BAD_WRAPPED_KEY, "file_id must be 16 bytes in canonical base64url")
    to = wrapped["to"]
    if not isinstance(to, str) or not PEER_ID_RE.fullmatch(to):
        raise ProtocolError(BAD_WRAPPED_KEY, "to is not a key-bound peer id")
    if not isinstance(wrapped["epk"], str) or not _B64_32_RE.fullmatch(wrapped["epk"]):
        raise ProtocolError(BAD_WRAPPED_KEY, "epk must be a 32-byte key in base64url")
    ct = b64url_decode(wrapped["ct"], field="ct", code=BAD_WRAPPED_KEY)
    if len(ct) != WRAPPED_CT_BYTES:
        raise ProtocolError(BAD_WRAPPED_KEY, f"ct must be {WRAPPED_CT_BYTES} bytes")
    if to != peer_id:
        raise ProtocolError(WRONG_RECIPIENT, "this key is wrapped for another peer")
    if file_id is not None and wrapped["file_id"] != file_id:
        raise ProtocolError(WRONG_FILE, "this key is wrapped for another file")
    epk = b64url_decode(wrapped["epk"], field="epk", code=BAD_WRAPPED_KEY)
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(epk))
    except ValueError as exc:
        raise ProtocolError(BAD_WRAPPED_KEY, "epk is of small order") from exc
    aes_key, nonce = derive_aead(shared, epk, x25519_public(private_key))
    try:
        return AESGCM(aes_key).decrypt(nonce, ct, _aad(wrapped["file_id"], to))
    except InvalidTag as exc:
        raise ProtocolError(DECRYPT_FAILED, "wrapped key does not open with this key") from exc


def derive_aead(
    shared: bytes, epk: bytes, recipient_key: bytes, info: bytes = WRAP_INFO
) -> tuple[bytes, bytes]:
    """AES-256-GCM key and nonce from an X25519 shared secret: HKDF-SHA256(ikm=shared,
    salt=epk || recipient_pk, info, L=44). Wrapped keys and sealed values differ by ``info``."""
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=epk + recipient_key, info=info)
    material = okm.derive(shared)
    return material[:32], material[32:]


def _aad(file_id: str, recipient: str) -> bytes:
    return WRAP_INFO + b"\n" + file_id.encode("ascii") + b"\n" + recipient.encode("ascii")
