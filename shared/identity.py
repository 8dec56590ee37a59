"""Ed25519 identities kept as PEM files under SWARM_VAR_DIR (never in the repo or database)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import peer_id_for_key
from shared.atomic import write_atomic


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a PKCS#8 PEM with mode 0600, atomically (no reader sees half a key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, mode=0o600)


def read_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path.name} is not an Ed25519 private key")
    return key


def load_or_create(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key at ``path``, created if missing; the flag says whether it was created."""
    if path.exists():
        return read_private_key(path), False
    key = Ed25519PrivateKey.generate()
    write_private_key(path, key)
    return key, True


def peer_id_of(key: Ed25519PrivateKey) -> str:
    return peer_id_for_key(key.public_key().public_bytes_raw())
