"""Guardians and recovery: the signed messages of domain ``swarm/shard/v1``.

Mirror of static/swarm/protocol/shard.js; docs/protocol.md "Guardians and recovery
(`shard_*`)" is the specification. Each message is a signed envelope whose body has a
``kind`` and exactly that kind's fields:

- ``share`` (owner -> guardian): one share of the owner's seed sealed to the guardian,
- ``receipt`` (guardian -> owner): "I hold share ``index`` of set ``set``",
- ``revoke`` (owner -> guardians): "delete your share of set ``set``",
- ``recover_req`` (a temporary identity on a new device -> everyone): "release the shares of
  ``for`` to me, sealed to this X25519 key",
- ``release`` (guardian -> temporary identity): a share sealed to the request's key,
- ``refuse`` (guardian -> temporary identity): the guardian's person said no.

A share is opaque here: a mnemonic of 1..33 printable ASCII words (the SLIP-39 format lives
elsewhere). The stateful parts are :mod:`.guardian`, :mod:`.backup` and :mod:`.recovery`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .chunks import is_digest_id, is_file_id
from .encoding import PEER_ID_RE, b64url_decode, b64url_encode, peer_id_for_key
from .envelope import DOMAIN_SHARD, MAX_SAFE_INTEGER, JsonObject, check_envelope_size, sign, verify
from .errors import (
    BAD_KEY,
    BAD_SHARD,
    BAD_SHARE,
    EXPIRED,
    NOT_YET_VALID,
    PEER_MISMATCH,
    SHARD_TOO_LARGE,
    TTL_TOO_LONG,
    UNEXPECTED_KIND,
    WRONG_RECIPIENT,
    ProtocolError,
)
from .keywrap import check_x25519_public
from .manifest import object_id
from .seal import MAX_SEALED_BYTES, SEAL_OVERHEAD, open_sealed, seal

KIND_SHARE = "share"
KIND_RECEIPT = "receipt"
KIND_REVOKE = "revoke"
KIND_RECOVER_REQ = "recover_req"
KIND_RELEASE = "release"
KIND_REFUSE = "refuse"
FIELDS: dict[str, frozenset[str]] = {
    KIND_SHARE: frozenset(
        {"kind", "owner", "guardian", "set", "index", "k", "n", "issued_at", "expires_at"}
        | {"sealed"}
    ),
    KIND_RECEIPT: frozenset({"kind", "owner", "guardian", "set", "index", "held_at"}),
    KIND_REVOKE: frozenset({"kind", "owner", "set", "issued_at"}),
    KIND_RECOVER_REQ: frozenset({"kind", "for", "temp", "x25519", "issued_at", "expires_at"}),
    KIND_RELEASE: frozenset(
        {"kind", "for", "guardian", "temp", "request", "set", "index", "k", "n", "sealed"}
    ),
    KIND_REFUSE: frozenset({"kind", "for", "guardian", "temp", "request"}),
}
# The body field that must be the signer's peer id.
SIGNER_FIELD = {
    KIND_SHARE: "owner",
    KIND_RECEIPT: "guardian",
    KIND_REVOKE: "owner",
    KIND_RECOVER_REQ: "temp",
    KIND_RELEASE: "guardian",
    KIND_REFUSE: "guardian",
}
MIN_K = 2
MAX_N = 16
MAX_SHARE_BYTES = 1024
MAX_SHARE_WORDS = 33
# Canonical JSON (RFC 8785) of a whole message envelope, in bytes.
MAX_MESSAGE_BYTES = 4096
CLOCK_SKEW_MS = 15_000
DAY_MS = 86_400_000
DEFAULT_SHARE_LIFETIME_MS = 730 * DAY_MS
MAX_SHARE_LIFETIME_MS = 3650 * DAY_MS
DEFAULT_REQUEST_LIFETIME_MS = DAY_MS
MAX_REQUEST_LIFETIME_MS = 7 * DAY_MS
# The verification code: CODE_DIGITS decimal digits of PBKDF2-HMAC-SHA256 of the request id,
# slow on purpose so that grinding a second request with the same code is costly.
CODE_DIGITS = 8
CODE_ITERATIONS = 262_144
CODE_SALT = b"swarm/shard/code/v1"
SET_ID_BYTES = 16
_SHARE_RE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")


@dataclass(frozen=True, slots=True)
class Share:
    owner: str
    guardian: str
    set: str
    index: int
    k: int
    n: int
    issued_at: int
    expires_at: int
    sealed: bytes
    envelope: JsonObject
    kind: str = KIND_SHARE


@dataclass(frozen=True, slots=True)
class Receipt:
    owner: str
    guardian: str
    set: str
    index: int
    held_at: int
    envelope: JsonObject
    kind: str = KIND_RECEIPT


@dataclass(frozen=True, slots=True)
class Revoke:
    owner: str
    set: str
    issued_at: int
    envelope: JsonObject
    kind: str = KIND_REVOKE


@dataclass(frozen=True, slots=True)
class RecoverRequest:
    """A verified recovery request; ``id`` names it in releases and refusals."""

    for_peer: str
    temp: str
    x25519: bytes
    issued_at: int
    expires_at: int
    id: str
    envelope: JsonObject
    kind: str = KIND_RECOVER_REQ


@dataclass(frozen=True, slots=True)
class Release:
    for_peer: str
    guardian: str
    temp: str
    request: str
    set: str
    index: int
    k: int
    n: int
    sealed: bytes
    envelope: JsonObject
    kind: str = KIND_RELEASE


@dataclass(frozen=True, slots=True)
class Refuse:
    for_peer: str
    guardian: str
    temp: str
    request: str
    envelope: JsonObject
    kind: str = KIND_REFUSE


ShardMessage = Share | Receipt | Revoke | RecoverRequest | Release | Refuse
_KIND_OF: dict[type[Any], str] = {
    Share: KIND_SHARE,
    Receipt: KIND_RECEIPT,
    Revoke: KIND_REVOKE,
    RecoverRequest: KIND_RECOVER_REQ,
    Release: KIND_RELEASE,
    Refuse: KIND_REFUSE,
}


def new_set_id() -> str:
    """A fresh share-set id: 16 random bytes in canonical base64url."""
    return b64url_encode(secrets.token_bytes(SET_ID_BYTES))


def kind_of(envelope: object) -> str | None:
    """The claimed kind of an unverified message (for routing; the receiver verifies it)."""
    if isinstance(envelope, dict) and isinstance(envelope.get("body"), dict):
        kind = envelope["body"].get("kind")
        if isinstance(kind, str) and kind in FIELDS:
            return kind
    return None


def check_share_text(text: object) -> str:
    """A share as carried here: 1..33 words of printable ASCII, single spaces, <= 1 KiB."""
    if not isinstance(text, str) or not _SHARE_RE.fullmatch(text):
        raise ProtocolError(BAD_SHARE, "a share is words of printable ASCII and single spaces")
    if len(text) > MAX_SHARE_BYTES or text.count(" ") + 1 > MAX_SHARE_WORDS:
        raise ProtocolError(BAD_SHARE, f"a share is at most {MAX_SHARE_WORDS} words, 1 KiB")
    return text


def share_context(owner: str, set_id: str, index: int) -> str:
    """What a sealed share is bound to (besides its recipient)."""
    return f"{DOMAIN_SHARD}\n{owner}\n{set_id}\n{index}"


def request_id(body: JsonObject) -> str:
    """The id of a recovery request: base64url SHA-256 of its signing input."""
    return object_id(DOMAIN_SHARD, body)


def verification_code(request: str) -> str:
    """The digits both people compare: PBKDF2-HMAC-SHA256 of the request id (~0.2 s)."""
    raw = b64url_decode(request, field="request", code=BAD_SHARD)
    derived = hashlib.pbkdf2_hmac("sha256", raw, CODE_SALT, CODE_ITERATIONS, 8)
    return str(int.from_bytes(derived, "big") % 10**CODE_DIGITS).zfill(CODE_DIGITS)


# --- making messages ---


def _signer_id(identity: Ed25519PrivateKey) -> str:
    return peer_id_for_key(identity.public_key().public_bytes_raw())


def _signed(identity: Ed25519PrivateKey, body: JsonObject) -> JsonObject:
    _check_body(body)
    envelope = sign(DOMAIN_SHARD, body, identity)
    _check_size(envelope)
    return envelope


def make_share(
    identity: Ed25519PrivateKey,
    *,
    guardian: str,
    guardian_key: bytes,
    set_id: str,
    index: int,
    k: int,
    n: int,
    share: str,
    issued_at: int,
    expires_at: int,
    ephemeral: X25519PrivateKey | None = None,
) -> JsonObject:
    """Seal ``share`` to the guardian's X25519 key and sign it as the owner."""
    owner = _signer_id(identity)
    data = check_share_text(share).encode("ascii")
    context = share_context(owner, set_id, index)
    sealed = seal(
        data, recipient=guardian, recipient_key=guardian_key, context=context, ephemeral=ephemeral
    )
    body: JsonObject = {
        "kind": KIND_SHARE,
        "owner": owner,
        "guardian": guardian,
        "set": set_id,
        "index": index,
        "k": k,
        "n": n,
        "issued_at": issued_at,
        "expires_at": expires_at,
        "sealed": b64url_encode(sealed),
    }
    return _signed(identity, body)


