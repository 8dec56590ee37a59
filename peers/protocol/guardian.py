"""What a guardian holds: shares of other peers' seeds and the recovery requests for them.

Mirror of static/swarm/protocol/guardian.js (docs/protocol.md "Guardian"). Sans-IO: signed
messages and ``now`` go in; receipts, releases and refusals (signed envelopes) come out,
and :meth:`GuardianStore.next_deadline` says when :meth:`GuardianStore.prune` is due. The
page keeps :meth:`GuardianStore.snapshot` in IndexedDB, the super-peer in its database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .encoding import peer_id_for_key
from .envelope import JsonObject
from .errors import (
    CODE_CONFLICT,
    EXPIRED,
    NO_SHARE,
    OVER_QUOTA,
    REVOKED_SET,
    STALE_SET,
    UNKNOWN_REQUEST,
    ProtocolError,
)
from .shard import (
    RecoverRequest,
    Revoke,
    Share,
    make_receipt,
    make_refuse,
    make_release,
    open_share,
    parse_kind,
    verification_code,
)

RequestState = Literal["pending", "approved", "refused"]
_M = TypeVar("_M", Share, RecoverRequest)
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class GuardianLimits:
    """How much one guardian holds (docs/protocol.md "Limits")."""

    max_shares: int = 256
    max_per_owner: int = 4
    # Owners remembered: those with shares, and those with only revoked sets to refuse.
    max_owners: int = 1024
    max_revoked_per_owner: int = 16
    max_requests: int = 32
    max_requests_per_owner: int = 8


@dataclass(frozen=True, slots=True)
class HeldShare:
    share: Share
    held_at: int

    @property
    def owner(self) -> str:
        return self.share.owner


@dataclass(slots=True)
class IncomingRequest:
    """A recovery request for an owner this guardian holds shares of."""

    request: RecoverRequest
    code: str
    received_at: int
    state: RequestState = "pending"
    conflict: bool = False
    # What was sent back (releases or one refusal), to send again if the request comes again.
    answer: tuple[JsonObject, ...] = ()

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def for_peer(self) -> str:
        return self.request.for_peer


@dataclass(slots=True)
class _Owner:
    set: str | None = None
    newest: int = -1  # issued_at of the newest set seen, held or replaced
    shares: dict[int, HeldShare] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)


class GuardianStore:
    """Shares held for others, at most one current set per owner, and requests to answer."""

    def __init__(
        self,
        identity: Ed25519PrivateKey,
        x25519_key: X25519PrivateKey,
        *,
        limits: GuardianLimits | None = None,
    ) -> None:
        self.identity = identity
        self.x25519_key = x25519_key
        self.limits = limits or GuardianLimits()
        self.peer_id = peer_id_for_key(identity.public_key().public_bytes_raw())
        self._owners: dict[str, _Owner] = {}
        self._requests: dict[str, IncomingRequest] = {}

    # --- shares ---

    def accept_share(self, envelope: object, *, now: int) -> tuple[HeldShare, JsonObject]:
        """Hold a ``share`` sent to this guardian; returns it and the signed receipt.

        A newer set (later ``issued_at``) of the owner replaces the one held; an older set,
        or one revoked, is refused (``stale_set``, ``revoked_set``).
        """
        share = parse_kind(envelope, Share, now=now)
        open_share(share, private_key=self.x25519_key, peer_id=self.peer_id)
        record = self._owners.get(share.owner)
        replacing = record is None or record.set != share.set
        if record is not None:
            if share.set in record.revoked:
                raise ProtocolError(REVOKED_SET, "this share set was revoked or replaced")
            if replacing and share.issued_at <= record.newest:
                raise ProtocolError(STALE_SET, "a newer share set of this owner is known")
        self._check_quota(record, share, replacing)
        record = self._owner(share.owner)
        if replacing:
            if record.set is not None:
                self._remember_revoked(record, record.set)
            record.shares.clear()
            record.set = share.set
        record.newest = max(record.newest, share.issued_at)
        held = HeldShare(share=share, held_at=now)
        record.shares[share.index] = held
        return held, make_receipt(self.identity, share, held_at=now)

    def revoke(self, envelope: object, *, now: int) -> int:
        """Apply an owner's ``revoke``: its set is deleted and refused from now on.

        Returns how many shares were deleted (0 when none of that set was held)."""
        revoke = parse_kind(envelope, Revoke, now=now)
        record = self._owner(revoke.owner)
        deleted = 0
        if record.set == revoke.set:
            deleted = len(record.shares)
            record.shares.clear()
            record.set = None
            self._drop_requests(revoke.owner)
        self._remember_revoked(record, revoke.set)
        return deleted

    def receipts_for(self, owner: str, *, now: int) -> list[JsonObject]:
        """Fresh receipts for every share held of ``owner`` (sent when the owner connects)."""
        record = self._owners.get(owner)
        held = sorted(record.shares.values(), key=_index) if record else []
        return [make_receipt(self.identity, h.share, held_at=now) for h in held]

    def held(self) -> list[HeldShare]:
        return [h for r in self._owners.values() for h in sorted(r.shares.values(), key=_index)]

    # --- recovery requests ---

    def request(self, envelope: object, *, now: int) -> IncomingRequest | None:
        """Take a ``recover_req``; None when no share of its owner is held (not an error:
        requests are flooded to everyone). A request seen before comes back as it stands,
        with its ``answer`` to send again. Computing the code takes about 0.2 s."""
        request = parse_kind(envelope, RecoverRequest, now=now)
        known = self._requests.get(request.id)
        if known is not None:
            return known
        record = self._owners.get(request.for_peer)
        if record is None or not record.shares:
            return None
        code = verification_code(request.id)
        same = [r for r in self._requests.values() if r.for_peer == request.for_peer]
        incoming = IncomingRequest(request=request, code=code, received_at=now)
        for other in same:
            if other.code == code:  # one of them was ground to show the other's code
                other.conflict = incoming.conflict = True
        self._make_room(same)
        self._requests[request.id] = incoming
        return incoming

    def approve(self, request_id: str, *, now: int) -> list[JsonObject]:
        """The person approved: one ``release`` per share held of the request's owner."""
        incoming = self._answerable(request_id, now, "approved")
        if incoming.state == "approved":
            return list(incoming.answer)
        if incoming.conflict:
            raise ProtocolError(CODE_CONFLICT, "two requests for this owner show the same code")
        record = self._owners.get(incoming.for_peer)
        if record is None or not record.shares:
            raise ProtocolError(NO_SHARE, "no share of this owner is held any more")
        releases = []
        for held in sorted(record.shares.values(), key=_index):
            share = held.share
            text = open_share(share, private_key=self.x25519_key, peer_id=self.peer_id)
            releases.append(
                make_release(
                    self.identity,
                    incoming.request,
                    set_id=share.set,
                    index=share.index,
                    k=share.k,
                    n=share.n,
                    share=text,
                )
            )
        incoming.state = "approved"
        incoming.answer = tuple(releases)
        return releases

    def refuse(self, request_id: str, *, now: int) -> JsonObject:
        """The person refused: a signed ``refuse`` for the temporary identity."""
        incoming = self._answerable(request_id, now, "refused")
        if incoming.state == "refused":
            return incoming.answer[0]
        refusal = make_refuse(self.identity, incoming.request)
        incoming.state = "refused"
        incoming.answer = (refusal,)
        return refusal

    def requests(self) -> list[IncomingRequest]:
        return list(self._requests.values())

    # --- time ---

    def prune(self, now: int) -> None:
        """Forget expired shares and requests."""
        for record in self._owners.values():
            for index, held in list(record.shares.items()):
                if now >= held.share.expires_at:
                    del record.shares[index]
            if not record.shares:
                record.set = None
        for request_id, incoming in list(self._requests.items()):
            if now >= incoming.request.expires_at:
                del self._requests[request_id]

    def next_deadline(self) -> int | None:
        """When :meth:`prune` has something to do next."""
        times = [h.share.expires_at for h in self.held()]
        times += [r.request.expires_at for r in self._requests.values()]
        return min(times, default=None)

    # --- persistence ---

    def snapshot(self) -> JsonObject:
        """Everything held, as JSON (the envelopes as received, sealed to this guardian)."""
        return {
            "v": SNAPSHOT_VERSION,
            "owners": [
                {"owner": owner, "newest": r.newest, "revoked": list(r.revoked)}
                for owner, r in self._owners.items()
            ],
            "shares": [{"envelope": h.share.envelope, "held_at": h.held_at} for h in self.held()],
            "requests": [
                {
                    "envelope": r.request.envelope,
                    "code": r.code,
                    "received_at": r.received_at,
                    "state": r.state,
                    "conflict": r.conflict,
                    "answer": list(r.answer),
                }
                for r in self._requests.values()
            ],
        }

    @classmethod
    def restore(
        cls,
        identity: Ed25519PrivateKey,
        x25519_key: X25519PrivateKey,
        snapshot: JsonObject,
        *,
        now: int,
        limits: GuardianLimits | None = None,
    ) -> GuardianStore:
        """A store from :meth:`snapshot` (this peer's own storage); expired items are dropped."""
        store = cls(identity, x25519_key, limits=limits)
        for item in snapshot.get("owners", []):
            record = store._owner(item["owner"])
            record.newest = item["newest"]
            record.revoked = list(item["revoked"])
        for item in snapshot.get("shares", []):
            share = _parse_or_none(item["envelope"], Share, now)
            if share is not None:
                record = store._owner(share.owner)
                record.set = share.set
                record.shares[share.index] = HeldShare(share=share, held_at=item["held_at"])
        for item in snapshot.get("requests", []):
            request = _parse_or_none(item["envelope"], RecoverRequest, now)
            if request is not None:
                store._requests[request.id] = IncomingRequest(
                    request=request,
                    code=item["code"],
                    received_at=item["received_at"],
                    state=item["state"],
                    conflict=item["conflict"],
                    answer=tuple(item["answer"]),
                )
        return store

    # --- internals ---

    def _owner(self, owner: str) -> _Owner:
        record = self._owners.pop(owner, None) or _Owner()
        self._owners[owner] = record  # most recently used last
        if len(self._owners) > self.limits.max_owners:
            idle = next((o for o, r in self._owners.items() if not r.shares and o != owner), None)
            if idle is not None:
                del self._owners[idle]
        return record

    def _check_quota(self, record: _Owner | None, share: Share, replacing: bool) -> None:
        mine = {} if record is None or replacing else record.shares
        if len(mine) + (share.index not in mine) > self.limits.max_per_owner:
            raise ProtocolError(OVER_QUOTA, "this guardian holds no more shares of this owner")
        total = sum(len(r.shares) for r in self._owners.values())
        freed = len(record.shares) if record is not None and replacing else 0
        added = 1 if replacing or share.index not in mine else 0
        if total - freed + added > self.limits.max_shares:
            raise ProtocolError(OVER_QUOTA, "this guardian holds no more shares")
        crowded = len(self._owners) >= self.limits.max_owners
        if record is None and crowded and all(r.shares for r in self._owners.values()):
            raise ProtocolError(OVER_QUOTA, "this guardian holds shares of too many owners")

    def _remember_revoked(self, record: _Owner, set_id: str) -> None:
        if set_id not in record.revoked:
            record.revoked.append(set_id)
            del record.revoked[: -self.limits.max_revoked_per_owner]

    def _drop_requests(self, owner: str) -> None:
        for request_id in [i for i, r in self._requests.items() if r.for_peer == owner]:
            del self._requests[request_id]

    def _make_room(self, same: list[IncomingRequest]) -> None:
        # Newest requests win (answered ones go first, then the oldest pending), so that a
        # flood of requests cannot lock the real one out until they expire.
        def evict(items: Iterable[IncomingRequest]) -> None:
            victim = min(items, key=lambda r: (r.state == "pending", r.received_at))
            del self._requests[victim.id]

        if len(same) >= self.limits.max_requests_per_owner:
            evict(same)
        if len(self._requests) >= self.limits.max_requests:
            evict(self._requests.values())

    def _answerable(self, request_id: str, now: int, decision: RequestState) -> IncomingRequest:
        """The request to answer with ``decision``: pending, or answered that way already."""
        incoming = self._requests.get(request_id)
        if incoming is None:
            raise ProtocolError(UNKNOWN_REQUEST, "no such recovery request")
        if now >= incoming.request.expires_at:
            del self._requests[request_id]
            raise ProtocolError(EXPIRED, "the recovery request has expired")
        if incoming.state not in ("pending", decision):
            raise ProtocolError(UNKNOWN_REQUEST, f"the request was {incoming.state} already")
        return incoming


def _index(held: HeldShare) -> int:
    return held.share.index


def _parse_or_none(envelope: object, cls: type[_M], now: int) -> _M | None:
    try:
        return parse_kind(envelope, cls, now=now)
    except ProtocolError:
        return None
