"""The super-peer as a guardian, if its operator allows it (docs/superpeer.md "The
super-peer as a guardian").

A :class:`~peers.protocol.guardian.GuardianStore` for the super-peer's own identity, kept as
its snapshot in the database (``GuardianState``). Shares sent to the super-peer (through
its mailbox, :mod:`peers.superpeer.mailbox`) are held and answered with receipts; revocations
applied; recovery requests for owners it guards (sent to it, or heard on the gossip topic
``shard-req``) written as ``GuardianRequest`` rows with their verification codes, for the
operator to approve or refuse in the admin; the super-peer applies the decision at its next
sync and sends the releases or the refusal to the new device. Its X25519 key (derived from
its identity seed) is announced on the gossip topic ``xkey`` so owners can seal shares to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.envelope import JsonObject
from peers.protocol.errors import UNEXPECTED_KIND, ProtocolError
from peers.protocol.guardian import GuardianLimits, GuardianStore
from peers.protocol.keywrap import make_key_announcement, x25519_from_identity_seed
from peers.protocol.shard import KIND_RECOVER_REQ, KIND_REVOKE, KIND_SHARE, kind_of
from shared.db import db_sync_to_async

from . import db
from .errors import GUARDIAN_BUSY
from .models import GuardianRequest

logger = logging.getLogger(__name__)

XKEY_TOPIC = "xkey"
REQUEST_TOPIC = "shard-req"
XKEY_EVERY_MS = 4 * 60_000  # as the page: gossip lives 10 minutes
XKEY_AGAIN_MS = 30_000  # a new connection hears it again at most this often
# Messages waiting for the store (a request costs ~0.2 s of PBKDF2): more are dropped and
# counted as guardian_busy (a flood of valid requests under throwaway keys costs little).
MAX_PENDING = 64

Post = Callable[[str, JsonObject], None]  # (to, signed message): sent on or held for ``to``
Publish = Callable[[str, object], None]  # (topic, data): gossip
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


@dataclass
class GuardianStats:
    shares: int = 0  # shares accepted (receipts sent)
    revokes: int = 0
    requests: int = 0  # requests for owners it guards
    ignored: int = 0  # requests for owners it does not guard
    answers: int = 0  # releases and refusals sent
    refused: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k != "refused"}
        out["refused"] = dict(self.refused)
        return out


class SuperPeerGuardian:
    def __init__(
        self,
        identity: Ed25519PrivateKey,
        *,
        post: Post,
        publish: Publish,
        spawn: Spawn,
        clock: Callable[[], int],
        limits: GuardianLimits | None = None,
    ) -> None:
        self.identity = identity
        self.x25519 = x25519_from_identity_seed(identity.private_bytes_raw())
        self.limits = limits
        self.store = GuardianStore(identity, self.x25519, limits=limits)
        self.peer_id = self.store.peer_id
        self.post = post
        self.publish = publish
        self.spawn = spawn
        self.pending = 0
        self.clock = clock
        self.stats = GuardianStats()
        # The store is changed by one coroutine at a time (a request's code is computed in
        # a thread, about 0.2 s).
        self.lock = asyncio.Lock()
        self.decided: dict[str, str] = {}  # request id -> error ("" when applied)
        self.last_announce: int | None = None

    async def load(self) -> None:
        snapshot = await db_sync_to_async(db.guardian_load)(self.peer_id)
        if snapshot:
            self.store = GuardianStore.restore(
                self.identity, self.x25519, snapshot, now=self.clock(), limits=self.limits
            )

    # --- messages ---

    def take(self, envelope: JsonObject, now: int) -> None:
        """Queue a message for :meth:`received` (bounded: beyond ``MAX_PENDING``, dropped)."""
        if self.pending >= MAX_PENDING:
            self.stats.refused[GUARDIAN_BUSY] += 1
            return
        self.pending += 1
        self.spawn(self._take(envelope, now), "guardian")

    async def _take(self, envelope: JsonObject, now: int) -> None:
        try:
            await self.received(envelope, now)
        finally:
            self.pending -= 1

    async def received(self, envelope: JsonObject, now: int) -> None:
        """A shard message for this super-peer (verified by the mailbox, checked again by
        the store), or a request heard by gossip."""
        kind = kind_of(envelope)
        async with self.lock:
            try:
                if kind == KIND_SHARE:
                    held, receipt = self.store.accept_share(envelope, now=now)
                    self.stats.shares += 1
                    self.post(held.owner, receipt)
                elif kind == KIND_REVOKE:
                    self.store.revoke(envelope, now=now)
                    self.stats.revokes += 1
                elif kind == KIND_RECOVER_REQ:
                    incoming = await asyncio.to_thread(self.store.request, envelope, now=now)
                    if incoming is None:
                        self.stats.ignored += 1
                        return
                    self.stats.requests += 1
                    for answer in incoming.answer:  # heard again: answered again
                        self.post(incoming.request.temp, answer)
                else:
                    raise ProtocolError(UNEXPECTED_KIND, f"a guardian takes no {kind}")
            except ProtocolError as exc:
                self.stats.refused[exc.code] += 1
                logger.info("guardian: refused a %s: %s (%s)", kind, exc.code, exc.message)
                return
        await self.persist()

    async def owner_connected(self, owner: str) -> None:
        """Fresh receipts for what it holds of ``owner`` ("held" and "last seen")."""
        async with self.lock:
            receipts = self.store.receipts_for(owner, now=self.clock())
        for receipt in receipts:
            self.post(owner, receipt)

    # --- the operator's decisions ---

    async def apply_decisions(self) -> int:
        """Approve or refuse what the operator decided in the admin; how many applied."""
        rows = await db_sync_to_async(db.guardian_decisions)(self.peer_id)
        if not rows:
            return 0
        now = self.clock()
        async with self.lock:
            temps = {r.id: r.request.temp for r in self.store.requests()}
            for request_id, decision in rows:
                try:
                    if decision == GuardianRequest.APPROVE:
                        answers = self.store.approve(request_id, now=now)
                    else:
                        answers = [self.store.refuse(request_id, now=now)]
                except ProtocolError as exc:
                    self.decided[request_id] = f"{exc.code}: {exc.message}"
                    continue
                self.decided[request_id] = ""
                for answer in answers:
                    self.post(temps[request_id], answer)
                self.stats.answers += len(answers)
        await self.persist()
        return len(rows)

    # --- upkeep ---

    async def persist(self) -> None:
        async with self.lock:
            snapshot = self.store.snapshot()
            rows = [
                db.RequestRow(
                    request_id=r.id,
                    for_peer=r.for_peer,
                    temp=r.request.temp,
                    code=r.code,
                    conflict=r.conflict,
                    state=r.state,
                    received_at=r.received_at,
                    expires_at=r.request.expires_at,
                )
                for r in self.store.requests()
            ]
            decided, self.decided = self.decided, {}
        try:
            await db_sync_to_async(db.guardian_save)(self.peer_id, snapshot, rows, decided)
        except Exception:
            self.decided = decided | self.decided  # written next time
            raise

    async def upkeep(self) -> None:
        """Drop expired shares and requests, write the store."""
        now = self.clock()
        async with self.lock:
            self.store.prune(now)
        await self.persist()

    def announce(self, now: int, *, new_peer: bool = False) -> None:
        """Gossip this super-peer's X25519 key: every 4 minutes while peers are connected
        (the caller knows), and to a new connection (at most every 30 s)."""
        last = self.last_announce
        due = XKEY_AGAIN_MS if new_peer else XKEY_EVERY_MS
        if last is not None and now - last < due:
            return
        self.last_announce = now
        self.publish(XKEY_TOPIC, make_key_announcement(self.identity, self.x25519, created_at=now))
