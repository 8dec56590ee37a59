"""Mailboxes: signed messages held for peers who are away, delivered when they connect.

docs/superpeer.md "Mailboxes". Two kinds of traffic, each with its frame and capability:

- ``shard_msg {to, msg}`` (capability ``shard``): the guardian protocol's messages,
  checked with the shard module (:func:`check_shard_letter`), forwarded at once when ``to``
  is connected here, else stored and handed over (then deleted) when ``to`` connects: the
  shard protocol's ends send again what matters until it is answered.
- ``mail {to, msg}`` (capability ``mail``): ``swarm/mail/v1`` mails and acks
  (:func:`check_mail_letter`). A mail is forwarded at once when ``to`` is connected here
  *and* stored; it stays until an ack from its recipient deletes it (or it expires) and is
  sent to ``to`` once per connection. An ack deletes the mails it names, then goes on to the
  mails' sender, or waits for it (deleted once handed over). What a page hands in is also
  sent to every connected super-peer with the ``mail`` capability, which takes it but never
  passes it to another super-peer.

Stored rows (:mod:`peers.superpeer.db`, model ``MailboxMessage``) are kept within quotas,
idempotently by recipient, signer and message id.
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
    BAD_MAIL,
    BAD_RECIPIENT,
    BAD_SHARD,
    BAD_SIGNATURE,
    MAIL_TOO_LARGE,
    PEER_MISMATCH,
    SHARD_TOO_LARGE,
    WRONG_RECIPIENT,
    ProtocolError,
)
from peers.protocol.mail import Ack, parse_mail
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
from peers.protocol.wire import Mail as MailFrame
from shared.db import db_sync_to_async

from . import db
from .config import MailboxLimits
from .errors import MAILBOX_BUSY, NOT_GUARDIAN

logger = logging.getLogger(__name__)

SHARD_CAP = "shard"
MAIL_CAP = "mail"
SUPERPEER_CAP = "superpeer"
KIND_SHARD = "shard"
KIND_MAIL = "mail"
KIND_ACK = "ack"
# Faults of the message itself, found before its signer is known or in its signed body:
# an honest peer checks what it hands on, so these count against the connection
# (docs/protocol.md "Carrying the messages", "Mail"). Other refusals are dropped and counted.
VIOLATIONS = frozenset(
    {SHARD_TOO_LARGE, BAD_ENVELOPE, BAD_SIGNATURE, BAD_SHARD, PEER_MISMATCH, BAD_KEY}
    | {MAIL_TOO_LARGE, BAD_MAIL, BAD_RECIPIENT}
)
# Messages verified and waiting for their database write; more are refused (mailbox_busy).
MAX_PENDING_WRITES = 256
# Rows read for one recipient per round of a delivery (mail rows stay until acked, so the
# ones already sent on this connection are skipped: the per-recipient quota keeps a
# recipient's rows below this unless it was raised above it).
DELIVER_BATCH = 1024


class MailboxRefused(ProtocolError):
    """A message not taken; ``violation``: it counts against the connection that sent it."""

    def __init__(self, code: str, message: str, *, violation: bool = False) -> None:
        super().__init__(code, message)
        self.violation = violation


@dataclass(frozen=True, slots=True)
class Letter:
    """A verified message for ``recipient``, as stored."""

    kind: str  # shard | mail | ack
    recipient: str
    sender: str  # the peer that handed it in
    signer: str
    # a mail's id; else the unpadded base64url SHA-256 of the envelope's canonical JSON
    message_id: str
    envelope: JsonObject
    size: int  # bytes of canonical JSON
    expires_at: int  # ms: its own expiry if it has one, at most ``ttl_ms`` from now
    acked: tuple[str, ...] = ()  # an ack's mail ids

    @property
    def quota_party(self) -> str:
        """Whom the per-sender quota counts: the peer that handed a shard message in, the
        writer (signer) of a mail or ack wherever it was handed in (a replicating
        super-peer hands in everyone's)."""
        return self.sender if self.kind == KIND_SHARD else self.signer


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


def check_mail_letter(
    to: str, envelope: JsonObject, *, sender: str, now: int, ttl_ms: int
) -> Letter:
    """Verify a ``mail`` frame's message for ``to`` handed in by ``sender`` at ``now``.

    The mail module's checks in its order (its codes), then the frame's ``to`` must be the
    message's ``to`` (``wrong_recipient``). A mail's row is named by its id (so a mail sent
    again under the same id is one row), an ack's by the hash of its envelope; both expire
    with the message (an ack 7 days after ``acked_at``), at most ``ttl_ms`` from now.
    """
    try:
        message = parse_mail(envelope, now=now)
    except ProtocolError as exc:
        raise MailboxRefused(exc.code, exc.message, violation=exc.code in VIOLATIONS) from exc
    if message.to != to:
        raise MailboxRefused(WRONG_RECIPIENT, f"a {message.kind} for {message.to}, not {to}")
    _, size = message_id(envelope)
    expires_at = min(message.expires_at, now + ttl_ms)
    if isinstance(message, Ack):
        return Letter(
            KIND_ACK,
            to,
            sender,
            message.from_peer,
            message.id,
            envelope,
            size,
            expires_at,
            acked=message.ids,
        )
    return Letter(KIND_MAIL, to, sender, message.from_peer, message.id, envelope, size, expires_at)


@dataclass
class MailboxStats:
    received: int = 0  # shard_msg and mail frames for another peer (or for the super-peer)
    forwarded: int = 0  # sent on at once to a connected recipient
    stored: int = 0
    duplicates: int = 0  # already held (same recipient, signer and message id)
    delivered: int = 0  # sent from the mailbox to a recipient that connected
    pruned: int = 0  # expired before their recipient came (or acked)
    replicated: int = 0  # mail frames sent on to other super-peers
    acked: int = 0  # mail rows deleted by acks
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
    """The super-peer's mailbox: takes ``shard_msg`` and ``mail`` frames, stores, delivers.

    The service calls :meth:`peer_opened`, :meth:`peer_closed`, :meth:`received` (shard)
    and :meth:`received_mail` from its node's actions and :meth:`upkeep` periodically; the
    mailbox answers through the callables it is given (one direction: it knows nothing of
    the service)."""

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
        self.peers: dict[str, str] = {}  # peer id -> conn id, open with shard or mail
        self.caps: dict[str, frozenset[str]] = {}  # conn id -> its hello's capabilities
        self.sent: dict[str, set[tuple[str, str]]] = {}  # conn id -> mails (signer, id) sent
        self.pending = 0
        self.stats = MailboxStats()
        self._delivering: set[str] = set()
        self._again: set[str] = set()  # more mail came while a delivery was running

    # --- connections ---

    def peer_opened(self, conn_id: str, peer_id: str, caps: tuple[str, ...]) -> None:
        self.caps[conn_id] = frozenset(caps)
        self.sent[conn_id] = set()
        if SHARD_CAP not in caps and MAIL_CAP not in caps:
            return
        self.peers[peer_id] = conn_id
        self.spawn(self.deliver(peer_id), "mailbox-deliver")

    def peer_closed(self, conn_id: str) -> None:
        self.caps.pop(conn_id, None)
        self.sent.pop(conn_id, None)
        for peer_id, conn in list(self.peers.items()):
            if conn == conn_id:
                del self.peers[peer_id]

    def _conn_with(self, peer_id: str, cap: str) -> str | None:
        conn = self.peers.get(peer_id)
        return conn if conn is not None and cap in self.caps.get(conn, ()) else None

    # --- frames ---

    def received(self, conn_id: str, peer_id: str, frame: ShardMsg, now: int) -> None:
        """A ``shard_msg`` from an open connection: forward, store or refuse it."""
        self.stats.received += 1
        try:
            letter = check_shard_letter(
                frame.to, frame.msg, sender=peer_id, now=now, ttl_ms=self.limits.ttl_ms
            )
        except MailboxRefused as exc:
            self._refused_by(conn_id, exc)
            return
        if letter.recipient == self.peer_id:
            if self.local is None:
                self._refused(NOT_GUARDIAN, "this super-peer holds no shares")
            else:
                self.local(letter.envelope, now)
            return
        self._forward_or_store(letter, now)

    def received_mail(self, conn_id: str, peer_id: str, frame: MailFrame, now: int) -> None:
        """A ``mail`` frame from an open connection: a mail is forwarded and stored, an ack
        applied and forwarded or stored; what a page handed in goes to the other super-peers."""
        self.stats.received += 1
        try:
            letter = check_mail_letter(
                frame.to, frame.msg, sender=peer_id, now=now, ttl_ms=self.limits.ttl_ms
            )
        except MailboxRefused as exc:
            self._refused_by(conn_id, exc)
            return
        if letter.recipient == self.peer_id:
            self._refused(WRONG_RECIPIENT, "a super-peer reads no mail")
            return
        if SUPERPEER_CAP not in self.caps.get(conn_id, ()):
            self._replicate(conn_id, letter)
        if letter.kind == KIND_ACK:
            self._take_ack(letter, now)
            return
        conn = self._conn_with(letter.recipient, MAIL_CAP)
        if conn is not None and self.send(
            conn, MailFrame(to=letter.recipient, msg=letter.envelope)
        ):
            self.stats.forwarded += 1
            self.sent.setdefault(conn, set()).add((letter.signer, letter.message_id))
        self._store_later(letter, now)

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

    def _replicate(self, from_conn: str, letter: Letter) -> None:
        """Send what a page handed in to every other connected super-peer taking mail (it
        stores or applies it, and passes it to no further super-peer)."""
        for peer_id, conn in list(self.peers.items()):
            caps = self.caps.get(conn, frozenset())
            if conn == from_conn or peer_id == letter.recipient:
                continue
            if SUPERPEER_CAP not in caps or MAIL_CAP not in caps:
                continue
            if self.send(conn, MailFrame(to=letter.recipient, msg=letter.envelope)):
                self.stats.replicated += 1

    def _forward_or_store(self, letter: Letter, now: int) -> None:
        conn = self._conn_with(letter.recipient, SHARD_CAP)
        if conn is not None and self.send(conn, ShardMsg(to=letter.recipient, msg=letter.envelope)):
            self.stats.forwarded += 1
            return
        self._store_later(letter, now)

    def _take_ack(self, letter: Letter, now: int) -> None:
        if self.pending >= MAX_PENDING_WRITES:
            self._refused(MAILBOX_BUSY, "too many messages waiting for the database")
            return
        self.pending += 1
        self.spawn(self._ack(letter, now), "mailbox-ack")

    async def _ack(self, letter: Letter, now: int) -> None:
        try:
            # The mails the ack names: for its signer, written by the peer it goes to.
            deleted = await db_sync_to_async(db.mailbox_acked)(
                recipient=letter.signer, signer=letter.recipient, mail_ids=list(letter.acked)
            )
        finally:
            self.pending -= 1
        self.stats.acked += deleted
        conn = self._conn_with(letter.recipient, MAIL_CAP)
        if conn is not None and self.send(
            conn, MailFrame(to=letter.recipient, msg=letter.envelope)
        ):
            self.stats.forwarded += 1
            return
        self._store_later(letter, now)

    def _store_later(self, letter: Letter, now: int) -> None:
        if self.pending >= MAX_PENDING_WRITES:
            self._refused(MAILBOX_BUSY, "too many messages waiting for the database")
            return
        self.pending += 1
        self.spawn(self._store(letter, now), "mailbox-store")

    def _refused_by(self, conn_id: str, exc: MailboxRefused) -> None:
        self._refused(exc.code, exc.message)
        if exc.violation:
            self.violation(conn_id, exc.code, exc.message)

    def _refused(self, code: str, message: str) -> None:
        self.stats.refused[code] += 1
        logger.info("mailbox refused a message: %s (%s)", code, message)

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
        """Send what waits for ``peer_id`` on its open connection, by its capabilities:
        shard messages and acks are deleted once sent, mails stay until acked (each is
        sent once per connection)."""
        if peer_id in self._delivering:
            self._again.add(peer_id)
            return 0
        self._delivering.add(peer_id)
        sent_in_all = 0
        try:
            while (conn := self.peers.get(peer_id)) is not None:
                caps = self.caps.get(conn, frozenset())
                kinds = [KIND_SHARD] if SHARD_CAP in caps else []
                kinds += [KIND_MAIL, KIND_ACK] if MAIL_CAP in caps else []
                rows = await db_sync_to_async(db.mailbox_rows)(
                    peer_id, kinds=kinds, now=self.clock(), limit=DELIVER_BATCH
                )
                sent_once = self.sent.setdefault(conn, set())
                handed: list[int] = []
                count = 0
                for row in rows:
                    if self.peers.get(peer_id) != conn:
                        break
                    if row.kind == KIND_MAIL and (row.signer, row.message_id) in sent_once:
                        continue
                    frame: ContentFrame
                    if row.kind == KIND_SHARD:
                        frame = ShardMsg(to=peer_id, msg=row.envelope)
                    else:
                        frame = MailFrame(to=peer_id, msg=row.envelope)
                    if not self.send(conn, frame):
                        break
                    count += 1
                    if row.kind == KIND_MAIL:
                        sent_once.add((row.signer, row.message_id))
                    else:
                        handed.append(row.pk)
                if handed:
                    await db_sync_to_async(db.mailbox_delete_rows)(handed)
                self.stats.delivered += count
                sent_in_all += count
                more = len(rows) == DELIVER_BATCH and bool(handed)  # deleted: read again
                if not more and peer_id not in self._again:
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
