"""A Kademlia DHT over the swarm's connections: ids, k-buckets, signed records, lookups.

Mirror of static/swarm/protocol/dht.js; docs/protocol.md "DHT" is the specification.

- Node id = SHA-256 of the ASCII peer id (32 bytes): computable from a peer id alone (what
  "Connect by id" knows) and bound to the key through the peer id. Distance is XOR read as a
  256-bit big-endian integer; the bucket of a contact is the index of the highest bit of its
  distance from this node (0..255).
- A contact is a peer's presence ticket (``swarm/ticket/v1``): it proves the peer id and the
  community. As a contact a ticket stays usable up to 1 h after ``issued_at`` (its signature
  does not expire); as a *peer record* ("where is peer X") it must be live.
- A *provider record* (``swarm/provide/v1``) says "peer X holds manifest M"; its key is the
  manifest id's 32 bytes.
- Lookups are iterative with parallelism alpha; every returned contact is verified before it
  is asked, every returned record before it is used.

:class:`Dht` is sans-IO: frames from peers, the adapter's reports and ``now`` go in; frames to
send to a peer (``DhtSend``, which the adapter fulfils over an open connection or by dialing
the peer through the signaling server or the mesh), finished lookups (``DhtDone``) and drops
(``DhtDrop``, with a stable code and whether the sender is to blame) come out of
:meth:`Dht.take_actions`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .chunks import is_digest_id
from .encoding import PEER_ID_RE, b64url_decode, peer_id_for_key
from .envelope import DOMAIN_TICKET, JsonObject, sign, verify
from .errors import (
    BAD_BODY,
    BAD_ENVELOPE,
    BAD_SIGNATURE,
    EXPIRED,
    NOT_CLOSE,
    NOT_FOUND,
    NOT_YET_VALID,
    PEER_MISMATCH,
    RATE_LIMITED,
    RECORD_TOO_LARGE,
    REPLAY,
    STORE_FULL,
    TIMEOUT,
    TTL_TOO_LONG,
    UNEXPECTED_FRAME,
    UNREACHABLE,
    WRONG_COMMUNITY,
    WRONG_KEY,
    ProtocolError,
)
from .ratelimit import GcraBuckets
from .ticket import CLOCK_SKEW_MS, Ticket, check_lifetime, is_valid_community, verify_ticket
from .wire import (
    MAX_CHUNKS_PER_MANIFEST,
    MAX_DHT_NODES,
    MAX_DHT_RECORDS,
    MAX_UINT32,
    DhtFindNode,
    DhtFindValue,
    DhtFrame,
    DhtNodes,
    DhtStore,
    DhtStored,
    DhtValue,
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


# --- routing table ---


class RoutingTable:
    """256 k-buckets by :func:`bucket_index`, each least recently seen first, with a
    replacement list of at most ``spare`` contacts per bucket (newest last)."""

    def __init__(self, own: bytes, *, k: int, spare: int) -> None:
        self.own = own
        self.k = k
        self.spare_max = spare
        self.buckets: dict[int, list[Contact]] = {}
        self.spares: dict[int, list[Contact]] = {}
        self.by_peer: dict[str, Contact] = {}

    def __len__(self) -> int:
        return len(self.by_peer)

    def get(self, peer_id: str) -> Contact | None:
        return self.by_peer.get(peer_id)

    def heard(self, contact: Contact) -> Contact | None:
        """``contact`` answered or asked: it moves to the tail of its bucket (its ticket
        kept when newer). A full bucket keeps it as a spare and returns its least recently
        seen contact, whose liveness the caller checks (None: nothing to check)."""
        index = bucket_index(self.own, contact.id)
        if index < 0:
            return None
        bucket = self.buckets.setdefault(index, [])
        known = self.by_peer.get(contact.peer_id)
        if known is not None:
            bucket.remove(known)
            if contact.issued_at > known.issued_at:
                known.ticket, known.issued_at = contact.ticket, contact.issued_at
                known.expires_at = contact.expires_at
            known.failures = 0
            bucket.append(known)
            return None
        if len(bucket) < self.k:
            contact.failures = 0
            bucket.append(contact)
            self.by_peer[contact.peer_id] = contact
            return None
        spares = self.spares.setdefault(index, [])
        spares[:] = [c for c in spares if c.peer_id != contact.peer_id]
        spares.append(contact)
        del spares[: max(0, len(spares) - self.spare_max)]
        return bucket[0]

    def failed(self, peer_id: str, max_failures: int) -> bool:
        """A request to ``peer_id`` failed; True when it was dropped from the table."""
        contact = self.by_peer.get(peer_id)
        if contact is None:
            return False
        contact.failures += 1
        index = bucket_index(self.own, contact.id)
        if contact.failures < max_failures and not self.spares.get(index):
            return False
        self.remove(peer_id)
        return True

    def remove(self, peer_id: str) -> None:
        """Drop a contact; the newest spare of its bucket takes its place."""
        contact = self.by_peer.pop(peer_id, None)
        if contact is None:
            return
        index = bucket_index(self.own, contact.id)
        bucket = self.buckets[index]
        bucket.remove(contact)
        spares = self.spares.get(index)
        if spares:
            spare = spares.pop()
            spare.failures = 0
            bucket.append(spare)
            self.by_peer[spare.peer_id] = spare

    def closest(self, target: bytes, n: int, *, exclude: str | None = None) -> list[Contact]:
        """The ``n`` contacts closest to ``target`` (nearest first)."""
        t = int.from_bytes(target, "big")
        contacts = [c for c in self.by_peer.values() if c.peer_id != exclude]
        contacts.sort(key=lambda c: int.from_bytes(c.id, "big") ^ t)
        return contacts[:n]

    def closer_than_self(self, key: bytes, limit: int) -> int:
        """How many contacts are closer to ``key`` than this node (counted up to ``limit``)."""
        own = distance(self.own, key)
        count = 0
        for c in self.by_peer.values():
            if distance(c.id, key) < own:
                count += 1
                if count >= limit:
                    break
        return count


# --- record store ---


class RecordStore:
    """Records held for others: one peer record per peer, provider records per manifest and
    publisher. Bounded in all, per publisher and per key; when full, a record closer to this
    node than the farthest held replaces it."""

    def __init__(self, own: bytes, limits: DhtLimits) -> None:
        self.own = own
        self.limits = limits
        self.records: dict[tuple[str, bytes, str], Record] = {}  # (kind, key, publisher)
        self.per_key: dict[bytes, int] = {}  # provider records per key
        self.per_publisher: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.records)

    def put(self, record: Record) -> str:
        """``stored``, or why not: ``replay`` (an as new or newer one is held),
        ``store_full`` (in all, for this publisher or this key)."""
        slot = (record.kind, record.key, record.peer_id)
        held = self.records.get(slot)
        if held is not None:
            if held.issued_at >= record.issued_at:
                return REPLAY
            self.records[slot] = record
            return STORED
        lim = self.limits
        if self.per_publisher.get(record.peer_id, 0) >= lim.max_per_publisher:
            return STORE_FULL
        if record.kind == KIND_PROVIDER and self.per_key.get(record.key, 0) >= lim.max_per_key:
            same = [
                r for s, r in self.records.items() if s[0] == KIND_PROVIDER and s[1] == record.key
            ]
            oldest = min(same, key=lambda r: r.issued_at)
            if oldest.issued_at >= record.issued_at:
                return STORE_FULL
            self._remove(oldest)
        if len(self.records) >= lim.max_records:
            farthest = max(self.records.values(), key=lambda r: distance(self.own, r.key))
            if distance(self.own, farthest.key) <= distance(self.own, record.key):
                return STORE_FULL
            self._remove(farthest)
        self.records[slot] = record
        self.per_publisher[record.peer_id] = self.per_publisher.get(record.peer_id, 0) + 1
        if record.kind == KIND_PROVIDER:
            self.per_key[record.key] = self.per_key.get(record.key, 0) + 1
        return STORED

    def _remove(self, record: Record) -> None:
        del self.records[(record.kind, record.key, record.peer_id)]
        left = self.per_publisher[record.peer_id] - 1
        if left:
            self.per_publisher[record.peer_id] = left
        else:
            del self.per_publisher[record.peer_id]
        if record.kind == KIND_PROVIDER:
            left = self.per_key[record.key] - 1
            if left:
                self.per_key[record.key] = left
            else:
                del self.per_key[record.key]

    def get(self, kind: str, key: bytes, now: int) -> list[Record]:
        """Live records of ``kind`` for ``key``, newest first (at most 20)."""
        found = [
            r
            for s, r in self.records.items()
            if s[0] == kind and s[1] == key and now < r.expires_at
        ]
        found.sort(key=lambda r: (-r.issued_at, r.peer_id))
        return found[:MAX_DHT_RECORDS]

    def prune(self, now: int) -> None:
        for record in [r for r in self.records.values() if now >= r.expires_at]:
            self._remove(record)


# --- actions ---


@dataclass(frozen=True, slots=True)
class DhtSend:
    """Send ``frame`` to ``peer_id``: on an open connection, else by dialing it (through
    the signaling server, or through the mesh when the server is out of reach); ``ticket`` is
    its contact (None for an answer, which goes back where the request came from). A peer
    that cannot be reached is reported with :meth:`Dht.unreachable`."""

    peer_id: str
    ticket: JsonObject | None
    frame: DhtFrame


@dataclass(frozen=True, slots=True)
class DhtDone:
    """A lookup ended. ``ok``: a record was found (value lookups) or some contact answered
    (node lookups); else ``code`` says why (``not_found``, ``timeout``). ``records`` are
    verified; ``contacts`` the closest that answered, nearest first (tickets). ``hops``: the
    depth of the answer that gave the record (1: a contact of this node's table)."""

    lookup: int
    kind: str
    target: bytes
    ok: bool
    code: str | None
    records: tuple[Record, ...]
    contacts: tuple[JsonObject, ...]
    hops: int | None
    messages: int


@dataclass(frozen=True, slots=True)
class DhtDrop:
    """A frame or record went no further. ``violation``: ``peer_id`` is to blame."""

    code: str
    violation: bool
    peer_id: str | None
    reason: str


DhtAction = DhtSend | DhtDone | DhtDrop


@dataclass(slots=True)
class DhtStats:
    requests_in: int = 0
    requests_out: int = 0
    answers_in: int = 0
    timeouts: int = 0
    stored: int = 0
    lookups: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


# --- internals ---

# Contact tickets whose signature verified, per process (a page or the super-peer runs one
# Dht; a simulation running many checks each signature once): (community, sig) -> contact.
VERIFIED_CACHE = 20_000
_VERIFIED: OrderedDict[tuple[str, str], Contact] = OrderedDict()
_REFUSED: OrderedDict[tuple[str, str], tuple[JsonObject, str]] = OrderedDict()


def _copy(contact: Contact) -> Contact:
    return Contact(
        contact.peer_id, contact.id, contact.ticket, contact.issued_at, contact.expires_at
    )


@dataclass(slots=True)
class _Candidate:
    contact: Contact
    dist: int
    depth: int
    state: str = "new"  # new | asked | answered | failed | bad (its answer had a violation)
    path: int = 0  # the disjoint path it belongs to


@dataclass(slots=True)
class _Lookup:
    id: int
    kind: str
    target: bytes
    deadline: int
    candidates: dict[str, _Candidate] = field(default_factory=dict)
    in_flight: int = 0
    # A value lookup runs ``paths`` disjoint paths: each contact is asked on behalf of the
    # path that first heard of it, so colluders that capture one path cannot steer the others.
    paths: int = 1
    flying: list[int] = field(default_factory=list)  # requests in flight per path
    messages: int = 0
    records: list[Record] = field(default_factory=list)
    hops: int | None = None
    store: tuple[str, tuple[JsonObject, ...]] | None = None  # then store these at the closest


@dataclass(slots=True)
class _Request:
    peer_id: str
    lookup: int | None  # None: a liveness check or a store
    deadline: int
    probe: bool = False


@dataclass(slots=True)
class _Published:
    manifest: str
    chunks: int
    next_at: int


class Dht:
    """The DHT of one peer; see the module docstring and docs/protocol.md "DHT"."""

    def __init__(
        self,
        *,
        peer_id: str,
        community: str,
        private_key: Ed25519PrivateKey,
        ticket: JsonObject,
        limits: DhtLimits | None = None,
        now: int = 0,
    ) -> None:
        self.peer_id = peer_id
        self.id = node_id(peer_id)
        self.community = community
        self.private_key = private_key
        self.ticket = ticket
        self.limits = limits or DhtLimits()
        lim = self.limits
        self.table = RoutingTable(self.id, k=lim.k, spare=lim.spare)
        self.store = RecordStore(self.id, lim)
        self.requests: dict[tuple[str, int], _Request] = {}
        self.lookups: dict[int, _Lookup] = {}
        self.probing: set[str] = set()
        self.published: dict[str, _Published] = {}
        self.request_buckets = GcraBuckets(
            lim.request_interval_ms, lim.request_burst, lim.max_rate_keys
        )
        self.store_buckets = GcraBuckets(lim.store_interval_ms, lim.store_burst, lim.max_rate_keys)
        self.next_request = 1
        self.next_lookup = 1
        self.next_prune_at = now + lim.prune_every_ms
        self.stats = DhtStats()
        self.actions: list[DhtAction] = []

    def take_actions(self) -> list[DhtAction]:
        """Everything decided since the last call, in order."""
        out, self.actions = self.actions, []
        return out

    # --- inputs from the adapter ---

    def set_ticket(self, ticket: JsonObject, now: int) -> None:
        """This peer's new presence ticket: sent in its frames and stored as its peer record
        at the ``replicas`` nodes closest to its id (the peer record's republish)."""
        self.ticket = ticket
        self._start(KIND_NODE, self.id, now, store=(KIND_PEER, (ticket,)))

    def seen(self, ticket: object, now: int) -> bool:
        """A DHT peer the adapter met (a connection's hello listed ``dht``): into the table."""
        try:
            contact = self._contact(ticket, now)
        except ProtocolError as error:
            self._drop(error.code, None, error.message)
            return False
        if contact.peer_id == self.peer_id:
            return False
        self._heard(contact, now)
        return True

    def unreachable(self, peer_id: str, now: int) -> None:
        """The adapter could not reach ``peer_id``: its requests fail now."""
        for key in [k for k in self.requests if k[0] == peer_id]:
            self._fail(key, UNREACHABLE, now)

    # --- lookups ---

    def find_node(self, target: bytes, now: int) -> int:
        """Look up the contacts closest to ``target``; returns the lookup id."""
        return self._start(KIND_NODE, target, now)

    def find_peer(self, peer_id: str, now: int) -> int:
        """Look up ``peer_id``'s live presence ticket (its peer record)."""
        return self._start(KIND_PEER, node_id(peer_id), now)

    def find_providers(self, manifest: str, now: int) -> int:
        """Look up provider records of ``manifest``."""
        return self._start(KIND_PROVIDER, provider_key(manifest), now)

    def provide(self, manifest: str, chunks: int, now: int) -> int:
        """Sign a provider record for ``manifest`` and store it at the closest nodes; it is
        signed and stored again every ``republish_ms`` until :meth:`unprovide`."""
        self.published[manifest] = _Published(manifest, chunks, now + self.limits.republish_ms)
        record = make_provider_record(
            self.private_key, community=self.community, manifest=manifest, chunks=chunks, now=now
        )
        return self._start(KIND_NODE, provider_key(manifest), now, store=(KIND_PROVIDER, (record,)))

    def unprovide(self, manifest: str) -> None:
        """Stop republishing (the records held elsewhere expire on their own)."""
        self.published.pop(manifest, None)

    def _start(
        self,
        kind: str,
        target: bytes,
        now: int,
        store: tuple[str, tuple[JsonObject, ...]] | None = None,
    ) -> int:
        lookup = _Lookup(self.next_lookup, kind, target, now + self.limits.lookup_timeout_ms)
        lookup.store = store
        self.next_lookup += 1
        self.stats.lookups += 1
        if len(self.lookups) >= self.limits.max_lookups:
            self._finish(lookup, RATE_LIMITED, now)
            return lookup.id
        self.lookups[lookup.id] = lookup
        lookup.paths = 1 if kind == KIND_NODE else max(1, self.limits.paths)
        lookup.flying = [0] * lookup.paths
        t = int.from_bytes(target, "big")
        # The closest contacts are dealt to the paths in turn (the closest of each path first).
        for i, contact in enumerate(self.table.closest(target, self.limits.k)):
            lookup.candidates[contact.peer_id] = _Candidate(
                contact, int.from_bytes(contact.id, "big") ^ t, 1, path=i % lookup.paths
            )
        if store is not None and kind == KIND_NODE:
            self._store_locally(store, now)
        self._step(lookup, now)
        return lookup.id

    def _store_locally(self, store: tuple[str, tuple[JsonObject, ...]], now: int) -> None:
        """A publisher among the closest nodes of its own key keeps its record too."""
        kind, envelopes = store
        for envelope in envelopes:
            record = verify_record(kind, envelope, now=now, community=self.community)
            if self.table.closer_than_self(record.key, self.limits.replicas) < self.limits.replicas:
                self.store.put(record)

    def _step(self, lookup: _Lookup, now: int) -> None:
        """Ask the closest contacts not yet asked, ``alpha`` at a time; finish when the
        ``k`` closest still standing (not failed, not caught lying) have all answered or
        failed. A value lookup whose ``k`` closest were all asked without a record asks on,
        up to the ``value_window`` closest. A value lookup does so on each of its disjoint
        paths, ``alpha`` requests in flight on each."""
        if lookup.id not in self.lookups:
            return
        for path in range(lookup.paths):
            self._step_path(lookup, path, self.limits.alpha, now)
        if lookup.in_flight == 0:
            self._finish(lookup, NOT_FOUND if lookup.kind != KIND_NODE else None, now)

    def _step_path(self, lookup: _Lookup, path: int, alpha: int, now: int) -> None:
        lim = self.limits
        ranked = sorted(
            (
                c
                for c in lookup.candidates.values()
                if c.path == path and c.state not in ("failed", "bad")
            ),
            key=lambda c: c.dist,
        )
        window = lim.k
        if lookup.kind != KIND_NODE and all(c.state != "new" for c in ranked[: lim.k]):
            window = max(lim.k, lim.value_window)
        for candidate in ranked[:window]:
            if lookup.flying[path] >= alpha:
                break
            if candidate.state == "new":
                candidate.state = "asked"
                lookup.in_flight += 1
                lookup.flying[path] += 1
                lookup.messages += 1
                self._request(lookup, candidate.contact, now)

    def _request(self, lookup: _Lookup, contact: Contact, now: int) -> None:
        req_id = self._new_request(contact.peer_id, lookup.id, now)
        frame: DhtFrame
        if lookup.kind == KIND_NODE:
            frame = DhtFindNode(id=req_id, ticket=self.ticket, target=lookup.target)
        else:
            frame = DhtFindValue(id=req_id, ticket=self.ticket, kind=lookup.kind, key=lookup.target)
        self.actions.append(DhtSend(contact.peer_id, contact.ticket, frame))

    def _new_request(self, peer_id: str, lookup: int | None, now: int, probe: bool = False) -> int:
        req_id = self.next_request
        self.next_request = 1 if req_id >= MAX_UINT32 else req_id + 1
        deadline = now + self.limits.request_timeout_ms
        self.requests[(peer_id, req_id)] = _Request(peer_id, lookup, deadline, probe)
        self.stats.requests_out += 1
        return req_id

    def _finish(self, lookup: _Lookup, code: str | None, now: int) -> None:
        self.lookups.pop(lookup.id, None)
        answered = sorted(
            (c for c in lookup.candidates.values() if c.state == "answered"), key=lambda c: c.dist
        )[: self.limits.k]
        if lookup.kind == KIND_NODE:
            ok = bool(answered)
            code = None if ok else (code or NOT_FOUND)
        else:
            ok = bool(lookup.records)
            code = None if ok else code
        self.actions.append(
            DhtDone(
                lookup.id,
                lookup.kind,
                lookup.target,
                ok,
                code,
                tuple(lookup.records),
                tuple(c.contact.ticket for c in answered),
                lookup.hops,
                lookup.messages,
            )
        )
        if lookup.store is not None:
            kind, envelopes = lookup.store
            for c in answered[: self.limits.replicas]:
                req_id = self._new_request(c.contact.peer_id, None, now)
                frame = DhtStore(id=req_id, ticket=self.ticket, kind=kind, records=envelopes)
                self.actions.append(DhtSend(c.contact.peer_id, c.contact.ticket, frame))

    # --- frames ---

    def receive(self, peer_id: str, frame: DhtFrame, now: int) -> None:
        """A ``dht_*`` frame from ``peer_id`` (the connection's verified peer id)."""
        try:
            sender = self._contact(frame.ticket, now)
            if sender.peer_id != peer_id:
                raise ProtocolError(PEER_MISMATCH, "the frame's ticket is not the sender's")
        except ProtocolError as error:
            self._drop(error.code, peer_id, f"sender ticket: {error.message}")
            return
        if isinstance(frame, (DhtFindNode, DhtFindValue, DhtStore)):
            self._on_request(sender, frame, now)
            return
        request = self.requests.pop((peer_id, frame.id), None)
        if request is None:
            self._drop(UNEXPECTED_FRAME, peer_id, "an answer to no request")
            return
        self.stats.answers_in += 1
        self._heard(sender, now)
        self.probing.discard(peer_id)
        if request.lookup is None:
            if isinstance(frame, DhtStored):
                self.stats.stored += sum(1 for code in frame.codes if code == STORED)
            return
        lookup = self.lookups.get(request.lookup)
        if lookup is None:
            return
        lookup.in_flight -= 1
        candidate = lookup.candidates.get(peer_id)
        depth = 1
        path = 0
        if candidate is not None:
            candidate.state = "answered"
            depth = candidate.depth
            path = candidate.path
            lookup.flying[path] -= 1
        expected = DhtNodes if lookup.kind == KIND_NODE else DhtValue
        violations = 0
        if not isinstance(frame, expected):
            self._drop(UNEXPECTED_FRAME, peer_id, f"{frame.t} answers a {lookup.kind} lookup")
            violations += 1
        else:
            if isinstance(frame, DhtValue):
                violations += self._take_records(lookup, frame.records, peer_id, depth, now)
            violations += self._take_nodes(lookup, frame.nodes, peer_id, depth, path, now)
        if violations:
            # An answer an honest peer never sends: the peer leaves the table, and this lookup
            # neither counts it among the closest nor stores at it.
            if candidate is not None:
                candidate.state = "bad"
            self.table.remove(peer_id)
        if lookup.records:
            self._finish(lookup, None, now)
        else:
            self._step(lookup, now)

    def _take_records(
        self, lookup: _Lookup, envelopes: tuple[JsonObject, ...], peer_id: str, depth: int, now: int
    ) -> int:
        """Take the answer's valid records; return how many were violations."""
        violations = 0
        for envelope in envelopes:
            try:
                record = verify_record(lookup.kind, envelope, now=now, community=self.community)
                if record.key != lookup.target:
                    raise ProtocolError(WRONG_KEY, "a record for another key")
            except ProtocolError as error:
                self._drop(error.code, peer_id, f"record: {error.message}")
                violations += error.code in VIOLATIONS
                continue
            if all(r.peer_id != record.peer_id for r in lookup.records):
                lookup.records.append(record)
                if lookup.hops is None:
                    lookup.hops = depth
        return violations

    def _take_nodes(
        self,
        lookup: _Lookup,
        envelopes: tuple[JsonObject, ...],
        peer_id: str,
        depth: int,
        path: int,
        now: int,
    ) -> int:
        """Take the answer's valid contacts as candidates; return how many were violations."""
        violations = 0
        t = int.from_bytes(lookup.target, "big")
        for envelope in envelopes:
            try:
                contact = self._contact(envelope, now)
            except ProtocolError as error:
                self._drop(error.code, peer_id, f"contact: {error.message}")
                violations += error.code in VIOLATIONS
                continue
            if contact.peer_id == self.peer_id or contact.peer_id in lookup.candidates:
                continue
            lookup.candidates[contact.peer_id] = _Candidate(
                contact, int.from_bytes(contact.id, "big") ^ t, depth + 1, path=path
            )
        if len(lookup.candidates) > self.limits.max_candidates:
            keep = sorted(lookup.candidates.values(), key=lambda c: (c.state == "new", c.dist))
            # Contacts asked or answered stay (their requests are outstanding or done).
            fixed = [c for c in keep if c.state != "new"]
            fresh = sorted((c for c in keep if c.state == "new"), key=lambda c: c.dist)
            room = max(0, self.limits.max_candidates - len(fixed))
            lookup.candidates = {c.contact.peer_id: c for c in fixed + fresh[:room]}
        return violations

    def _on_request(
        self, sender: Contact, frame: DhtFindNode | DhtFindValue | DhtStore, now: int
    ) -> None:
        peer_id = sender.peer_id
        if not self.request_buckets.take(peer_id, now):
            self._drop(RATE_LIMITED, peer_id, "too many DHT requests")
            return
        if isinstance(frame, DhtStore) and not self.store_buckets.take(peer_id, now):
            self._drop(RATE_LIMITED, peer_id, "too many DHT stores")
            return
        self.stats.requests_in += 1
        self._heard(sender, now)
        answer: DhtFrame
        if isinstance(frame, DhtFindNode):
            answer = DhtNodes(
                id=frame.id, ticket=self.ticket, nodes=self._nodes(frame.target, peer_id, now)
            )
        elif isinstance(frame, DhtFindValue):
            records = self._records(frame.kind, frame.key, now)
            nodes = () if records else self._nodes(frame.key, peer_id, now)
            answer = DhtValue(id=frame.id, ticket=self.ticket, records=records, nodes=nodes)
        else:
            codes = tuple(self._store_one(frame.kind, env, peer_id, now) for env in frame.records)
            answer = DhtStored(id=frame.id, ticket=self.ticket, codes=codes)
        self.actions.append(DhtSend(peer_id, None, answer))

    def _nodes(self, target: bytes, exclude: str, now: int) -> tuple[JsonObject, ...]:
        usable = now + CONTACT_MARGIN_MS - CONTACT_MAX_AGE_MS
        t = int.from_bytes(target, "big")
        contacts = [
            c for c in self.table.by_peer.values() if c.peer_id != exclude and c.issued_at > usable
        ]
        contacts.sort(key=lambda c: int.from_bytes(c.id, "big") ^ t)
        return tuple(c.ticket for c in contacts[: min(self.limits.k, MAX_DHT_NODES)])

    def _records(self, kind: str, key: bytes, now: int) -> tuple[JsonObject, ...]:
        if kind == KIND_PEER:
            if key == self.id:
                return (self.ticket,)
            held = self.store.get(KIND_PEER, key, now)
            if held:
                return (held[0].envelope,)
            for contact in self.table.by_peer.values():
                if contact.id == key and now < contact.expires_at:
                    return (contact.ticket,)
            return ()
        return tuple(r.envelope for r in self.store.get(KIND_PROVIDER, key, now))

    def _store_one(self, kind: str, envelope: JsonObject, peer_id: str, now: int) -> str:
        try:
            record = verify_record(kind, envelope, now=now, community=self.community)
        except ProtocolError as error:
            self._drop(error.code, peer_id, f"stored record: {error.message}")
            return error.code
        if self.table.closer_than_self(record.key, self.limits.k) >= self.limits.k:
            self._drop(NOT_CLOSE, None, "this node is not among the closest to the key")
            return NOT_CLOSE
        code = self.store.put(record)
        if code != STORED:
            self._drop(code, None, "not stored")
        return code

    # --- contacts ---

    def _contact(self, ticket: object, now: int) -> Contact:
        """A verified contact; signatures already checked are remembered (per process, by
        community and ``sig``), and so are tickets refused for a fault that time does not
        change (a forged one sent again is refused without checking it again)."""
        sig = ticket.get("sig") if isinstance(ticket, dict) else None
        key = (self.community, sig) if isinstance(sig, str) else None
        refused = _REFUSED.get(key) if key is not None else None
        if refused is not None and refused[0] == ticket:
            raise ProtocolError(refused[1], "refused before")
        known = _VERIFIED.get(key) if key is not None else None
        if known is not None and known.ticket == ticket:
            if now >= known.issued_at + CONTACT_MAX_AGE_MS:
                raise ProtocolError(EXPIRED, "a contact's ticket is older than 1 h")
            return _copy(known)
        try:
            contact = verify_contact(ticket, now=now, community=self.community)
        except ProtocolError as error:
            if key is not None and error.code not in (EXPIRED, NOT_YET_VALID, TTL_TOO_LONG):
                _REFUSED[key] = (cast(JsonObject, ticket), error.code)
                while len(_REFUSED) > VERIFIED_CACHE:
                    _REFUSED.popitem(last=False)
            raise
        if key is not None:
            _VERIFIED[key] = contact
            while len(_VERIFIED) > VERIFIED_CACHE:
                _VERIFIED.popitem(last=False)
        return _copy(contact)

    def _heard(self, contact: Contact, now: int) -> None:
        if contact.peer_id == self.peer_id:
            return
        oldest = self.table.heard(contact)
        if oldest is not None and oldest.peer_id not in self.probing:
            # A full bucket: is its least recently seen contact still there?
            self.probing.add(oldest.peer_id)
            req_id = self._new_request(oldest.peer_id, None, now, probe=True)
            frame = DhtFindNode(id=req_id, ticket=self.ticket, target=self.id)
            self.actions.append(DhtSend(oldest.peer_id, oldest.ticket, frame))

    def _fail(self, key: tuple[str, int], code: str, now: int) -> None:
        request = self.requests.pop(key, None)
        if request is None:
            return
        self.stats.timeouts += 1
        self._drop(code, None, f"no answer from {request.peer_id}")
        if request.probe:
            self.probing.discard(request.peer_id)
            self.table.remove(request.peer_id)  # a spare takes its place
        else:
            self.table.failed(request.peer_id, self.limits.max_failures)
        lookup = self.lookups.get(request.lookup) if request.lookup is not None else None
        if lookup is None:
            return
        lookup.in_flight -= 1
        candidate = lookup.candidates.get(request.peer_id)
        if candidate is not None:
            candidate.state = "failed"
            lookup.flying[candidate.path] -= 1
        self._step(lookup, now)

    def _drop(self, code: str, peer_id: str | None, reason: str) -> None:
        blame = code in VIOLATIONS and peer_id is not None
        self.stats.dropped[code] = self.stats.dropped.get(code, 0) + 1
        self.actions.append(DhtDrop(code, blame, peer_id, reason))

    # --- time ---

    def tick(self, now: int) -> None:
        """Request timeouts, lookup deadlines, republishing, pruning."""
        for key, request in list(self.requests.items()):
            if request.deadline <= now:
                self._fail(key, TIMEOUT, now)
        for lookup in list(self.lookups.values()):
            if lookup.deadline <= now:
                self._finish(lookup, TIMEOUT, now)
        for item in list(self.published.values()):
            if item.next_at <= now:
                self.provide(item.manifest, item.chunks, now)
        if now >= self.next_prune_at:
            self.next_prune_at = now + self.limits.prune_every_ms
            self.store.prune(now)
            self.request_buckets.prune(now)
            self.store_buckets.prune(now)
            too_old = now - CONTACT_MAX_AGE_MS
            for contact in [c for c in self.table.by_peer.values() if c.issued_at <= too_old]:
                self.table.remove(contact.peer_id)

    def next_deadline(self, now: int) -> int:
        """When :meth:`tick` should run next (ms)."""
        deadline = self.next_prune_at
        for request in self.requests.values():
            deadline = min(deadline, request.deadline)
        for lookup in self.lookups.values():
            deadline = min(deadline, lookup.deadline)
        for item in self.published.values():
            deadline = min(deadline, item.next_at)
        return max(deadline, now)

    def memory(self) -> dict[str, Any]:
        """What this peer holds: contacts, records, and their tickets' bytes (canonical JSON)."""
        contacts = len(self.table)
        ticket_bytes = sum(len(rfc8785.dumps(c.ticket)) for c in self.table.by_peer.values())
        record_bytes = sum(len(rfc8785.dumps(r.envelope)) for r in self.store.records.values())
        return {
            "contacts": contacts,
            "records": len(self.store),
            "bytes": ticket_bytes + record_bytes,
        }


__all__ = [
    "CAP_DHT",
    "DOMAIN_PROVIDE",
    "DOMAIN_TICKET",
    "Contact",
    "Dht",
    "DhtAction",
    "DhtDone",
    "DhtDrop",
    "DhtLimits",
    "DhtSend",
    "Record",
    "RecordStore",
    "RoutingTable",
    "bucket_index",
    "distance",
    "make_provider_record",
    "node_id",
    "provider_key",
    "verify_contact",
    "verify_record",
]
