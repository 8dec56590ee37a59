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

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .dht_records import (
    CAP_DHT,
    CONTACT_MARGIN_MS,
    CONTACT_MAX_AGE_MS,
    DOMAIN_PROVIDE,
    KIND_NODE,
    KIND_PEER,
    KIND_PROVIDER,
    STORED,
    VIOLATIONS,
    Contact,
    DhtLimits,
    Record,
    bucket_index,
    distance,
    make_provider_record,
    node_id,
    provider_key,
    verify_contact,
    verify_record,
)
from .dht_table import RecordStore, RoutingTable
from .envelope import DOMAIN_TICKET, JsonObject
from .errors import (
    EXPIRED,
    NOT_CLOSE,
    NOT_FOUND,
    NOT_YET_VALID,
    PEER_MISMATCH,
    RATE_LIMITED,
    TIMEOUT,
    TTL_TOO_LONG,
    UNEXPECTED_FRAME,
    UNREACHABLE,
    WRONG_KEY,
    ProtocolError,
)
from .ratelimit import GcraBuckets
from .wire import (
    MAX_DHT_NODES,
    MAX_UINT32,
    DhtFindNode,
    DhtFindValue,
    DhtFrame,
    DhtNodes,
    DhtStore,
    DhtStored,
    DhtValue,
)

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
