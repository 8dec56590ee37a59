"""Mailboxes live: a super-peer process (aiortc over loopback, a real daphne for signaling and
the beacon, PostgreSQL) holds a share that an owner sends it for a guardian who is not
running, and hands it over when the guardian (a second super-peer process, a guardian by
its operator's leave) comes up; the guardian's receipt waits in the mailbox for the owner,
who has left, and reaches it when it comes back.

The owner stands in for a page: an in-process ``SuperPeerService`` (the same node, mailbox
and transport) whose frames for itself are recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from peers.peerjs.ice import IceConfig
from peers.protocol.keywrap import x25519_from_identity_seed, x25519_public
from peers.protocol.shard import Receipt, make_share, new_set_id, parse_kind
from peers.protocol.wire import ShardMsg
from peers.superpeer.config import SuperPeerConfig
from peers.superpeer.models import GuardianState, MailboxMessage
from peers.superpeer.service import SuperPeerService, now_ms
from shared.identity import peer_id_of
from tests.support import shard_letters as sl
from tests.support.aio_thread import LoopThread
from tests.support.live import Server, start_daphne
from tests.support.superpeer import community_name, start_superpeer, superpeer_key, wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("mb-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1", "SWARM_BEACON_IP_BURST": "500"},
        name="mb-web",
    )
    yield server
    server.stop()


def owner_service(web: Server, var_dir: Path, community: str, seeds: tuple[str, ...]) -> Any:
    config = SuperPeerConfig(
        community=community,
        signal_url=f"{web.url}/signal/",
        signal_key=settings.SWARM_SIGNAL_KEY,
        beacon_urls=(f"{web.url}/beacon/v1/",),
        store_dir=var_dir / "chunks",
        key_path=var_dir / "key.pem",
        storage_bytes=1 << 20,
        ice=IceConfig(host_addresses=("127.0.0.1",)),
        seeds=seeds,
        announce_s=2,
        sync_s=2,
        status_s=0.5,
        use_channel_layer=False,
    )
    return SuperPeerService(config, key=sl.ed("live-owner"))


def is_open(loop: LoopThread, service: SuperPeerService, peer_id: str) -> bool:
    async def check() -> bool:
        node = service.node
        return node is not None and any(
            v.peer_id == peer_id for v in node.connected_peers(now_ms())
        )

    return loop.run(check())


def test_a_share_for_a_guardian_that_is_away_reaches_it_through_a_super_peer(
    web: Server, tmp_path: Path, artifacts_dir: Path
) -> None:
    community = community_name("mb")
    relay = start_superpeer(tmp_path / "relay", artifacts_dir, web, community, name="sp-relay")
    guardian_dir = tmp_path / "guardian"
    guardian_key = superpeer_key(guardian_dir)
    guardian_id = peer_id_of(guardian_key)
    guardian_x = x25519_public(x25519_from_identity_seed(guardian_key.private_bytes_raw()))
    loop = LoopThread()
    owner = owner_service(web, tmp_path / "owner", community, (relay.peer_id,))
    guardian = None
    try:
        loop.run(owner.start())
        wait_until(lambda: is_open(loop, owner, relay.peer_id), 30, "owner-relay", relay)
        now = now_ms()
        share = make_share(
            sl.ed("live-owner"),
            guardian=guardian_id,
            guardian_key=guardian_x,
            set_id=new_set_id(),
            index=1,
            k=2,
            n=3,
            share=sl.SHARE_TEXT,
            issued_at=now,
            expires_at=now + 30 * sl.DAY,
        )

        async def send() -> bool:
            assert owner.node is not None
            sent = owner.node.send_to(relay.peer_id, ShardMsg(to=guardian_id, msg=share))
            owner.pump()
            return sent

        assert loop.run(send())
        wait_until(
            lambda: MailboxMessage.objects.filter(recipient=guardian_id).exists(),
            15,
            "the share held for the guardian",
            relay,
        )
        loop.run(owner.shutdown())

        guardian = start_superpeer(
            guardian_dir,
            artifacts_dir,
            web,
            community,
            {"SWARM_SUPERPEER_GUARDIAN": "true", "SWARM_SUPERPEER_SEEDS": relay.peer_id},
            name="sp-guardian",
        )

        def held_by_guardian() -> bool:
            row = GuardianState.objects.filter(peer_id=guardian_id).first()
            return row is not None and len(row.snapshot.get("shares", [])) == 1

        wait_until(held_by_guardian, 30, "the guardian to hold the share", relay, guardian)
        assert not MailboxMessage.objects.filter(recipient=guardian_id).exists()
        state = GuardianState.objects.get(peer_id=guardian_id)
        assert state.snapshot["shares"][0]["envelope"] == share
        owner_id = sl.pid("live-owner")
        wait_until(
            lambda: MailboxMessage.objects.filter(recipient=owner_id).exists(),
            15,
            "the receipt held for the owner",
            relay,
            guardian,
        )

        # The owner comes back: the receipt reaches it, and leaves the mailbox.
        back = owner_service(web, tmp_path / "owner", community, (relay.peer_id,))
        received: list[dict[str, Any]] = []
        back.mailbox.local = lambda envelope, _now: received.append(envelope)
        loop.run(back.start())
        try:
            wait_until(lambda: bool(received), 30, "the receipt to reach the owner", relay)
        finally:
            loop.run(back.shutdown())
        receipts = [parse_kind(r, Receipt, now=now_ms()) for r in received]
        assert {(r.guardian, r.owner, r.index) for r in receipts} == {(guardian_id, owner_id, 1)}
        wait_until(
            lambda: not MailboxMessage.objects.filter(recipient=owner_id).exists(),
            10,
            "the delivered receipt deleted",
        )
    finally:
        if guardian is not None:
            guardian.stop()
        relay.stop()
        # the in-process owner's ORM calls ran in the loop's threads: give their connections
        # back so the test database can be dropped
        loop.run(sync_to_async(connections.close_all)())
        loop.run(asyncio.to_thread(connections.close_all))
        loop.close()
    assert relay.proc.returncode == 0, relay.log()[-3000:]
