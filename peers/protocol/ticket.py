"""Presence tickets: signed statements that a peer is online in a community (DESIGN section 4)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .encoding import PEER_ID_RE, b64url_encode, peer_id_for_key
from .envelope import DOMAIN_TICKET, DOMAIN_WITHDRAW, JsonObject, sign, verify
from .errors import (
    BAD_BODY,
    EXPIRED,
    NOT_YET_VALID,
    PEER_MISMATCH,
    TTL_TOO_LONG,
    WRONG_COMMUNITY,
    ProtocolError,
)

COMMUNITY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CAP_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
DEFAULT_TTL_MS = 180_000
MAX_TTL_MS = 600_000
CLOCK_SKEW_MS = 15_000
MAX_SIGNAL_URLS = 4
MAX_SIGNAL_URL_LENGTH = 256
MAX_CAPS = 16

REQUIRED_FIELDS = frozenset({"peer_id", "community", "issued_at", "expires_at", "nonce"})
OPTIONAL_FIELDS = frozenset({"signal", "caps"})


@dataclass(frozen=True, slots=True)
class Ticket:
    """A verified presence ticket; ``envelope`` is the exact signed object received."""

    peer_id: str
    community: str
    issued_at: int
    expires_at: int
    nonce: str
    public_key: bytes
    signal: tuple[str, ...]
    caps: tuple[str, ...]
    envelope: JsonObject


def is_valid_community(name: object) -> bool:
    return isinstance(name, str) and bool(COMMUNITY_RE.fullmatch(name))


def new_nonce() -> str:
    return b64url_encode(secrets.token_bytes(12))


def make_ticket(
    private_key: Ed25519PrivateKey,
    *,
    community: str,
    now: int,
    ttl_ms: int = DEFAULT_TTL_MS,
    nonce: str | None = None,
    signal: list[str] | None = None,
    caps: list[str] | None = None,
    peer_id: str | None = None,
) -> JsonObject:
    """Sign a presence ticket. ``peer_id`` defaults to the one bound to the key."""
    body: dict[str, Any] = {
        "peer_id": peer_id or peer_id_for_key(private_key.public_key().public_bytes_raw()),
        "community": community,
        "issued_at": now,
        "expires_at": now + ttl_ms,
        "nonce": nonce or new_nonce(),
    }
    if signal is not None:
        body["signal"] = signal
    if caps is not None:
        body["caps"] = caps
    return sign(DOMAIN_TICKET, body, private_key)


def verify_ticket(
    envelope: object,
    *,
    now: int,
    community: str | None = None,
    max_ttl_ms: int = MAX_TTL_MS,
    skew_ms: int = CLOCK_SKEW_MS,
) -> Ticket:
    """Verify a ticket at time ``now`` (ms); ``community`` pins the expected community."""
    verified = verify(envelope, DOMAIN_TICKET)
    body = verified.body
    _check_fields(body)
    if verified.peer_id != body["peer_id"]:
        raise ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key")
    if community is not None and body["community"] != community:
        raise ProtocolError(WRONG_COMMUNITY, "ticket is for another community")
    issued_at: int = body["issued_at"]
    expires_at: int = body["expires_at"]
    if expires_at <= issued_at:
        raise ProtocolError(BAD_BODY, "expires_at must be after issued_at")
    check_lifetime("ticket", issued_at, expires_at, now=now, max_ttl_ms=max_ttl_ms, skew_ms=skew_ms)
    return Ticket(
        peer_id=body["peer_id"],
        community=body["community"],
        issued_at=issued_at,
        expires_at=expires_at,
        nonce=body["nonce"],
        public_key=verified.public_key,
        signal=tuple(body.get("signal", ())),
        caps=tuple(body.get("caps", ())),
        envelope=cast(JsonObject, envelope),
    )


def check_lifetime(
    what: str, issued_at: int, expires_at: int, *, now: int, max_ttl_ms: int, skew_ms: int
) -> None:
    """The time rules of a signed ``issued_at``/``expires_at`` object (tickets, capsules), in
    order: ``ttl_too_long``, ``not_yet_valid`` (beyond ``now + skew_ms``), ``expired``."""
    if expires_at - issued_at > max_ttl_ms:
        raise ProtocolError(TTL_TOO_LONG, f"{what} lifetime exceeds {max_ttl_ms} ms")
    if issued_at > now + skew_ms:
        raise ProtocolError(NOT_YET_VALID, f"{what} is issued in the future")
    if now >= expires_at:
        raise ProtocolError(EXPIRED, f"{what} has expired")


def _check_fields(body: JsonObject) -> None:
    keys = set(body)
    missing = REQUIRED_FIELDS - keys
    if missing:
        raise ProtocolError(BAD_BODY, f"ticket is missing {sorted(missing)}")
    unknown = keys - REQUIRED_FIELDS - OPTIONAL_FIELDS
    if unknown:
        raise ProtocolError(BAD_BODY, f"ticket has unknown fields {sorted(unknown)}")
    peer_id = body["peer_id"]
    if not isinstance(peer_id, str) or not PEER_ID_RE.fullmatch(peer_id):
        raise ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id")
    if not is_valid_community(body["community"]):
        raise ProtocolError(BAD_BODY, "community name is invalid")
    for name in ("issued_at", "expires_at"):
        value = body[name]
        if type(value) is not int or value < 0:
            raise ProtocolError(BAD_BODY, f"{name} must be a non-negative integer (ms)")
    nonce = body["nonce"]
    if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
        raise ProtocolError(BAD_BODY, "nonce must be 8-64 base64url characters")
    if "signal" in body:
        urls = body["signal"]
        if (
            not isinstance(urls, list)
            or len(urls) > MAX_SIGNAL_URLS
            or not all(_is_signal_url(url) for url in urls)
        ):
            raise ProtocolError(BAD_BODY, "signal must be a list of up to 4 http(s)/ws(s) URLs")
    if "caps" in body:
        caps = body["caps"]
        if (
            not isinstance(caps, list)
            or len(caps) > MAX_CAPS
            or not all(isinstance(cap, str) and CAP_RE.fullmatch(cap) for cap in caps)
        ):
            raise ProtocolError(BAD_BODY, "caps must be a list of up to 16 short names")


def _is_signal_url(url: object) -> bool:
    return (
        isinstance(url, str)
        and len(url) <= MAX_SIGNAL_URL_LENGTH
        and url.startswith(("http://", "https://", "ws://", "wss://"))
    )


# --- withdrawals ---------------------------------------------------------------------------

WITHDRAW_FIELDS = frozenset({"peer_id", "community", "nonce"})


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A verified withdrawal: the peer takes back its ticket with this nonce (it is leaving)."""

    peer_id: str
    community: str
    nonce: str