def make_receipt(identity: Ed25519PrivateKey, share: Share, *, held_at: int) -> JsonObject:
    body: JsonObject = {
        "kind": KIND_RECEIPT,
        "owner": share.owner,
        "guardian": _signer_id(identity),
        "set": share.set,
        "index": share.index,
        "held_at": held_at,
    }
    return _signed(identity, body)


def make_revoke(identity: Ed25519PrivateKey, *, set_id: str, issued_at: int) -> JsonObject:
    body: JsonObject = {
        "kind": KIND_REVOKE,
        "owner": _signer_id(identity),
        "set": set_id,
        "issued_at": issued_at,
    }
    return _signed(identity, body)


def make_recover_request(
    temp_identity: Ed25519PrivateKey,
    temp_x25519: bytes,
    *,
    for_peer: str,
    issued_at: int,
    expires_at: int,
) -> JsonObject:
    """Sign a recovery request for ``for_peer`` with a fresh temporary identity."""
    body: JsonObject = {
        "kind": KIND_RECOVER_REQ,
        "for": for_peer,
        "temp": _signer_id(temp_identity),
        "x25519": b64url_encode(temp_x25519),
        "issued_at": issued_at,
        "expires_at": expires_at,
    }
    return _signed(temp_identity, body)


def make_release(
    identity: Ed25519PrivateKey,
    request: RecoverRequest,
    *,
    set_id: str,
    index: int,
    k: int,
    n: int,
    share: str,
    ephemeral: X25519PrivateKey | None = None,
) -> JsonObject:
    """Seal ``share`` to the request's temporary key and sign it as the guardian."""
    data = check_share_text(share).encode("ascii")
    context = share_context(request.for_peer, set_id, index)
    sealed = seal(
        data,
        recipient=request.temp,
        recipient_key=request.x25519,
        context=context,
        ephemeral=ephemeral,
    )
    body: JsonObject = {
        "kind": KIND_RELEASE,
        "for": request.for_peer,
        "guardian": _signer_id(identity),
        "temp": request.temp,
        "request": request.id,
        "set": set_id,
        "index": index,
        "k": k,
        "n": n,
        "sealed": b64url_encode(sealed),
    }
    return _signed(identity, body)


