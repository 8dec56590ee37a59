"""Token providers for :class:`~peers.peerjs.signaling.SignalingCore`.

PeerJS sends a ``token`` with each WebSocket connection. For key-bound ids (``p...``) Swarm's
signaling server wants a signed proof of key ownership instead of a random string
(:mod:`peers.protocol.signal_token`); :func:`key_bound_token` makes a fresh one per attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.encoding import peer_id_for_key
from peers.protocol.signal_token import make_signal_token

from .signaling import TokenProvider


def key_bound_id(private_key: Ed25519PrivateKey) -> str:
    """The ``p...`` peer id bound to ``private_key``."""
    return peer_id_for_key(private_key.public_key().public_bytes_raw())


def key_bound_token(
    private_key: Ed25519PrivateKey, *, wall_clock_ms: Callable[[], int] | None = None
) -> TokenProvider:
    """A provider signing ``s1.<issued_at>...`` tokens. The core's ``now`` is monotonic, so the
    timestamp comes from the wall clock (``wall_clock_ms``, default ``time.time``)."""
    clock = wall_clock_ms or (lambda: time.time_ns() // 1_000_000)

    def provide(peer_id: str, _now: int) -> str:
        return make_signal_token(private_key, now=clock(), peer_id=peer_id)

    return provide
