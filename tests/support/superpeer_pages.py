"""Python peers standing in for pages on in-memory connections to a real
:class:`SuperPeerService` (no network): frames go both ways through its node, its outbox
is a tap, and :func:`settle` also finishes its database work."""

from __future__ import annotations

import asyncio
from typing import Any

from peers.protocol.gossip import GossipMessage
from peers.protocol.node import SwarmNode
from peers.protocol.node_actions import Close, ContentReceived, Deliver, Send
from peers.protocol.ticket import make_ticket
from peers.protocol.wire import Mail, ShardMsg
from peers.superpeer.service import SuperPeerService, now_ms
from tests.support import shard_letters as sl

PAGE_CAPS = ("gossip", "pex", "shard")
MAIL_PAGE_CAPS = ("gossip", "pex", "mail")


class Tap:
    """Stands in for the service's outbox of one connection: keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def put(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True


class Page:
    """A Python peer (a page's stand-in) on one in-memory connection to the service."""

    def __init__(self, service: SuperPeerService, label: str, caps: tuple[str, ...]) -> None:
        now = now_ms()
        key = sl.ed(label)
        self.peer_id = sl.pid(label)
        self.service = service
        self.conn_id = f"conn-{label}"
        ticket = make_ticket(key, community="main", now=now, caps=list(caps))
        self.node = SwarmNode(
            peer_id=self.peer_id,
            community="main",
            private_key=key,
            ticket=ticket,
            caps=caps,
            now=now,
        )
        self.tap = Tap()
        self.received: list[ShardMsg] = []
        self.mail: list[Mail] = []  # mail frames that reached this page
        self.gossip: list[GossipMessage] = []
        self.closed = False
        service.outboxes[self.conn_id] = self.tap  # type: ignore[assignment]
        assert service.node is not None
        service.node.opened(self.conn_id, self.peer_id, False, now)
        self.node.opened(self.conn_id, service.peer_id, True, now)

    def send(self, to: str, envelope: dict[str, Any]) -> None:
        assert self.node.send_content(self.conn_id, ShardMsg(to=to, msg=envelope))

    def send_mail(self, to: str, envelope: dict[str, Any]) -> None:
        assert self.node.send_content(self.conn_id, Mail(to=to, msg=envelope))

    def publish(self, topic: str, data: object) -> None:
        self.node.publish(topic, data, now_ms())

    def leave(self) -> None:
        assert self.service.node is not None
        now = now_ms()
        self.service.node.closed(self.conn_id, now)
        self.service.pump()
        self.service.outboxes.pop(self.conn_id, None)
        self.closed = True

    def move(self) -> bool:
        """Carry frames both ways once; whether anything moved."""
        service_node = self.service.node
        assert service_node is not None
        moved = False
        if self.closed:
            return False
        now = now_ms()
        for action in self.node.take_actions():
            if isinstance(action, Send):
                service_node.receive(self.conn_id, action.data, now)
                moved = True
            elif isinstance(action, ContentReceived) and isinstance(action.frame, ShardMsg):
                self.received.append(action.frame)
            elif isinstance(action, ContentReceived) and isinstance(action.frame, Mail):
                self.mail.append(action.frame)
            elif isinstance(action, Deliver):
                self.gossip.append(action.message)
            elif isinstance(action, Close):
                self.leave()
                return True
        self.service.pump()
        sent, self.tap.sent = self.tap.sent, []
        for data in sent:
            self.node.receive(self.conn_id, data, now)
            moved = True
        return moved


class Link:
    """Two services connected to each other on one in-memory connection (super-peer to
    super-peer): each one's outbox for it is a tap whose frames the other receives."""

    def __init__(self, a: SuperPeerService, b: SuperPeerService, name: str = "link") -> None:
        self.a, self.b = a, b
        self.conn_id = f"conn-{name}"
        self.taps = (Tap(), Tap())
        now = now_ms()
        a.outboxes[self.conn_id] = self.taps[0]  # type: ignore[assignment]
        b.outboxes[self.conn_id] = self.taps[1]  # type: ignore[assignment]
        assert a.node is not None
        assert b.node is not None
        a.node.opened(self.conn_id, b.peer_id, True, now)
        b.node.opened(self.conn_id, a.peer_id, False, now)

    def move(self) -> bool:
        now = now_ms()
        moved = False
        for tap, target in ((self.taps[0], self.b), (self.taps[1], self.a)):
            sent, tap.sent = tap.sent, []
            assert target.node is not None
            for data in sent:
                target.node.receive(self.conn_id, data, now)
                moved = True
        self.a.pump()
        self.b.pump()
        return moved


async def settle(service: SuperPeerService, *pages: Page) -> None:
    """Move frames and finish the service's database work until all is quiet."""
    await settle_all([service], *pages)


async def settle_all(services: list[SuperPeerService], *movers: Page | Link) -> None:
    """:func:`settle` for several services and the pages and links between them."""
    for _ in range(50):
        for service in services:
            service.pump()
        moved = any([mover.move() for mover in movers])
        tasks = [t for service in services for t in service._tasks]
        if tasks:
            await asyncio.gather(*tasks)
        elif not moved:
            return
    raise AssertionError("the pages and the services did not settle")
