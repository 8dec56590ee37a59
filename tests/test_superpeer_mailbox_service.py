"""The real super-peer service taking shard messages from in-memory connections: it
stores what is for a peer who is away, delivers it when that peer connects with the
``shard`` capability (and deletes it), forwards at once to a connected one, and counts a
bad message as a violation of the connection that sent it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from peers.protocol.shard import parse_message
from peers.superpeer.config import SUPERPEER_CAPS, MailboxLimits
from peers.superpeer.mailbox import message_id
from peers.superpeer.models import MailboxMessage
from peers.superpeer.service import SuperPeerService, now_ms
from tests.support import shard_letters as sl
from tests.support.superpeer import offline_config
from tests.support.superpeer_pages import PAGE_CAPS, Page, settle

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module", autouse=True)
async def _close_thread_connections() -> Any:
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()
    await asyncio.to_thread(connections.close_all)


@sync_to_async
def held() -> list[tuple[str, str, str]]:
    return list(MailboxMessage.objects.values_list("recipient", "sender", "message_id"))


def make_service(tmp_path: Path, **limits: Any) -> SuperPeerService:
    config = offline_config(tmp_path, use_channel_layer=False, mailbox=MailboxLimits(**limits))
    service = SuperPeerService(config, key=sl.ed("super-peer"))
    service.node = service.make_node(now_ms())
    return service


def test_the_super_peer_says_it_takes_shard_messages() -> None:
    assert "shard" in SUPERPEER_CAPS


async def test_a_share_for_a_guardian_who_is_away_is_held_then_delivered_and_deleted(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    now = now_ms()
    envelope = sl.share("owner", "guardian", now)
    owner.send(sl.pid("guardian"), envelope)
    owner.send(sl.pid("guardian"), envelope)  # sent again (e.g. to each super-peer): one row
    await settle(service, owner)
    assert await held() == [(sl.pid("guardian"), owner.peer_id, message_id(envelope)[0])]
    assert service.mailbox.stats.stored == 1
    assert service.mailbox.stats.duplicates == 1

    guardian = Page(service, "guardian", PAGE_CAPS)
    await settle(service, owner, guardian)
    assert [f.to for f in guardian.received] == [guardian.peer_id]
    share = parse_message(guardian.received[0].msg, now=now_ms())
    assert share.kind == "share"
    assert share.envelope == envelope
    assert await held() == []
    assert service.mailbox.stats.delivered == 1

    # Connected now: its receipt to the owner, and the owner's next share, go straight on.
    guardian.send(owner.peer_id, sl.receipt("guardian", envelope, now_ms()))
    second = sl.share("owner", "guardian", now_ms(), n=2)
    owner.send(guardian.peer_id, second)
    await settle(service, owner, guardian)
    assert [parse_message(f.msg, now=now_ms()).kind for f in owner.received] == ["receipt"]
    assert [f.msg for f in guardian.received[1:]] == [second]
    assert service.mailbox.stats.forwarded == 2
    assert await held() == []


async def test_a_peer_without_the_shard_capability_is_not_sent_its_mail(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    owner.send(sl.pid("old-page"), sl.share("owner", "old-page", now_ms()))
    await settle(service, owner)
    old_page = Page(service, "old-page", ("gossip", "pex"))
    await settle(service, owner, old_page)
    assert old_page.received == []
    assert len(await held()) == 1, "kept for when it connects with the capability"


async def test_mail_waits_through_a_disconnect_and_expired_mail_is_pruned(tmp_path: Path) -> None:
    service = make_service(tmp_path, ttl_ms=60_000)
    owner = Page(service, "owner", PAGE_CAPS)
    guardian = Page(service, "guardian", PAGE_CAPS)
    await settle(service, owner, guardian)
    guardian.leave()
    owner.send(guardian.peer_id, sl.share("owner", "guardian", now_ms()))
    await settle(service, owner)
    assert len(await held()) == 1, "the guardian left: held, not forwarded"
    await service.mailbox.upkeep()
    assert len(await held()) == 1, "not expired yet"
    service.mailbox.clock = lambda: now_ms() + 61_000
    await service.mailbox.upkeep()
    assert await held() == []
    assert service.mailbox.stats.pruned == 1


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (lambda now: sl.unsigned(sl.share("owner", "guardian", now)), "bad_envelope"),
        (lambda now: sl.forged(sl.share("owner", "guardian", now)), "bad_signature"),
        (lambda now: sl.oversized(sl.share("owner", "guardian", now)), "shard_too_large"),
        (lambda now: sl.malformed("owner", "guardian", now), "bad_shard"),
    ],
    ids=["unsigned", "forged", "oversized", "malformed"],
)
async def test_a_bad_shard_message_is_a_violation_and_never_stored(
    tmp_path: Path, bad: Any, code: str
) -> None:
    service = make_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    owner.send(sl.pid("guardian"), bad(now_ms()))  # the codec takes any map: the shard layer checks
    await settle(service, owner)
    assert service.mailbox.stats.refused == {code: 1}
    assert service.node is not None
    assert service.node.stats.dropped.get(code) == 1, "counted as the connection's violation"
    [conn] = [c for c in service.node.mesh.conns.values() if c.peer_id == owner.peer_id]
    assert len(conn.violations) == 1
    assert await held() == []


async def test_expired_and_over_quota_messages_are_dropped_and_counted_not_violations(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path, per_sender=1)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    now = now_ms()
    owner.send(sl.pid("guardian"), sl.share("owner", "guardian", now - 40 * sl.DAY))
    owner.send(sl.pid("guardian"), sl.share("owner", "guardian", now, n=1))
    owner.send(sl.pid("guardian"), sl.share("owner", "guardian", now, n=2))
    owner.send(sl.pid("someone"), sl.share("owner", "guardian", now, n=3))
    await settle(service, owner)
    assert service.mailbox.stats.refused == {"expired": 1, "over_quota": 1, "wrong_recipient": 1}
    assert len(await held()) == 1
    assert service.node is not None
    [conn] = [c for c in service.node.mesh.conns.values() if c.peer_id == owner.peer_id]
    assert conn.violations == []


async def test_a_shard_message_for_the_super_peer_itself_is_refused_not_guardian(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    owner.send(service.peer_id, sl.share("owner", "super-peer", now_ms()))
    await settle(service, owner)
    assert service.mailbox.stats.refused == {"not_guardian": 1}
    assert await held() == []
