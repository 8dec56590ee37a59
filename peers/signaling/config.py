"""Signaling rules and limits (SWARM_SIGNAL_* settings, docs/configuration.md "Signaling")."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The peerjs client's own rule for ids (util.validateId), enforced here too so that
# every registered id can travel in a URL and a Redis key unchanged.
ID_RE = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")
MAX_ID_LENGTH = 64
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True, slots=True)
class SignalConfig:
    key: str = "peerjs"
    expire_timeout_ms: int = 5_000
    # An OFFER to a peer whose socket on this process closed at least this long ago, and
    # that holds none, gets EXPIRE at once (docs/signaling.md "A peer that left"; 0 = never).
    gone_after_ms: int = 10_000
    alive_timeout_ms: int = 60_000
    concurrent_limit: int = 5_000
    allow_discovery: bool = False
    plain_ids: bool = True
    max_frame_bytes: int = 32_768
    rate_per_s: float = 50.0
    rate_burst: int = 200
    queue_limit: int = 100
    token_max_age_ms: int = 600_000
    clock_skew_ms: int = 15_000
    # Per client address and network (0 = no limit): ids across every process (the
    # directory), open sockets in this process (the hub).
    ids_per_ip: int = 0
    ids_per_network: int = 0
    sockets_per_ip: int = 0
    sockets_per_network: int = 0
    network_v4_prefix: int = 24
    network_v6_prefix: int = 64

    @property
    def tick_ms(self) -> int:
        """How often heartbeat deadlines are checked: fine enough for short test timeouts."""
        return max(20, min(1_000, self.alive_timeout_ms // 10))

    @property
    def expire_poll_ms(self) -> int:
        """How often queues are checked for expiry (the reference server checks every 1 s)."""
        return max(20, min(500, self.expire_timeout_ms // 10))


def is_valid_id(peer_id: str) -> bool:
    return len(peer_id) <= MAX_ID_LENGTH and bool(ID_RE.fullmatch(peer_id))