def make_refuse(identity: Ed25519PrivateKey, request: RecoverRequest) -> JsonObject:
    body: JsonObject = {
        "kind": KIND_REFUSE,
        "for": request.for_peer,
        "guardian": _signer_id(identity),
        "temp": request.temp,
        "request": request.id,
    }
    return _signed(identity, body)


# --- checking messages ---


def parse_message(envelope: object, *, now: int, kind: str | None = None) -> ShardMessage:
    """Verify one ``swarm/shard/v1`` message at ``now``; ``kind`` pins the kind expected.

    Checks in order: size (``shard_too_large``), envelope and signature (``bad_envelope``,
    ``bad_signature``), kind (``bad_shard``, ``unexpected_kind``), fields (``bad_shard``),
    signer (``peer_mismatch``), keys (``bad_key``), times (``ttl_too_long``,
    ``not_yet_valid``, ``expired``).
    """
    _check_size(envelope)
    verified = verify(envelope, DOMAIN_SHARD)
    body = verified.body
    body_kind = body.get("kind")
    if not isinstance(body_kind, str) or body_kind not in FIELDS:
        raise ProtocolError(BAD_SHARD, "kind is not a shard message kind")
    if kind is not None and body_kind != kind:
        raise ProtocolError(UNEXPECTED_KIND, f"expected a {kind}, got a {body_kind}")
    _check_body(body)
    if body[SIGNER_FIELD[body_kind]] != verified.peer_id:
        field = SIGNER_FIELD[body_kind]
        raise ProtocolError(PEER_MISMATCH, f"{field} is not the signer's peer id")
    env = cast(JsonObject, envelope)
    message = _message(body, env)
    _check_times(message, now)
    return message


_M = TypeVar("_M", Share, Receipt, Revoke, RecoverRequest, Release, Refuse)


def parse_kind(envelope: object, cls: type[_M], *, now: int) -> _M:
    """:func:`parse_message` for one kind, typed: ``parse_kind(env, Share, now=now)``."""
    message = parse_message(envelope, now=now, kind=_KIND_OF[cls])
    if not isinstance(message, cls):  # pragma: no cover - parse_message pinned the kind
        raise ProtocolError(UNEXPECTED_KIND, f"expected a {_KIND_OF[cls]}")
    return message


def open_share(share: Share, *, private_key: X25519PrivateKey, peer_id: str) -> str:
    """The share text in a ``share`` message for this guardian."""
    if share.guardian != peer_id:
        raise ProtocolError(WRONG_RECIPIENT, "this share is sealed to another guardian")
    context = share_context(share.owner, share.set, share.index)
    data = open_sealed(share.sealed, private_key=private_key, recipient=peer_id, context=context)
    return _share_text(data)