def make_withdrawal(private_key: Ed25519PrivateKey, *, community: str, nonce: str) -> JsonObject:
    """Sign the withdrawal of the ticket with ``nonce`` (made with the ticket, sent on leaving)."""
    body = {
        "peer_id": peer_id_for_key(private_key.public_key().public_bytes_raw()),
        "community": community,
        "nonce": nonce,
    }
    return sign(DOMAIN_WITHDRAW, body, private_key)


def verify_withdrawal(envelope: object, *, community: str | None = None) -> Withdrawal:
    """Verify a withdrawal. It names one ticket by its nonce, so it can only ever remove that
    ticket (a replay after the peer announced again changes nothing): no clock is needed."""
    verified = verify(envelope, DOMAIN_WITHDRAW)
    body = verified.body
    keys = set(body)
    if keys != WITHDRAW_FIELDS:
        raise ProtocolError(
            BAD_BODY, f"a withdrawal has exactly the fields {sorted(WITHDRAW_FIELDS)}"
        )
    peer_id, name, nonce = body["peer_id"], body["community"], body["nonce"]
    if not isinstance(peer_id, str) or not PEER_ID_RE.fullmatch(peer_id):
        raise ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id")
    if not is_valid_community(name):
        raise ProtocolError(BAD_BODY, "community name is invalid")
    if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
        raise ProtocolError(BAD_BODY, "nonce must be 8-64 base64url characters")
    if verified.peer_id != peer_id:
        raise ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key")
    if community is not None and name != community:
        raise ProtocolError(WRONG_COMMUNITY, "withdrawal is for another community")
    return Withdrawal(peer_id=peer_id, community=name, nonce=nonce)
