"""The messages of signaling through the mesh (peers/protocol/meshsignal.py relays them):
signed ``swarm/meshsig/v1`` envelopes, their limits and checks. Mirror of
static/swarm/protocol/meshsignal.js; docs/protocol.md "Signaling through the mesh"."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .chunks import is_file_id
from .encoding import PEER_ID_RE, b64url_encode, peer_id_for_key
from .envelope import MAX_SAFE_INTEGER, JsonObject, check_envelope_size, sign, signing_input, verify
from .errors import (
    BAD_ENVELOPE,
    BAD_HOPS,
    BAD_RECIPIENT,
    BAD_SIGNAL,
    BAD_SIGNATURE,
    EXPIRED,
    NOT_YET_VALID,
    PEER_MISMATCH,
    SIGNAL_TOO_LARGE,
    UNKNOWN_KIND,
    ProtocolError,
)
from .wire import MAX_SIGNAL_HOPS

DOMAIN_MESHSIG = "swarm/meshsig/v1"
VERSION = 1
KINDS = ("offer", "answer", "candidate", "bye")
KIND_OFFER = "offer"
CAP_SIGNAL = "signal"
# Default budgets: an offer's sets how far it may be flooded (budget - 2 hops out), so it is
# small; the other kinds are never flooded and follow routes of any length up to the maximum.
DEFAULT_HOPS = 4
# Canonical JSON (RFC 8785) of a whole message envelope, in bytes: an SDP of a data-channel
# connection is 0.5-3 KB; the envelope adds about 350 bytes.
MAX_SIGNAL_BYTES = 8192
MAX_AGE_MS = 60_000
CLOCK_SKEW_MS = 15_000
SESSION_ID_BYTES = 16
BODY_KEYS = frozenset({"v", "kind", "from", "to", "sid", "created_at", "hops", "payload"})
# Drops that count against the neighbour that sent the frame (an honest peer checks what it
# forwards and never sends these); every other drop is counted only.
VIOLATIONS = frozenset(
    {
        SIGNAL_TOO_LARGE,
        BAD_ENVELOPE,
        BAD_SIGNATURE,
        BAD_SIGNAL,
        BAD_RECIPIENT,
        PEER_MISMATCH,
        BAD_HOPS,
    }
)
# Hops left a relay needs: 1 to hand a message to `to` itself, 2 to pass it to a neighbour
# that reaches `to`, 3 to flood it (its neighbours can then still use their own reach).
FLOOD_MIN_HOPS = 3


@dataclass(frozen=True, slots=True)
class SignalMessage:
    """A verified ``swarm/meshsig/v1`` message; ``id`` is :func:`signal_id` of it."""

    id: str
    kind: str
    from_peer: str
    to: str
    sid: str
    created_at: int
    hops: int
    payload: Any
    envelope: JsonObject


# --- messages ---


def new_session_id() -> str:
    """A fresh session id: 16 random bytes in canonical unpadded base64url (22 characters)."""
    return b64url_encode(secrets.token_bytes(SESSION_ID_BYTES))


def signal_id(body: object) -> str:
    """A message's id: unpadded base64url of SHA-256 of its signing input
    (``"swarm/meshsig/v1\\n" + JCS(body)``); ``bad_envelope`` if the body is no JSON object."""
    if not isinstance(body, dict):
        raise ProtocolError(BAD_ENVELOPE, "body must be a JSON object")
    return b64url_encode(hashlib.sha256(signing_input(DOMAIN_MESHSIG, body)).digest())


def check_size(envelope: object) -> JsonObject:
    """``bad_envelope`` for a value that is no canonical JSON object, ``signal_too_large``
    beyond :data:`MAX_SIGNAL_BYTES`."""
    return check_envelope_size(envelope, MAX_SIGNAL_BYTES, SIGNAL_TOO_LARGE, "a signal message")


def _fail(message: str) -> ProtocolError:
    return ProtocolError(BAD_SIGNAL, message)


def check_body(body: JsonObject) -> None:
    """The body's fields, in order: ``v``, ``kind`` (``unknown_kind``), the exact fields,
    ``from``, ``to`` (``bad_recipient``), ``sid``, ``created_at``, ``hops``."""
    if type(body.get("v")) is not int or body["v"] != VERSION:
        raise _fail("v must be 1")
    kind = body.get("kind")
    if not isinstance(kind, str):
        raise _fail("kind must be a string")
    if kind not in KINDS:
        raise ProtocolError(UNKNOWN_KIND, "kind must be offer, answer, candidate or bye")
    if set(body) != BODY_KEYS:
        raise _fail(f"fields must be {sorted(BODY_KEYS)}")
    sender = body["from"]
    if not isinstance(sender, str) or not PEER_ID_RE.fullmatch(sender):
        raise _fail("from is not a key-bound peer id")
    to = body["to"]
    if not isinstance(to, str) or not PEER_ID_RE.fullmatch(to):
        raise ProtocolError(BAD_RECIPIENT, "to is not a key-bound peer id")
    if to == sender:
        raise ProtocolError(BAD_RECIPIENT, "a message to its own sender")
    if not is_file_id(body["sid"]):
        raise _fail("sid must be 16 bytes in canonical base64url")
    created = body["created_at"]
    if type(created) is not int or not 0 <= created <= MAX_SAFE_INTEGER - MAX_AGE_MS:
        raise _fail("created_at must be an integer (ms)")
    hops = body["hops"]
    if type(hops) is not int or not 1 <= hops <= MAX_SIGNAL_HOPS:
        raise _fail(f"hops must be 1 to {MAX_SIGNAL_HOPS}")


def default_hops(kind: str) -> int:
    """The budget a sender grants by default: 4 for an offer, 6 for the other kinds."""
    return DEFAULT_HOPS if kind == KIND_OFFER else MAX_SIGNAL_HOPS


def make_signal(
    identity: Ed25519PrivateKey,
    *,
    to: str,
    sid: str,
    kind: str,
    payload: Any,
    created_at: int,
    hops: int | None = None,
) -> JsonObject:
    """Sign one message as the sender (``hops`` by default :func:`default_hops`). Raises
    :class:`ProtocolError` for what receivers would refuse (``bad_signal``, ``unknown_kind``,
    ``bad_recipient``, ``signal_too_large``; a payload that is no JSON value ``bad_signal``)."""
    body: JsonObject = {
        "v": VERSION,
        "kind": kind,
        "from": peer_id_for_key(identity.public_key().public_bytes_raw()),
        "to": to,
        "sid": sid,
        "created_at": created_at,
        "hops": default_hops(kind) if hops is None else hops,
        "payload": payload,
    }
    check_body(body)
    try:
        envelope = sign(DOMAIN_MESHSIG, body, identity)
    except ProtocolError as exc:
        raise _fail(f"payload is not a JSON value: {exc.message}") from exc
    return check_size(envelope)


def parse_signal(envelope: object, *, now: int) -> SignalMessage:
    """Verify one ``swarm/meshsig/v1`` message at ``now``.

    In order: size (``bad_envelope``, ``signal_too_large``), envelope and signature
    (``bad_envelope``, ``bad_signature``), body (:func:`check_body`), signer
    (``peer_mismatch``: ``from`` is not the signer), times (``not_yet_valid`` more than
    15 s ahead, ``expired`` 60 s after ``created_at``)."""
    checked = check_size(envelope)
    verified = verify(checked, DOMAIN_MESHSIG)
    body = verified.body
    check_body(body)
    if body["from"] != verified.peer_id:
        raise ProtocolError(PEER_MISMATCH, "from is not the signer's peer id")
    created: int = body["created_at"]
    if created > now + CLOCK_SKEW_MS:
        raise ProtocolError(NOT_YET_VALID, "the message is dated in the future")
    if now >= created + MAX_AGE_MS:
        raise ProtocolError(EXPIRED, "the message is older than 60 s")
    return SignalMessage(
        id=signal_id(body),
        kind=body["kind"],
        from_peer=body["from"],
        to=body["to"],
        sid=body["sid"],
        created_at=created,
        hops=body["hops"],
        payload=body["payload"],
        envelope=checked,
    )
