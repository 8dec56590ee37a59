"""The super-peer's service with a ``have`` gossip delivered by its node: the holder (the
signing origin) is recorded and written at the next status write as an ``Advert`` row
reported via gossip, with when it was issued; an advert issued longer ago than the holding
TTL is not written; a withdrawal deletes the row; a bad one is not recorded."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.gossip import GossipMessage
from peers.protocol.node_actions import Deliver
from peers.protocol.wire import Holding
from peers.replication.models import Advert
from peers.superpeer.service import SuperPeerService, now_ms
from peers.superpeer.supervision import Supervisor
from tests.support.keys import seeded_key
from tests.support.superpeer import offline_config

pytestmark = pytest.mark.django_db(transaction=True)

TTL = 60_000
BROWSER = peer_id_for_key(hashlib.sha256(b"browser").digest())


def mid(n: int) -> str:
    return b64url_encode(hashlib.sha256(str(n).encode()).digest())


def delivered(n: int, data: object, issued_at: int) -> Deliver:
    message = GossipMessage(
        id=f"{n:064x}",
        origin=BROWSER,
        topic="have",
        issued_at=issued_at,
        data=data,
        ttl=9,
        payload={},
    )
    return Deliver(message=message, sender="p" + "a" * 32)


@pytest.fixture(scope="module", autouse=True)
async def _close_thread_connections() -> Any:
    """ORM calls ran in asgiref's thread and a worker thread: close their connections so
    the test database can be dropped."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()
    await asyncio.to_thread(connections.close_all)


@sync_to_async
def adverts() -> list[Advert]:
    return list(Advert.objects.all())


async def test_a_gossiped_advert_is_written_as_a_holding_reported_via_gossip(
    tmp_path: Path,
) -> None:
    config = offline_config(tmp_path, gossip_holding_ttl_ms=TTL, use_channel_layer=False)
    service = SuperPeerService(config, key=seeded_key("gossip-super-peer"))
    supervisor = Supervisor(service)
    now = now_ms()
    fresh = {"manifests": [{"id": mid(1), "chunks": 5}, {"id": mid(2), "chunks": 3, "keep": False}]}
    service._act(None, delivered(1, fresh, now - 1000))  # type: ignore[arg-type]
    old = {"manifests": [{"id": mid(3), "chunks": 5}]}
    service._act(None, delivered(2, old, now - TTL - 1))  # type: ignore[arg-type]
    bad = {"manifests": [{"id": mid(4), "chunks": 5}], "holder": "p" + "b" * 32}
    service._act(None, delivered(3, bad, now))  # type: ignore[arg-type]
    await supervisor.persist()

    rows = {
        (r.holder, r.manifest_id): (r.chunks, r.keep, r.via, r.reporter, r.heard_at)
        for r in await adverts()
    }
    heard = datetime.fromtimestamp((now - 1000) / 1000, UTC)
    assert rows == {
        (BROWSER, mid(1)): (5, True, Advert.GOSSIP, service.peer_id, heard),
        (BROWSER, mid(2)): (3, False, Advert.GOSSIP, service.peer_id, heard),
    }

    # A withdrawal issued later deletes its row at the next write; a refresh moves heard_at.
    later = {"manifests": [{"id": mid(1), "chunks": 0}, {"id": mid(2), "chunks": 3, "keep": False}]}
    service._act(None, delivered(4, later, now))  # type: ignore[arg-type]
    await supervisor.persist()
    [row] = await adverts()
    assert (row.manifest_id, row.heard_at) == (mid(2), datetime.fromtimestamp(now / 1000, UTC))


async def test_a_fetch_job_dials_the_gossiped_holders_first(tmp_path: Path) -> None:
    """The peers that gossiped holding a file become hints when a job for it starts (the
    most complete first, at most MAX_GOSSIP_HINTS), after the sources the planner named;
    holders of other files do not."""
    from peers.superpeer.service import MAX_GOSSIP_HINTS

    config = offline_config(tmp_path, gossip_holding_ttl_ms=TTL, use_channel_layer=False)
    service = SuperPeerService(config, key=seeded_key("gossip-hints-super-peer"))
    now = now_ms()
    service.node = node = service.make_node(now)
    holders = [peer_id_for_key(hashlib.sha256(f"holder-{i}".encode()).digest()) for i in range(6)]
    for i, holder in enumerate(holders):
        service.gossip_adverts.on_gossip(holder, [Holding(mid(1), i + 1)], now, now)
    service.gossip_adverts.on_gossip(BROWSER, [Holding(mid(2), 9)], now, now)
    source = peer_id_for_key(hashlib.sha256(b"planner-source").digest())

    service.start_job("job-1", "replicate", mid(1), (source,), now)

    hinted = {peer for peer, entry in node.book.entries.items() if entry.hint}
    most_complete = set(holders[-MAX_GOSSIP_HINTS:])
    assert hinted == {source} | most_complete
    assert BROWSER not in hinted, "a holder of another file is not a hint"
