"""Signed capsules: static bundles of verified presence tickets (DESIGN section 4).

A capsule is an envelope of domain ``swarm/capsule/v1`` whose body is exactly
``{community, issued_at, expires_at, peers:[tickets]}``. The body carries no key id:
the envelope's ``pk`` names the signer and a key id is only a short name for that
key (``kid_for``), so carrying both would give two answers to one question.

Verification (``verify_capsule``) checks the envelope, the body, the community, the
signer against a list of trusted keys with validity windows, and the time window.
It does not verify the tickets inside: tickets expire one by one during a capsule's
life (a ticket lives 3 minutes by default, a capsule 10), so one stale ticket must not
void the bundle. Consumers take the usable tickets with ``capsule_tickets``, which
re-verifies each and drops the rest (the publisher already did this once; a
consumer does it again because it trusts the capsule key to bundle, not to vouch).

``select_tickets`` is the publisher's side: verify candidates from any source,
drop forged, expired or excluded ones (counted by error code), keep one ticket per
peer (the newest), newest first, at most ``MAX_PEERS``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .encoding import b64url_decode, b64url_encode
from .envelope import DOMAIN_CAPSULE, JsonObject, sign, verify
from .errors import (
    BAD_BODY,
    UNTRUSTED_KEY,
    WRONG_COMMUNITY,
    ProtocolError,
)
from .ticket import CLOCK_SKEW_MS, Ticket, check_lifetime, is_valid_community, verify_ticket

CAPSULE_TTL_MS = 600_000
MAX_PEERS = 100
FIELDS = frozenset({"community", "issued_at", "expires_at", "peers"})
# Error code for a candidate ticket dropped because the caller excluded it (e.g. blocked).
EXCLUDED = "excluded"


def kid_for(public_raw: bytes) -> str:
    """The short name of a capsule key: first 16 characters of b64url(SHA-256(pk))."""
    return b64url_encode(hashlib.sha256(public_raw).digest())[:16]


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A capsule key a consumer trusts, with its window.

    ``created_at``/``retired_at`` bound when it may sign (``issued_at`` of its capsules);
    ``expires_at`` (retired_at + capsule TTL) is when trust in it ends altogether.
    ``None`` means unbounded on that side (a key pinned in page config has no window).
    """

    public_key: str
    created_at: int | None = None
    retired_at: int | None = None
    expires_at: int | None = None

    @property
    def kid(self) -> str:
        return kid_for(b64url_decode(self.public_key, field="pk"))

    def to_json(self) -> JsonObject:
        return {
            "kid": self.kid,
            "pk": self.public_key,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
            "expires_at": self.expires_at,
        }