def open_release(release: Release, *, private_key: X25519PrivateKey) -> str:
    """The share text in a ``release`` for the temporary identity holding ``private_key``."""
    context = share_context(release.for_peer, release.set, release.index)
    data = open_sealed(
        release.sealed, private_key=private_key, recipient=release.temp, context=context
    )
    return _share_text(data)


def _share_text(data: bytes) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError(BAD_SHARE, "a share is printable ASCII") from exc
    return check_share_text(text)


def _check_size(envelope: object) -> None:
    check_envelope_size(envelope, MAX_MESSAGE_BYTES, SHARD_TOO_LARGE, "a shard message")


def _fail(message: str) -> ProtocolError:
    return ProtocolError(BAD_SHARD, message)


def _peer(body: JsonObject, field: str) -> str:
    value = body[field]
    if not isinstance(value, str) or not PEER_ID_RE.fullmatch(value):
        raise _fail(f"{field} is not a key-bound peer id")
    return value


def _int(body: JsonObject, field: str, low: int, high: int) -> int:
    value = body[field]
    if type(value) is not int or not low <= value <= high:
        raise _fail(f"{field} must be an integer in {low}..{high}")
    return value


def _check_body(body: JsonObject) -> None:
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise _fail("kind is not a shard message kind")
    if set(body) != FIELDS[kind]:
        raise _fail(f"{kind} fields must be {sorted(FIELDS[kind])}")
    for field in ("owner", "guardian", "for", "temp"):
        if field in body:
            _peer(body, field)
    for field in ("issued_at", "expires_at", "held_at"):
        if field in body:
            _int(body, field, 0, MAX_SAFE_INTEGER)
    if "set" in body and not is_file_id(body["set"]):
        raise _fail("set must be 16 bytes in canonical base64url")
    if "request" in body and not is_digest_id(body["request"]):
        raise _fail("request must be a request id (43 base64url characters)")
    if "n" in body:
        n = _int(body, "n", MIN_K, MAX_N)
        _int(body, "k", MIN_K, n)
    if "index" in body:
        _int(body, "index", 1, body.get("n", MAX_N))
    if "sealed" in body:
        sealed = b64url_decode(body["sealed"], field="sealed", code=BAD_SHARD)
        if not SEAL_OVERHEAD < len(sealed) <= MAX_SEALED_BYTES:
            raise _fail(f"sealed must be {SEAL_OVERHEAD + 1} to {MAX_SEALED_BYTES} bytes")
    if "expires_at" in body and body["expires_at"] <= body["issued_at"]:
        raise _fail("expires_at must be after issued_at")
    parties = [body[f] for f in ("owner", "guardian", "for", "temp") if f in body]
    if len(set(parties)) != len(parties):
        raise _fail("a message names one peer in two roles")


def _message(body: JsonObject, envelope: JsonObject) -> ShardMessage:
    kind = body["kind"]
    fields: dict[str, Any] = {
        ("for_peer" if name == "for" else name): value
        for name, value in body.items()
        if name != "kind"
    }
    if "sealed" in fields:
        fields["sealed"] = b64url_decode(fields["sealed"], field="sealed", code=BAD_SHARD)
    if kind == KIND_SHARE:
        return Share(**fields, envelope=envelope)
    if kind == KIND_RECEIPT:
        return Receipt(**fields, envelope=envelope)
    if kind == KIND_REVOKE:
        return Revoke(**fields, envelope=envelope)
    if kind == KIND_RELEASE:
        return Release(**fields, envelope=envelope)
    if kind == KIND_REFUSE:
        return Refuse(**fields, envelope=envelope)
    fields["x25519"] = b64url_decode(fields["x25519"], field="x25519", code=BAD_KEY)
    check_x25519_public(fields["x25519"])
    return RecoverRequest(**fields, id=request_id(body), envelope=envelope)


def _check_times(message: ShardMessage, now: int) -> None:
    if isinstance(message, Share | RecoverRequest):
        longest = MAX_SHARE_LIFETIME_MS if isinstance(message, Share) else MAX_REQUEST_LIFETIME_MS
        if message.expires_at - message.issued_at > longest:
            raise ProtocolError(TTL_TOO_LONG, f"a {message.kind} lives at most {longest} ms")
        start = message.issued_at
    elif isinstance(message, Receipt):
        start = message.held_at
    elif isinstance(message, Revoke):
        start = message.issued_at
    else:
        return  # releases and refusals live as long as the request they answer
    if start > now + CLOCK_SKEW_MS:
        raise ProtocolError(NOT_YET_VALID, f"the {message.kind} is dated in the future")
    if isinstance(message, Share | RecoverRequest) and now >= message.expires_at:
        raise ProtocolError(EXPIRED, f"the {message.kind} has expired")
