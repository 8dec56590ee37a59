"""The signed envelope of every swarm object (DESIGN section 3).

``{"v":1, "alg":"ed25519", "pk":b64url(raw pk), "sig":b64url(sig), "body":{...}}``;
the signature covers ``DOMAIN + "\\n" + JCS(body)``. Verification fails closed with a
stable :class:`ProtocolError` code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .encoding import b64url_decode, b64url_encode, peer_id_for_key
from .errors import BAD_ENVELOPE, BAD_SIGNATURE, ProtocolError

VERSION = 1
ALG = "ed25519"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
ENVELOPE_KEYS = frozenset({"v", "alg", "pk", "sig", "body"})
# JSON integers survive a round trip through a JS Number only up to 2**53 - 1.
MAX_SAFE_INTEGER = 2**53 - 1

DOMAIN_TICKET = "swarm/ticket/v1"
DOMAIN_CAPSULE = "swarm/capsule/v1"
DOMAIN_MANIFEST = "swarm/manifest/v1"
DOMAIN_POST = "swarm/post/v1"
DOMAIN_SHARD = "swarm/shard/v1"
DOMAIN_SIGNAL_TOKEN = "swarm/signal-token/v1"  # noqa: S105 - a domain name, not a secret
DOMAIN_GOSSIP = "swarm/gossip/v1"
DOMAIN_HAVE = "swarm/have/v1"
DOMAIN_WITHDRAW = "swarm/withdraw/v1"

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verified:
    """A body whose signature checked out, with the key that made it."""

    public_key: bytes
    body: JsonObject

    @property
    def peer_id(self) -> str:
        return peer_id_for_key(self.public_key)


def check_envelope_size(envelope: object, limit: int, code: str, what: str) -> JsonObject:
    """``envelope`` as a JSON object whose canonical JSON (RFC 8785) is at most ``limit``
    bytes: ``bad_envelope`` for a value that is no canonical JSON object, ``code`` (with
    "``what`` is at most ``limit`` B") beyond. The size check every signed message kind with
    its own limit makes before its signature is checked."""
    if not isinstance(envelope, dict):
        raise ProtocolError(BAD_ENVELOPE, "envelope must be a JSON object")
    try:
        size = len(rfc8785.dumps(envelope))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ProtocolError(BAD_ENVELOPE, "the envelope is not canonical JSON") from exc
    if size > limit:
        raise ProtocolError(code, f"{what} is at most {limit} B, not {size}")
    return cast(JsonObject, envelope)


def canonical(body: JsonObject) -> bytes:
    """RFC 8785 canonical JSON of a body; only strings, integers, bools, null, lists, maps."""
    _check_json_value(body, "body", depth=0)
    try:
        return rfc8785.dumps(body)
    except rfc8785.CanonicalizationError as exc:
        raise ProtocolError(BAD_ENVELOPE, f"body cannot be canonicalized: {exc}") from exc


def signing_input(domain: str, body: JsonObject) -> bytes:
    return domain.encode("ascii") + b"\n" + canonical(body)


def sign(domain: str, body: JsonObject, private_key: Ed25519PrivateKey) -> JsonObject:
    """Wrap ``body`` in a signed envelope for ``domain``."""
    signature = private_key.sign(signing_input(domain, body))
    public_raw = private_key.public_key().public_bytes_raw()
    return {
        "v": VERSION,
        "alg": ALG,
        "pk": b64url_encode(public_raw),
        "sig": b64url_encode(signature),
        "body": body,
    }


def verify(envelope: object, domain: str) -> Verified:
    """Check an envelope's shape and signature for ``domain``; raise :class:`ProtocolError`."""
    if not isinstance(envelope, dict):
        raise ProtocolError(BAD_ENVELOPE, "envelope must be a JSON object")
    keys = set(envelope)
    if keys != ENVELOPE_KEYS:
        missing = sorted(ENVELOPE_KEYS - keys)
        extra = sorted(keys - ENVELOPE_KEYS)
        detail = f"missing {missing}" if missing else f"unknown fields {extra}"
        raise ProtocolError(BAD_ENVELOPE, f"envelope fields: {detail}")
    version = envelope["v"]
    if type(version) is not int or version != VERSION:
        raise ProtocolError(BAD_ENVELOPE, "unsupported envelope version")
    if envelope["alg"] != ALG:
        raise ProtocolError(BAD_ENVELOPE, "unsupported signature algorithm")
    public_raw = b64url_decode(envelope["pk"], field="pk")
    if len(public_raw) != PUBLIC_KEY_BYTES:
        raise ProtocolError(BAD_ENVELOPE, "pk must be a 32-byte Ed25519 key")
    signature = b64url_decode(envelope["sig"], field="sig")
    if len(signature) != SIGNATURE_BYTES:
        raise ProtocolError(BAD_ENVELOPE, "sig must be a 64-byte Ed25519 signature")
    body = envelope["body"]
    if not isinstance(body, dict):
        raise ProtocolError(BAD_ENVELOPE, "body must be a JSON object")
    message = signing_input(domain, body)
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise ProtocolError(BAD_SIGNATURE, "signature does not verify") from exc
    return Verified(public_key=public_raw, body=body)


def _check_json_value(value: object, path: str, *, depth: int) -> None:
    if depth > 16:
        raise ProtocolError(BAD_ENVELOPE, f"{path} nests too deeply")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ProtocolError(BAD_ENVELOPE, f"{path} is outside the safe integer range")
        return
    if isinstance(value, float):
        raise ProtocolError(BAD_ENVELOPE, f"{path}: signed bodies carry integers only")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]", depth=depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(BAD_ENVELOPE, f"{path} has a non-string key")
            _check_json_value(item, f"{path}.{key}", depth=depth + 1)
        return
    raise ProtocolError(BAD_ENVELOPE, f"{path} is not a JSON value")
