"""The super-peer's download (the shared scheduler plus its checks; sans-IO, fake clock):
manifest first, pipelined chunk requests, every chunk verified, bad holders dropped and
reported, missing and late chunks asked elsewhere, lost chunks fetched again."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.chunks import EncryptedFile, encrypt_file
from peers.protocol.manifest import Manifest, make_manifest, verify_manifest
from peers.protocol.transfer import TransferOptions
from peers.superpeer.download import (
    AskChunk,
    AskManifest,
    Download,
    GaveUp,
    ManifestReady,
    SourceFailed,
    StoreChunk,
)

A, B, C = "pa" + "a" * 31, "pb" + "b" * 31, "pc" + "c" * 31
T0 = 1_700_000_000_000


def sealed(chunks: int) -> tuple[EncryptedFile, dict[str, Any], Manifest]:
    data = bytes(i % 251 for i in range(chunks * 65536 - 100))
    encrypted = encrypt_file(data)
    envelope = make_manifest(
        Ed25519PrivateKey.generate(), encrypted, name="f.bin", mime="x/y", created_at=T0
    )
    return encrypted, envelope, verify_manifest(envelope)


@pytest.fixture(scope="module")
def file10() -> tuple[EncryptedFile, dict[str, Any], Manifest]:
    return sealed(10)


def asks(actions: list[Any]) -> list[tuple[str, int]]:
    return [(a.peer_id, a.index) for a in actions if isinstance(a, AskChunk)]


def stores(actions: list[Any]) -> list[int]:
    return [a.index for a in actions if isinstance(a, StoreChunk)]


def download(
    manifest_id: str,
    *,
    manifest: Manifest | None = None,
    missing: list[int] | None = None,
    **options: Any,
) -> Download:
    """A download whose store holds every chunk but ``missing`` (None: nothing)."""
    held = set() if manifest is None or missing is None else set(manifest.chunks)
    for index in missing or []:
        held.discard(manifest.chunks[index] if manifest else "")
    return Download(
        manifest_id,
        has_chunk=held.__contains__,
        manifest=manifest,
        now=T0,
        options=TransferOptions(**options),
    )


def answer(dl: Download, enc: EncryptedFile, peer: str, index: int, now: int) -> None:
    chunk = enc.chunks[index]
    dl.chunk_received(peer, index, chunk.id, chunk.ciphertext, now)


def test_asks_the_manifest_then_pipelines_chunks_within_the_windows(file10: Any) -> None:
    enc, envelope, manifest = file10
    dl = download(manifest.id, per_source=3, window=5)
    assert dl.waiting
    dl.add_source(A, 10, T0)
    dl.add_source(B, 4, T0)  # partial: asked second
    assert dl.take_actions() == [AskManifest(A, manifest.id)]
    dl.manifest_received(A, envelope, T0 + 1)
    actions = dl.take_actions()
    assert actions[0] == ManifestReady(manifest)
    # Complete source first (3 = its window), then the partial one, 5 in all.
    assert asks(actions) == [(A, 0), (A, 1), (A, 2), (B, 3), (B, 4)]
    for index in (0, 1, 2):
        answer(dl, enc, A, index, T0 + 2)
    actions = dl.take_actions()
    assert stores(actions) == [0, 1, 2]
    stored = next(a for a in actions if isinstance(a, StoreChunk))
    assert stored.data == enc.chunks[0].ciphertext
    assert stored.source == A
    assert asks(actions) == [(A, 5), (A, 6), (A, 7)]
    assert dl.done == 3
    assert dl.total == 10
    assert not dl.complete


def test_whole_download_from_two_sources_completes_with_every_chunk_once(file10: Any) -> None:
    enc, _, manifest = file10
    dl = download(manifest.id, manifest=manifest)
    dl.add_source(A, 10, T0)
    dl.add_source(B, 10, T0)
    got: list[int] = []
    now = T0
    while not dl.complete:
        now += 1
        actions = dl.take_actions()
        got += stores(actions)
        for peer, index in asks(actions):
            answer(dl, enc, peer, index, now)
    got += stores(dl.take_actions())
    assert sorted(got) == list(range(10))
    assert dl.failed_sources() == []


def test_a_bad_chunk_drops_its_holder_and_is_fetched_from_another(file10: Any) -> None:
    enc, _, manifest = file10
    dl = download(manifest.id, manifest=manifest, missing=[0, 1])
    dl.add_source(A, 10, T0)
    assert asks(dl.take_actions()) == [(A, 0), (A, 1)]
    dl.add_source(B, 10, T0)
    dl.take_actions()
    tampered = bytearray(enc.chunks[0].ciphertext)
    tampered[100] ^= 1
    dl.chunk_received(A, 0, enc.chunks[0].id, bytes(tampered), T0 + 5)
    actions = dl.take_actions()
    failed = [a for a in actions if isinstance(a, SourceFailed)]
    assert [(f.peer_id, f.code) for f in failed] == [(A, "chunk_mismatch")]
    assert stores(actions) == []
    # Both of A's requests move to B; A is never asked again, even after a new advert.
    assert asks(actions) == [(B, 0), (B, 1)]
    dl.add_source(A, 10, T0 + 6)
    assert dl.take_actions() == []
    answer(dl, enc, A, 1, T0 + 7)  # a late answer from the dropped holder is ignored
    assert stores(dl.take_actions()) == []
    answer(dl, enc, B, 0, T0 + 8)
    answer(dl, enc, B, 1, T0 + 8)
    assert stores(dl.take_actions()) == [0, 1]
    assert dl.complete
    assert dl.failed_sources() == [A]


def test_a_chunk_of_another_index_or_length_is_bad(file10: Any) -> None:
    enc, _, manifest = file10
    dl = download(manifest.id, manifest=manifest, missing=[3])
    dl.add_source(A, 10, T0)
    dl.add_source(B, 10, T0)
    dl.take_actions()
    # A answers index 3 with chunk 4's (correctly hashed) bytes under chunk 4's id.
    dl.chunk_received(A, 3, enc.chunks[4].id, enc.chunks[4].ciphertext, T0 + 1)
    actions = dl.take_actions()
    assert [(a.peer_id, a.code) for a in actions if isinstance(a, SourceFailed)] == [
        (A, "bad_chunk")
    ]
    assert asks(actions) == [(B, 3)]


def test_missing_chunks_go_to_another_holder_and_park_when_nobody_has_them(
    file10: Any,
) -> None:
    enc, _, manifest = file10
    dl = download(manifest.id, manifest=manifest, missing=[0])
    dl.add_source(A, 5, T0)
    assert asks(dl.take_actions()) == [(A, 0)]
    dl.chunk_missing(A, 0, T0 + 1)
    assert dl.take_actions() == []
    assert dl.waiting
    assert dl.failed_sources() == [A]
    dl.add_source(B, 10, T0 + 2)
    assert asks(dl.take_actions()) == [(B, 0)]
    dl.chunk_missing(B, 0, T0 + 3)
    assert dl.take_actions() == []
    assert dl.waiting
    dl.add_source(A, 6, T0 + 4)  # A advertises again: worth asking again
    assert asks(dl.take_actions()) == [(A, 0)]
    answer(dl, enc, A, 0, T0 + 5)
    assert stores(dl.take_actions()) == [0]
    assert dl.complete


def test_timeouts_reassign_and_repeated_timeouts_drop_the_source(file10: Any) -> None:
    enc, _, manifest = file10
    options = {"request_timeout_ms": 1000, "max_timeouts": 2, "per_source": 1}
    dl = download(manifest.id, manifest=manifest, missing=[0, 1], **options)
    dl.add_source(A, 10, T0)
    dl.add_source(B, 10, T0)
    assert asks(dl.take_actions()) == [(A, 0), (B, 1)]
    assert dl.next_deadline(T0) == T0 + 1000
    answer(dl, enc, B, 1, T0 + 10)
    assert stores(dl.take_actions()) == [1]
    dl.tick(T0 + 999)
    assert dl.take_actions() == []
    dl.tick(T0 + 1000)  # A was silent: a strike; its request goes to B
    assert asks(dl.take_actions()) == [(B, 0)]
    dl.tick(T0 + 2000)  # nothing heard from B since: a strike each, A first by name
    assert asks(dl.take_actions()) == [(A, 0)]
    dl.tick(T0 + 3000)  # A's second timeout in a row: dropped
    actions = dl.take_actions()
    assert [(a.peer_id, a.code) for a in actions if isinstance(a, SourceFailed)] == [(A, "timeout")]
    assert asks(actions) == [(B, 0)]
    answer(dl, enc, A, 0, T0 + 3001)  # too late, and A is dropped
    assert stores(dl.take_actions()) == []
    answer(dl, enc, B, 0, T0 + 3002)
    assert stores(dl.take_actions()) == [0]
    assert dl.complete


def test_a_late_answer_after_reassignment_is_stored_once(file10: Any) -> None:
    enc, _, manifest = file10
    dl = download(manifest.id, manifest=manifest, missing=[0], request_timeout_ms=1000)
    dl.add_source(A, 10, T0)
    dl.take_actions()
    dl.add_source(B, 10, T0)
    dl.tick(T0 + 1000)
    assert asks(dl.take_actions()) == [(B, 0)]
    answer(dl, enc, A, 0, T0 + 1001)  # A was slow, not wrong: its answer counts
    assert stores(dl.take_actions()) == [0]
    answer(dl, enc, B, 0, T0 + 1002)
    assert stores(dl.take_actions()) == []
    assert dl.complete
    assert dl.in_flight() == 0


def test_a_chunk_lost_from_the_store_is_fetched_again(file10: Any) -> None:
    enc, _, manifest = file10
    dl = download(manifest.id, manifest=manifest, missing=[0, 1])
    dl.add_source(A, 10, T0)
    assert asks(dl.take_actions()) == [(A, 0), (A, 1)]
    answer(dl, enc, A, 0, T0 + 1)
    answer(dl, enc, A, 1, T0 + 2)
    assert stores(dl.take_actions()) == [0, 1]
    assert dl.complete
    dl.store_failed([1], T0 + 3)  # the write failed, or it was evicted meanwhile
    assert not dl.complete
    assert asks(dl.take_actions()) == [(A, 1)]
    answer(dl, enc, A, 1, T0 + 4)
    assert stores(dl.take_actions()) == [1]
    assert dl.complete


def test_a_give_up_timeout_ends_a_download_nobody_can_serve(file10: Any) -> None:
    _, _, manifest = file10
    dl = download(manifest.id, manifest=manifest, missing=[0], give_up_after_ms=30_000)
    dl.add_source(A, 10, T0)
    dl.take_actions()
    dl.remove_source(A, T0 + 5)
    assert dl.waiting
    dl.tick(T0 + 30_004)
    assert dl.take_actions() == []
    dl.tick(T0 + 30_005)
    assert dl.take_actions() == [GaveUp("no_source", "no peer could serve this file for 30 s")]


def test_a_closed_source_gives_its_requests_to_the_others(file10: Any) -> None:
    _, _, manifest = file10
    dl = download(manifest.id, manifest=manifest, missing=[0, 1, 2])
    dl.add_source(A, 10, T0)
    assert asks(dl.take_actions()) == [(A, 0), (A, 1), (A, 2)]
    dl.remove_source(A, T0 + 1)
    assert dl.waiting
    dl.add_source(B, 10, T0 + 2)
    assert asks(dl.take_actions()) == [(B, 0), (B, 1), (B, 2)]
    assert dl.failed_sources() == []


def test_unsolicited_chunks_and_manifests_are_ignored(file10: Any) -> None:
    enc, envelope, manifest = file10
    dl = download(manifest.id)
    dl.manifest_received(A, envelope, T0)  # never asked
    assert dl.manifest is None
    assert dl.take_actions() == []
    dl = download(manifest.id, manifest=manifest, missing=[0])
    answer(dl, enc, C, 0, T0)
    assert dl.take_actions() == []
    assert not dl.complete


def test_a_wrong_or_empty_manifest_answer_moves_on_to_the_next_holder(file10: Any) -> None:
    _, envelope, manifest = file10
    _, other, _ = sealed(1)
    dl = download(manifest.id)
    dl.add_source(A, 10, T0)
    dl.add_source(B, 9, T0)
    dl.add_source(C, 1, T0)
    assert dl.take_actions() == [AskManifest(A, manifest.id)]
    dl.manifest_received(A, None, T0 + 1)  # A says it has no manifest
    assert dl.take_actions() == [AskManifest(B, manifest.id)]
    dl.manifest_received(B, other, T0 + 2)  # B sends another file's manifest
    actions = dl.take_actions()
    assert [(a.peer_id, a.code) for a in actions if isinstance(a, SourceFailed)] == [
        (B, "manifest_mismatch")
    ]
    assert actions[-1] == AskManifest(C, manifest.id)
    forged = {**envelope, "body": {**envelope["body"], "name": "evil.exe"}}
    dl.manifest_received(C, forged, T0 + 3)
    assert [a.code for a in dl.take_actions() if isinstance(a, SourceFailed)] == ["bad_signature"]
    assert dl.manifest is None
    assert dl.waiting
    assert dl.failed_sources() == [B, C]
