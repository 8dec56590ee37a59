"""The super-peer's mailbox store: what a shard message must be to be kept, the quotas,
expiry and idempotency, in PostgreSQL (docs/superpeer.md "Mailboxes")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from peers.superpeer import db
from peers.superpeer.config import MailboxLimits
from peers.superpeer.mailbox import Letter, MailboxRefused, check_shard_letter, message_id
from peers.superpeer.models import MailboxMessage
from tests.support import shard_letters as sl

NOW = 1_800_000_000_000
DAY = sl.DAY
TTL = 7 * DAY
OWNER, GUARDIAN = "owner", "guardian"


def letter(
    envelope: dict[str, Any], to: str, *, sender: str | None = None, now: int = NOW
) -> Letter:
    return check_shard_letter(
        sl.pid(to),
        envelope,
        sender=sl.pid(sender) if sender else sl.pid(OWNER),
        now=now,
        ttl_ms=TTL,
    )


def refusal(envelope: dict[str, Any], to: str = GUARDIAN, *, sender: str = OWNER) -> MailboxRefused:
    with pytest.raises(MailboxRefused) as caught:
        letter(envelope, to, sender=sender)
    return caught.value


# --- what is taken (no database) ---


def test_a_share_for_its_guardian_is_taken_with_its_own_expiry_capped() -> None:
    envelope = sl.share(OWNER, GUARDIAN, NOW, lifetime=30 * DAY)
    taken = letter(envelope, GUARDIAN)
    ident, size = message_id(envelope)
    assert (taken.kind, taken.recipient, taken.sender, taken.signer) == (
        "shard",
        sl.pid(GUARDIAN),
        sl.pid(OWNER),
        sl.pid(OWNER),
    )
    assert (taken.message_id, taken.size, len(ident)) == (ident, size, 43)
    assert taken.expires_at == NOW + TTL, "capped by the mailbox's lifetime"
    short = sl.share(OWNER, GUARDIAN, NOW, lifetime=DAY)
    assert letter(short, GUARDIAN).expires_at == NOW - 1000 + DAY, "its own expiry when sooner"


def test_every_kind_is_taken_for_its_addressee() -> None:
    request = sl.recover_request("temp", OWNER, NOW)
    share = sl.share(OWNER, GUARDIAN, NOW)
    taken = [
        letter(sl.receipt(GUARDIAN, share, NOW), OWNER, sender=GUARDIAN),
        letter(sl.revoke(OWNER, NOW), GUARDIAN),
        letter(request, GUARDIAN, sender="temp"),
        letter(sl.release(GUARDIAN, request, NOW), "temp", sender=GUARDIAN),
        letter(sl.refuse(GUARDIAN, request, NOW), "temp", sender=GUARDIAN),
    ]
    assert [t.expires_at for t in taken] == [NOW + TTL, NOW + TTL, NOW + DAY, NOW + TTL, NOW + TTL]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: sl.unsigned(sl.share(OWNER, GUARDIAN, NOW)), "bad_envelope"),
        (lambda: sl.forged(sl.share(OWNER, GUARDIAN, NOW)), "bad_signature"),
        (lambda: sl.oversized(sl.share(OWNER, GUARDIAN, NOW)), "shard_too_large"),
        (lambda: sl.malformed(OWNER, GUARDIAN, NOW), "bad_shard"),
        (lambda: sl.signed_by_another(OWNER, GUARDIAN, NOW), "peer_mismatch"),
        (lambda: {"v": 1, "body": "not a map"}, "bad_envelope"),
        (lambda: sl.small_order_request("temp", OWNER, NOW), "bad_key"),
    ],
    ids=["unsigned", "forged", "oversized", "malformed", "signer", "not-an-envelope", "key"],
)
def test_a_bad_message_is_refused_as_a_violation(make: Any, code: str) -> None:
    refused = refusal(make())
    assert (refused.code, refused.violation) == (code, True)


def test_an_expired_share_is_refused_but_not_held_against_the_sender() -> None:
    old = sl.share(OWNER, GUARDIAN, NOW - 40 * DAY, lifetime=30 * DAY)
    refused = refusal(old)
    assert (refused.code, refused.violation) == ("expired", False)


def test_a_message_for_another_peer_than_to_is_wrong_recipient() -> None:
    share = sl.share(OWNER, GUARDIAN, NOW)
    assert refusal(share, to="someone-else").code == "wrong_recipient"
    assert refusal(share, to=OWNER).code == "wrong_recipient", "back to its signer"
    assert refusal(sl.revoke(OWNER, NOW), to=OWNER).code == "wrong_recipient"
    assert not refusal(share, to="someone-else").violation


# --- the store ---

pytestmark_db = pytest.mark.django_db


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def put(
    envelope: dict[str, Any],
    to: str = GUARDIAN,
    *,
    sender: str = OWNER,
    limits: MailboxLimits | None = None,
    now: int = NOW,
) -> db.PutResult:
    return db.mailbox_put(
        letter(envelope, to, sender=sender, now=now),
        limits or MailboxLimits(),
        received_by=sl.pid("super"),
        now=now,
    )


def shares(count: int, *, owner: str = OWNER, guardian: str = GUARDIAN) -> list[dict[str, Any]]:
    """Distinct shares (one per set) from ``owner`` to ``guardian``."""
    return [sl.share(owner, guardian, NOW, n=i) for i in range(count)]


@pytestmark_db
def test_a_message_is_stored_once_whatever_how_often_it_is_handed_in() -> None:
    envelope = sl.share(OWNER, GUARDIAN, NOW)
    assert put(envelope) == db.PutResult(stored=True)
    assert put(envelope) == db.PutResult(stored=False)
    assert put(envelope, sender=GUARDIAN + "-relay") == db.PutResult(stored=False)
    [row] = MailboxMessage.objects.all()
    ident, size = message_id(envelope)
    assert (row.recipient, row.sender, row.signer, row.message_id, row.size) == (
        sl.pid(GUARDIAN),
        sl.pid(OWNER),
        sl.pid(OWNER),
        ident,
        size,
    )
    assert row.envelope == envelope
    assert row.expires_at == at(NOW + TTL)


@pytestmark_db
def test_one_revocation_for_several_guardians_is_held_for_each() -> None:
    revocation = sl.revoke(OWNER, NOW)
    assert put(revocation, "g1").stored
    assert put(revocation, "g2").stored
    assert db.mailbox_recipients([sl.pid("g1"), sl.pid("g2"), sl.pid("g3")], now=NOW) == {
        sl.pid("g1"),
        sl.pid("g2"),
    }


@pytestmark_db
def test_quota_per_sender() -> None:
    limits = MailboxLimits(per_sender=2)
    results = [put(s, limits=limits) for s in shares(3)]
    assert [r.stored for r in results] == [True, True, False]
    assert results[2].code == "over_quota"
    # another sender still has room, for the same recipient
    assert put(sl.share("owner-2", GUARDIAN, NOW), sender="owner-2", limits=limits).stored


@pytestmark_db
def test_quota_per_recipient() -> None:
    limits = MailboxLimits(per_recipient=2)
    first = [put(sl.share(f"o{i}", GUARDIAN, NOW), sender=f"o{i}", limits=limits) for i in range(3)]
    assert [r.code for r in first] == [None, None, "over_quota"]
    assert put(sl.share("o9", "guardian-2", NOW), "guardian-2", sender="o9", limits=limits).stored


@pytestmark_db
def test_quota_in_all() -> None:
    limits = MailboxLimits(total=2)
    results = [
        put(sl.share(f"o{i}", f"g{i}", NOW), f"g{i}", sender=f"o{i}", limits=limits)
        for i in range(3)
    ]
    assert [r.code for r in results] == [None, None, "over_quota"]
    assert MailboxMessage.objects.count() == 2


@pytestmark_db
def test_expired_messages_stop_counting_are_not_delivered_and_are_pruned() -> None:
    limits = MailboxLimits(per_sender=2)
    short, long = (
        sl.share(OWNER, GUARDIAN, NOW, lifetime=DAY, n=1),
        sl.share(OWNER, GUARDIAN, NOW, n=2),
    )
    assert put(short, limits=limits).stored
    assert put(long, limits=limits).stored
    later = NOW + DAY
    guardian = sl.pid(GUARDIAN)
    waiting = db.mailbox_waiting(guardian, now=later, limit=10)
    assert [ident for ident, _ in waiting] == [message_id(long)[0]]
    # the expired one no longer counts against the sender
    assert put(sl.share(OWNER, GUARDIAN, later, n=3), limits=limits, now=later).stored
    assert db.mailbox_prune(now=later) == 1
    assert MailboxMessage.objects.count() == 2
    assert db.mailbox_prune(now=NOW + TTL + DAY) == 2


@pytestmark_db
def test_waiting_messages_come_oldest_first_and_are_deleted_by_id() -> None:
    envelopes = shares(5)
    for envelope in envelopes:
        assert put(envelope).stored
    guardian = sl.pid(GUARDIAN)
    waiting = db.mailbox_waiting(guardian, now=NOW, limit=3)
    assert [env for _, env in waiting] == envelopes[:3]
    assert db.mailbox_delete(guardian, [ident for ident, _ in waiting]) == 3
    assert db.mailbox_delete(sl.pid("another"), [message_id(envelopes[3])[0]]) == 0
    assert [env for _, env in db.mailbox_waiting(guardian, now=NOW, limit=10)] == envelopes[3:]


@pytestmark_db
def test_the_admin_lists_what_waits_with_its_kind_and_cannot_edit_it(
    client: Client, django_user_model: type
) -> None:
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))
    assert put(sl.revoke(OWNER, NOW)).stored
    page = client.get(reverse("admin:peers_mailboxmessage_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert sl.pid(GUARDIAN) in text
    assert "revoke" in text
    row = MailboxMessage.objects.get()
    change = client.post(reverse("admin:peers_mailboxmessage_change", args=[row.pk]), {})
    assert change.status_code == 403
