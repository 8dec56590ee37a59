"""Floods a peer can aim at the super-peer's asyncio service: what it keeps is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from peers.protocol.gossip import GossipMessage
from peers.protocol.node_actions import Deliver
from peers.superpeer.service import MAX_PENDING_POSTS, POST_TOPIC, SuperPeerService
from tests.support.keys import seeded_key
from tests.support.superpeer import offline_config

pytestmark = pytest.mark.django_db(transaction=True)


def delivered(n: int) -> Deliver:
    message = GossipMessage(
        id=f"{n:064x}",
        origin="p" + "a" * 32,
        topic=POST_TOPIC,
        issued_at=0,
        data={"not": "a post"},  # refused by verify_post before any database write
        ttl=0,
        payload={},
    )
    return Deliver(message=message, sender="p" + "a" * 32)


async def test_a_flood_of_gossiped_posts_queues_at_most_max_pending_writes(
    tmp_path: Path,
) -> None:
    config = offline_config(tmp_path)
    service = SuperPeerService(config, key=seeded_key("flooded-super-peer"))
    for n in range(MAX_PENDING_POSTS * 20):  # one pump's worth: nothing runs in between
        service._act(None, delivered(n))  # type: ignore[arg-type]
    assert service.posts_pending == MAX_PENDING_POSTS
    assert len(service._tasks) == MAX_PENDING_POSTS
    assert service.posts_dropped == MAX_PENDING_POSTS * 19
    await asyncio.gather(*service._tasks)
    assert service.posts_pending == 0
    service._act(None, delivered(-1))  # type: ignore[arg-type]
    assert service.posts_pending == 1  # room again once the writes are done
    await asyncio.gather(*service._tasks)
