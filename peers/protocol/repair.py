"""Repair by peers: which under-target manifests this volunteer fetches when no backfill runs.

Mirror of static/swarm/protocol/repair.js; docs/replication.md "Repair by peers" is the
specification and tests/vectors/repair.json holds the shared decisions.

:class:`RepairCore` is sans-IO with an explicit clock (integer milliseconds): manifests,
replica adverts (``have`` frames and ``have`` gossip), volunteer announcements (gossip topic
``repair``), this peer's own budget and its fetches go in; :meth:`RepairCore.tick` says which
manifests to start fetching now and which fetches to drop. Every volunteer that holds the
same adverts computes the same ranking (rendezvous hashing of manifest and volunteer id), so
only the ``target - replicas`` best-ranked volunteers fetch a manifest; the set widens by as
many again for every ``claim_timeout_ms`` the manifest stays under target without a new
replica, so a chosen volunteer that died or failed is replaced. Nothing is decided while a
backfill worker is known to be running (a super-peer's announcement says when it last saw
one) nor during the warm-up after start, when this peer has not heard the others yet.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from .chunks import DIGEST_ID_RE
from .encoding import PEER_ID_RE
from .envelope import MAX_SAFE_INTEGER
from .errors import BAD_BODY, BAD_REPAIR, ProtocolError

REPAIR_TOPIC = "repair"
ANNOUNCE_KEYS = ("backfill_at", "slots", "spare")
MAX_SLOTS = 64
MAX_TARGET = 32
MAX_CHUNKS = 1 << 24

DEFAULT_TARGET = 3
ANNOUNCE_EVERY_MS = 60_000
VOLUNTEER_TTL_MS = 150_000  # 2.5 announcements: one lost gossip does not drop a volunteer
HOLDING_TTL_MS = 600_000  # as gossiped holdings (have_gossip)
WORKER_GRACE_MS = 180_000  # a backfill run seen this recently: the worker is running
CLAIM_TIMEOUT_MS = 120_000  # under target this long without a new replica: widen the set
WARMUP_MS = ANNOUNCE_EVERY_MS + 15_000  # hear the others before deciding anything
RETRY_MS = 120_000  # after a failed fetch this peer stays out of that manifest's ranking
MAX_ACTIVE = 2  # own repair fetches at a time
SWEEP_MS = 60_000


def _fail(message: str) -> ProtocolError:
    return ProtocolError(BAD_REPAIR, message)


def _int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(f"{name} must be an integer in {low}..{high}")
    return value


def _peer(value: object, name: str = "peer id") -> str:
    if not isinstance(value, str) or not PEER_ID_RE.fullmatch(value):
        raise _fail(f"{name} is not a key-bound peer id")
    return value


def _manifest_id(value: object) -> str:
    if not isinstance(value, str) or not DIGEST_ID_RE.fullmatch(value):
        raise _fail("manifest id is not a digest id")
    return value


@dataclass(frozen=True)
class Announcement:
    """The ``data`` of a ``repair`` gossip: ``{spare, slots, backfill_at}``."""

    spare: int  # bytes of keep budget free
    slots: int  # repair fetches it would start now (0: not a volunteer right now)
    backfill_at: (
        int  # when the publisher last saw a backfill run (ms), 0 = never / not a super-peer
    )

    def data(self) -> dict[str, object]:
        return {"spare": self.spare, "slots": self.slots, "backfill_at": self.backfill_at}


def parse_announcement(data: object) -> Announcement:
    """Check a ``repair`` gossip's ``data``: exactly ``{spare, slots, backfill_at}`` (bad_body)."""
    if not isinstance(data, dict) or sorted(data) != list(ANNOUNCE_KEYS):
        raise ProtocolError(BAD_BODY, "repair gossip is {spare, slots, backfill_at}")
    try:
        return Announcement(
            spare=_int(data["spare"], "spare", 0, MAX_SAFE_INTEGER),
            slots=_int(data["slots"], "slots", 0, MAX_SLOTS),
            backfill_at=_int(data["backfill_at"], "backfill_at", 0, MAX_SAFE_INTEGER),
        )
    except ProtocolError as exc:
        raise ProtocolError(BAD_BODY, exc.message) from None


def check_repair_gossip(data: object, now: int) -> None:
    """The node's content check for topic ``repair`` (``SwarmNode.gossip_checks``)."""
    parse_announcement(data)


def _fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


