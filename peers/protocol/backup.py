"""The owner's side of a backup: the current share set and the state of each guardian.

Mirror of static/swarm/protocol/backup.js (docs/protocol.md "Owner"). Sans-IO: a split
(shares made elsewhere, e.g. SLIP-39), receipts, "peer seen" and ``now`` go in; signed
``share`` and ``revoke`` messages to send come out. Each guardian is ``sent`` (share sent, no
receipt yet), ``held`` (receipt for the current set) or ``revoked`` (a guardian of the
previous set, told to delete its share); :meth:`OwnerGuardians.outgoing_for` is what to send
again when a guardian connects, since guardians may be offline when the split happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .encoding import PEER_ID_RE, peer_id_for_key
from .envelope import JsonObject
from .errors import BAD_SHARD, SET_MISMATCH, STALE_SET, WRONG_RECIPIENT, ProtocolError
from .shard import (
    DEFAULT_SHARE_LIFETIME_MS,
    MAX_N,
    MAX_SHARE_LIFETIME_MS,
    MIN_K,
    Receipt,
    check_share_text,
    make_revoke,
    make_share,
    new_set_id,
    parse_kind,
)

GuardianState = Literal["sent", "held", "revoked"]
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class GuardianKey:
    """A peer chosen as guardian, with its announced X25519 key (``swarm/xkey/v1``)."""

    peer_id: str
    x25519: bytes


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A signed message for peer ``to`` (a ``shard_msg`` frame, or a mailbox)."""

    to: str
    envelope: JsonObject


@dataclass(slots=True)
class GuardianEntry:
    """One guardian as the owner's page shows it (``.guardian[data-peer-id][data-state]``)."""

    peer_id: str
    set: str
    index: int
    state: GuardianState
    sent_at: int
    expires_at: int  # the share's expiry; the entry is forgotten then
    envelope: JsonObject  # the share (sent, held) or the revocation (revoked) to send again
    held_at: int | None = None
    last_seen: int | None = None


@dataclass(frozen=True, slots=True)
class ShareSet:
    id: str
    k: int
    n: int
    issued_at: int
    expires_at: int


