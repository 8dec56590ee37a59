"""The new device's side of a recovery: collect released shares and rebuild the seed.

Mirror of static/swarm/protocol/recovery.js (docs/protocol.md "Recovery"). Sans-IO: the
signed request, releases and refusals from guardians, and ``now`` go in; progress (have,
need, guardians named for bad shares) and, once enough shares combine, the seed come out.
The share format is not known here: the caller passes ``combine`` (k share texts -> the
32-byte seed, raising :class:`ProtocolError` when they do not combine) and optionally
``check_share`` (one share alone: checksum, format), e.g. the SLIP-39 module's functions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .encoding import peer_id_for_key
from .envelope import JsonObject
from .errors import (
    BAD_KEY,
    BAD_SHARE,
    COMBINE_FAILED,
    EXPIRED,
    SEED_MISMATCH,
    SET_MISMATCH,
    UNEXPECTED_KIND,
    WRONG_RECIPIENT,
    WRONG_REQUEST,
    ProtocolError,
)
from .keywrap import x25519_public
from .shard import (
    DEFAULT_REQUEST_LIFETIME_MS,
    RecoverRequest,
    Refuse,
    Release,
    make_recover_request,
    open_release,
    parse_kind,
    parse_message,
    verification_code,
)

_T = TypeVar("_T")
_A = TypeVar("_A")
CombineShares = Callable[[Sequence[str]], bytes]
CheckShare = Callable[[str], None]
RecoveryState = Literal["collecting", "recovered", "failed"]
OutcomeKind = Literal["share", "duplicate", "refused", "bad", "dropped"]
SEED_BYTES = 32
# New subsets of k shares tried per release received (when some share is bad).
MAX_COMBINE_TRIES = 64


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one message did: a ``share`` counted, a ``duplicate``, a guardian ``refused``, a
    guardian named ``bad`` (its share failed ``code``), or ``dropped`` (not for this
    request, or not verifiable: nobody is named, the sender may only have relayed it)."""

    kind: OutcomeKind
    guardian: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """For ``#recovery[data-state][data-have][data-need]``: the set closest to complete."""

    state: RecoveryState
    have: int
    need: int | None  # None until a first share arrives (k travels with the shares)
    set: str | None
    bad: dict[str, str]  # guardian -> error code of the share it sent
    refused: tuple[str, ...]
    reason: str | None  # failed: why; collecting with have >= need: why they do not combine


@dataclass(slots=True)
class _Got:
    guardian: str
    index: int
    text: str


@dataclass(slots=True)
class _Set:
    k: int
    n: int
    shares: dict[int, _Got] = field(default_factory=dict)
    tried: set[frozenset[int]] = field(default_factory=set)
    blocked: str | None = None
    last_at: int = 0