@functools.lru_cache(maxsize=65_536)
def rendezvous_score(manifest_id: str, peer_id: str) -> int:
    """The rank key of ``peer_id`` for ``manifest_id`` (lower ranks first; ties by peer id).

    FNV-1a 32 of ``manifest_id + "/" + peer_id`` through the MurmurHash3 finaliser: cheap, the
    same in both languages, synchronous in the browser. Load spreading, not a security
    property: peer ids are bound to keys, so choosing a good rank costs key grinding.
    """
    return _fmix32(_fnv1a32(f"{manifest_id}/{peer_id}"))


@dataclass(frozen=True)
class RepairConfig:
    default_target: int = DEFAULT_TARGET
    volunteer_ttl_ms: int = VOLUNTEER_TTL_MS
    holding_ttl_ms: int = HOLDING_TTL_MS
    worker_grace_ms: int = WORKER_GRACE_MS
    claim_timeout_ms: int = CLAIM_TIMEOUT_MS
    warmup_ms: int = WARMUP_MS
    retry_ms: int = RETRY_MS

    def __post_init__(self) -> None:
        _int(self.default_target, "default_target", 0, MAX_TARGET)
        for name in (
            "volunteer_ttl_ms",
            "holding_ttl_ms",
            "worker_grace_ms",
            "claim_timeout_ms",
            "retry_ms",
        ):
            _int(getattr(self, name), name, 1, MAX_SAFE_INTEGER)
        _int(self.warmup_ms, "warmup_ms", 0, MAX_SAFE_INTEGER)


@dataclass(frozen=True)
class RepairDecision:
    """What :meth:`RepairCore.tick` decided: start these fetches, drop those; worker state."""

    fetch: tuple[str, ...]
    cancel: tuple[str, ...]
    worker_live: bool


@dataclass
class _Manifest:
    chunk_count: int
    size: int
    target: int | None


@dataclass
class _Holding:
    chunks: int
    keep: bool
    expires_at: int


@dataclass
class _Volunteer:
    spare: int
    slots: int
    expires_at: int


@dataclass
class _Counts:
    held: dict[str, _Holding]
    complete: set[str]
    replicas: int
    sources: int
    target: int


@dataclass
class _Episode:
    replicas: int
    since: int


@dataclass
class ManifestView:
    """One manifest as this core sees it now (for the UI, tests and the simulation)."""

    replicas: int
    target: int
    sources: int
    candidates: tuple[str, ...] = field(default=())
    chosen: tuple[str, ...] = field(default=())


