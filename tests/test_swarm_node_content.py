"""The content seam: content frames leave the node as events, answers come back in.

Two nodes on the in-memory network, each with a small in-memory content layer (a stand-in
for the chunk store, implementing ContentHandler): adverts on connect, a manifest and a chunk
fetched by id, a missing chunk, and a forged chunk counted against its sender.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from peers.protocol.encoding import b64url_encode
from peers.protocol.mesh import MeshOptions
from peers.protocol.node import SwarmNode
from peers.protocol.node_actions import Action, Closed, ContentReceived, Opened, Send
from peers.protocol.wire import (
    Chunk,
    ChunkMissing,
    ChunkReq,
    ContentFrame,
    Have,
    Holding,
    Manifest,
    ManifestReq,
    Ping,
    encode_frame,
)
from tests.support.content_seam import ContentReply, route_content
from tests.support.swarm_network import Network, SimPeer


def digest_id(data: bytes) -> str:
    return b64url_encode(hashlib.sha256(data).digest())


CHUNKS = [b"first chunk", b"second chunk"]
CHUNK_IDS = [digest_id(c) for c in CHUNKS]
MANIFEST = {"v": 1, "body": {"chunks": CHUNK_IDS}}  # the seam does not look inside
MANIFEST_ID = digest_id(b"manifest")


@dataclass
class MemoryContent:
    """Holds some chunks; fetches what others advertise; checks what it receives."""

    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks: dict[str, bytes] = field(default_factory=dict)
    holders: dict[str, set[str]] = field(default_factory=dict)  # manifest id -> conn ids
    peers: set[str] = field(default_factory=set)
    missing: list[int] = field(default_factory=list)
    forge: bool = False  # serve wrong bytes

    def peer_opened(self, peer: Opened, now: int) -> list[ContentFrame]:
        self.peers.add(peer.conn_id)
        if not self.manifests:
            return []
        return [Have(manifests=tuple(Holding(m, len(CHUNKS)) for m in self.manifests))]

    def peer_closed(self, peer: Closed, now: int) -> None:
        self.peers.discard(peer.conn_id)
        for conns in self.holders.values():
            conns.discard(peer.conn_id)

    def frame_received(
        self, conn_id: str, peer_id: str, frame: ContentFrame, now: int
    ) -> ContentReply:
        if isinstance(frame, Have):
            for holding in frame.manifests:
                self.holders.setdefault(holding.id, set()).add(conn_id)
            wanted = [h.id for h in frame.manifests if h.id not in self.manifests]
            return ContentReply(frames=tuple(ManifestReq(id=m) for m in wanted))
        if isinstance(frame, ManifestReq):
            return ContentReply(
                frames=(Manifest(id=frame.id, manifest=self.manifests.get(frame.id)),)
            )
        if isinstance(frame, Manifest) and frame.manifest is not None:
            self.manifests[frame.id] = frame.manifest
            ids = frame.manifest["body"]["chunks"]
            reqs = [ChunkReq(manifest=frame.id, index=i, chunk=c) for i, c in enumerate(ids)]
            reqs.append(ChunkReq(manifest=frame.id, index=len(ids), chunk=digest_id(b"nothing")))
            return ContentReply(frames=tuple(reqs))
        if isinstance(frame, ChunkReq):
            data = self.chunks.get(frame.chunk)
            if data is None:
                ref = {"manifest": frame.manifest, "index": frame.index, "chunk": frame.chunk}
                return ContentReply(frames=(ChunkMissing(**ref),))
            served = b"forged" if self.forge else data
            return ContentReply(frames=(Chunk(frame.manifest, frame.index, frame.chunk, served),))
        if isinstance(frame, Chunk):
            if digest_id(frame.data) != frame.chunk:
                return ContentReply(violation=("chunk_mismatch", "chunk is not its id"))
            self.chunks[frame.chunk] = frame.data
        if isinstance(frame, ChunkMissing):
            self.missing.append(frame.index)
        return ContentReply()


class ContentNode:
    """A SwarmNode whose content actions go to a content layer (what the super-peer does)."""

    def __init__(self, node: SwarmNode, content: MemoryContent) -> None:
        self.node = node
        self.content = content
        self.now = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.node, name)

    def opened(self, conn_id: str, remote: str, outbound: bool, now: int) -> None:
        self.now = now
        self.node.opened(conn_id, remote, outbound, now)

    def receive(self, conn_id: str, data: bytes, now: int) -> None:
        self.now = now
        self.node.receive(conn_id, data, now)

    def tick(self, now: int) -> None:
        self.now = now
        self.node.tick(now)

    def take_actions(self) -> list[Action]:
        return route_content(self.node, self.content, self.now)


def content_pair(holder: MemoryContent) -> tuple[Network, SimPeer, SimPeer, MemoryContent]:
    net = Network()
    a = net.add_peer()
    b = net.add_peer()
    fetcher = MemoryContent()
    a.node = ContentNode(a.node, holder)
    b.node = ContentNode(b.node, fetcher)
    assert b.identity is not None
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    return net, a, b, fetcher


def holding_content(*, forge: bool = False) -> MemoryContent:
    return MemoryContent(
        manifests={MANIFEST_ID: MANIFEST},
        chunks=dict(zip(CHUNK_IDS, CHUNKS, strict=True)),
        forge=forge,
    )


def test_a_peer_fetches_an_advertised_manifest_and_its_chunks_through_the_seam() -> None:
    net, a, b, fetcher = content_pair(holding_content())
    net.start()
    assert net.run_until(lambda: len(fetcher.chunks) == len(CHUNKS), 10)
    assert fetcher.manifests == {MANIFEST_ID: MANIFEST}
    assert fetcher.chunks == dict(zip(CHUNK_IDS, CHUNKS, strict=True))
    assert fetcher.missing == [len(CHUNKS)]
    assert fetcher.holders[MANIFEST_ID] == set(b.node.mesh.conns)
    for code in ("chunk_mismatch", "bad_frame"):
        assert code not in b.node.stats.dropped
    for t in ("have", "manifest", "chunk", "chunk_missing"):
        assert t in a.sent
    for t in ("manifest_req", "chunk_req"):
        assert t in b.sent


def test_a_forged_chunk_is_counted_against_the_holder_that_sent_it() -> None:
    net, _a, b, fetcher = content_pair(holding_content(forge=True))
    net.start()
    net.run_until(lambda: b.node.stats.dropped.get("chunk_mismatch", 0) == len(CHUNKS), 10)
    assert b.node.stats.dropped["chunk_mismatch"] == len(CHUNKS)
    assert fetcher.chunks == {}
    [conn] = b.node.mesh.conns.values()
    assert len(conn.violations) == len(CHUNKS)


def test_content_frames_are_held_until_approval_and_only_open_connections_take_answers() -> None:
    net = Network()
    a = net.add_peer()
    b = net.add_peer(mesh=MeshOptions(approval="manual"))
    assert b.identity is not None
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    net.start()
    net.run_until(lambda: len(b.node.mesh.queue()) == 1, 4)
    [conn] = b.node.mesh.conns.values()
    b.node.receive(conn.id, encode_frame(ManifestReq(id=MANIFEST_ID)), net.now)
    b.node.receive(conn.id, encode_frame(Ping(n=9, ts=1)), net.now)
    actions = b.node.take_actions()
    assert not any(isinstance(x, ContentReceived) for x in actions)
    assert [x.t for x in actions if isinstance(x, Send)] == ["pong"], "ping is still answered"
    assert b.node.stats.dropped["awaiting_approval"] == 1
    assert conn.violations == []
    assert not b.node.send_content(conn.id, Manifest(id=MANIFEST_ID, manifest=None))
    assert not b.node.send_content("no-such-conn", Manifest(id=MANIFEST_ID, manifest=None))
    b.node.approve(a.peer_id, net.now)
    b.node.take_actions()
    b.node.receive(conn.id, encode_frame(ManifestReq(id=MANIFEST_ID)), net.now)
    [event] = b.node.take_actions()
    assert event == ContentReceived(conn.id, a.peer_id, ManifestReq(id=MANIFEST_ID))
    assert b.node.send_content(conn.id, Manifest(id=MANIFEST_ID, manifest=None))
    with pytest.raises(TypeError):
        b.node.send_content(conn.id, Ping(n=1, ts=1))  # type: ignore[arg-type]
