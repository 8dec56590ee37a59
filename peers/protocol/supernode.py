"""Supernodes: signed capability adverts and the election every peer computes the same way.

Mirror of static/swarm/protocol/supernode.js; docs/protocol.md "Supernodes" is the
specification. A peer that may serve as a supernode signs an advert (domain
``swarm/supernode/v1``) with its uptime, spare upstream bandwidth, healthy connections, its
estimate of the swarm's size, whether it opted in, whether it is a super-peer and whether it
holds a seat, and floods it as gossip topic ``supernode``. :func:`elect` is a pure function of
the live adverts held and the day: peers holding the same adverts compute the same ranked set.

:class:`SupernodeView` is sans-IO: adverts, this peer's numbers and ``now`` go in; the elected
set, and the advert body this peer should sign and publish now, come out.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .encoding import PEER_ID_RE, peer_id_for_key
from .envelope import MAX_SAFE_INTEGER, JsonObject, check_envelope_size, sign, verify
from .errors import (
    ADVERT_TOO_LARGE,
    BAD_ADVERT,
    EXPIRED,
    NOT_YET_VALID,
    PEER_MISMATCH,
    RATE_LIMITED,
    REPLAY,
    TABLE_FULL,
    TTL_TOO_LONG,
    WRONG_COMMUNITY,
    ProtocolError,
)
from .ticket import CLOCK_SKEW_MS, COMMUNITY_RE

DOMAIN_SUPERNODE = "swarm/supernode/v1"
TOPIC_SUPERNODE = "supernode"
VERSION = 1
BODY_KEYS = frozenset(
    {
        "v",
        "peer_id",
        "community",
        "issued_at",
        "expires_at",
        "uptime",
        "up_kbps",
        "conns",
        "swarm",
        "opt_in",
        "superpeer",
        "elected",
    }
)
MAX_ADVERT_BYTES = 1024  # canonical JSON of the envelope; a real advert is 390-480 bytes
ADVERT_TTL_MS = 150_000  # 2.5 republish intervals: one lost advert does not unseat anyone
MAX_ADVERT_TTL_MS = 300_000
REPUBLISH_MS = 60_000
MIN_GAP_MS = 5_000  # adverts of one peer at least this far apart (else rate_limited)
WARMUP_MS = REPUBLISH_MS + CLOCK_SKEW_MS  # a new view has heard every candidate by then
MAX_UPTIME_S = 0xFFFFFFFF
MAX_UP_KBPS = 10_000_000
MAX_CONNS = 1024
MAX_SWARM = 10_000_000
MAX_ADVERTS = 256
# Eligibility of a browser (super-peers need neither).
MIN_UPTIME_S = 300
MIN_CONNS = 3
# Score: integer points, the same in both languages.
SUPERPEER_POINTS = 1000
UPTIME_CAP_S = 6 * 3600  # one point a minute, at most 360
UP_KBPS_CAP = 10_000  # one point per 50 kbit/s, at most 200
CONNS_CAP = 32  # ten points a connection, at most 320
# Seats: max(2, ceil(sqrt(n) / 4)), at most 16.
MIN_SEATS = 2
MAX_SEATS = 16
CANDIDATE_FACTOR = 2  # peers ranked below 2 x seats advertise; the others stay quiet
# A peer that starts advertising waits 20 ms per point below 1000 (20 s at most) and looks at
# its rank again: at a cold start the best speak first and the rest hear them and stay quiet.
STAGGER_MS_PER_POINT = 20
MAX_STAGGER_MS = 20_000
EPOCH_MS = 86_400_000  # the tie-break changes daily


@dataclass(frozen=True, slots=True, eq=False)
class Advert:
    """A checked advert (``envelope`` None for this peer's own draft)."""

    peer_id: str
    community: str
    issued_at: int
    expires_at: int
    uptime: int
    up_kbps: int
    conns: int
    swarm: int
    opt_in: bool
    superpeer: bool
    elected: bool
    envelope: JsonObject | None = None

    def body(self) -> JsonObject:
        """The signed body of this advert."""
        return {
            "v": VERSION,
            "peer_id": self.peer_id,
            "community": self.community,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "uptime": self.uptime,
            "up_kbps": self.up_kbps,
            "conns": self.conns,
            "swarm": self.swarm,
            "opt_in": self.opt_in,
            "superpeer": self.superpeer,
            "elected": self.elected,
        }


def _fail(message: str) -> ProtocolError:
    return ProtocolError(BAD_ADVERT, message)


def _int(body: JsonObject, key: str, low: int, high: int) -> int:
    value = body[key]
    if type(value) is not int or not low <= value <= high:
        raise _fail(f"{key} must be an integer in {low}..{high}")
    return value


def check_body(body: JsonObject) -> Advert:
    """The body's fields (``bad_advert``); times are checked by :func:`parse_advert`."""
    if set(body) != BODY_KEYS:
        raise _fail(f"fields must be {sorted(BODY_KEYS)}")
    if type(body["v"]) is not int or body["v"] != VERSION:
        raise _fail("v must be 1")
    peer_id = body["peer_id"]
    if not isinstance(peer_id, str) or not PEER_ID_RE.fullmatch(peer_id):
        raise _fail("peer_id is not a key-bound peer id")
    community = body["community"]
    if not isinstance(community, str) or not COMMUNITY_RE.fullmatch(community):
        raise _fail("community name is invalid")
    issued_at = _int(body, "issued_at", 0, MAX_SAFE_INTEGER - MAX_ADVERT_TTL_MS)
    expires_at = _int(body, "expires_at", issued_at + 1, MAX_SAFE_INTEGER)
    flags = {key: body[key] for key in ("opt_in", "superpeer", "elected")}
    for key, value in flags.items():
        if type(value) is not bool:
            raise _fail(f"{key} must be a boolean")
    if (flags["superpeer"] or flags["elected"]) and not flags["opt_in"]:
        raise _fail("a super-peer or a supernode is opted in")
    return Advert(
        peer_id=peer_id,
        community=community,
        issued_at=issued_at,
        expires_at=expires_at,
        uptime=_int(body, "uptime", 0, MAX_UPTIME_S),
        up_kbps=_int(body, "up_kbps", 0, MAX_UP_KBPS),
        conns=_int(body, "conns", 0, MAX_CONNS),
        swarm=_int(body, "swarm", 1, MAX_SWARM),
        opt_in=flags["opt_in"],
        superpeer=flags["superpeer"],
        elected=flags["elected"],
    )


def _check_size(envelope: object) -> JsonObject:
    return check_envelope_size(envelope, MAX_ADVERT_BYTES, ADVERT_TOO_LARGE, "an advert")


def sign_advert(identity: Ed25519PrivateKey, body: JsonObject) -> JsonObject:
    """Sign an advert body (as :meth:`SupernodeView.advert_due` gives it). Raises what a
    receiver would: ``bad_advert``, ``peer_mismatch``, ``ttl_too_long``."""
    advert = check_body(body)
    if advert.peer_id != peer_id_for_key(identity.public_key().public_bytes_raw()):
        raise ProtocolError(PEER_MISMATCH, "peer_id is not the signer's")
    if advert.expires_at - advert.issued_at > MAX_ADVERT_TTL_MS:
        raise ProtocolError(TTL_TOO_LONG, "an advert lives at most 300 s")
    return _check_size(sign(DOMAIN_SUPERNODE, body, identity))


def parse_advert(envelope: object, *, now: int, community: str) -> Advert:
    """Verify one advert at ``now`` for ``community``. In order: size (``bad_envelope``,
    ``advert_too_large``), envelope and signature (``bad_envelope``, ``bad_signature``), body
    (``bad_advert``), signer (``peer_mismatch``), ``wrong_community``, ``ttl_too_long``,
    ``not_yet_valid`` (more than 15 s ahead), ``expired``."""
    checked = _check_size(envelope)
    verified = verify(checked, DOMAIN_SUPERNODE)
    advert = check_body(verified.body)
    if advert.peer_id != verified.peer_id:
        raise ProtocolError(PEER_MISMATCH, "peer_id is not the signer's")
    if advert.community != community:
        raise ProtocolError(WRONG_COMMUNITY, "the advert is for another community")
    if advert.expires_at - advert.issued_at > MAX_ADVERT_TTL_MS:
        raise ProtocolError(TTL_TOO_LONG, "an advert lives at most 300 s")
    if advert.issued_at > now + CLOCK_SKEW_MS:
        raise ProtocolError(NOT_YET_VALID, "the advert is dated in the future")
    if now >= advert.expires_at:
        raise ProtocolError(EXPIRED, "the advert has expired")
    return replace(advert, envelope=checked)


# --- the rule ---


def score(advert: Advert) -> int:
    """Integer points: super-peer 1000, uptime (a point a minute, 6 h at most), spare
    bandwidth (a point per 50 kbit/s, 10 Mbit/s at most), connections (10 each, 32 at most)."""
    return (
        (SUPERPEER_POINTS if advert.superpeer else 0)
        + min(advert.uptime, UPTIME_CAP_S) // 60
        + min(advert.up_kbps, UP_KBPS_CAP) // 50
        + min(advert.conns, CONNS_CAP) * 10
    )


def effective(advert: Advert) -> int:
    """The score with the hysteresis bonus: a seat holder counts a quarter more."""
    points = score(advert)
    return points + points // 4 if advert.elected else points


def eligible(advert: Advert) -> bool:
    """Opted in and, unless a super-peer, up 5 minutes with 3 healthy connections."""
    if not advert.opt_in:
        return False
    return advert.superpeer or (advert.uptime >= MIN_UPTIME_S and advert.conns >= MIN_CONNS)


def stagger(points: int) -> int:
    """How long a new candidate with ``points`` waits before its first advert (ms)."""
    return min(MAX_STAGGER_MS, max(0, SUPERPEER_POINTS - points) * STAGGER_MS_PER_POINT)


def seats(n: int) -> int:
    """``max(2, ceil(sqrt(n) / 4))``, at most 16, in integers."""
    k = 1
    while 16 * k * k < n and k < MAX_SEATS:
        k += 1
    return max(MIN_SEATS, k)


@functools.lru_cache(maxsize=4096)
def tiebreak(peer_id: str, epoch: int) -> int:
    """FNV-1a (32 bits) of ``"<epoch>:<peer_id>"``: equal scores are ordered anew each day."""
    h = 0x811C9DC5
    for byte in f"{epoch}:{peer_id}".encode("ascii"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _key(advert: Advert, epoch: int) -> tuple[int, int, str]:
    return (-effective(advert), tiebreak(advert.peer_id, epoch), advert.peer_id)


def _seats_for(live: list[Advert]) -> int:
    sizes = sorted(a.swarm for a in live)
    return seats(max(len(live), sizes[(len(sizes) - 1) // 2]) if sizes else 0)


def ranking(adverts: Iterable[Advert], now: int) -> tuple[int, list[Advert]]:
    """The seats and the eligible live adverts, best first. The swarm's size is the lower
    median of the live adverts' estimates (one liar moves it by one place), at least their
    number."""
    live = [a for a in adverts if a.expires_at > now]
    epoch = now // EPOCH_MS
    order = sorted((a for a in live if eligible(a)), key=lambda a: _key(a, epoch))
    return _seats_for(live), order


def _place(advert: Advert, others: Iterable[Advert], now: int) -> tuple[int, int]:
    """The seats with ``advert`` among the live ``others``, and where it would rank."""
    live = [advert, *(a for a in others if a.expires_at > now)]
    epoch = now // EPOCH_MS
    mine = _key(advert, epoch)
    position = sum(1 for a in live[1:] if eligible(a) and _key(a, epoch) < mine)
    return _seats_for(live), position


def elect(adverts: Iterable[Advert], now: int) -> tuple[str, ...]:
    """The supernodes, best first: the first ``seats`` eligible live adverts."""
    k, order = ranking(adverts, now)
    return tuple(a.peer_id for a in order[:k])


# --- the view ---


@dataclass(frozen=True, slots=True)
class LocalState:
    """This peer's numbers, as it would advertise them."""

    uptime: int
    up_kbps: int
    conns: int
    swarm: int
    opt_in: bool = True
    superpeer: bool = False


class SupernodeView:
    """The adverts one peer holds, the election over them and when to publish its own."""

    def __init__(
        self,
        *,
        community: str,
        now: int,
        self_id: str | None = None,
        max_adverts: int = MAX_ADVERTS,
        ttl_ms: int = ADVERT_TTL_MS,
        republish_ms: int = REPUBLISH_MS,
        min_gap_ms: int = MIN_GAP_MS,
        warmup_ms: int = WARMUP_MS,
    ) -> None:
        self.community = community
        self.self_id = self_id
        self.max_adverts = max_adverts
        self.ttl_ms = ttl_ms
        self.republish_ms = republish_ms
        self.min_gap_ms = min_gap_ms
        self.warm_at = now + warmup_ms
        self.held: dict[str, Advert] = {}
        self.local: LocalState | None = None
        self.published: Advert | None = None
        self.speak_at: int | None = None  # a new candidate's first advert, once it has waited
        self.version = 0
        self._cache: tuple[int, int, int, tuple[str, ...]] | None = None

    # --- adverts in ---

    def accept(self, envelope: object, now: int) -> Advert:
        """Parse and take one advert (the node's check for topic ``supernode``: an advert
        this raises for is neither delivered nor relayed)."""
        advert = parse_advert(envelope, now=now, community=self.community)
        self.receive(advert, now)
        return advert

    def receive(self, advert: Advert, now: int) -> None:
        """Take a parsed advert: the newest per peer. Raises ``wrong_community``,
        ``expired``, ``replay`` (not newer than the one held), ``rate_limited`` (less than
        5 s newer), ``table_full`` (the table is full of adverts that rank higher)."""
        if advert.community != self.community:
            raise ProtocolError(WRONG_COMMUNITY, "the advert is for another community")
        if advert.expires_at <= now:
            raise ProtocolError(EXPIRED, "the advert has expired")
        known = self.held.get(advert.peer_id)
        if known is not None:
            if advert.issued_at <= known.issued_at:
                raise ProtocolError(REPLAY, "an advert as new or newer is held")
            if advert.issued_at < known.issued_at + self.min_gap_ms:
                raise ProtocolError(RATE_LIMITED, "adverts of one peer are 5 s apart at least")
        elif len(self.held) >= self.max_adverts:
            self.prune(now)
            if len(self.held) >= self.max_adverts:
                epoch = now // EPOCH_MS

                def rank(a: Advert) -> tuple[bool, tuple[int, int, str]]:
                    return (not eligible(a), _key(a, epoch))  # ineligible ones go first

                worst = max(self.held.values(), key=rank)
                if rank(advert) >= rank(worst):
                    raise ProtocolError(TABLE_FULL, "the table is full of better adverts")
                del self.held[worst.peer_id]
        self.held.pop(advert.peer_id, None)  # newest last, as a Map.set after delete in JS
        self.held[advert.peer_id] = advert
        self.version += 1

    def prune(self, now: int) -> None:
        """Forget expired adverts."""
        gone = [p for p, a in self.held.items() if a.expires_at <= now]
        for peer_id in gone:
            del self.held[peer_id]
        if gone:
            self.version += 1

    def adverts(self, now: int) -> list[JsonObject]:
        """The live signed adverts held (to hand to a peer that joins)."""
        return [a.envelope for a in self.held.values() if a.expires_at > now and a.envelope]

    # --- the election ---

    def elected(self, now: int) -> tuple[str, ...]:
        """The supernodes, best first (cached until an advert changes or expires)."""
        epoch = now // EPOCH_MS
        cache = self._cache
        if cache is not None and cache[0] == self.version and cache[1] == epoch and now < cache[2]:
            return cache[3]
        self.prune(now)
        live = [a.expires_at for a in self.held.values() if a.expires_at > now]
        result = elect(self.held.values(), now)
        self._cache = (self.version, epoch, min(live, default=MAX_SAFE_INTEGER), result)
        return result

    def is_supernode(self, peer_id: str, now: int) -> bool:
        return peer_id in self.elected(now)

    # --- this peer's advert ---

    def set_local(self, state: LocalState) -> None:
        """This peer's current numbers (call :meth:`advert_due` after)."""
        self.local = state

    def advert_due(self, now: int) -> JsonObject | None:
        """The body to sign (:func:`sign_advert`), flood and :meth:`receive` now, or None.

        A peer advertises while it is eligible and ranks below twice the seats (with its
        current numbers), or holds a seat: the first time after :func:`stagger`, then every
        60 s, and at once (5 s apart at most) when it takes or gives up a seat, becomes
        eligible, or its score falls by a quarter. A peer that stops being a candidate says
        so once; one merely outranked falls silent and its advert expires."""
        local, self_id = self.local, self.self_id
        if local is None or self_id is None:
            return None
        if self.published is not None and now < self.published.issued_at + self.min_gap_ms:
            return None
        draft = Advert(
            peer_id=self_id,
            community=self.community,
            issued_at=now,
            expires_at=now + self.ttl_ms,
            uptime=min(local.uptime, MAX_UPTIME_S),
            up_kbps=min(local.up_kbps, MAX_UP_KBPS),
            conns=min(local.conns, MAX_CONNS),
            swarm=max(1, min(local.swarm, MAX_SWARM)),
            opt_in=local.opt_in or local.superpeer,
            superpeer=local.superpeer,
            elected=False,
        )
        fit = eligible(draft)
        claim = fit and now >= self.warm_at and self_id in self.elected(now)
        draft = replace(draft, elected=claim)
        advertise = claim
        if fit and not claim:
            others = [a for a in self.held.values() if a.peer_id != self_id]
            k, position = _place(draft, others, now)
            advertise = position < CANDIDATE_FACTOR * k
        prev = self.published
        if prev is not None and prev.expires_at <= now:
            prev = None
        starting = advertise and not claim and (prev is None or not eligible(prev))
        if not starting:
            self.speak_at = None
        elif self.speak_at is None:
            self.speak_at = now + stagger(score(draft))
        if starting and self.speak_at is not None and now < self.speak_at:
            due = False
        elif advertise:
            due = (
                prev is None
                or now >= prev.issued_at + self.republish_ms
                or prev.elected != claim
                or not eligible(prev)
                or score(draft) * 4 < score(prev) * 3
            )
        else:
            due = prev is not None and (prev.elected or (eligible(prev) and not fit))
        if not due:
            return None
        self.published = draft
        self.speak_at = None
        return draft.body()

    def next_deadline(self, now: int) -> int:
        """When to call :meth:`advert_due` again if nothing else happens."""
        deadline = now + self.republish_ms
        for advert in self.held.values():
            if advert.expires_at > now:
                deadline = min(deadline, advert.expires_at)
        for at in (self.warm_at, self.speak_at):
            if at is not None and at > now:
                deadline = min(deadline, at)
        if self.published is not None:
            for at in (
                self.published.issued_at + self.min_gap_ms,
                self.published.issued_at + self.republish_ms,
            ):
                if at > now:
                    deadline = min(deadline, at)
        return deadline
