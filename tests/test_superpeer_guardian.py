"""The super-peer as a guardian (when the operator allows it): it holds a share sent to it
and answers with a receipt, keeps its store in the database across a restart, lists a
recovery request with its verification code for the operator, and sends the share sealed
to the new device once approved in the admin (or a refusal), through its mailbox when the
device is away."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from peers.protocol.errors import ProtocolError
from peers.protocol.gossip import GossipMessage
from peers.protocol.keywrap import verify_key_announcement, x25519_public
from peers.protocol.node_actions import Deliver
from peers.protocol.shard import (
    Receipt,
    Refuse,
    Release,
    make_share,
    open_release,
    parse_kind,
    parse_message,
    verification_code,
)
from peers.superpeer import services
from peers.superpeer.guardian import MAX_PENDING
from peers.superpeer.models import GuardianRequest, GuardianState, MailboxMessage
from peers.superpeer.service import SuperPeerService, _check_recover_request, now_ms
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


async def guardian_service(tmp_path: Path) -> SuperPeerService:
    config = offline_config(tmp_path, use_channel_layer=False, guardian=True)
    service = SuperPeerService(config, key=sl.ed("super-peer"))
    assert service.guardian is not None
    await service.guardian.load()
    service.node = service.make_node(now_ms())
    return service


def share_for(service: SuperPeerService, owner: str, *, index: int = 1) -> dict[str, Any]:
    assert service.guardian is not None
    now = now_ms()
    return make_share(
        sl.ed(owner),
        guardian=service.peer_id,
        guardian_key=x25519_public(service.guardian.x25519),
        set_id=sl.set_id(1),
        index=index,
        k=2,
        n=3,
        share=sl.SHARE_TEXT,
        issued_at=now - 1000,
        expires_at=now + 30 * sl.DAY,
    )


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@sync_to_async
def request_rows() -> list[GuardianRequest]:
    return list(GuardianRequest.objects.order_by("received_at"))


@sync_to_async
def decide(decision: str) -> int:
    return services.guardian_decide(list(GuardianRequest.objects.all()), decision)


async def test_a_guardian_super_peer_holds_a_share_and_releases_it_once_approved(
    tmp_path: Path,
) -> None:
    service = await guardian_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    announced = [m for m in owner.gossip if m.topic == "xkey"]
    assert announced, "the super-peer announced its X25519 key"
    key = verify_key_announcement(announced[-1].data)
    assert service.guardian is not None
    assert (key.peer_id, key.x25519) == (service.peer_id, x25519_public(service.guardian.x25519))

    share = share_for(service, "owner")
    owner.send(service.peer_id, share)
    await settle(service, owner)
    [receipt] = [parse_message(f.msg, now=now_ms()) for f in owner.received]
    assert isinstance(receipt, Receipt)
    assert (receipt.guardian, receipt.owner, receipt.index) == (service.peer_id, owner.peer_id, 1)
    owner.leave()

    # A restart: the store comes back from the database.
    again = await guardian_service(tmp_path)
    assert again.guardian is not None
    assert [h.share.envelope for h in again.guardian.store.held()] == [share]
    assert await sync_to_async(GuardianState.objects.count)() == 1

    # A new device asks; the request is listed with its code, pending.
    device = Page(again, "new-device", PAGE_CAPS)
    await settle(again, device)
    request = sl.recover_request("new-device", "owner", now_ms())
    device.send(again.peer_id, request)
    await settle(again, device)
    [row] = await request_rows()
    parsed = parse_message(request, now=now_ms())
    assert (row.for_peer, row.temp, row.state, row.conflict) == (
        owner.peer_id,
        device.peer_id,
        "pending",
        False,
    )
    assert row.code == verification_code(row.request_id)
    assert row.request_id == getattr(parsed, "id", None)
    assert device.received == [], "nothing is released before the operator approves"

    # The operator approves; the device leaves before the super-peer acts on it.
    assert await decide(GuardianRequest.APPROVE) == 1
    device.leave()
    assert await again.guardian.apply_decisions() == 1
    await settle(again)
    [row] = await request_rows()
    assert (row.state, row.decision, row.error) == ("approved", "", "")
    assert await sync_to_async(MailboxMessage.objects.count)() == 1, "held for the device"

    back = Page(again, "new-device", PAGE_CAPS)
    await settle(again, back)
    [release] = [parse_kind(f.msg, Release, now=now_ms()) for f in back.received]
    assert open_release(release, private_key=sl.xk("new-device")) == sl.SHARE_TEXT
    assert await sync_to_async(MailboxMessage.objects.count)() == 0
    # Approving again changes nothing (the row is no longer pending).
    assert await decide(GuardianRequest.APPROVE) == 0


async def test_a_refused_request_gets_a_refusal_and_unguarded_owners_are_ignored(
    tmp_path: Path,
) -> None:
    service = await guardian_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    device = Page(service, "new-device", PAGE_CAPS)
    await settle(service, owner, device)
    owner.send(service.peer_id, share_for(service, "owner"))
    device.send(service.peer_id, sl.recover_request("new-device", "stranger", now_ms()))
    await settle(service, owner, device)
    assert service.guardian is not None
    assert service.guardian.stats.ignored == 1
    assert await request_rows() == []

    device.send(service.peer_id, sl.recover_request("new-device", "owner", now_ms()))
    await settle(service, owner, device)
    assert await decide(GuardianRequest.REFUSE) == 1
    await service.guardian.apply_decisions()
    await settle(service, owner, device)
    [refusal] = [parse_kind(f.msg, Refuse, now=now_ms()) for f in device.received]
    assert refusal.guardian == service.peer_id
    [row] = await request_rows()
    assert row.state == "refused"


async def test_a_share_sealed_to_another_key_is_refused_and_not_held(tmp_path: Path) -> None:
    service = await guardian_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    wrong = sl.share("owner", "super-peer", now_ms())  # sealed to a key that is not its own
    owner.send(service.peer_id, wrong)
    await settle(service, owner)
    assert service.guardian is not None
    assert service.guardian.stats.refused == {"decrypt_failed": 1}
    assert service.guardian.store.held() == []
    assert owner.received == []


@pytest.mark.django_db
def test_the_admin_lists_requests_with_their_codes_and_approves(
    client: Client, django_user_model: type
) -> None:
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))
    now = now_ms()
    row = GuardianRequest.objects.create(
        guardian=sl.pid("super-peer"),
        request_id="A" * 43,
        for_peer=sl.pid("owner"),
        temp=sl.pid("new-device"),
        code="01234567",
        received_at=at(now),
        expires_at=at(now + sl.DAY),
    )
    url = reverse("admin:peers_guardianrequest_changelist")
    page = client.get(url)
    assert page.status_code == 200
    assert "0123 4567" in page.content.decode()
    client.post(url, {"action": "approve", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert (row.decision, row.state) == ("approve", "pending")


async def test_a_request_heard_by_gossip_is_listed_and_a_forged_one_is_not_relayed(
    tmp_path: Path,
) -> None:
    service = await guardian_service(tmp_path)
    owner = Page(service, "owner", PAGE_CAPS)
    await settle(service, owner)
    owner.send(service.peer_id, share_for(service, "owner"))
    await settle(service, owner)
    assert service.node is not None
    request = sl.recover_request("new-device", "owner", now_ms())
    forged = sl.forged(sl.recover_request("other-device", "owner", now_ms()))
    with pytest.raises(ProtocolError):
        _check_recover_request(forged, now_ms())
    _check_recover_request(request, now_ms())
    message = GossipMessage(
        id="0" * 64,
        origin=sl.pid("new-device"),
        topic="shard-req",
        issued_at=now_ms(),
        data=request,
        ttl=3,
        payload={},
    )
    service._act(service.node, Deliver(message=message, sender=owner.peer_id))
    await settle(service, owner)
    [row] = await request_rows()
    assert (row.for_peer, row.temp) == (owner.peer_id, sl.pid("new-device"))
    assert service.node.gossip_checks["shard-req"] is _check_recover_request


async def test_messages_for_the_guardian_wait_in_a_bounded_queue(tmp_path: Path) -> None:
    service = await guardian_service(tmp_path)
    guardian = service.guardian
    assert guardian is not None
    junk: dict[str, Any] = {"not": "a message"}
    for _ in range(MAX_PENDING * 3):  # one pump's worth: nothing runs in between
        guardian.take(junk, now_ms())
    assert guardian.pending == MAX_PENDING
    assert guardian.stats.refused == {"guardian_busy": MAX_PENDING * 2}
    await asyncio.gather(*service._tasks)
    assert guardian.pending == 0
    assert guardian.stats.refused["unexpected_kind"] == MAX_PENDING
