"""The real super-peer service taking mail from in-memory connections (pages stand in as
Python peers; two services linked to each other stand in for two super-peers): a mail is
forwarded to a connected recipient and kept until acked, delivered to a recipient that
connects, passed once to the other super-peer; an ack deletes it, goes on to the sender or
waits for it; bad mail is a violation and never stored; the key directory answers for a
peer who is away."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from peers.protocol.keywrap import verify_key_announcement
from peers.protocol.mail import parse_mail
from peers.superpeer.config import SUPERPEER_CAPS, MailboxLimits
from peers.superpeer.models import KeyAnnouncement, MailboxMessage
from peers.superpeer.service import SuperPeerService, now_ms
from tests.support import mail_letters as ml
from tests.support import shard_letters as sl
from tests.support.superpeer import offline_config
from tests.support.superpeer_pages import MAIL_PAGE_CAPS, Link, Page, settle, settle_all

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module", autouse=True)
async def _close_thread_connections() -> Any:
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()
    await asyncio.to_thread(connections.close_all)


@sync_to_async
def held() -> list[tuple[str, str, str]]:
    return list(
        MailboxMessage.objects.order_by("id").values_list("kind", "recipient", "message_id")
    )


def make_service(tmp_path: Path, label: str = "super-peer", **limits: Any) -> SuperPeerService:
    config = offline_config(
        tmp_path / label, use_channel_layer=False, mailbox=MailboxLimits(**limits)
    )
    service = SuperPeerService(config, key=sl.ed(label))
    service.node = service.make_node(now_ms())
    return service


async def next_ms() -> None:
    start = now_ms()
    while now_ms() == start:
        await asyncio.sleep(0.001)


def kinds(page: Page) -> list[str]:
    return [parse_mail(f.msg, now=now_ms()).kind for f in page.mail]


def test_the_super_peer_says_it_takes_mail() -> None:
    assert {"superpeer", "mail", "shard"} <= set(SUPERPEER_CAPS)


async def test_mail_for_a_peer_who_is_away_waits_until_acked_and_the_ack_reaches_the_sender(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path)
    alice = Page(service, "alice", MAIL_PAGE_CAPS)
    await settle(service, alice)
    now = now_ms()
    envelope = ml.mail("alice", "bob", now, label="m1")
    alice.send_mail(ml.pid("bob"), envelope)
    alice.send_mail(ml.pid("bob"), envelope)  # sent again: one row
    await settle(service, alice)
    assert await held() == [("mail", ml.pid("bob"), ml.mail_id("m1"))]
    assert (service.mailbox.stats.stored, service.mailbox.stats.duplicates) == (1, 1)

    bob = Page(service, "bob", MAIL_PAGE_CAPS)
    await settle(service, alice, bob)
    assert [f.msg for f in bob.mail] == [envelope]
    await service.mailbox.upkeep()
    await settle(service, alice, bob)
    assert len(bob.mail) == 1, "sent once on a connection, however often the upkeep runs"
    assert len(await held()) == 1, "a mail stays until its recipient acks it"

    # Bob comes back on a new connection before acking: it is sent again.
    bob.leave()
    bob = Page(service, "bob", MAIL_PAGE_CAPS)
    await settle(service, alice, bob)
    assert [f.msg for f in bob.mail] == [envelope]

    alice.leave()
    bob.send_mail(ml.pid("alice"), ml.ack("bob", "alice", ["m1"], now_ms()))
    await settle(service, bob)
    assert [k for k, _, _ in await held()] == ["ack"], "the mail deleted, the ack waits"
    assert service.mailbox.stats.acked == 1
    alice = Page(service, "alice", MAIL_PAGE_CAPS)
    await settle(service, alice, bob)
    assert kinds(alice) == ["ack"]
    assert parse_mail(alice.mail[0].msg, now=now_ms()).ids == (ml.mail_id("m1"),)  # type: ignore[union-attr]
    assert await held() == [], "an ack is deleted once handed over"


async def test_mail_for_a_connected_peer_goes_at_once_and_is_also_kept(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    alice = Page(service, "alice", MAIL_PAGE_CAPS)
    bob = Page(service, "bob", MAIL_PAGE_CAPS)
    await settle(service, alice, bob)
    alice.send_mail(ml.pid("bob"), ml.mail("alice", "bob", now_ms(), label="m1"))
    await settle(service, alice, bob)
    assert kinds(bob) == ["mail"]
    assert service.mailbox.stats.forwarded == 1
    assert len(await held()) == 1
    await service.mailbox.upkeep()
    await settle(service, alice, bob)
    assert len(bob.mail) == 1, "forwarded counts as sent on this connection"
    # Bob's ack goes straight to Alice (connected) and is not kept
    bob.send_mail(ml.pid("alice"), ml.ack("bob", "alice", ["m1"], now_ms()))
    await settle(service, alice, bob)
    assert kinds(alice) == ["ack"]
    assert await held() == []


async def test_a_page_without_the_mail_capability_is_sent_no_mail(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    alice = Page(service, "alice", MAIL_PAGE_CAPS)
    await settle(service, alice)
    alice.send_mail(ml.pid("bob"), ml.mail("alice", "bob", now_ms()))
    await settle(service, alice)
    old_bob = Page(service, "bob", ("gossip", "pex", "shard"))
    await settle(service, alice, old_bob)
    assert old_bob.mail == []
    assert len(await held()) == 1


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (lambda now: ml.unsigned(ml.mail("alice", "bob", now)), "bad_envelope"),
        (lambda now: ml.forged(ml.mail("alice", "bob", now)), "bad_signature"),
        (
            lambda now: ml.resigned(ml.mail("alice", "bob", now), "alice", pad="x" * 4000),
            "mail_too_large",
        ),
        (lambda now: ml.resigned(ml.mail("alice", "bob", now), "alice", kind="x"), "bad_mail"),
        (lambda now: ml.resigned(ml.mail("alice", "bob", now), "mallory"), "peer_mismatch"),
    ],
    ids=["unsigned", "forged", "too-large", "bad-mail", "signer"],
)
async def test_bad_mail_is_a_violation_never_stored_nor_replicated(
    tmp_path: Path, bad: Any, code: str
) -> None:
    one, two = make_service(tmp_path, "sp-1"), make_service(tmp_path, "sp-2")
    link = Link(one, two)
    alice = Page(one, "alice", MAIL_PAGE_CAPS)
    await settle_all([one, two], link, alice)
    alice.send_mail(ml.pid("bob"), bad(now_ms()))
    await settle_all([one, two], link, alice)
    assert one.mailbox.stats.refused == {code: 1}
    assert one.node is not None
    assert one.node.stats.dropped.get(code) == 1, "counted as the connection's violation"
    assert (one.mailbox.stats.replicated, two.mailbox.stats.received) == (0, 0)
    assert await held() == []


async def test_expired_over_quota_and_misaddressed_mail_is_refused_not_a_violation(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path, per_sender=1)
    alice = Page(service, "alice", MAIL_PAGE_CAPS)
    await settle(service, alice)
    now = now_ms()
    alice.send_mail(ml.pid("bob"), ml.mail("alice", "bob", now - 8 * sl.DAY, label="old"))
    alice.send_mail(ml.pid("bob"), ml.mail("alice", "bob", now, label="1"))
    alice.send_mail(ml.pid("bob"), ml.mail("alice", "bob", now, label="2"))
    alice.send_mail(ml.pid("carol"), ml.mail("alice", "bob", now, label="3"))
    alice.send_mail(service.peer_id, ml.mail("alice", "super-peer", now, label="4"))
    await settle(service, alice)
    assert service.mailbox.stats.refused == {
        "expired": 1,
        "over_quota": 1,
        "wrong_recipient": 2,
    }
    assert len(await held()) == 1
    assert service.node is not None
    [conn] = [c for c in service.node.mesh.conns.values() if c.peer_id == alice.peer_id]
    assert conn.violations == []


async def test_two_super_peers_each_take_a_mail_once_and_the_ack_reaches_both(
    tmp_path: Path,
) -> None:
    """Alice hands a mail to super-peer 1 only; it passes it to super-peer 2 (which passes
    it no further) and super-peer 2 forwards it to Bob, connected there. Bob's ack, handed
    to super-peer 2 only, reaches super-peer 1 too and from there Alice."""
    one, two = make_service(tmp_path, "sp-1"), make_service(tmp_path, "sp-2")
    link = Link(one, two)
    alice = Page(one, "alice", MAIL_PAGE_CAPS)
    bob = Page(two, "bob", MAIL_PAGE_CAPS)
    movers = (link, alice, bob)
    await settle_all([one, two], *movers)
    envelope = ml.mail("alice", "bob", now_ms(), label="m1")
    alice.send_mail(ml.pid("bob"), envelope)
    await settle_all([one, two], *movers)
    assert (one.mailbox.stats.replicated, two.mailbox.stats.replicated) == (1, 0)
    assert two.mailbox.stats.received == 1, "super-peer 2 took the copy"
    assert two.mailbox.stats.forwarded == 1
    assert [f.msg for f in bob.mail] == [envelope]
    # one database here: both wrote the same row, which is kept once
    assert one.mailbox.stats.stored + two.mailbox.stats.stored == 1
    assert one.mailbox.stats.duplicates + two.mailbox.stats.duplicates == 1
    assert len(await held()) == 1

    bob.send_mail(ml.pid("alice"), ml.ack("bob", "alice", ["m1"], now_ms()))
    await settle_all([one, two], *movers)
    assert (two.mailbox.stats.replicated, one.mailbox.stats.replicated) == (1, 1)
    assert one.mailbox.stats.forwarded == 1, "super-peer 1 gave the ack to Alice"
    assert kinds(alice) == ["ack"]
    assert two.mailbox.stats.acked + one.mailbox.stats.acked == 1
    # super-peer 2 does not have Alice: it keeps the ack for her (the one database)
    assert [k for k, _, _ in await held()] == ["ack"]


async def test_mail_from_a_super_peer_is_not_passed_to_another(tmp_path: Path) -> None:
    one, two, three = (make_service(tmp_path, f"sp-{i}") for i in (1, 2, 3))
    links = (Link(one, two, "1-2"), Link(two, three, "2-3"))
    alice = Page(one, "alice", MAIL_PAGE_CAPS)
    await settle_all([one, two, three], *links, alice)
    alice.send_mail(ml.pid("bob"), ml.mail("alice", "bob", now_ms()))
    await settle_all([one, two, three], *links, alice)
    assert [s.mailbox.stats.received for s in (one, two, three)] == [1, 1, 0]
    assert [s.mailbox.stats.replicated for s in (one, two, three)] == [1, 0, 0]


# --- the key directory ---


@sync_to_async
def keys_held() -> list[tuple[str, int]]:
    return list(KeyAnnouncement.objects.values_list("peer_id", "created_at_ms"))


async def test_the_super_peer_answers_a_key_request_for_a_peer_who_is_away(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path)
    bob = Page(service, "bob", MAIL_PAGE_CAPS)
    alice = Page(service, "alice", MAIL_PAGE_CAPS)
    await settle(service, alice, bob)
    now = now_ms()
    bob.publish("xkey", ml.announcement("bob", now - 60_000))
    await settle(service, alice, bob)
    bob.publish("xkey", ml.announcement("bob", now - 120_000))  # older: not kept
    await settle(service, alice, bob)
    assert await keys_held() == [(ml.pid("bob"), now - 60_000)]

    # Bob is here: he answers for himself, the super-peer stays quiet.
    alice.publish("xkey-req", {"peer_id": ml.pid("bob")})
    await settle(service, alice, bob)
    assert (service.keys.stats.requests, service.keys.stats.answered) == (1, 0)

    bob.leave()
    alice.gossip.clear()
    await next_ms()  # the same request in the same ms would be the same gossip message
    alice.publish("xkey-req", {"peer_id": ml.pid("bob")})
    await settle(service, alice)
    answers = [m for m in alice.gossip if m.topic == "xkey"]
    assert [m.origin for m in answers] == [service.peer_id]
    key = verify_key_announcement(answers[0].data, now=now_ms())
    assert (key.peer_id, key.created_at) == (ml.pid("bob"), now - 60_000)
    # asked again at once: heard, but not answered again within 30 s
    await next_ms()
    alice.publish("xkey-req", {"peer_id": ml.pid("bob")})
    await settle(service, alice)
    assert (service.keys.stats.requests, service.keys.stats.answered) == (3, 1)
    # a peer whose key it never heard of: nothing to say
    alice.publish("xkey-req", {"peer_id": ml.pid("carol")})
    await settle(service, alice)
    assert (service.keys.stats.answered, service.keys.stats.unknown) == (1, 1)
    # 30 s later it answers again
    service.keys.answered = {p: t - 30_000 for p, t in service.keys.answered.items()}
    await next_ms()
    alice.publish("xkey-req", {"peer_id": ml.pid("bob")})
    await settle(service, alice)
    assert service.keys.stats.answered == 2


async def test_a_forged_key_announcement_is_neither_kept_nor_relayed(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    bob = Page(service, "bob", MAIL_PAGE_CAPS)
    await settle(service, bob)
    forged = ml.announcement("bob", now_ms())
    forged["body"]["created_at"] += 1
    bob.publish("xkey", forged)
    bob.publish("xkey-req", {"peer_id": "bob"})
    await settle(service, bob)
    assert await keys_held() == []
    assert service.node is not None
    dropped = service.node.stats.dropped
    assert dropped.get("gossip_xkey_bad_signature") == 1
    assert dropped.get("gossip_xkey-req_bad_body") == 1
