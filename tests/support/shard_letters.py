"""Signed swarm/shard/v1 messages between test peers, for the mailbox tests."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.envelope import DOMAIN_SHARD, sign
from peers.protocol.keywrap import x25519_public
from peers.protocol.shard import (
    RecoverRequest,
    Share,
    make_receipt,
    make_recover_request,
    make_refuse,
    make_release,
    make_revoke,
    make_share,
    parse_kind,
)

DAY = 86_400_000
SHARE_TEXT = "swarm test share two words"


def ed(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def xk(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(b"x" + label.encode()).digest())


def pid(label: str) -> str:
    return peer_id_for_key(ed(label).public_key().public_bytes_raw())


def set_id(n: int) -> str:
    return b64url_encode(hashlib.sha256(f"set-{n}".encode()).digest()[:16])


def share(
    owner: str, guardian: str, now: int, *, index: int = 1, lifetime: int = 30 * DAY, n: int = 1
) -> dict[str, Any]:
    """Share ``index`` of set ``n`` from ``owner`` to ``guardian`` (labels)."""
    return make_share(
        ed(owner),
        guardian=pid(guardian),
        guardian_key=x25519_public(xk(guardian)),
        set_id=set_id(n),
        index=index,
        k=2,
        n=3,
        share=SHARE_TEXT,
        issued_at=now - 1000,
        expires_at=now - 1000 + lifetime,
    )


def receipt(guardian: str, share_envelope: dict[str, Any], now: int) -> dict[str, Any]:
    held = parse_kind(share_envelope, Share, now=now)
    return make_receipt(ed(guardian), held, held_at=now)


def revoke(owner: str, now: int, *, n: int = 1) -> dict[str, Any]:
    return make_revoke(ed(owner), set_id=set_id(n), issued_at=now)


def recover_request(temp: str, for_label: str, now: int) -> dict[str, Any]:
    return make_recover_request(
        ed(temp),
        x25519_public(xk(temp)),
        for_peer=pid(for_label),
        issued_at=now - 1000,
        expires_at=now + DAY,
    )


def release(guardian: str, request: dict[str, Any], now: int) -> dict[str, Any]:
    parsed = parse_kind(request, RecoverRequest, now=now)
    return make_release(ed(guardian), parsed, set_id=set_id(1), index=1, k=2, n=3, share=SHARE_TEXT)


def refuse(guardian: str, request: dict[str, Any], now: int) -> dict[str, Any]:
    return make_refuse(ed(guardian), parse_kind(request, RecoverRequest, now=now))


# --- bad ones ---


def unsigned(envelope: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(envelope)
    del bad["sig"]
    return bad


def forged(envelope: dict[str, Any]) -> dict[str, Any]:
    """The body changed after signing (issued one ms earlier): the signature no longer
    verifies."""
    bad = copy.deepcopy(envelope)
    bad["body"]["issued_at"] -= 1
    return bad


def oversized(envelope: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(envelope)
    bad["body"]["padding"] = "x" * 5000
    return bad


def malformed(owner: str, guardian: str, now: int) -> dict[str, Any]:
    """A correctly signed share body with a field too many."""
    body = dict(share(owner, guardian, now)["body"])
    body["note"] = "extra"
    return sign(DOMAIN_SHARD, body, ed(owner))


def signed_by_another(owner: str, guardian: str, now: int) -> dict[str, Any]:
    """A share naming ``owner`` but signed by someone else."""
    body = dict(share(owner, guardian, now)["body"])
    return sign(DOMAIN_SHARD, body, ed("mallory"))


def small_order_request(temp: str, for_label: str, now: int) -> dict[str, Any]:
    """A signed recovery request whose X25519 key is all zeros (of small order)."""
    return make_recover_request(
        ed(temp), bytes(32), for_peer=pid(for_label), issued_at=now - 1000, expires_at=now + DAY
    )
