"""The super-peer in the election of supernodes (docs/protocol.md "Supernodes").

A super-peer is always eligible: it publishes its advert (``superpeer`` true) when its
:class:`~peers.protocol.supernode.SupernodeView` says so, keeps the adverts it hears (the
node's gossip check for topic ``supernode``), and floods its own live advert again when a
peer connects, at most every 5 s, so that a newcomer counts it at once rather than at the next
republish (the others drop the copy as a replay, which is not held against anyone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.envelope import JsonObject
from peers.protocol.errors import ProtocolError
from peers.protocol.supernode import (
    MIN_GAP_MS,
    TOPIC_SUPERNODE,
    LocalState,
    SupernodeView,
    sign_advert,
)

logger = logging.getLogger(__name__)

Publish = Callable[[str, object], None]
Local = Callable[[int], LocalState]  # this super-peer's numbers at ``now``
MAX_SLEEP_S = 5.0


class SuperPeerSupernodes:
    def __init__(
        self,
        peer_id: str,
        key: Ed25519PrivateKey,
        community: str,
        *,
        publish: Publish,
        local: Local,
        clock: Callable[[], int],
    ) -> None:
        self.peer_id = peer_id
        self.key = key
        self.publish = publish
        self.local = local
        self.clock = clock
        self.view = SupernodeView(community=community, now=clock(), self_id=peer_id)
        self.own: JsonObject | None = None  # the last advert published
        self.handed_at = 0
        self.published = 0

    def check(self, data: object, now: int) -> None:
        """The node's gossip check: an advert that does not parse or is not newer is dropped."""
        self.view.accept(data, now)

    def tick(self) -> int:
        """Publish this super-peer's advert if due; when to tick again (ms)."""
        now = self.clock()
        self.view.set_local(self.local(now))
        body = self.view.advert_due(now)
        if body is not None:
            envelope = sign_advert(self.key, body)
            try:
                self.view.accept(envelope, now)
            except ProtocolError as exc:  # not expected: it was signed just now
                logger.warning("own supernode advert refused: %s", exc.code)
                return self.view.next_deadline(now)
            self.own = envelope
            self.published += 1
            self.publish(TOPIC_SUPERNODE, envelope)
        return self.view.next_deadline(now)

    def peer_opened(self) -> None:
        """A peer connected: flood the live advert again (at most every 5 s)."""
        now = self.clock()
        own = self.own
        if own is None or now - self.handed_at < MIN_GAP_MS:
            return
        body = own.get("body")
        if isinstance(body, dict) and int(body.get("expires_at", 0)) > now:
            self.handed_at = now
            self.publish(TOPIC_SUPERNODE, own)

    def elected(self) -> tuple[str, ...]:
        return self.view.elected(self.clock())

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            deadline = self.tick()
            wait = min(MAX_SLEEP_S, max(0.5, (deadline - self.clock()) / 1000))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=wait)
