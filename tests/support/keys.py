"""Keys and tickets for tests."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import peer_id_for_key
from peers.protocol.ticket import make_ticket


def seeded_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def peer_id(key: Ed25519PrivateKey) -> str:
    return peer_id_for_key(key.public_key().public_bytes_raw())


def ticket(key: Ed25519PrivateKey, community: str, now: int, **kw: Any) -> dict[str, Any]:
    return make_ticket(key, community=community, now=now, **kw)
