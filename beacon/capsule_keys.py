"""The server's capsule signing keys under SWARM_VAR_DIR/keys/capsule/.

Each key is ``<kid>.pem`` (mode 0600) plus ``<kid>.json`` metadata
``{kid, public_key, created_at, retired_at}`` (ms). The newest unretired key signs;
a retired key stays listed in /capsules/keys.json until every capsule it signed
has expired (retired_at + the capsule TTL).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from peers.identity import read_private_key, write_private_key
from peers.protocol.encoding import b64url_encode


@dataclass(frozen=True, slots=True)
class CapsuleKey:
    kid: str
    public_key: str
    created_at: int
    retired_at: int | None = None


def keys_dir() -> Path:
    return Path(settings.VAR_DIR) / "keys" / "capsule"


def kid_for(public_raw: bytes) -> str:
    return b64url_encode(hashlib.sha256(public_raw).digest())[:16]


def all_keys() -> list[CapsuleKey]:
    """Every key with metadata, newest first."""
    directory = keys_dir()
    if not directory.is_dir():
        return []
    found = [CapsuleKey(**json.loads(path.read_text())) for path in directory.glob("*.json")]
    return sorted(found, key=lambda k: (k.created_at, k.kid), reverse=True)


def signing_key() -> tuple[CapsuleKey, Ed25519PrivateKey] | None:
    for meta in all_keys():
        if meta.retired_at is None:
            return meta, read_private_key(keys_dir() / f"{meta.kid}.pem")
    return None


def _write_meta(meta: CapsuleKey) -> None:
    path = keys_dir() / f"{meta.kid}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(meta)))
    os.replace(tmp, path)


def create(*, now: int) -> CapsuleKey:
    key = Ed25519PrivateKey.generate()
    public_raw = key.public_key().public_bytes_raw()
    meta = CapsuleKey(kid=kid_for(public_raw), public_key=b64url_encode(public_raw), created_at=now)
    write_private_key(keys_dir() / f"{meta.kid}.pem", key)
    _write_meta(meta)
    return meta


def ensure(*, now: int) -> tuple[CapsuleKey, bool]:
    """The current signing key, created if there is none; the flag says whether it was."""
    current = signing_key()
    if current is not None:
        return current[0], False
    return create(now=now), True


def rotate(*, now: int) -> CapsuleKey:
    """Make a new signing key and retire the others (they stay trusted until expiry)."""
    new = create(now=now)
    for meta in all_keys():
        if meta.kid != new.kid and meta.retired_at is None:
            _write_meta(CapsuleKey(**{**asdict(meta), "retired_at": now}))
    return new
