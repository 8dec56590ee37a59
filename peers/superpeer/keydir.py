"""The key directory: X25519 key announcements kept for peers who are away.

docs/superpeer.md "Key directory". A page seals mail to its recipient's X25519 key, which it
learns from the recipient's ``swarm/xkey/v1`` announcement on the gossip topic ``xkey``;
a page that is away cannot answer an ``xkey-req``. The super-peer keeps the newest verified
announcement heard of each peer (model ``KeyAnnouncement``, shared by the super-peers that
share the database) and answers ``xkey-req {peer_id}`` for a peer that is not connected to it
by publishing that announcement on ``xkey`` (at most once per 30 s per peer id). A connected
peer answers for itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from peers.protocol.encoding import PEER_ID_RE
from peers.protocol.errors import BAD_BODY, ProtocolError
from peers.protocol.keywrap import verify_key_announcement
from shared.db import db_sync_to_async

from . import db

logger = logging.getLogger(__name__)

XKEY_TOPIC = "xkey"
XKEY_REQ_TOPIC = "xkey-req"
ANSWER_EVERY_MS = 30_000  # one answer per peer id in this long (pages answer as often)
# A page announces the same key every 4 minutes: its row is marked heard at most this often.
HEARD_EVERY_MS = 3_600_000
MAX_PENDING = 256  # database writes and reads waiting; more are dropped (counted as busy)
MAX_REMEMBERED = 20_000  # peer ids remembered in memory (forgotten all at once beyond)

Publish = Callable[[str, object], None]  # (topic, data): gossip
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


def check_key_request(data: Any, now: int) -> None:
    """The gossip check of ``xkey-req``: exactly ``{peer_id}`` (``bad_body``)."""
    if not isinstance(data, dict) or set(data) != {"peer_id"}:
        raise ProtocolError(BAD_BODY, "xkey-req gossip is {peer_id}")
    if not isinstance(data["peer_id"], str) or not PEER_ID_RE.fullmatch(data["peer_id"]):
        raise ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id")


def check_key_announcement(data: Any, now: int) -> None:
    """The gossip check of ``xkey``: a verified announcement (its codes)."""
    verify_key_announcement(data, now=now)


@dataclass
class KeyDirectoryStats:
    heard: int = 0  # announcements delivered by gossip
    stored: int = 0  # newer than the one held (or the first): written
    requests: int = 0  # xkey-req delivered by gossip
    answered: int = 0  # requests answered with a held announcement
    unknown: int = 0  # requests for a peer whose key is not held
    pruned: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by code (and "busy")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k != "refused"}
        out["refused"] = dict(self.refused)
        return out


class KeyDirectory:
    def __init__(
        self,
        peer_id: str,
        *,
        publish: Publish,
        spawn: Spawn,
        connected: Callable[[str], bool],
        clock: Callable[[], int],
        ttl_ms: int,
    ) -> None:
        self.peer_id = peer_id
        self.publish = publish
        self.spawn = spawn
        self.connected = connected
        self.clock = clock
        self.ttl_ms = ttl_ms
        self.known: dict[str, tuple[int, int]] = {}  # peer id -> (created_at, written at)
        self.answered: dict[str, int] = {}  # peer id -> when last answered (or looked up)
        self.pending = 0
        self.stats = KeyDirectoryStats()

    def heard(self, data: object, now: int) -> None:
        """An ``xkey`` gossip message (checked before delivery; checked again here)."""
        self.stats.heard += 1
        try:
            announcement = verify_key_announcement(data, now=now)
        except ProtocolError as exc:
            self.stats.refused[exc.code] += 1
            return
        peer_id, created_at = announcement.peer_id, announcement.created_at
        if peer_id == self.peer_id:
            return
        known = self.known.get(peer_id)
        if known is not None and (
            known[0] > created_at or (known[0] == created_at and now - known[1] < HEARD_EVERY_MS)
        ):
            return
        if self.pending >= MAX_PENDING:
            self.stats.refused["busy"] += 1
            return
        if len(self.known) >= MAX_REMEMBERED:
            self.known.clear()
        self.known[peer_id] = (created_at, now)
        self.pending += 1
        self.spawn(self._put(peer_id, announcement.envelope, created_at, now), "keys-put")

    async def _put(self, peer_id: str, envelope: Any, created_at: int, now: int) -> None:
        try:
            if await db_sync_to_async(db.key_put)(peer_id, envelope, created_at, now=now):
                self.stats.stored += 1
        finally:
            self.pending -= 1

    def asked(self, data: object, now: int) -> None:
        """An ``xkey-req`` gossip message: answered for a peer that is away."""
        self.stats.requests += 1
        try:
            check_key_request(data, now)
        except ProtocolError as exc:
            self.stats.refused[exc.code] += 1
            return
        assert isinstance(data, dict)
        peer_id: str = data["peer_id"]
        if peer_id == self.peer_id or self.connected(peer_id):
            return
        last = self.answered.get(peer_id)
        if last is not None and now - last < ANSWER_EVERY_MS:
            return
        if self.pending >= MAX_PENDING:
            self.stats.refused["busy"] += 1
            return
        if len(self.answered) >= MAX_REMEMBERED:
            self.answered.clear()
        self.answered[peer_id] = now
        self.pending += 1
        self.spawn(self._answer(peer_id), "keys-answer")

    async def _answer(self, peer_id: str) -> None:
        try:
            envelope = await db_sync_to_async(db.key_get)(peer_id)
        finally:
            self.pending -= 1
        if envelope is None:
            self.stats.unknown += 1
            return
        if self.connected(peer_id):  # it came while the read ran: it answers for itself
            return
        self.publish(XKEY_TOPIC, envelope)
        self.stats.answered += 1

    async def upkeep(self) -> None:
        """Forget answers older than the answer interval; prune keys not heard for long."""
        now = self.clock()
        self.answered = {p: t for p, t in self.answered.items() if now - t < ANSWER_EVERY_MS}
        self.stats.pruned += await db_sync_to_async(db.key_prune)(before=now - self.ttl_ms)
