"""The super-peer's mailbox for mail (swarm/mail/v1): what a mail or ack must be to be
taken, then the store in PostgreSQL: idempotency by id, quotas, expiry, what an ack deletes,
and the key directory's rows (docs/superpeer.md "Mailboxes", "Key directory")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from peers.superpeer import db
from peers.superpeer.config import MailboxLimits
from peers.superpeer.mailbox import (
    Letter,
    MailboxRefused,
    check_mail_letter,
    check_shard_letter,
    message_id,
)
from peers.superpeer.models import KeyAnnouncement, MailboxMessage
from tests.support import mail_letters as ml
from tests.support import shard_letters as sl

NOW = 1_800_000_000_000
DAY = ml.DAY
TTL = 7 * DAY
ALICE, BOB = "alice", "bob"


def letter(
    envelope: dict[str, Any], to: str, *, sender: str | None = None, now: int = NOW
) -> Letter:
    return check_mail_letter(
        ml.pid(to), envelope, sender=ml.pid(sender or ALICE), now=now, ttl_ms=TTL
    )


def refusal(envelope: dict[str, Any], to: str = BOB) -> MailboxRefused:
    with pytest.raises(MailboxRefused) as caught:
        letter(envelope, to)
    return caught.value


# --- what is taken (no database) ---


def test_a_mail_is_taken_under_its_id_and_its_own_expiry() -> None:
    envelope = ml.mail(ALICE, BOB, NOW, label="m1", lifetime=DAY)
    taken = letter(envelope, BOB)
    _, size = message_id(envelope)
    assert (taken.kind, taken.recipient, taken.sender, taken.signer) == (
        "mail",
        ml.pid(BOB),
        ml.pid(ALICE),
        ml.pid(ALICE),
    )
    assert (taken.message_id, taken.size) == (ml.mail_id("m1"), size)
    assert taken.expires_at == NOW - 1000 + DAY
    short_ttl = check_mail_letter(
        ml.pid(BOB), envelope, sender=ml.pid(ALICE), now=NOW, ttl_ms=60_000
    )
    assert short_ttl.expires_at == NOW + 60_000, "capped by the mailbox's lifetime"
    relayed = letter(envelope, BOB, sender="another-super-peer")
    assert relayed.quota_party == ml.pid(ALICE), "a mail's quota counts its writer"


def test_an_ack_is_taken_for_the_mails_sender_with_the_ids_it_names() -> None:
    envelope = ml.ack(BOB, ALICE, ["m1", "m2"], NOW)
    taken = letter(envelope, ALICE, sender=BOB)
    assert (taken.kind, taken.recipient, taken.signer) == ("ack", ml.pid(ALICE), ml.pid(BOB))
    assert taken.message_id == message_id(envelope)[0]
    assert taken.acked == tuple(sorted([ml.mail_id("m1"), ml.mail_id("m2")]))
    assert taken.expires_at == NOW + TTL


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: ml.unsigned(ml.mail(ALICE, BOB, NOW)), "bad_envelope"),
        (lambda: {"v": 1, "body": "not a map"}, "bad_envelope"),
        (lambda: ml.forged(ml.mail(ALICE, BOB, NOW)), "bad_signature"),
        (lambda: ml.resigned(ml.mail(ALICE, BOB, NOW), ALICE, pad="x" * 4000), "mail_too_large"),
        (lambda: ml.resigned(ml.mail(ALICE, BOB, NOW), ALICE, to="bob"), "bad_recipient"),
        (lambda: ml.resigned(ml.mail(ALICE, BOB, NOW), ALICE, to=ml.pid(ALICE)), "bad_recipient"),
        (lambda: ml.resigned(ml.mail(ALICE, BOB, NOW), ALICE, kind="letter"), "bad_mail"),
        (lambda: ml.resigned(ml.ack(BOB, ALICE, ["b", "a"], NOW), BOB, ids=[]), "bad_mail"),
        (lambda: ml.resigned(ml.mail(ALICE, BOB, NOW), "mallory"), "peer_mismatch"),
    ],
    ids=[
        "unsigned",
        "not-an-envelope",
        "forged",
        "too-large",
        "bad-recipient",
        "to-is-from",
        "bad-kind",
        "ack-no-ids",
        "signer",
    ],
)
def test_a_bad_message_is_refused_as_a_violation(make: Any, code: str) -> None:
    envelope = make()
    body = envelope.get("body")
    to = ALICE if isinstance(body, dict) and body.get("kind") == "ack" else BOB
    refused = refusal(envelope, to)
    assert (refused.code, refused.violation) == (code, True)


def test_expired_future_and_misaddressed_messages_are_refused_but_not_violations() -> None:
    expired = ml.mail(ALICE, BOB, NOW - 8 * DAY)
    future = ml.resigned(ml.mail(ALICE, BOB, NOW), ALICE, created_at=NOW + 16_000)
    assert (refusal(expired).code, refusal(expired).violation) == ("expired", False)
    assert (refusal(future).code, refusal(future).violation) == ("not_yet_valid", False)
    misaddressed = refusal(ml.mail(ALICE, BOB, NOW), to="carol")
    assert (misaddressed.code, misaddressed.violation) == ("wrong_recipient", False)


# --- the store ---

pytestmark_db = pytest.mark.django_db


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def put(
    envelope: dict[str, Any],
    to: str = BOB,
    *,
    sender: str = ALICE,
    limits: MailboxLimits | None = None,
    now: int = NOW,
) -> db.PutResult:
    return db.mailbox_put(
        letter(envelope, to, sender=sender, now=now),
        limits or MailboxLimits(),
        received_by=ml.pid("super"),
        now=now,
    )


def rows() -> list[tuple[str, str, str, str]]:
    return list(
        MailboxMessage.objects.order_by("id").values_list(
            "kind", "recipient", "signer", "message_id"
        )
    )


@pytestmark_db
def test_a_mail_is_stored_once_by_its_id_whoever_hands_it_in() -> None:
    first = ml.mail(ALICE, BOB, NOW, label="m1")
    sealed_again = ml.mail(ALICE, BOB, NOW, label="m1", data="hello again")
    assert first["body"]["sealed"] != sealed_again["body"]["sealed"]
    assert put(first) == db.PutResult(stored=True)
    assert put(first) == db.PutResult(stored=False)
    assert put(sealed_again, sender="super-2") == db.PutResult(stored=False), "same id"
    [row] = MailboxMessage.objects.all()
    assert (row.kind, row.recipient, row.sender, row.signer, row.message_id) == (
        "mail",
        ml.pid(BOB),
        ml.pid(ALICE),
        ml.pid(ALICE),
        ml.mail_id("m1"),
    )
    assert row.envelope == first
    assert row.expires_at == at(NOW - 1000 + 7 * DAY)
    # another writer cannot take that id from Alice: its mail is a row of its own
    assert put(ml.mail("carol", BOB, NOW, label="m1"), sender="carol").stored
    assert len(rows()) == 2


@pytestmark_db
def test_quota_per_sender_counts_the_writer_wherever_it_handed_mail_in() -> None:
    limits = MailboxLimits(per_sender=2)
    results = [
        put(ml.mail(ALICE, BOB, NOW, label="m1"), limits=limits),
        put(ml.mail(ALICE, "carol", NOW, label="m2"), "carol", sender="super-2", limits=limits),
        put(ml.mail(ALICE, "dave", NOW, label="m3"), "dave", sender="super-3", limits=limits),
    ]
    assert [r.code for r in results] == [None, None, "over_quota"]
    # the super-peers that relayed Alice's mail have room for others'
    assert put(ml.mail("erin", BOB, NOW, label="m4"), sender="super-2", limits=limits).stored
    # an ack counts against its writer too
    assert put(ml.ack(BOB, ALICE, ["m9"], NOW), ALICE, sender=BOB, limits=limits).stored


@pytestmark_db
def test_quota_per_recipient_and_in_all() -> None:
    limits = MailboxLimits(per_recipient=2)
    results = [put(ml.mail(f"w{i}", BOB, NOW), sender=f"w{i}", limits=limits) for i in range(3)]
    assert [r.code for r in results] == [None, None, "over_quota"]
    assert put(ml.mail("w9", "carol", NOW), "carol", sender="w9", limits=limits).stored
    MailboxMessage.objects.all().delete()
    limits = MailboxLimits(total=2)
    results = [
        put(ml.mail(f"w{i}", f"r{i}", NOW), f"r{i}", sender=f"w{i}", limits=limits)
        for i in range(3)
    ]
    assert [r.code for r in results] == [None, None, "over_quota"]
    assert MailboxMessage.objects.count() == 2, "nothing refused is stored"


@pytestmark_db
def test_expired_mail_and_acks_stop_counting_are_not_delivered_and_are_pruned() -> None:
    limits = MailboxLimits(per_sender=2)
    short = ml.mail(ALICE, BOB, NOW, label="short", lifetime=DAY)
    long = ml.mail(ALICE, BOB, NOW, label="long")
    assert put(short, limits=limits).stored
    assert put(long, limits=limits).stored
    later = NOW + DAY
    waiting = db.mailbox_rows(ml.pid(BOB), kinds=["mail", "ack"], now=later, limit=10)
    assert [r.message_id for r in waiting] == [ml.mail_id("long")]
    assert put(ml.mail(ALICE, BOB, later, label="next"), limits=limits, now=later).stored
    assert db.mailbox_prune(now=later) == 1
    assert put(ml.ack(BOB, ALICE, ["x"], NOW), ALICE, sender=BOB).stored
    assert db.mailbox_prune(now=NOW + 7 * DAY) == 2, "the ack 7 days after acked_at, a mail"
    assert db.mailbox_prune(now=later + 7 * DAY) == 1


@pytestmark_db
def test_an_ack_deletes_only_the_mails_it_names_for_its_signer_from_its_addressee() -> None:
    assert put(ml.mail(ALICE, BOB, NOW, label="a")).stored
    assert put(ml.mail(ALICE, BOB, NOW, label="b")).stored
    assert put(ml.mail("carol", BOB, NOW, label="a"), sender="carol").stored  # same id, Carol's
    assert put(ml.mail(ALICE, "dave", NOW, label="a"), "dave").stored  # same id, for Dave
    deleted = db.mailbox_acked(
        recipient=ml.pid(BOB), signer=ml.pid(ALICE), mail_ids=[ml.mail_id("a"), ml.mail_id("z")]
    )
    assert deleted == 1
    assert rows() == [
        ("mail", ml.pid(BOB), ml.pid(ALICE), ml.mail_id("b")),
        ("mail", ml.pid(BOB), ml.pid("carol"), ml.mail_id("a")),
        ("mail", ml.pid("dave"), ml.pid(ALICE), ml.mail_id("a")),
    ]
    # an ack row for Alice is not a mail: an ack naming its id deletes nothing
    assert put(ml.ack(BOB, ALICE, ["b"], NOW), ALICE, sender=BOB).stored
    ack_id = message_id(ml.ack(BOB, ALICE, ["b"], NOW))[0]
    assert db.mailbox_acked(recipient=ml.pid(ALICE), signer=ml.pid(BOB), mail_ids=[ack_id]) == 0


@pytestmark_db
def test_rows_for_a_peer_come_by_kind_oldest_first_and_are_deleted_by_row() -> None:
    assert put(ml.mail(ALICE, BOB, NOW, label="1")).stored
    assert put(ml.ack("carol", BOB, ["x"], NOW), sender="carol").stored
    shard = sl.share(ALICE, BOB, NOW)
    shard_letter = check_shard_letter(ml.pid(BOB), shard, sender=ml.pid(ALICE), now=NOW, ttl_ms=TTL)
    assert db.mailbox_put(shard_letter, MailboxLimits(), received_by="", now=NOW).stored
    bob = ml.pid(BOB)
    every = db.mailbox_rows(bob, kinds=["shard", "mail", "ack"], now=NOW, limit=10)
    assert [r.kind for r in every] == ["mail", "ack", "shard"]
    assert [r.kind for r in db.mailbox_rows(bob, kinds=["shard"], now=NOW, limit=10)] == ["shard"]
    assert db.mailbox_delete_rows([every[1].pk]) == 1
    assert [r.kind for r in db.mailbox_rows(bob, kinds=["mail", "ack"], now=NOW, limit=10)] == [
        "mail"
    ]


# --- the key directory ---


@pytestmark_db
def test_the_key_directory_keeps_the_newest_announcement_and_prunes_what_is_not_heard() -> None:
    old, new = ml.announcement(BOB, NOW - 10_000), ml.announcement(BOB, NOW)
    assert db.key_put(ml.pid(BOB), new, NOW, now=NOW)
    assert not db.key_put(ml.pid(BOB), old, NOW - 10_000, now=NOW + 5), "older: kept the newer"
    assert not db.key_put(ml.pid(BOB), new, NOW, now=NOW + DAY), "the same: only heard again"
    assert db.key_get(ml.pid(BOB)) == new
    assert db.key_get(ml.pid("carol")) is None
    row = KeyAnnouncement.objects.get()
    assert (row.created_at_ms, row.heard_at) == (NOW, at(NOW + DAY))
    assert db.key_put(ml.pid("carol"), ml.announcement("carol", NOW), NOW, now=NOW)
    assert db.key_prune(before=NOW + 1) == 1, "Carol's was not heard since"
    assert db.key_get(ml.pid(BOB)) == new
