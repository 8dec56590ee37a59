"""Putting a local file into a super-peer's store (operators, tests, benchmarks).

The file is sealed like a browser seals it (new key, new file id), the manifest is signed
by ``author`` (the super-peer's own key by default), the chunks are written to the store
and the manifest and holding to the database, pinned. The running super-peer picks the
holding up on its next start; the file key is returned to build a share link.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction

from peers.protocol.chunks import encrypt_file, share_fragment
from peers.protocol.manifest import Manifest, make_manifest, normalize_mime, verify_manifest
from peers.superpeer.models import FileManifest, Holding, Pin, SuperPeer

from . import db
from .store import ChunkStore


@dataclass(frozen=True)
class Seeded:
    manifest: Manifest
    key: bytes

    @property
    def share_path(self) -> str:
        return f"/f/{self.manifest.id}#{share_fragment(self.key)}"


def seed_file(
    store: ChunkStore,
    *,
    peer_id: str,
    author: Ed25519PrivateKey,
    data: bytes,
    name: str,
    mime: str = "",
    community: str = "main",
    pinned: bool = True,
) -> Seeded:
    encrypted = encrypt_file(data)
    envelope = make_manifest(
        author, encrypted, name=name, mime=normalize_mime(mime), created_at=time.time_ns() // 10**6
    )
    manifest = verify_manifest(envelope)
    hold(
        store,
        peer_id=peer_id,
        manifest=manifest,
        chunks=[c.ciphertext for c in encrypted.chunks],
        community=community,
        pinned=pinned,
    )
    return Seeded(manifest, encrypted.key)


def hold(
    store: ChunkStore,
    *,
    peer_id: str,
    manifest: Manifest,
    chunks: list[bytes],
    community: str = "main",
    pinned: bool = True,
) -> None:
    """Write a file's chunks (verified by the store) and record the holding, pinned."""
    for chunk_id, data in zip(manifest.chunks, chunks, strict=True):
        store.write(chunk_id, data)
    with transaction.atomic():
        superpeer, _ = SuperPeer.objects.get_or_create(
            peer_id=peer_id, defaults={"community": community}
        )
        db.save_manifest(manifest)
        Holding.objects.update_or_create(
            superpeer=superpeer,
            manifest=FileManifest.objects.get(manifest_id=manifest.id),
            defaults={
                "chunks_held": len(chunks),
                "bytes_held": sum(len(c) for c in chunks),
                "complete": True,
                "pinned": pinned,
            },
        )
        if pinned:
            Pin.objects.get_or_create(
                manifest_id=manifest.id, peer_id=peer_id, defaults={"source": Pin.API}
            )
