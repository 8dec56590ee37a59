"""Small byte strings sealed to one peer's X25519 key (docs/protocol.md "Sealed values").

Mirror of static/swarm/protocol/seal.js. The construction is the key wrapping's
(:mod:`peers.protocol.keywrap`) with its own labels, so that nothing sealed here opens as a
wrapped file key or the other way round:

- ``shared = X25519(ephemeral, recipient)``,
- ``okm = HKDF-SHA256(ikm=shared, salt=epk || recipient_pk, info="swarm/seal/v1", L=44)``,
- AES-256-GCM key ``okm[:32]``, nonce ``okm[32:44]`` (a fresh ephemeral key per seal),
- associated data ``"swarm/seal/v1\\n" + recipient + "\\n" + context`` (UTF-8), where
  ``context`` names what the value is for (e.g. a share's owner, set and index).

The sealed value is ``epk (32 bytes) || ciphertext (len(data) + 16 bytes)``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .encoding import PEER_ID_RE
from .errors import BAD_SEALED, DECRYPT_FAILED, ProtocolError
from .keywrap import X25519_BYTES, check_x25519_public, derive_aead, x25519_public

SEAL_INFO = b"swarm/seal/v1"
MAX_SEALED_DATA = 1024
TAG_BYTES = 16
SEAL_OVERHEAD = X25519_BYTES + TAG_BYTES
MAX_SEALED_BYTES = MAX_SEALED_DATA + SEAL_OVERHEAD
MAX_CONTEXT_BYTES = 256


def seal(
    data: bytes,
    *,
    recipient: str,
    recipient_key: bytes,
    context: str,
    ephemeral: X25519PrivateKey | None = None,
) -> bytes:
    """Seal 1..1024 bytes for peer ``recipient`` whose X25519 public key is ``recipient_key``.

    ``ephemeral`` is for test vectors only: a reused ephemeral key reuses the AES nonce.
    """
    if not 1 <= len(data) <= MAX_SEALED_DATA:
        raise ProtocolError(BAD_SEALED, f"a sealed value holds 1 to {MAX_SEALED_DATA} bytes")
    aad = _aad(recipient, context)
    public = check_x25519_public(recipient_key)
    ephemeral = X25519PrivateKey.generate() if ephemeral is None else ephemeral
    epk = x25519_public(ephemeral)
    key, nonce = derive_aead(ephemeral.exchange(public), epk, recipient_key, SEAL_INFO)
    return epk + AESGCM(key).encrypt(nonce, data, aad)


def open_sealed(
    sealed: bytes, *, private_key: X25519PrivateKey, recipient: str, context: str
) -> bytes:
    """The data sealed for ``recipient`` (this peer, holding ``private_key``) and ``context``."""
    if not SEAL_OVERHEAD < len(sealed) <= MAX_SEALED_BYTES:
        raise ProtocolError(
            BAD_SEALED, f"a sealed value is {SEAL_OVERHEAD + 1} to {MAX_SEALED_BYTES} bytes"
        )
    aad = _aad(recipient, context)
    epk = sealed[:X25519_BYTES]
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(epk))
    except ValueError as exc:
        raise ProtocolError(BAD_SEALED, "the ephemeral key is of small order") from exc
    key, nonce = derive_aead(shared, epk, x25519_public(private_key), SEAL_INFO)
    try:
        return AESGCM(key).decrypt(nonce, sealed[X25519_BYTES:], aad)
    except InvalidTag as exc:
        raise ProtocolError(DECRYPT_FAILED, "the sealed value does not open here") from exc


def _aad(recipient: str, context: str) -> bytes:
    if not PEER_ID_RE.fullmatch(recipient):
        raise ProtocolError(BAD_SEALED, "recipient is not a key-bound peer id")
    try:
        encoded = context.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ProtocolError(BAD_SEALED, "context is not valid Unicode") from exc
    if len(encoded) > MAX_CONTEXT_BYTES:
        raise ProtocolError(BAD_SEALED, f"context is over {MAX_CONTEXT_BYTES} bytes")
    return SEAL_INFO + b"\n" + recipient.encode("ascii") + b"\n" + encoded
