"""Blocks: fast checks for the announce and signaling paths, the version stamp that tells
every process a block changed, and creating one.

Active blocks are few, so each process keeps them in memory and reloads them when
the shared version stamp changes (bumped on every Block save/delete, see
:func:`bump_blocks_version`) or at least every ``MAX_AGE_S`` (for expiries).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from shared.db import db_sync_to_async
from shared.redis import get_redis

from .models import Block

MAX_AGE_S = 30.0
# With REDIS_URL every process reads the stamp from Redis (the beacon's and the signaling
# node's shared state fetch it with their other reads); without, it is this process's own.
BLOCKS_VERSION_KEY = "swarm:blocks:version"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class BlockSet:
    version: str = ""
    loaded_at: float = 0.0
    keys: frozenset[str] = frozenset()
    peers: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    def blocks(
        self, *, public_key: str | None = None, peer_id: str | None = None, ip: str | None = None
    ) -> bool:
        if public_key is not None and public_key in self.keys:
            return True
        if peer_id is not None and peer_id in self.peers:
            return True
        if ip and self.networks:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return False
            return any(address in network for network in self.networks)
        return False


_current = BlockSet()
_reload_lock: asyncio.Lock | None = None
_local_version = ""


def load(version: str) -> BlockSet:
    active = Block.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    keys: set[str] = set()
    peers: set[str] = set()
    networks: list[IPNetwork] = []
    for kind, value in active.values_list("kind", "value"):
        if kind == Block.KEY:
            keys.add(value)
        elif kind == Block.PEER:
            peers.add(value)
        elif kind == Block.IP:
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                continue
    return BlockSet(
        version=version,
        loaded_at=time.monotonic(),
        keys=frozenset(keys),
        peers=frozenset(peers),
        networks=tuple(networks),
    )


def _fresh(snapshot: BlockSet, version: str) -> bool:
    return (
        snapshot.loaded_at > 0
        and snapshot.version == version
        and time.monotonic() - snapshot.loaded_at < MAX_AGE_S
    )


async def current(version: str) -> BlockSet:
    """The active blocks for the shared ``version`` stamp, reloaded when it moved."""
    global _current
    if _fresh(_current, version):
        return _current
    # Outside any request: the connection goes back to the pool after the read, so one
    # broken by a database restart is never used again.
    _current = await db_sync_to_async(load)(version)
    return _current


def local_blocks_version() -> str:
    """The stamp of the last block change made in this process (no Redis)."""
    return _local_version


def bump_blocks_version() -> None:
    """Tell every process that blocks changed (called from Block save/delete signals)."""
    global _local_version
    stamp = str(time.time_ns())
    _local_version = stamp
    client = get_redis()
    if client is not None:
        client.set(BLOCKS_VERSION_KEY, stamp)


def block_create(*, kind: str, value: str, reason: str = "") -> Block:
    block = Block(kind=kind, value=value, reason=reason)
    block.full_clean()
    block.save()
    return block
