"""The DHT's definitions (peers/protocol/dht.py runs them): ids and distances, the limits of
one peer, and the signed values it moves: contacts (presence tickets) and records (peer and
provider records), with their checks. Mirror of static/swarm/protocol/dht.js; docs/protocol.md
"DHT" is the specification."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import cast

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .chunks import is_digest_id
from .encoding import PEER_ID_RE, b64url_decode, peer_id_for_key
from .envelope import JsonObject, sign, verify
from .errors import (
    BAD_BODY,
    BAD_ENVELOPE,
    BAD_SIGNATURE,
    EXPIRED,
    PEER_MISMATCH,
    RATE_LIMITED,
    RECORD_TOO_LARGE,
    UNEXPECTED_FRAME,
    WRONG_COMMUNITY,
    WRONG_KEY,
    ProtocolError,
)
from .ticket import CLOCK_SKEW_MS, Ticket, check_lifetime, is_valid_community, verify_ticket
from .wire import (
    MAX_CHUNKS_PER_MANIFEST,
)

DOMAIN_PROVIDE = "swarm/provide/v1"
CAP_DHT = "dht"
ID_BYTES = 32
ID_BITS = 256
KIND_PEER = "peer"
KIND_PROVIDER = "provider"
KIND_NODE = "node"  # a lookup for the contacts closest to an id (no record)
# Canonical JSON (RFC 8785) of a record or contact, in bytes: the beacon's announce limit.
MAX_RECORD_BYTES = 4096
PROVIDE_TTL_MS = 1_800_000  # default lifetime of a provider record: 30 min ...
MAX_PROVIDE_TTL_MS = 3_600_000  # ... at most 1 h
CONTACT_MAX_AGE_MS = 3_600_000  # a ticket is a usable contact up to 1 h after issued_at
# A contact is handed out only while it has this long left, so it still verifies on arrival.
CONTACT_MARGIN_MS = 60_000
STORED = "stored"
PROVIDE_FIELDS = frozenset(
    {"peer_id", "community", "manifest", "chunks", "issued_at", "expires_at"}
)
# Faults in what a neighbour sent that an honest peer never sends (it checks what it passes
# on): they count against it like a bad frame. Time faults (expired, not_yet_valid) do not.
VIOLATIONS = frozenset(
    {
        BAD_ENVELOPE,
        BAD_SIGNATURE,
        BAD_BODY,
        PEER_MISMATCH,
        WRONG_COMMUNITY,
        RECORD_TOO_LARGE,
        WRONG_KEY,
        UNEXPECTED_FRAME,
        RATE_LIMITED,
    }
)


@dataclass(frozen=True, slots=True)
class DhtLimits:
    """Limits of one peer (docs/protocol.md "DHT", "Limits"). Rates are GCRA buckets per
    peer in integers: one token every ``*_interval_ms``, at most ``*_burst`` saved up."""

    k: int = 20  # contacts per bucket and per answer
    alpha: int = 3  # requests in flight per lookup
    replicas: int = 20  # nodes a record is stored at (the closest that answered)
    # a value lookup whose k closest gave no record asks on, up to the closest this many
    value_window: int = 40
    # disjoint paths of a value lookup (S/Kademlia): a contact belongs to the path that found it
    paths: int = 3
    spare: int = 8  # replacement contacts kept per full bucket
    max_failures: int = 2  # failed requests in a row before a contact is dropped
    request_timeout_ms: int = 5_000  # includes dialing a contact not connected
    lookup_timeout_ms: int = 30_000
    max_lookups: int = 32  # lookups running at once
    max_candidates: int = 200  # contacts a lookup keeps (the closest)
    request_interval_ms: int = 100  # requests taken per peer: 10/s ...
    request_burst: int = 50  # ... bursts of 50; beyond: rate_limited (a violation)
    store_interval_ms: int = 1_000  # dht_store frames taken per peer: 1/s ...
    store_burst: int = 10  # ... bursts of 10
    max_records: int = 4096  # records held for others, in all
    max_per_publisher: int = 64  # ... per publisher (the record's signer)
    max_per_key: int = 20  # provider records per manifest
    max_rate_keys: int = 4096  # peers whose rate is tracked (least recently used dropped)
    republish_ms: int = 900_000  # provider records are signed and stored again this often
    prune_every_ms: int = 30_000


# --- ids ---


def node_id(peer_id: str) -> bytes:
    """SHA-256 of the ASCII peer id: the node's 256-bit id and the key of its peer record."""
    if not isinstance(peer_id, str) or not PEER_ID_RE.fullmatch(peer_id):
        raise ProtocolError(BAD_BODY, "not a key-bound peer id")
    return hashlib.sha256(peer_id.encode("ascii")).digest()


def provider_key(manifest_id: str) -> bytes:
    """The key of a manifest's provider records: the 32 bytes of its id."""
    if not is_digest_id(manifest_id):
        raise ProtocolError(BAD_BODY, "not a manifest id")
    return b64url_decode(manifest_id, field="manifest", code=BAD_BODY)


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two ids, as an unsigned integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(own: bytes, other: bytes) -> int:
    """The bucket of ``other`` seen from ``own``: the highest set bit of their distance
    (255 for the farther half of the id space), -1 for the same id."""
    return distance(own, other).bit_length() - 1


# --- records and contacts ---


@dataclass(frozen=True, slots=True)
class Record:
    """A verified record: a peer's presence ticket (``kind`` peer) or a provider record."""

    kind: str
    key: bytes
    peer_id: str  # the publisher (signer)
    issued_at: int
    expires_at: int
    envelope: JsonObject
    manifest: str | None = None
    chunks: int | None = None