class RecoveryCollector:
    """Releases for one recovery request, grouped by share set, until one set combines."""

    def __init__(
        self,
        request_envelope: JsonObject,
        x25519_key: X25519PrivateKey,
        *,
        now: int,
        combine: CombineShares,
        check_share: CheckShare | None = None,
    ) -> None:
        self.request = parse_kind(request_envelope, RecoverRequest, now=now)
        if x25519_public(x25519_key) != self.request.x25519:
            raise ProtocolError(BAD_KEY, "the X25519 key is not the request's")
        self.x25519_key = x25519_key
        self.combine = combine
        self.check_share = check_share
        self.state: RecoveryState = "collecting"
        self.reason: str | None = None
        self.seed: bytes | None = None
        self._code: str | None = None
        self._sets: dict[str, _Set] = {}
        self._bad: dict[str, str] = {}
        self._refused: list[str] = []
        self._received: list[JsonObject] = []

    @classmethod
    def start(
        cls,
        temp_identity: Ed25519PrivateKey,
        for_peer: str,
        *,
        now: int,
        combine: CombineShares,
        check_share: CheckShare | None = None,
        lifetime_ms: int = DEFAULT_REQUEST_LIFETIME_MS,
    ) -> RecoveryCollector:
        """Sign a request for ``for_peer`` as ``temp_identity`` with a fresh X25519 key."""
        x25519_key = X25519PrivateKey.generate()
        envelope = make_recover_request(
            temp_identity,
            x25519_public(x25519_key),
            for_peer=for_peer,
            issued_at=now,
            expires_at=now + lifetime_ms,
        )
        return cls(envelope, x25519_key, now=now, combine=combine, check_share=check_share)

    @property
    def code(self) -> str:
        """The verification code to read out to each guardian (computed once, ~0.2 s)."""
        if self._code is None:
            self._code = verification_code(self.request.id)
        return self._code

    def received(self) -> list[JsonObject]:
        """The releases and refusals taken so far (to store; feed them again to restore)."""
        return list(self._received)

    def receive(self, envelope: object, *, now: int) -> Outcome:
        """One ``release`` or ``refuse`` from a guardian."""
        if self.state != "collecting":
            return Outcome("dropped", code=self.state)
        try:
            message = parse_message(envelope, now=now)
            if not isinstance(message, Release | Refuse):
                raise ProtocolError(UNEXPECTED_KIND, "only releases and refusals answer requests")
            if message.temp != self.request.temp:
                raise ProtocolError(WRONG_RECIPIENT, "this answer is for another identity")
            if message.request != self.request.id or message.for_peer != self.request.for_peer:
                raise ProtocolError(WRONG_REQUEST, "this answer is for another request")
        except ProtocolError as error:
            return Outcome("dropped", code=error.code)
        guardian = message.guardian
        if guardian in self._bad:
            return Outcome("dropped", guardian, self._bad[guardian])
        if isinstance(message, Refuse):
            if guardian not in self._refused:
                self._refused.append(guardian)
                self._received.append(message.envelope)
            return Outcome("refused", guardian)
        try:
            outcome = self._take(message, now)
        except ProtocolError as error:
            self._bad[guardian] = error.code
            return Outcome("bad", guardian, error.code)
        if outcome.kind == "share":
            self._received.append(message.envelope)
            self._try(self._sets[message.set])
        return outcome

    def tick(self, now: int) -> None:
        """A request past its expiry gets no more answers: the recovery failed."""
        if self.state == "collecting" and now >= self.request.expires_at:
            self.state, self.reason = "failed", EXPIRED

    def progress(self) -> Progress:
        best_id, best = None, None
        for set_id, group in self._sets.items():
            rank = (len(group.shares) / group.k, group.last_at)
            if best is None or rank > (len(best.shares) / best.k, best.last_at):
                best_id, best = set_id, group
        reason = self.reason
        if self.state == "collecting" and best is not None:
            reason = best.blocked
        return Progress(
            state=self.state,
            have=0 if best is None else len(best.shares),
            need=None if best is None else best.k,
            set=best_id,
            bad=dict(self._bad),
            refused=tuple(self._refused),
            reason=reason,
        )

    def _take(self, release: Release, now: int) -> Outcome:
        text = open_release(release, private_key=self.x25519_key)
        if self.check_share is not None:
            _checked(self.check_share, text, BAD_SHARE)
        group = self._sets.setdefault(release.set, _Set(k=release.k, n=release.n))
        if (group.k, group.n) != (release.k, release.n):
            raise ProtocolError(SET_MISMATCH, "k and n differ from the set's other shares")
        held = group.shares.get(release.index)
        if held is not None:
            if held.text == text:
                return Outcome("duplicate", release.guardian)
            raise ProtocolError(SET_MISMATCH, "another share was released at this index")
        group.shares[release.index] = _Got(release.guardian, release.index, text)
        group.last_at = now
        return Outcome("share", release.guardian)

    def _try(self, group: _Set) -> None:
        if len(group.shares) < group.k:
            return
        shares = list(group.shares.values())
        tries = 0
        for combo in itertools.combinations(shares, group.k):
            key = frozenset(g.index for g in combo)
            if key in group.tried:
                continue
            if tries == MAX_COMBINE_TRIES:
                return
            tries += 1
            group.tried.add(key)
            try:
                self._combine(combo)
            except ProtocolError as error:
                group.blocked = error.code
                continue
            self._name_the_rest(combo, [g for g in shares if g not in combo])
            return

    def _combine(self, combo: Sequence[_Got]) -> bytes:
        seed = _checked(self.combine, [g.text for g in combo], COMBINE_FAILED)
        if (
            not isinstance(seed, bytes)
            or len(seed) != SEED_BYTES
            or _peer_for_seed(seed) != self.request.for_peer
        ):
            raise ProtocolError(SEED_MISMATCH, "the shares give another identity")
        self.seed = seed
        self.state, self.reason = "recovered", None
        return seed

    def _name_the_rest(self, winners: Sequence[_Got], others: list[_Got]) -> None:
        # A share outside the winning subset is bad if it cannot stand in for a winner.
        seed = self.seed
        for other in others:
            try:
                texts = [g.text for g in winners[:-1]] + [other.text]
                result = _checked(self.combine, texts, COMBINE_FAILED)
            except ProtocolError as error:
                self._bad[other.guardian] = error.code
                continue
            if result != seed:
                self._bad[other.guardian] = SEED_MISMATCH


def _checked(function: Callable[[_A], _T], arg: _A, code: str) -> _T:
    """Call an injected share function; anything but a ProtocolError becomes ``code``."""
    try:
        return function(arg)
    except ProtocolError:
        raise
    except Exception as exc:  # a share library's own errors: never a crash here
        raise ProtocolError(code, f"{type(exc).__name__}: {exc}") from exc


def _peer_for_seed(seed: bytes) -> str:
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return peer_id_for_key(public)
