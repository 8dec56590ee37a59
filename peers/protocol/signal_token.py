"""Signal tokens: proof that a signaling connection holds the key behind a key-bound id.

PeerJS sends a ``token`` with every WebSocket connection and the server only compares
it with the token of the connection holding the id. For key-bound ids (``p`` + 32 base32
characters, bound to an Ed25519 key) Swarm's server asks for more: the token is a signed
timestamp, so only the key's owner can hold the id, and a reconnect with a fresh proof
takes the id back from a stale socket at once.

Format (one URL-safe string, about 150 characters)::

    s1.<issued_at>.<pk>.<sig>

``issued_at`` is milliseconds since the epoch in decimal, ``pk`` the raw 32-byte public
key and ``sig`` the 64-byte Ed25519 signature, both unpadded base64url. The signature
covers ``"swarm/signal-token/v1\\n" + JCS({"issued_at": issued_at, "peer_id": peer_id})``,
the signing input of every signed Swarm object (docs/protocol.md).

A token is valid at ``now`` when ``issued_at <= now + skew`` and
``now < issued_at + max_age``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .encoding import b64url_decode, b64url_encode, peer_id_for_key
from .envelope import DOMAIN_SIGNAL_TOKEN, MAX_SAFE_INTEGER, signing_input
from .errors import BAD_SIGNATURE, EXPIRED, NOT_YET_VALID, PEER_MISMATCH, ProtocolError

PREFIX = "s1"
BAD_TOKEN = "bad_token"  # noqa: S105 - an error code, not a secret
DEFAULT_MAX_AGE_MS = 600_000
CLOCK_SKEW_MS = 15_000
# "s1." + up to 16 digits + "." + 43 + "." + 86 characters.
MAX_TOKEN_LENGTH = 160
_ISSUED_AT_RE = re.compile(r"^(0|[1-9][0-9]{0,15})$")
_PUBLIC_KEY_BYTES = 32
_SIGNATURE_BYTES = 64


@dataclass(frozen=True, slots=True)
class SignalProof:
    """A token that checked out: the key holds ``peer_id`` since ``issued_at``."""

    peer_id: str
    public_key: bytes
    issued_at: int

    @property
    def public_key_b64(self) -> str:
        return b64url_encode(self.public_key)


def token_body(peer_id: str, issued_at: int) -> dict[str, object]:
    return {"issued_at": issued_at, "peer_id": peer_id}


def make_signal_token(
    private_key: Ed25519PrivateKey, *, now: int, peer_id: str | None = None
) -> str:
    """Sign a token for the key-bound id of ``private_key`` (``peer_id`` only for tests)."""
    public_raw = private_key.public_key().public_bytes_raw()
    peer_id = peer_id or peer_id_for_key(public_raw)
    signature = private_key.sign(signing_input(DOMAIN_SIGNAL_TOKEN, token_body(peer_id, now)))
    return f"{PREFIX}.{now}.{b64url_encode(public_raw)}.{b64url_encode(signature)}"


def parse_signal_token(token: object) -> tuple[int, bytes, bytes]:
    """Split a token into ``(issued_at, public_key, signature)``; raise ``bad_token``."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise ProtocolError(BAD_TOKEN, "token is not a signal token")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise ProtocolError(BAD_TOKEN, f"token must be {PREFIX}.<issued_at>.<pk>.<sig>")
    if not _ISSUED_AT_RE.fullmatch(parts[1]) or int(parts[1]) > MAX_SAFE_INTEGER:
        raise ProtocolError(BAD_TOKEN, "issued_at must be a decimal integer (ms)")
    public_key = b64url_decode(parts[2], field="pk", code=BAD_TOKEN)
    if len(public_key) != _PUBLIC_KEY_BYTES:
        raise ProtocolError(BAD_TOKEN, "pk must be a 32-byte Ed25519 key")
    signature = b64url_decode(parts[3], field="sig", code=BAD_TOKEN)
    if len(signature) != _SIGNATURE_BYTES:
        raise ProtocolError(BAD_TOKEN, "sig must be a 64-byte Ed25519 signature")
    return int(parts[1]), public_key, signature


def verify_signal_token(
    token: object,
    *,
    peer_id: str,
    now: int,
    max_age_ms: int = DEFAULT_MAX_AGE_MS,
    skew_ms: int = CLOCK_SKEW_MS,
) -> SignalProof:
    """Check that ``token`` proves ownership of ``peer_id`` at ``now``; raise ProtocolError.

    Cheapest checks first: shape, key-to-id binding, time window, then the signature.
    """
    issued_at, public_key, signature = parse_signal_token(token)
    if peer_id_for_key(public_key) != peer_id:
        raise ProtocolError(PEER_MISMATCH, "the token's key is not bound to this id")
    if issued_at > now + skew_ms:
        raise ProtocolError(NOT_YET_VALID, "token is issued in the future")
    if now >= issued_at + max_age_ms:
        raise ProtocolError(EXPIRED, "token has expired")
    message = signing_input(DOMAIN_SIGNAL_TOKEN, token_body(peer_id, issued_at))
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise ProtocolError(BAD_SIGNATURE, "token signature does not verify") from exc
    return SignalProof(peer_id=peer_id, public_key=public_key, issued_at=issued_at)