def parse_trusted_keys(document: object) -> list[TrustedKey]:
    """Read ``GET /capsules/keys.json`` (``{"keys":[{kid, pk, created_at, ...}]}``)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ProtocolError(BAD_BODY, "keys document must be an object with a keys list")
    out = []
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            raise ProtocolError(BAD_BODY, "each key must be an object")
        pk = entry.get("pk")
        if len(b64url_decode(pk, field="pk", code=BAD_BODY)) != 32:
            raise ProtocolError(BAD_BODY, "pk must be a 32-byte Ed25519 key")
        times = [entry.get(name) for name in ("created_at", "retired_at", "expires_at")]
        if not all(t is None or (type(t) is int and t >= 0) for t in times):
            raise ProtocolError(BAD_BODY, "key times must be integers (ms) or null")
        out.append(TrustedKey(str(pk), *times))
    return out


@dataclass(frozen=True, slots=True)
class Capsule:
    """A verified capsule; ``peers`` are the inner tickets as received (not yet verified)."""

    community: str
    issued_at: int
    expires_at: int
    peers: tuple[JsonObject, ...]
    public_key: str
    envelope: JsonObject

    @property
    def kid(self) -> str:
        return kid_for(b64url_decode(self.public_key, field="pk"))


def make_capsule(
    private_key: Ed25519PrivateKey,
    *,
    community: str,
    now: int,
    peers: Sequence[JsonObject],
    ttl_ms: int = CAPSULE_TTL_MS,
) -> JsonObject:
    """Sign a capsule of ``peers`` (signed tickets, already selected) issued at ``now``."""
    if len(peers) > MAX_PEERS:
        raise ProtocolError(BAD_BODY, f"a capsule holds at most {MAX_PEERS} peers")
    body = {
        "community": community,
        "issued_at": now,
        "expires_at": now + ttl_ms,
        "peers": list(peers),
    }
    return sign(DOMAIN_CAPSULE, body, private_key)


def verify_capsule(
    envelope: object,
    *,
    trusted: Iterable[TrustedKey],
    now: int,
    community: str | None = None,
    skew_ms: int = CLOCK_SKEW_MS,
) -> Capsule:
    """Verify a capsule at ``now`` (ms) against ``trusted`` keys; raise ``ProtocolError``.

    Checks, in order: envelope and signature, body shape, community, signer trusted
    (``untrusted_key``: unknown key, capsule issued outside the key's signing window, or
    trust in the key over), lifetime (``ttl_too_long``), ``not_yet_valid``, ``expired``.
    """
    verified = verify(envelope, DOMAIN_CAPSULE)
    body = verified.body
    _check_fields(body)
    if community is not None and body["community"] != community:
        raise ProtocolError(WRONG_COMMUNITY, "capsule is for another community")
    issued_at: int = body["issued_at"]
    expires_at: int = body["expires_at"]
    pk = b64url_encode(verified.public_key)
    _check_trust(pk, issued_at, now, list(trusted))
    check_lifetime(
        "capsule", issued_at, expires_at, now=now, max_ttl_ms=CAPSULE_TTL_MS, skew_ms=skew_ms
    )
    return Capsule(
        community=body["community"],
        issued_at=issued_at,
        expires_at=expires_at,
        peers=tuple(body["peers"]),
        public_key=pk,
        envelope=cast(JsonObject, envelope),
    )


def _check_trust(pk: str, issued_at: int, now: int, trusted: list[TrustedKey]) -> None:
    matching = [key for key in trusted if key.public_key == pk]
    if not matching:
        raise ProtocolError(UNTRUSTED_KEY, "capsule is signed by a key that is not trusted")
    for key in matching:
        if key.expires_at is not None and now >= key.expires_at:
            continue
        if key.created_at is not None and issued_at < key.created_at:
            continue
        if key.retired_at is not None and issued_at > key.retired_at:
            continue
        return
    raise ProtocolError(
        UNTRUSTED_KEY, "capsule was issued outside its key's validity window, or trust ended"
    )


def _check_fields(body: JsonObject) -> None:
    keys = set(body)
    if keys != FIELDS:
        missing = sorted(FIELDS - keys)
        detail = f"missing {missing}" if missing else f"unknown fields {sorted(keys - FIELDS)}"
        raise ProtocolError(BAD_BODY, f"capsule body: {detail}")
    if not is_valid_community(body["community"]):
        raise ProtocolError(BAD_BODY, "community name is invalid")
    for name in ("issued_at", "expires_at"):
        value = body[name]
        if type(value) is not int or value < 0:
            raise ProtocolError(BAD_BODY, f"{name} must be a non-negative integer (ms)")
    if body["expires_at"] <= body["issued_at"]:
        raise ProtocolError(BAD_BODY, "expires_at must be after issued_at")
    peers = body["peers"]
    if not isinstance(peers, list) or not all(isinstance(p, dict) for p in peers):
        raise ProtocolError(BAD_BODY, "peers must be a list of signed tickets")
    if len(peers) > MAX_PEERS:
        raise ProtocolError(BAD_BODY, f"a capsule holds at most {MAX_PEERS} peers")


@dataclass(frozen=True, slots=True)
class Selection:
    """Tickets kept (newest first) and how many candidates were dropped, by reason."""

    tickets: tuple[Ticket, ...]
    dropped: Mapping[str, int] = field(default_factory=dict)
    duplicates: int = 0
    over_limit: int = 0

    @property
    def envelopes(self) -> list[JsonObject]:
        return [t.envelope for t in self.tickets]


def select_tickets(
    candidates: Iterable[object],
    *,
    community: str,
    now: int,
    limit: int = MAX_PEERS,
    exclude: Callable[[Ticket], bool] | None = None,
    max_ttl_ms: int | None = None,
) -> Selection:
    """Verify every candidate and keep the newest ticket per peer, at most ``limit``.

    Dropped candidates are counted by error code (``bad_signature``, ``expired``,
    ``wrong_community``..., ``excluded`` when ``exclude`` says so); a peer's older
    tickets count as ``duplicates``, tickets past ``limit`` as ``over_limit``.
    """
    dropped: Counter[str] = Counter()
    best: dict[str, Ticket] = {}
    seen = 0
    extra: dict[str, Any] = {} if max_ttl_ms is None else {"max_ttl_ms": max_ttl_ms}
    for candidate in candidates:
        try:
            ticket = verify_ticket(candidate, now=now, community=community, **extra)
        except ProtocolError as error:
            dropped[error.code] += 1
            continue
        if exclude is not None and exclude(ticket):
            dropped[EXCLUDED] += 1
            continue
        seen += 1
        current = best.get(ticket.peer_id)
        if current is None or _newer(ticket, current):
            best[ticket.peer_id] = ticket
    ordered = sorted(best.values(), key=lambda t: (t.issued_at, t.nonce), reverse=True)
    return Selection(
        tickets=tuple(ordered[:limit]),
        dropped=dict(sorted(dropped.items())),
        duplicates=seen - len(best),
        over_limit=max(0, len(ordered) - limit),
    )


def _newer(a: Ticket, b: Ticket) -> bool:
    # Ties on issued_at are broken by nonce so every publisher picks the same ticket.
    return (a.issued_at, a.nonce) > (b.issued_at, b.nonce)


def capsule_tickets(capsule: Capsule, *, now: int) -> Selection:
    """The usable tickets of a verified capsule at ``now``: each re-verified, deduplicated."""
    return select_tickets(capsule.peers, community=capsule.community, now=now)
