"""The server's capsule signing keys under SWARM_VAR_DIR/keys/capsule/.

Each key is ``<kid>.pem`` (mode 0600) plus ``<kid>.json`` metadata
``{kid, public_key, created_at, retired_at}`` (ms). The newest unretired key signs;
a retired key stays listed in /capsules/keys.json until every capsule it signed
has expired (retired_at + the capsule TTL).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from peers.protocol.capsule import CAPSULE_TTL_MS, TrustedKey, kid_for
from peers.protocol.encoding import b64url_encode
from shared.atomic import write_atomic
from shared.identity import read_private_key, write_private_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CapsuleKey:
    kid: str
    public_key: str
    created_at: int
    retired_at: int | None = None

    @property
    def trusted_until(self) -> int | None:
        """When trust ends: every capsule this key signed has expired by then."""
        return None if self.retired_at is None else self.retired_at + CAPSULE_TTL_MS

    def trusted(self) -> TrustedKey:
        return TrustedKey(
            self.public_key,
            created_at=self.created_at,
            retired_at=self.retired_at,
            expires_at=self.trusted_until,
        )


def keys_dir() -> Path:
    return Path(settings.VAR_DIR) / "keys" / "capsule"


def all_keys() -> list[CapsuleKey]:
    """Every key with metadata, newest first."""
    directory = keys_dir()
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob("*.json"):
        try:
            found.append(CapsuleKey(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            log.exception("ignoring unreadable capsule key metadata %s", path.name)
    return sorted(found, key=lambda k: (k.created_at, k.kid), reverse=True)


def trusted_keys(*, now: int) -> list[CapsuleKey]:
    """Keys whose capsules may still be valid at ``now``: the active ones and the retired
    ones until retired_at + capsule TTL (what ``GET /capsules/keys.json`` lists)."""
    return [k for k in all_keys() if k.trusted_until is None or now < k.trusted_until]


def keys_document(*, now: int) -> dict[str, object]:
    """The body of ``GET /capsules/keys.json`` (parsed by ``parse_trusted_keys``)."""
    return {
        "capsule_ttl_ms": CAPSULE_TTL_MS,
        "keys": [meta.trusted().to_json() for meta in trusted_keys(now=now)],
    }


def signing_key() -> tuple[CapsuleKey, Ed25519PrivateKey] | None:
    for meta in all_keys():
        if meta.retired_at is None:
            return meta, read_private_key(keys_dir() / f"{meta.kid}.pem")
    return None


def _write_meta(meta: CapsuleKey) -> None:
    write_atomic(keys_dir() / f"{meta.kid}.json", json.dumps(asdict(meta)).encode())


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