class RepairCore:
    """A volunteer's repair decisions (sans-IO; see the module docstring)."""

    def __init__(self, self_id: str, now: int, config: RepairConfig | None = None) -> None:
        self.self_id = _peer(self_id, "self id")
        self.config = config or RepairConfig()
        self.started_at = _int(now, "now", 0, MAX_SAFE_INTEGER)
        self.opted_in = False
        self.spare = 0
        self.max_active = 0
        self.manifests: dict[str, _Manifest] = {}
        self.holdings: dict[str, dict[str, _Holding]] = {}
        self.volunteers: dict[str, _Volunteer] = {}
        self.worker_seen_at: int | None = None
        self.active: dict[str, int] = {}  # own fetches: manifest -> started at
        self.retry_at: dict[str, int] = {}
        self.episodes: dict[str, _Episode] = {}
        self.next_sweep = 0

    # --- inputs ---

    def set_self(self, *, opted_in: bool, spare: int, max_active: int = MAX_ACTIVE) -> None:
        """This peer's opt-in, free keep budget in bytes (own fetches not yet subtracted), slots."""
        if not isinstance(opted_in, bool):
            raise _fail("opted_in must be a boolean")
        self.spare = _int(spare, "spare", 0, MAX_SAFE_INTEGER)
        self.max_active = _int(max_active, "max_active", 0, MAX_SLOTS)
        self.opted_in = opted_in

    def manifest(
        self, manifest_id: str, chunk_count: int, size: int, target: int | None = None
    ) -> None:
        """A manifest this peer knows (verified); the same id again updates its facts."""
        mid = _manifest_id(manifest_id)
        _int(chunk_count, "chunk_count", 1, MAX_CHUNKS)
        _int(size, "size", 0, MAX_SAFE_INTEGER)
        if target is not None:
            _int(target, "target", 0, MAX_TARGET)
        self.manifests[mid] = _Manifest(chunk_count, size, target)

    def forget(self, manifest_id: str) -> None:
        mid = _manifest_id(manifest_id)
        self.manifests.pop(mid, None)
        self.holdings.pop(mid, None)
        self.retry_at.pop(mid, None)
        self.episodes.pop(mid, None)

    def advert(self, holder: str, manifest_id: str, chunks: int, keep: bool, now: int) -> None:
        """A replica advert (``have`` entry) of ``holder``, heard at ``now``; 0 chunks withdraws."""
        _peer(holder, "holder")
        mid = _manifest_id(manifest_id)
        _int(chunks, "chunks", 0, MAX_CHUNKS)
        if not isinstance(keep, bool):
            raise _fail("keep must be a boolean")
        _int(now, "now", 0, MAX_SAFE_INTEGER)
        held = self.holdings.setdefault(mid, {})
        if chunks == 0:
            held.pop(holder, None)
            if not held:
                del self.holdings[mid]
            return
        held[holder] = _Holding(chunks, keep, now + self.config.holding_ttl_ms)

    def holder_gone(self, holder: str) -> None:
        """``holder`` left (its connection closed for good, signaling said so)."""
        _peer(holder, "holder")
        for mid in [m for m, held in self.holdings.items() if holder in held]:
            del self.holdings[mid][holder]
            if not self.holdings[mid]:
                del self.holdings[mid]
        self.volunteers.pop(holder, None)

    def announcement(
        self, origin: str, data: object, issued_at: int, now: int, *, superpeer: bool = False
    ) -> Announcement:
        """A ``repair`` gossip of ``origin``; a super-peer's ``backfill_at`` is worker evidence."""
        _peer(origin, "origin")
        ann = parse_announcement(data)
        at = min(
            _int(issued_at, "issued_at", 0, MAX_SAFE_INTEGER), _int(now, "now", 0, MAX_SAFE_INTEGER)
        )
        if origin != self.self_id:
            self.volunteers[origin] = _Volunteer(
                ann.spare, ann.slots, at + self.config.volunteer_ttl_ms
            )
        if superpeer and ann.backfill_at > 0:
            self.worker_seen(min(ann.backfill_at, now))
        return ann

    def worker_seen(self, at: int) -> None:
        """Evidence that a backfill worker ran at ``at`` (a run row, a fetch job, a statement)."""
        _int(at, "at", 0, MAX_SAFE_INTEGER)
        if self.worker_seen_at is None or at > self.worker_seen_at:
            self.worker_seen_at = at

    def fetch_ended(self, manifest_id: str, ok: bool, now: int) -> None:
        """An own repair fetch ended; a failure keeps this peer out of that ranking a while."""
        mid = _manifest_id(manifest_id)
        self.active.pop(mid, None)
        if not ok:
            self.retry_at[mid] = now + self.config.retry_ms

    # --- queries ---

    def worker_live(self, now: int) -> bool:
        return (
            self.worker_seen_at is not None
            and now - self.worker_seen_at < self.config.worker_grace_ms
        )

    def own_announcement(self, backfill_at: int = 0) -> Announcement:
        """What this peer publishes as ``repair`` gossip (every ``ANNOUNCE_EVERY_MS``)."""
        slots = max(0, self.max_active - len(self.active)) if self.opted_in else 0
        return Announcement(
            spare=self._own_spare() if self.opted_in else 0, slots=slots, backfill_at=backfill_at
        )

    def _own_spare(self) -> int:
        reserved = sum(self.manifests[m].size for m in self.active if m in self.manifests)
        return max(0, self.spare - reserved)

    def _target(self, info: _Manifest) -> int:
        return self.config.default_target if info.target is None else info.target

    def view(self, manifest_id: str, now: int) -> ManifestView:
        """Replicas, target, complete sources, the ranked candidates and the chosen ones now."""
        mid = _manifest_id(manifest_id)
        info = self.manifests.get(mid)
        if info is None:
            raise _fail("unknown manifest")
        counts = self._counts(mid, info, now)
        candidates = self._candidates(mid, info, counts, now)
        chosen = candidates[: self._window(mid, counts.replicas, counts.target, now)]
        return ManifestView(
            counts.replicas, counts.target, counts.sources, tuple(candidates), tuple(chosen)
        )

    def _counts(self, mid: str, info: _Manifest, now: int) -> _Counts:
        held = self.holdings.get(mid, {})
        complete: set[str] = set()
        replicas = 0
        for peer_id, h in held.items():
            if h.expires_at > now and h.chunks >= info.chunk_count:
                complete.add(peer_id)
                replicas += h.keep
        sources = len(complete) - (self.self_id in complete)
        return _Counts(held, complete, replicas, sources, self._target(info))

    def _may_fetch(
        self, peer_id: str, vol: _Volunteer, info: _Manifest, counts: _Counts, now: int
    ) -> bool:
        if vol.expires_at <= now or peer_id in counts.complete:
            return False
        h = counts.held.get(peer_id)
        fetching = (
            h is not None and h.expires_at > now
        )  # a partial copy: it is at it, keep its rank
        return fetching or (vol.slots > 0 and vol.spare >= info.size)

    def _candidates(self, mid: str, info: _Manifest, counts: _Counts, now: int) -> list[str]:
        """Volunteers that may fetch ``mid``, best ranked first."""
        out = [p for p, v in self.volunteers.items() if self._may_fetch(p, v, info, counts, now)]
        if self._self_eligible(mid, info, now) and self.self_id not in counts.complete:
            out.append(self.self_id)
        return sorted(out, key=lambda p: (rendezvous_score(mid, p), p))

    def _window(self, mid: str, replicas: int, target: int, now: int) -> int:
        episode = self.episodes.get(mid)
        rounds = 0 if episode is None else (now - episode.since) // self.config.claim_timeout_ms
        return max(0, target - replicas) * (1 + rounds)

    def _self_eligible(self, mid: str, info: _Manifest, now: int) -> bool:
        if not self.opted_in:
            return False
        if mid in self.active:
            return True
        if self.retry_at.get(mid, -1) > now:
            return False
        return len(self.active) < self.max_active and self._own_spare() >= info.size

    # --- the decision ---

    def tick(self, now: int) -> RepairDecision:
        """Expire what is stale, then decide: fetches to start now and own fetches to drop."""
        _int(now, "now", 0, MAX_SAFE_INTEGER)
        self._expire(now)
        live = self.worker_live(now)
        if live or now - self.started_at < self.config.warmup_ms:
            self.episodes.clear()
            return RepairDecision((), (), live)
        cancel: list[str] = []
        wanted: list[tuple[int, int, str]] = []
        for mid, info in self.manifests.items():
            counts = self._counts(mid, info, now)
            if counts.replicas >= counts.target:
                self.episodes.pop(mid, None)
                if mid in self.active:
                    cancel.append(mid)
                continue
            if counts.sources == 0:  # nothing complete to copy from (lost, or only partial copies)
                self.episodes.pop(mid, None)
                continue
            episode = self.episodes.get(mid)
            if episode is None or episode.replicas != counts.replicas:
                self.episodes[mid] = _Episode(counts.replicas, now)
            if mid in self.active or self.self_id in counts.complete:
                continue
            if not self._self_eligible(mid, info, now):
                continue
            # Self is chosen when fewer than `window` candidates rank before it.
            window = self._window(mid, counts.replicas, counts.target, now)
            mine = (rendezvous_score(mid, self.self_id), self.self_id)
            before = 0
            for peer_id, vol in self.volunteers.items():
                if before >= window:
                    break
                if self._may_fetch(peer_id, vol, info, counts, now):
                    before += (rendezvous_score(mid, peer_id), peer_id) < mine
            if before < window:
                wanted.append((counts.replicas, mine[0], mid))
        cancel.sort()
        for mid in cancel:
            del self.active[mid]
        fetch: list[str] = []
        for _replicas, _score, mid in sorted(wanted):  # the most urgent first
            info = self.manifests[mid]
            if len(self.active) >= self.max_active or self._own_spare() < info.size:
                continue
            self.active[mid] = now
            fetch.append(mid)
        return RepairDecision(tuple(fetch), tuple(cancel), False)

    def _expire(self, now: int) -> None:
        # Every read checks expires_at; this only frees the memory, once a minute.
        if now < self.next_sweep:
            return
        self.next_sweep = now + SWEEP_MS
        for mid in list(self.holdings):
            held = self.holdings[mid]
            for holder in [h for h, x in held.items() if x.expires_at <= now]:
                del held[holder]
            if not held:
                del self.holdings[mid]
        for peer_id in [p for p, v in self.volunteers.items() if v.expires_at <= now]:
            del self.volunteers[peer_id]
        for mid in [m for m, t in self.retry_at.items() if t <= now]:
            del self.retry_at[mid]
