"""The DHT's state (peers/protocol/dht.py runs it): the routing table of k-buckets and the
records held for others. Mirror of static/swarm/protocol/dht.js; docs/protocol.md "DHT"."""

from __future__ import annotations

from .dht_records import (
    KIND_PROVIDER,
    STORED,
    Contact,
    DhtLimits,
    Record,
    bucket_index,
    distance,
)
from .errors import (
    REPLAY,
    STORE_FULL,
)
from .wire import (
    MAX_DHT_RECORDS,
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
