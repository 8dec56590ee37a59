"""The peers a node knows about, mirror of static/swarm/protocol/peerbook.js.

Verified tickets (newest per peer wins), seeds, and the success/failure history that ranks
them for dialing. Pure: ``now`` is always passed in.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .envelope import JsonObject
from .errand import Errand
from .ticket import Ticket

DEFAULT_CAPACITY = 256
DAY_MS = 86_400_000
RECENCY_HALF_LIFE_MS = DAY_MS
BACKOFF_BASE_MS = 5_000
BACKOFF_MAX_MS = 10 * 60_000
# A cached peer with no success for this long is forgotten.
FORGET_AFTER_MS = 14 * DAY_MS

HINT_BONUS = 3  # above any live, proven peer: it is named as holding what is wanted
SOURCE_RANK = {"hello": 4, "pex": 3, "beacon": 3, "capsule": 2, "seed": 2, "cache": 1}

AddResult = Literal["added", "stale", "self"]


@dataclass(slots=True)
class PeerEntry:
    """What the book holds about one peer (the fields of the browser's cache records)."""

    peer_id: str
    source: str
    first_seen: int
    last_seen: int
    ticket: JsonObject | None = None
    issued_at: int = 0
    expires_at: int = 0
    nonce: str | None = None
    signal: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    seed: bool = False
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_success: int = 0
    last_failure: int = 0
    next_dial_at: int = 0
    # issued_at of the ticket held when signaling said the peer is not there: not dialed
    # (nor passed on in PEX) again until a newer ticket of it arrives or it connects to us.
    gone_at_issued: int | None = None
    hint: bool = False  # named as a holder (a share link, a replication job): dialed first
    errand: Errand | None = None  # what a hint is dialed for: a download of its manifest


class PeerBook:
    """Known peers, ranked for dialing; at most ``capacity`` entries (seeds always kept)."""

    def __init__(
        self,
        *,
        self_id: str,
        capacity: int = DEFAULT_CAPACITY,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.self_id = self_id
        self.capacity = capacity
        self.random = random
        self.entries: dict[str, PeerEntry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def size(self) -> int:
        return len(self.entries)

    def get(self, peer_id: str) -> PeerEntry | None:
        return self.entries.get(peer_id)

    def has(self, peer_id: str) -> bool:
        return peer_id in self.entries

    def has_ticket(self, envelope: object) -> bool:
        """True when ``envelope`` is exactly the ticket already stored (no need to verify it)."""
        if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), dict):
            return False
        body = envelope["body"]
        peer_id = body.get("peer_id")
        entry = self.entries.get(peer_id) if isinstance(peer_id, str) else None
        return bool(
            entry is not None
            and entry.ticket is not None
            and entry.ticket.get("sig") == envelope.get("sig")
            and entry.ticket.get("pk") == envelope.get("pk")
            and entry.nonce == body.get("nonce")
            and type(body.get("issued_at")) is int
            and entry.issued_at == body["issued_at"]
        )

    def add_ticket(self, verified: Ticket, source: str, now: int) -> AddResult:
        """Merge a verified ticket; the newest ``issued_at`` wins."""
        if verified.peer_id == self.self_id:
            return "self"
        entry = self.entries.get(verified.peer_id)
        if entry is None:
            entry = PeerEntry(
                peer_id=verified.peer_id, source=source, first_seen=now, last_seen=now
            )
            self.entries[verified.peer_id] = entry
        elif entry.issued_at >= verified.issued_at:
            entry.last_seen = max(entry.last_seen, now)
            return "stale"
        entry.ticket = verified.envelope
        entry.issued_at = verified.issued_at
        entry.expires_at = verified.expires_at
        entry.nonce = verified.nonce
        entry.signal = verified.signal
        entry.caps = verified.caps
        entry.last_seen = now
        if SOURCE_RANK.get(source, 0) >= SOURCE_RANK.get(entry.source, 0):
            entry.source = source
        self._evict(now)
        return "added"

    def add_seed(self, peer_id: str, now: int) -> None:
        """A configured seed: dialed by id, its ticket comes with its hello."""
        if peer_id == self.self_id:
            return
        entry = self.entries.get(peer_id)
        if entry is None:
            entry = PeerEntry(peer_id=peer_id, source="seed", first_seen=now, last_seen=now)
            self.entries[peer_id] = entry
        entry.seed = True

    def add_hint(self, peer_id: str, now: int, errand: Errand | None = None) -> None:
        """A peer named as a holder of something wanted (a share link's ``h=``, the sources of
        a replication job): dialed first, by id like a seed, but dropped like anyone else
        when signaling says it is gone."""
        if peer_id == self.self_id:
            return
        entry = self.entries.get(peer_id)
        if entry is None:
            entry = PeerEntry(peer_id=peer_id, source="hint", first_seen=now, last_seen=now)
            self.entries[peer_id] = entry
        entry.hint = True
        if errand is not None:
            entry.errand = errand

    def remove(self, peer_id: str) -> None:
        self.entries.pop(peer_id, None)

    def record_success(self, peer_id: str, now: int) -> None:
        entry = self.entries.get(peer_id)
        if entry is None:
            return
        entry.successes += 1
        entry.consecutive_failures = 0
        entry.last_success = now
        entry.last_seen = now
        entry.next_dial_at = 0
        entry.gone_at_issued = None

    def record_failure(self, peer_id: str, now: int, *, backoff_ms: int | None = None) -> None:
        """A failed dial or a dropped peer: exponential backoff before it is dialed again."""
        entry = self.entries.get(peer_id)
        if entry is None:
            return
        entry.failures += 1
        entry.consecutive_failures += 1
        entry.last_failure = now
        exp = BACKOFF_BASE_MS * 2 ** min(entry.consecutive_failures - 1, 10)
        entry.next_dial_at = now + (
            backoff_ms if backoff_ms is not None else min(BACKOFF_MAX_MS, exp)
        )

    def record_gone(self, peer_id: str, now: int) -> None:
        """Signaling answered that the peer is not connected: its current ticket is stale."""
        entry = self.entries.get(peer_id)
        if entry is not None and not entry.seed:
            entry.gone_at_issued = entry.issued_at

    def stale_since(self, peer_id: str, issued_at: int) -> bool:
        """True when a ticket of ``peer_id`` issued at ``issued_at`` is no newer than the one
        signaling said was not there."""
        entry = self.entries.get(peer_id)
        return entry is not None and _gone_for(entry, issued_at)

    @staticmethod
    def is_gone(entry: PeerEntry) -> bool:
        return _gone_for(entry, entry.issued_at)

    def defer_dial(self, peer_id: str, until: int) -> None:
        """Hold off dialing without counting a failure (mesh full, duplicate, paused...)."""
        entry = self.entries.get(peer_id)
        if entry is not None:
            entry.next_dial_at = max(entry.next_dial_at, until)

    @staticmethod
    def is_live(entry: PeerEntry, now: int) -> bool:
        return entry.ticket is not None and now < entry.expires_at

    def score(self, entry: PeerEntry, now: int) -> float:
        reliability = (entry.successes + 1) / (entry.successes + entry.failures + 2)
        last = max(entry.last_success, entry.last_seen)
        recency: float = 2 ** (-max(0, now - last) / RECENCY_HALF_LIFE_MS)
        live = 1 if self.is_live(entry, now) else 0
        hint = HINT_BONUS if entry.hint else 0
        return reliability * (0.5 + recency) + live + (0.5 if entry.seed else 0) + hint

    def dial_candidates(
        self,
        now: int,
        *,
        exclude: Collection[str] = (),
        limit: int | None = None,
        allow: Collection[str] | None = None,
    ) -> list[PeerEntry]:
        """Peers worth dialing now, best first."""
        ranked: list[tuple[float, PeerEntry]] = []
        for entry in self.entries.values():
            if entry.peer_id in exclude or entry.next_dial_at > now or self.is_gone(entry):
                continue
            if allow is not None and entry.peer_id not in allow:
                continue
            # A stale ticket is still worth a try for a peer that worked before.
            if (
                not self.is_live(entry, now)
                and not entry.seed
                and not entry.hint
                and entry.successes == 0
            ):
                continue
            ranked.append((self.score(entry, now) + self.random() * 0.25, entry))
        ranked.sort(key=lambda pair: -pair[0])
        return [entry for _, entry in ranked[:limit]]

    def sample_tickets(
        self, now: int, *, exclude: Collection[str] = (), limit: int = 16
    ) -> list[JsonObject]:
        """Live tickets for peer exchange: a random sample, so knowledge spreads evenly."""
        live = [
            e.ticket
            for e in self.entries.values()
            if e.ticket is not None
            and self.is_live(e, now)
            and e.peer_id not in exclude
            and not self.is_gone(e)
        ]
        # Fisher-Yates with the injected source, as the browser does (same draws, same order).
        for i in range(len(live) - 1, 0, -1):
            j = int(self.random() * (i + 1))
            live[i], live[j] = live[j], live[i]
        return live[:limit]

    def live_count(self, now: int, exclude: Collection[str] = ()) -> int:
        return sum(
            1 for e in self.entries.values() if self.is_live(e, now) and e.peer_id not in exclude
        )

    def prune(self, now: int) -> None:
        """Drop what is no longer useful and keep at most ``capacity`` entries."""
        for peer_id, entry in list(self.entries.items()):
            if entry.seed or self.is_live(entry, now):
                continue
            if entry.successes == 0 or now - entry.last_success > FORGET_AFTER_MS:
                del self.entries[peer_id]
        self._evict(now)

    def _evict(self, now: int) -> None:
        if len(self.entries) <= self.capacity:
            return
        ranked = sorted(
            (e for e in self.entries.values() if not e.seed), key=lambda e: self.score(e, now)
        )
        for entry in ranked[: len(self.entries) - self.capacity]:
            del self.entries[entry.peer_id]

    def to_records(self) -> list[dict[str, Any]]:
        """Records for a persistent cache: peers that answered at least once."""
        return [{**asdict(e), "errand": None} for e in self.entries.values() if e.successes > 0]

    def load_records(self, records: Iterable[Mapping[str, Any]], now: int) -> None:
        """Restore cached records (``to_records``); malformed fields are left at defaults."""
        for record in records:
            peer_id = record.get("peer_id") if isinstance(record, Mapping) else None
            if not isinstance(peer_id, str) or peer_id == self.self_id or peer_id in self.entries:
                continue
            entry = PeerEntry(peer_id=peer_id, source="cache", first_seen=now, last_seen=now)
            for name in _INT_FIELDS:
                if type(record.get(name)) is int:
                    setattr(entry, name, record[name])
            entry.seed = record.get("seed") is True
            if isinstance(record.get("ticket"), dict) and isinstance(record.get("nonce"), str):
                entry.ticket = record["ticket"]
                entry.nonce = record["nonce"]
                entry.signal = _strings(record.get("signal"))
                entry.caps = _strings(record.get("caps"))
            else:
                entry.issued_at = entry.expires_at = 0
            self.entries[peer_id] = entry
        self._evict(now)


_INT_FIELDS = (
    "first_seen",
    "last_seen",
    "issued_at",
    "expires_at",
    "successes",
    "failures",
    "consecutive_failures",
    "last_success",
    "last_failure",
)


def _gone_for(entry: PeerEntry, issued_at: int) -> bool:
    """Signaling said ``entry``'s peer was not there while it held a ticket at least as new."""
    return entry.gone_at_issued is not None and issued_at <= entry.gone_at_issued


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(v for v in value if isinstance(v, str))