@dataclass(slots=True)
class Contact:
    """A peer of the routing table or of a lookup, with its presence ticket."""

    peer_id: str
    id: bytes
    ticket: JsonObject
    issued_at: int
    expires_at: int
    failures: int = 0


def check_size(envelope: object) -> JsonObject:
    """``bad_envelope`` for a value that is no canonical JSON object, ``record_too_large``
    beyond :data:`MAX_RECORD_BYTES`."""
    if not isinstance(envelope, dict):
        raise ProtocolError(BAD_ENVELOPE, "a record must be a JSON object")
    try:
        size = len(rfc8785.dumps(envelope))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ProtocolError(BAD_ENVELOPE, "the record is not canonical JSON") from exc
    if size > MAX_RECORD_BYTES:
        raise ProtocolError(
            RECORD_TOO_LARGE, f"a record is at most {MAX_RECORD_BYTES} B, not {size}"
        )
    return cast(JsonObject, envelope)


def verify_contact(envelope: object, *, now: int, community: str) -> Contact:
    """A presence ticket as a contact: size, then the ticket's checks for ``community``
    except that a ticket expired as presence stays usable until ``issued_at + 1 h``."""
    checked = check_size(envelope)
    try:
        ticket = verify_ticket(checked, now=now, community=community)
    except ProtocolError as error:
        if error.code != EXPIRED:
            raise
        body = checked["body"]  # every other check passed: the fields are sound
        ticket = Ticket(
            peer_id=body["peer_id"],
            community=body["community"],
            issued_at=body["issued_at"],
            expires_at=body["expires_at"],
            nonce=body["nonce"],
            public_key=b64url_decode(checked["pk"], field="pk"),
            signal=tuple(body.get("signal", ())),
            caps=tuple(body.get("caps", ())),
            envelope=checked,
        )
    if now >= ticket.issued_at + CONTACT_MAX_AGE_MS:
        raise ProtocolError(EXPIRED, "a contact's ticket is older than 1 h")
    return Contact(
        ticket.peer_id, node_id(ticket.peer_id), checked, ticket.issued_at, ticket.expires_at
    )


def make_provider_record(
    private_key: Ed25519PrivateKey,
    *,
    community: str,
    manifest: str,
    chunks: int,
    now: int,
    ttl_ms: int = PROVIDE_TTL_MS,
) -> JsonObject:
    """Sign "this peer holds ``chunks`` verified chunks of ``manifest``" (``swarm/provide/v1``)."""
    body = {
        "peer_id": peer_id_for_key(private_key.public_key().public_bytes_raw()),
        "community": community,
        "manifest": manifest,
        "chunks": chunks,
        "issued_at": now,
        "expires_at": now + ttl_ms,
    }
    _check_provide_body(body)
    return check_size(sign(DOMAIN_PROVIDE, body, private_key))


def _check_provide_body(body: JsonObject) -> None:
    if set(body) != PROVIDE_FIELDS:
        raise ProtocolError(BAD_BODY, f"a provider record has exactly {sorted(PROVIDE_FIELDS)}")
    if not isinstance(body["peer_id"], str) or not PEER_ID_RE.fullmatch(body["peer_id"]):
        raise ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id")
    if not is_valid_community(body["community"]):
        raise ProtocolError(BAD_BODY, "community name is invalid")
    if not is_digest_id(body["manifest"]):
        raise ProtocolError(BAD_BODY, "manifest is not a manifest id")
    chunks = body["chunks"]
    if type(chunks) is not int or not 0 <= chunks <= MAX_CHUNKS_PER_MANIFEST:
        raise ProtocolError(BAD_BODY, f"chunks must be 0..{MAX_CHUNKS_PER_MANIFEST}")
    for name in ("issued_at", "expires_at"):
        if type(body[name]) is not int or body[name] < 0:
            raise ProtocolError(BAD_BODY, f"{name} must be a non-negative integer (ms)")
    if body["expires_at"] <= body["issued_at"]:
        raise ProtocolError(BAD_BODY, "expires_at must be after issued_at")


def verify_record(kind: str, envelope: object, *, now: int, community: str) -> Record:
    """Check a record before it is stored or used. In order: size (``bad_envelope``,
    ``record_too_large``), envelope and signature (``bad_envelope``, ``bad_signature``), body
    (``bad_body``), signer (``peer_mismatch``), community (``wrong_community``), times
    (``ttl_too_long``, ``not_yet_valid``, ``expired``). A peer record is a live ticket."""
    checked = check_size(envelope)
    if kind == KIND_PEER:
        ticket = verify_ticket(checked, now=now, community=community)
        return Record(
            KIND_PEER,
            node_id(ticket.peer_id),
            ticket.peer_id,
            ticket.issued_at,
            ticket.expires_at,
            checked,
        )
    if kind != KIND_PROVIDER:
        raise ProtocolError(BAD_BODY, f"no record kind {kind!r}")
    verified = verify(checked, DOMAIN_PROVIDE)
    body = verified.body
    _check_provide_body(body)
    if verified.peer_id != body["peer_id"]:
        raise ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key")
    if body["community"] != community:
        raise ProtocolError(WRONG_COMMUNITY, "the record is for another community")
    check_lifetime(
        "provider record",
        body["issued_at"],
        body["expires_at"],
        now=now,
        max_ttl_ms=MAX_PROVIDE_TTL_MS,
        skew_ms=CLOCK_SKEW_MS,
    )
    return Record(
        KIND_PROVIDER,
        provider_key(body["manifest"]),
        body["peer_id"],
        body["issued_at"],
        body["expires_at"],
        checked,
        manifest=body["manifest"],
        chunks=body["chunks"],
    )
