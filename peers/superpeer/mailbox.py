"""Mailboxes: signed messages held for peers who are away, delivered when they connect.

A first, shard-only form of the offline-first issue's mailboxes (docs/superpeer.md
"Mailboxes"). A connected peer hands the super-peer a ``shard_msg {to, msg}`` for a peer
that is not connected to it; the super-peer verifies the message with the shard module
(:func:`check_shard_letter`), forwards it at once if ``to`` is connected here with the
``shard`` capability, and otherwise stores it (:mod:`peers.superpeer.db`, model
``MailboxMessage``) within quotas, idempotently by message id. When ``to`` opens a
connection with the ``shard`` capability, what waits for it is sent as ``shard_msg``
frames and deleted once handed to that open connection (no acknowledgement frame: the
shard protocol's ends send again what matters until it is answered; see the doc).

The stored kind is a field of the row and :func:`check_shard_letter` one checker, so other
envelope kinds (wrapped file keys, direct messages) can be added beside it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from peers.protocol.encoding import b64url_encode
from peers.protocol.envelope import JsonObject
from peers.protocol.errors import (
    BAD_ENVELOPE,
    BAD_KEY,
    BAD_SHARD,
    BAD_SIGNATURE,
    PEER_MISMATCH,
    SHARD_TOO_LARGE,
    WRONG_RECIPIENT,
    ProtocolError,
)
from peers.protocol.shard import (
    Receipt,
    RecoverRequest,
    Refuse,
    Release,
    Revoke,
    ShardMessage,
    Share,
    parse_message,
)
from peers.protocol.wire import ContentFrame, ShardMsg
from shared.db import db_sync_to_async

from . import db
from .config import MailboxLimits
from .errors import MAILBOX_BUSY, NOT_GUARDIAN

logger = logging.getLogger(__name__)

SHARD_CAP = "shard"
KIND_SHARD = "shard"
# Faults of the message itself, found before its signer is known or in its signed body:
# an honest peer checks what it hands on, so these count against the connection
# (docs/protocol.md "Carrying the messages"). Other refusals are dropped and counted.
VIOLATIONS = frozenset(
    {SHARD_TOO_LARGE, BAD_ENVELOPE, BAD_SIGNATURE, BAD_SHARD, PEER_MISMATCH, BAD_KEY}
)
# Messages verified and waiting for their database write; more are refused (mailbox_busy).
MAX_PENDING_WRITES = 256
DELIVER_BATCH = 64  # messages read and sent per round of a delivery


class MailboxRefused(ProtocolError):
    """A message not taken; ``violation``: it counts against the connection that sent it."""

    def __init__(self, code: str, message: str, *, violation: bool = False) -> None:
        super().__init__(code, message)
        self.violation = violation


@dataclass(frozen=True, slots=True)
class Letter:
    """A verified message for ``recipient``, as stored."""

    kind: str
    recipient: str
    sender: str  # the peer that handed it in (quotas count it)
    signer: str
    message_id: str  # unpadded base64url SHA-256 of the envelope's canonical JSON
    envelope: JsonObject
    size: int  # bytes of canonical JSON
    expires_at: int  # ms: its own expiry if it has one, at most ``ttl_ms`` from now


def message_id(envelope: JsonObject) -> tuple[str, int]:
    """(id, size) of an envelope: SHA-256 of its canonical JSON (RFC 8785), and its length."""
    canonical = rfc8785.dumps(envelope)
    return b64url_encode(hashlib.sha256(canonical).digest()), len(canonical)


def _addressees(message: ShardMessage) -> tuple[str | None, str]:
    """(the one peer it is for, or None when any peer but the signer may be; the signer)."""
    if isinstance(message, Share):
        return message.guardian, message.owner
    if isinstance(message, Receipt):
        return message.owner, message.guardian
    if isinstance(message, Revoke):
        return None, message.owner
    if isinstance(message, RecoverRequest):
        return None, message.temp
    if isinstance(message, Release | Refuse):
        return message.temp, message.guardian
    raise TypeError(type(message).__name__)  # pragma: no cover - every kind is above


def check_shard_letter(
    to: str, envelope: JsonObject, *, sender: str, now: int, ttl_ms: int
) -> Letter:
    """Verify a ``shard_msg`` for ``to`` handed in by ``sender`` at ``now``.

    The shard module's checks in its order (its codes), then the addressee: a message for
    another peer than ``to`` (a share for another guardian, an answer for another device)
    or for its own signer or sender is ``wrong_recipient``.
    """
    try:
        message = parse_message(envelope, now=now)
    except ProtocolError as exc:
        raise MailboxRefused(exc.code, exc.message, violation=exc.code in VIOLATIONS) from exc
    only, signer = _addressees(message)
    if (only is not None and to != only) or to in (signer, sender):
        raise MailboxRefused(WRONG_RECIPIENT, f"a {message.kind} is not for {to}")
    own_expiry = getattr(message, "expires_at", None)
    expires_at = now + ttl_ms if own_expiry is None else min(own_expiry, now + ttl_ms)
    ident, size = message_id(envelope)
    return Letter(KIND_SHARD, to, sender, signer, ident, envelope, size, expires_at)


@dataclass
class MailboxStats:
    received: int = 0  # shard_msg frames for another peer (or for the super-peer)
    forwarded: int = 0  # sent on at once to a connected recipient
    stored: int = 0
    duplicates: int = 0  # already held (same recipient and message id)
    delivered: int = 0  # sent from the mailbox to a recipient that connected
    pruned: int = 0  # expired before their recipient came
    refused: Counter[str] = field(default_factory=Counter)  # by code

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k != "refused"}
        out["refused"] = dict(self.refused)
        return out


Send = Callable[[str, ContentFrame], bool]  # (conn id, frame) -> sent on an open connection
Violation = Callable[[str, str, str], None]  # (conn id, code, message)
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]
Clock = Callable[[], int]
Local = Callable[[JsonObject, int], None]  # a verified message for the super-peer itself


class Mailbox:
    """The super-peer's mailbox: takes ``shard_msg`` frames, stores and delivers them.

    The service calls :meth:`peer_opened`, :meth:`peer_closed` and :meth:`received` from
    its node's actions and :meth:`upkeep` periodically; the mailbox answers through the
    three callables it is given (one direction: it knows nothing of the service)."""

    def __init__(
        self,
        peer_id: str,
        limits: MailboxLimits,
        *,
        send: Send,
        violation: Violation,
        spawn: Spawn,
        clock: Clock,
        local: Local | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.limits = limits
        self.send = send
        self.violation = violation
        self.spawn = spawn
        self.clock = clock
        self.local = local
        self.peers: dict[str, str] = {}  # peer id -> conn id, open with the shard capability
        self.pending = 0
        self.stats = MailboxStats()
        self._delivering: set[str] = set()
        self._again: set[str] = set()  # more mail came while a delivery was running

    # --- connections ---

    def peer_opened(self, conn_id: str, peer_id: str, caps: tuple[str, ...]) -> None:
        if SHARD_CAP not in caps:
            return
        self.peers[peer_id] = conn_id
        self.spawn(self.deliver(peer_id), "mailbox-deliver")

    def peer_closed(self, conn_id: str) -> None:
        for peer_id, conn in list(self.peers.items()):
            if conn == conn_id:
                del self.peers[peer_id]

    # --- frames ---

    def received(self, conn_id: str, peer_id: str, frame: ShardMsg, now: int) -> None:
        """A ``shard_msg`` from an open connection: forward, store or refuse it."""
        self.stats.received += 1
        try:
            letter = check_shard_letter(
                frame.to, frame.msg, sender=peer_id, now=now, ttl_ms=self.limits.ttl_ms
            )
        except MailboxRefused as exc:
            self._refused(exc.code, exc.message)
            if exc.violation:
                self.violation(conn_id, exc.code, exc.message)
            return
        if letter.recipient == self.peer_id:
            if self.local is None:
                self._refused(NOT_GUARDIAN, "this super-peer holds no shares")
            else:
                self.local(letter.envelope, now)
            return
        self._forward_or_store(letter, now)

    def post(self, to: str, envelope: JsonObject) -> None:
        """Send one of the super-peer's own messages (a receipt, a release) to ``to``: on
        its connection if it is connected here, else held for it like any other."""
        now = self.clock()
        try:
            letter = check_shard_letter(
                to, envelope, sender=self.peer_id, now=now, ttl_ms=self.limits.ttl_ms
            )
        except MailboxRefused as exc:  # not expected: the super-peer signed it just now
            logger.warning("mailbox: own message refused: %s (%s)", exc.code, exc.message)
            return
        self._forward_or_store(letter, now)

    def _forward_or_store(self, letter: Letter, now: int) -> None:
        conn = self.peers.get(letter.recipient)
        if conn is not None and self.send(conn, ShardMsg(to=letter.recipient, msg=letter.envelope)):
            self.stats.forwarded += 1
            return
        if self.pending >= MAX_PENDING_WRITES:
            self._refused(MAILBOX_BUSY, "too many messages waiting for the database")
            return
        self.pending += 1
        self.spawn(self._store(letter, now), "mailbox-store")

    def _refused(self, code: str, message: str) -> None:
        self.stats.refused[code] += 1
        logger.info("mailbox refused a shard message: %s (%s)", code, message)

    async def _store(self, letter: Letter, now: int) -> None:
        try:
            result = await db_sync_to_async(db.mailbox_put)(
                letter, self.limits, received_by=self.peer_id, now=now
            )
        finally:
            self.pending -= 1
        if result.code is not None:
            self._refused(result.code, result.message)
        elif result.stored:
            self.stats.stored += 1
            if letter.recipient in self.peers:  # it connected while the write ran
                await self.deliver(letter.recipient)
        else:
            self.stats.duplicates += 1

    # --- delivery and upkeep ---

    async def deliver(self, peer_id: str) -> int:
        """Send what waits for ``peer_id`` on its open connection; delete what was sent."""
        if peer_id in self._delivering:
            self._again.add(peer_id)
            return 0
        self._delivering.add(peer_id)
        sent_in_all = 0
        try:
            while (conn := self.peers.get(peer_id)) is not None:
                waiting = await db_sync_to_async(db.mailbox_waiting)(
                    peer_id, now=self.clock(), limit=DELIVER_BATCH
                )
                sent = []
                for ident, envelope in waiting:
                    if self.peers.get(peer_id) != conn:
                        break
                    if not self.send(conn, ShardMsg(to=peer_id, msg=envelope)):
                        break
                    sent.append(ident)
                if sent:
                    await db_sync_to_async(db.mailbox_delete)(peer_id, sent)
                    self.stats.delivered += len(sent)
                    sent_in_all += len(sent)
                if len(sent) < DELIVER_BATCH and peer_id not in self._again:
                    break
                self._again.discard(peer_id)
        finally:
            self._delivering.discard(peer_id)
            self._again.discard(peer_id)
        return sent_in_all

    async def upkeep(self) -> None:
        """Delete expired messages; deliver what another super-peer sharing the database
        stored for a peer connected here."""
        now = self.clock()
        self.stats.pruned += await db_sync_to_async(db.mailbox_prune)(now=now)
        if self.peers:
            waiting = await db_sync_to_async(db.mailbox_recipients)(list(self.peers), now=now)
            for peer_id in waiting:
                await self.deliver(peer_id)
