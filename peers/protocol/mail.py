"""Mail: signed, sealed messages from one peer to another, kept by mailboxes while it is away.

Mirror of static/swarm/protocol/mail.js; docs/protocol.md "Mail" is the specification.
Every message is a signed envelope of domain ``swarm/mail/v1`` whose body is one of

- kind ``mail``: ``{v, kind, id, from, to, created_at, expires_at, sealed}``, ``sealed`` the
  canonical JSON of ``{topic, data}`` sealed to ``to``'s X25519 key (:mod:`.seal`) with the
  context ``"mail\\n" + from + "\\n" + id``;
- kind ``ack``: ``{v, kind, from, to, ids, acked_at}``: ``from`` (the mails' recipient) tells
  ``to`` (their sender), and the mailboxes on the way, that it has the mails ``ids``.

Both are signed by ``from``. Only the recipient opens a mail; a mailbox sees who writes to
whom, when, and the size.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .chunks import digest_id, is_file_id
from .encoding import PEER_ID_RE, b64url_decode, b64url_encode, parse_json, peer_id_for_key
from .envelope import MAX_SAFE_INTEGER, JsonObject, canonical, check_envelope_size, sign, verify
from .errors import (
    BAD_MAIL,
    BAD_RECIPIENT,
    EXPIRED,
    MAIL_TOO_LARGE,
    NOT_YET_VALID,
    PEER_MISMATCH,
    WRONG_RECIPIENT,
    ProtocolError,
)
from .seal import MAX_SEALED_BYTES, MAX_SEALED_DATA, SEAL_OVERHEAD, open_sealed, seal

DOMAIN_MAIL = "swarm/mail/v1"
VERSION = 1
KIND_MAIL = "mail"
KIND_ACK = "ack"
DAY_MS = 86_400_000
# Canonical JSON (RFC 8785) of a whole message envelope, in bytes.
MAX_MAIL_BYTES = 4096
MAX_ACK_IDS = 64
MAIL_LIFETIME_MS = 7 * DAY_MS
MAX_MAIL_LIFETIME_MS = 7 * DAY_MS
ACK_LIFETIME_MS = 7 * DAY_MS
CLOCK_SKEW_MS = 15_000
MAIL_ID_BYTES = 16
TOPIC_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")
FIELDS: dict[str, frozenset[str]] = {
    KIND_MAIL: frozenset({"v", "kind", "id", "from", "to", "created_at", "expires_at", "sealed"}),
    KIND_ACK: frozenset({"v", "kind", "from", "to", "ids", "acked_at"}),
}


@dataclass(frozen=True, slots=True)
class Mail:
    """A verified kind ``mail``; ``sealed`` still closed (:func:`open_mail`)."""

    id: str
    from_peer: str
    to: str
    created_at: int
    expires_at: int
    sealed: bytes
    envelope: JsonObject
    kind: str = KIND_MAIL


@dataclass(frozen=True, slots=True)
class Ack:
    """A verified kind ``ack``; ``id`` is the unpadded base64url SHA-256 of the envelope's
    canonical JSON (the mailbox's message id), ``expires_at`` ``acked_at`` + 7 days."""

    id: str
    from_peer: str
    to: str
    ids: tuple[str, ...]
    acked_at: int
    expires_at: int
    envelope: JsonObject
    kind: str = KIND_ACK


@dataclass(frozen=True, slots=True)
class Opened:
    topic: str
    data: Any


MailMessage = Mail | Ack


def new_mail_id() -> str:
    """A fresh mail id: 16 random bytes in canonical unpadded base64url (22 characters)."""
    return b64url_encode(secrets.token_bytes(MAIL_ID_BYTES))


def mail_context(sender: str, mail_id: str) -> str:
    """What a mail's sealed content is bound to (besides its recipient)."""
    return f"mail\n{sender}\n{mail_id}"


def envelope_id(envelope: JsonObject) -> str:
    """Unpadded base64url SHA-256 of an envelope's canonical JSON (an ack's id)."""
    return digest_id(rfc8785.dumps(envelope))


def _signer_id(identity: Ed25519PrivateKey) -> str:
    return peer_id_for_key(identity.public_key().public_bytes_raw())


def _plaintext(topic: str, data: Any) -> bytes:
    if not isinstance(topic, str) or not TOPIC_RE.fullmatch(topic):
        raise ProtocolError(BAD_MAIL, "topic must match [a-z][a-z0-9-]{0,31}")
    try:
        text = canonical({"topic": topic, "data": data})
    except ProtocolError as exc:
        raise ProtocolError(BAD_MAIL, f"data is not a JSON value: {exc.message}") from exc
    if len(text) > MAX_SEALED_DATA:
        raise ProtocolError(MAIL_TOO_LARGE, f"a mail's content is at most {MAX_SEALED_DATA} B")
    return text


def make_mail(
    identity: Ed25519PrivateKey,
    *,
    to: str,
    to_key: bytes,
    topic: str,
    data: Any,
    created_at: int,
    expires_at: int | None = None,
    id: str | None = None,
    ephemeral: X25519PrivateKey | None = None,
) -> JsonObject:
    """Seal ``{topic, data}`` to ``to`` (X25519 key ``to_key``) and sign it as the sender.

    ``ephemeral`` is for test vectors only (see :func:`peers.protocol.seal.seal`)."""
    sender = _signer_id(identity)
    mail_id = new_mail_id() if id is None else id
    expires = created_at + MAIL_LIFETIME_MS if expires_at is None else expires_at
    _recipient(to, sender)
    if not is_file_id(mail_id):
        raise ProtocolError(BAD_MAIL, "id must be 16 bytes in canonical base64url")
    sealed = seal(
        _plaintext(topic, data),
        recipient=to,
        recipient_key=to_key,
        context=mail_context(sender, mail_id),
        ephemeral=ephemeral,
    )
    body: JsonObject = {
        "v": VERSION,
        "kind": KIND_MAIL,
        "id": mail_id,
        "from": sender,
        "to": to,
        "created_at": created_at,
        "expires_at": expires,
        "sealed": b64url_encode(sealed),
    }
    return _signed(identity, body)


def make_ack(
    identity: Ed25519PrivateKey, *, to: str, ids: list[str] | tuple[str, ...], acked_at: int
) -> JsonObject:
    """Sign "I have the mails ``ids`` of ``to``" (``ids`` are sorted and deduplicated here)."""
    body: JsonObject = {
        "v": VERSION,
        "kind": KIND_ACK,
        "from": _signer_id(identity),
        "to": to,
        "ids": sorted(set(ids)),
        "acked_at": acked_at,
    }
    return _signed(identity, body)


def _signed(identity: Ed25519PrivateKey, body: JsonObject) -> JsonObject:
    _check_body(body)
    envelope = sign(DOMAIN_MAIL, body, identity)
    _check_size(envelope)
    return envelope


# --- checking ---


def kind_of(envelope: object) -> str | None:
    """The claimed kind of an unverified message (for routing; the receiver verifies it)."""
    if isinstance(envelope, dict) and isinstance(envelope.get("body"), dict):
        kind = envelope["body"].get("kind")
        if isinstance(kind, str) and kind in FIELDS:
            return kind
    return None


def parse_mail(envelope: object, *, now: int) -> MailMessage:
    """Verify one ``swarm/mail/v1`` message at ``now``.

    Checks in order: size (``mail_too_large``), envelope and signature (``bad_envelope``,
    ``bad_signature``), body (``bad_mail``; ``bad_recipient`` for ``to``), signer
    (``peer_mismatch``: ``from`` is not the signer), times (``not_yet_valid`` more than 15 s
    ahead, ``expired``).
    """
    size_checked = _check_size(envelope)
    verified = verify(size_checked, DOMAIN_MAIL)
    body = verified.body
    _check_body(body)
    if body["from"] != verified.peer_id:
        raise ProtocolError(PEER_MISMATCH, "from is not the signer's peer id")
    message: MailMessage
    if body["kind"] == KIND_MAIL:
        message = Mail(
            id=body["id"],
            from_peer=body["from"],
            to=body["to"],
            created_at=body["created_at"],
            expires_at=body["expires_at"],
            sealed=b64url_decode(body["sealed"], field="sealed", code=BAD_MAIL),
            envelope=size_checked,
        )
        start = message.created_at
    else:
        message = Ack(
            id=envelope_id(size_checked),
            from_peer=body["from"],
            to=body["to"],
            ids=tuple(body["ids"]),
            acked_at=body["acked_at"],
            expires_at=body["acked_at"] + ACK_LIFETIME_MS,
            envelope=size_checked,
        )
        start = message.acked_at
    if start > now + CLOCK_SKEW_MS:
        raise ProtocolError(NOT_YET_VALID, f"the {message.kind} is dated in the future")
    if now >= message.expires_at:
        raise ProtocolError(EXPIRED, f"the {message.kind} has expired")
    return message


def open_mail(mail: Mail, *, private_key: X25519PrivateKey, peer_id: str) -> Opened:
    """The ``{topic, data}`` of a mail for this peer (``peer_id``, X25519 ``private_key``)."""
    if mail.to != peer_id:
        raise ProtocolError(WRONG_RECIPIENT, "this mail is for another peer")
    data = open_sealed(
        mail.sealed,
        private_key=private_key,
        recipient=peer_id,
        context=mail_context(mail.from_peer, mail.id),
    )
    return _content(data)


def _content(data: bytes) -> Opened:
    try:
        value = parse_json(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(BAD_MAIL, "the content is not JSON") from exc
    if not isinstance(value, dict) or set(value) != {"topic", "data"}:
        raise ProtocolError(BAD_MAIL, "the content is {topic, data}")
    if _plaintext(value["topic"], value["data"]) != data:
        raise ProtocolError(BAD_MAIL, "the content is not canonical JSON")
    return Opened(topic=value["topic"], data=value["data"])


def _check_size(envelope: object) -> JsonObject:
    return check_envelope_size(envelope, MAX_MAIL_BYTES, MAIL_TOO_LARGE, "a mail message")


def _fail(message: str) -> ProtocolError:
    return ProtocolError(BAD_MAIL, message)


def _time(body: JsonObject, field: str) -> int:
    value = body[field]
    if type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER:
        raise _fail(f"{field} must be an integer (ms)")
    return value


def _recipient(to: object, sender: object) -> None:
    if not isinstance(to, str) or not PEER_ID_RE.fullmatch(to):
        raise ProtocolError(BAD_RECIPIENT, "to is not a key-bound peer id")
    if to == sender:
        raise ProtocolError(BAD_RECIPIENT, "a message to its own sender")


def _check_body(body: JsonObject) -> None:
    if type(body.get("v")) is not int or body["v"] != VERSION:
        raise _fail("v must be 1")
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise _fail("kind must be mail or ack")
    if set(body) != FIELDS[kind]:
        raise _fail(f"{kind} fields must be {sorted(FIELDS[kind])}")
    sender = body["from"]
    if not isinstance(sender, str) or not PEER_ID_RE.fullmatch(sender):
        raise _fail("from is not a key-bound peer id")
    _recipient(body["to"], sender)
    if kind == KIND_MAIL:
        if not is_file_id(body["id"]):
            raise _fail("id must be 16 bytes in canonical base64url")
        created, expires = _time(body, "created_at"), _time(body, "expires_at")
        if not created < expires <= created + MAX_MAIL_LIFETIME_MS:
            raise _fail("expires_at must be after created_at, by at most 7 days")
        sealed = b64url_decode(body["sealed"], field="sealed", code=BAD_MAIL)
        if not SEAL_OVERHEAD < len(sealed) <= MAX_SEALED_BYTES:
            raise _fail(f"sealed must be {SEAL_OVERHEAD + 1} to {MAX_SEALED_BYTES} bytes")
        return
    _time(body, "acked_at")
    if body["acked_at"] > MAX_SAFE_INTEGER - ACK_LIFETIME_MS:
        raise _fail("acked_at is out of range")
    ids = body["ids"]
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_ACK_IDS:
        raise _fail(f"ids must be a list of 1 to {MAX_ACK_IDS} mail ids")
    if not all(is_file_id(i) for i in ids):
        raise _fail("ids must be mail ids (16 bytes in canonical base64url)")
    if any(a >= b for a, b in itertools.pairwise(ids)):
        raise _fail("ids must be distinct and sorted ascending")
