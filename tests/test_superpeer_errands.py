"""Errands at the super-peer (docs/protocol.md "Errands"): its dials say what they are for
in the PeerJS metadata (a fetch source for its manifest, a DHT contact for the DHT), and at
its maximum it takes a download only of a manifest it holds chunks of, DHT requests only
while it runs a DHT."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from peers.peerjs.errors import PEER_UNAVAILABLE, PeerJSError
from peers.protocol.errand import DHT_ERRAND, content_errand
from peers.protocol.node_actions import Dial
from peers.superpeer.service import SuperPeerService, now_ms
from tests.support.keys import seeded_key
from tests.support.superpeer import offline_config

pytestmark = pytest.mark.django_db(transaction=True)

HELD = "H" * 42 + "A"
OTHER = "O" * 42 + "A"
PEER = "p" + "c" * 32


class FakeConn:
    def __init__(self, peer: str, metadata: Any) -> None:
        self.peer = peer
        self.metadata = metadata
        self.connection_id = f"dc_{len(peer)}"

    async def wait_open(self, timeout: float) -> None:
        raise PeerJSError(PEER_UNAVAILABLE, "not there (the test ends the dial here)")

    async def close(self) -> None:
        return None


class FakePeer:
    """What the service's dial uses of its PeerJS peer: open, connect(metadata=...)."""

    open = True

    def __init__(self) -> None:
        self.dials: list[tuple[str, Any]] = []

    def connect(self, peer_id: str, **options: Any) -> FakeConn:
        self.dials.append((peer_id, options.get("metadata")))
        return FakeConn(peer_id, options.get("metadata"))


async def test_dials_carry_their_errand_as_peerjs_metadata(tmp_path: Path) -> None:
    service = SuperPeerService(offline_config(tmp_path), key=seeded_key("errand-super-peer"))
    node = service.make_node(now_ms())
    service.node = node
    fake = FakePeer()
    service.peer = fake  # type: ignore[assignment]
    service._act(node, Dial(peer_id=PEER, ticket=None, errand=content_errand(HELD)))
    service.dial(PEER, DHT_ERRAND)
    service._act(node, Dial(peer_id=PEER, ticket=None))
    await asyncio.gather(*service._tasks)  # each dial ends (peer_unavailable) and is reported
    assert fake.dials == [
        (PEER, {"errand": "content", "manifest": HELD}),
        (PEER, {"errand": "dht"}),
        (PEER, None),
    ]


async def test_a_full_super_peer_admits_what_it_holds_and_the_dht_it_runs(
    tmp_path: Path,
) -> None:
    service = SuperPeerService(offline_config(tmp_path), key=seeded_key("errand-admits"))
    node = service.make_node(now_ms())
    service.index.add_manifest(HELD, ["c1", "c2"], size=2, pinned=True, stored_at=0)
    service.index.chunk_added("c1", 1)
    admits = node.mesh.admits
    assert admits(content_errand(HELD)), "one chunk of it is held"
    assert not admits(content_errand(OTHER)), "nothing of it is held"
    assert not admits(DHT_ERRAND), "no DHT yet"
    service.dht = service.make_dht(node)
    assert admits(DHT_ERRAND)