class OwnerGuardians:
    """The owner's current share set and its guardians."""

    def __init__(
        self, identity: Ed25519PrivateKey, *, lifetime_ms: int = DEFAULT_SHARE_LIFETIME_MS
    ) -> None:
        if not 0 < lifetime_ms <= MAX_SHARE_LIFETIME_MS:
            raise ProtocolError(BAD_SHARD, "a share lives 1 ms to 10 years")
        self.identity = identity
        self.lifetime_ms = lifetime_ms
        self.peer_id = peer_id_for_key(identity.public_key().public_bytes_raw())
        self.current: ShareSet | None = None
        self._entries: dict[str, GuardianEntry] = {}

    def split(
        self,
        guardians: Sequence[GuardianKey | None],
        shares: Sequence[str],
        k: int,
        *,
        now: int,
        set_id: str | None = None,
    ) -> list[Outgoing]:
        """Send a new set: share ``i + 1`` to ``guardians[i]`` (None: a share kept on paper,
        not sent). Guardians of the previous set are told to delete theirs. Returns the
        messages to send: the shares, then the revocations."""
        n = len(shares)
        if len(guardians) != n or not MIN_K <= k <= n <= MAX_N:
            raise ProtocolError(BAD_SHARD, f"need {MIN_K} <= k <= n <= {MAX_N}, a share each")
        chosen = [g.peer_id for g in guardians if g is not None]
        if len(set(chosen)) != len(chosen) or self.peer_id in chosen:
            raise ProtocolError(BAD_SHARD, "each guardian holds one share, never the owner")
        if any(not PEER_ID_RE.fullmatch(p) for p in chosen):
            raise ProtocolError(BAD_SHARD, "a guardian is not a key-bound peer id")
        for text in shares:  # the ones kept on paper too
            check_share_text(text)
        previous = self.current
        # A guardian takes a set as newer only if it was issued later than the one it holds.
        issued_at = now if previous is None else max(now, previous.issued_at + 1)
        new = ShareSet(
            id=set_id or new_set_id(),
            k=k,
            n=n,
            issued_at=issued_at,
            expires_at=issued_at + self.lifetime_ms,
        )
        out: list[Outgoing] = []
        entries: dict[str, GuardianEntry] = {}
        for index, (guardian, text) in enumerate(zip(guardians, shares, strict=True), start=1):
            if guardian is None:
                continue
            envelope = make_share(
                self.identity,
                guardian=guardian.peer_id,
                guardian_key=guardian.x25519,
                set_id=new.id,
                index=index,
                k=k,
                n=n,
                share=text,
                issued_at=new.issued_at,
                expires_at=new.expires_at,
            )
            old = self._entries.get(guardian.peer_id)
            entries[guardian.peer_id] = GuardianEntry(
                peer_id=guardian.peer_id,
                set=new.id,
                index=index,
                state="sent",
                sent_at=now,
                expires_at=new.expires_at,
                envelope=envelope,
                last_seen=None if old is None else old.last_seen,
            )
            out.append(Outgoing(guardian.peer_id, envelope))
        if previous is not None:
            revoke = make_revoke(self.identity, set_id=previous.id, issued_at=new.issued_at)
            for old in self._entries.values():
                if old.set == previous.id:
                    out.append(Outgoing(old.peer_id, revoke))
                    old.state, old.envelope = "revoked", revoke
                # Revoked guardians stay listed (and told again) until their share expires.
                if old.state == "revoked" and old.peer_id not in entries:
                    entries[old.peer_id] = old
        self.current = new
        self._entries = entries
        return out

    def receive(self, envelope: object, *, now: int) -> GuardianEntry:
        """A guardian's ``receipt``: its entry becomes ``held``."""
        receipt = parse_kind(envelope, Receipt, now=now)
        if receipt.owner != self.peer_id:
            raise ProtocolError(WRONG_RECIPIENT, "this receipt is for another owner")
        if self.current is None or receipt.set != self.current.id:
            raise ProtocolError(STALE_SET, "a receipt for a set that is not the current one")
        entry = self._entries.get(receipt.guardian)
        if entry is None or entry.set != receipt.set or entry.index != receipt.index:
            raise ProtocolError(SET_MISMATCH, "this guardian was not sent that share")
        entry.state = "held"
        entry.held_at = max(entry.held_at or 0, receipt.held_at)
        entry.last_seen = now
        return entry

    def seen(self, peer_id: str, now: int) -> None:
        """The guardian is connected now (its row's "last seen")."""
        entry = self._entries.get(peer_id)
        if entry is not None:
            entry.last_seen = now

    def outgoing_for(self, peer_id: str) -> list[JsonObject]:
        """What to send a guardian that just connected: its share until it is held, the
        revocation while its old share may still exist."""
        entry = self._entries.get(peer_id)
        if entry is None or entry.state == "held":
            return []
        return [entry.envelope]

    def guardians(self) -> list[GuardianEntry]:
        """The current set's guardians by index, then the revoked ones."""
        return sorted(self._entries.values(), key=lambda e: (e.state == "revoked", e.index))

    def prune(self, now: int) -> None:
        """Forget entries whose share has expired (a revoked one is gone at the guardian by
        then anyway); when the current set expires, the owner has no backup left."""
        for peer_id in [p for p, e in self._entries.items() if now >= e.expires_at]:
            del self._entries[peer_id]
        if self.current is not None and now >= self.current.expires_at:
            self.current = None

    def next_deadline(self) -> int | None:
        return min((e.expires_at for e in self._entries.values()), default=None)

    def snapshot(self) -> JsonObject:
        current = self.current
        return {
            "v": SNAPSHOT_VERSION,
            "current": None
            if current is None
            else {
                "id": current.id,
                "k": current.k,
                "n": current.n,
                "issued_at": current.issued_at,
                "expires_at": current.expires_at,
            },
            "guardians": [
                {
                    "peer_id": e.peer_id,
                    "set": e.set,
                    "index": e.index,
                    "state": e.state,
                    "sent_at": e.sent_at,
                    "expires_at": e.expires_at,
                    "envelope": e.envelope,
                    "held_at": e.held_at,
                    "last_seen": e.last_seen,
                }
                for e in self._entries.values()
            ],
        }

    @classmethod
    def restore(
        cls,
        identity: Ed25519PrivateKey,
        snapshot: JsonObject,
        *,
        lifetime_ms: int = DEFAULT_SHARE_LIFETIME_MS,
    ) -> OwnerGuardians:
        """From :meth:`snapshot` (this peer's own storage)."""
        owner = cls(identity, lifetime_ms=lifetime_ms)
        current = snapshot.get("current")
        if current is not None:
            owner.current = ShareSet(**current)
        for item in snapshot.get("guardians", []):
            owner._entries[item["peer_id"]] = GuardianEntry(**item)
        return owner
