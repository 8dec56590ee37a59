"""Shared fast-path state: per-IP token buckets, per-peer intervals, the blocks version.

With REDIS_URL it lives in Redis, shared by every web process, and one announce
costs one pipelined round trip for all three reads plus one write when accepted.
Without Redis (the embedded default: one web process) it lives in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import redis
import redis.asyncio as aioredis
from django.conf import settings

from ops.blocks import BLOCKS_VERSION_KEY, local_blocks_version
from shared.fastpath import PerLoop
from shared.redis import async_options

_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) * 1000 / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return tostring(wait)
"""


@dataclass(frozen=True, slots=True)
class Precheck:
    """What the shared state says about one request before it is handled."""

    ip_wait: float  # seconds until the address has a token (0 = allowed, token taken)
    peer_recent: tuple[float, str] | None  # (seconds left, memo) if the peer acted recently
    blocks_version: str


class SharedState(Protocol):
    async def precheck(
        self, *, ip_key: str | None, rate: float, burst: int, peer_key: str | None, now_ms: int
    ) -> Precheck: ...

    async def remember(self, key: str, interval_s: float, now_ms: int, memo: str) -> None: ...

    async def take(self, key: str, rate: float, burst: int, now_ms: int) -> float:
        """Take a token from bucket ``key``; the seconds to wait if there was none."""
        ...


class RedisState:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, **async_options())
        self._bucket_sha: str | None = None

    async def precheck(
        self, *, ip_key: str | None, rate: float, burst: int, peer_key: str | None, now_ms: int
    ) -> Precheck:
        if self._bucket_sha is None:
            self._bucket_sha = await self._redis.script_load(_BUCKET_LUA)
        pipe = self._redis.pipeline(transaction=False)
        if ip_key is not None:
            pipe.evalsha(self._bucket_sha, 1, f"swarm:rl:{ip_key}", rate, burst, now_ms)
        if peer_key is not None:
            pipe.get(f"swarm:iv:{peer_key}")
        pipe.get(BLOCKS_VERSION_KEY)
        try:
            results = await pipe.execute()
        except redis.exceptions.NoScriptError:
            self._bucket_sha = None  # Redis restarted and lost the script: load it again
            return await self.precheck(
                ip_key=ip_key, rate=rate, burst=burst, peer_key=peer_key, now_ms=now_ms
            )
        results.reverse()
        ip_wait = float(results.pop()) / 1000.0 if ip_key is not None else 0.0
        peer_recent = None
        if peer_key is not None:
            value = results.pop()
            if value is not None:
                until, _, memo = value.decode().partition(" ")
                wait = (int(until) - now_ms) / 1000.0
                peer_recent = (wait, memo) if wait > 0 else None
        version = results.pop()
        return Precheck(ip_wait, peer_recent, version.decode() if version else "")

    async def take(self, key: str, rate: float, burst: int, now_ms: int) -> float:
        if self._bucket_sha is None:
            self._bucket_sha = await self._redis.script_load(_BUCKET_LUA)
        try:
            wait = await self._redis.evalsha(
                self._bucket_sha, 1, f"swarm:rl:{key}", rate, burst, now_ms
            )
        except redis.exceptions.NoScriptError:
            self._bucket_sha = None
            return await self.take(key, rate, burst, now_ms)
        return float(wait) / 1000.0

    async def remember(self, key: str, interval_s: float, now_ms: int, memo: str) -> None:
        interval_ms = math.ceil(interval_s * 1000)
        if interval_ms > 0:
            await self._redis.set(
                f"swarm:iv:{key}", f"{now_ms + interval_ms} {memo}", px=interval_ms
            )


class MemoryState:
    """Per-process state for the embedded default; swept when it grows large."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, int]] = {}
        self._until: dict[str, tuple[int, str]] = {}

    def take_now(self, key: str, rate: float, burst: int, now_ms: int) -> float:
        tokens, ts = self._buckets.get(key, (float(burst), now_ms))
        tokens = min(float(burst), tokens + max(0, now_ms - ts) * rate / 1000.0)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        if len(self._buckets) > self.MAX_KEYS:
            self._buckets.clear()
        self._buckets[key] = (tokens, now_ms)
        return wait

    async def take(self, key: str, rate: float, burst: int, now_ms: int) -> float:
        return self.take_now(key, rate, burst, now_ms)

    async def precheck(
        self, *, ip_key: str | None, rate: float, burst: int, peer_key: str | None, now_ms: int
    ) -> Precheck:
        ip_wait = self.take_now(ip_key, rate, burst, now_ms) if ip_key is not None else 0.0
        peer_recent = None
        entry = self._until.get(peer_key) if peer_key is not None else None
        if entry is not None and entry[0] > now_ms:
            peer_recent = ((entry[0] - now_ms) / 1000.0, entry[1])
        return Precheck(ip_wait, peer_recent, local_blocks_version())

    async def remember(self, key: str, interval_s: float, now_ms: int, memo: str) -> None:
        if len(self._until) > self.MAX_KEYS:
            self._until = {k: e for k, e in self._until.items() if e[0] > now_ms}
        self._until[key] = (now_ms + math.ceil(interval_s * 1000), memo)


# Async clients belong to one event loop; servers run one, tests run many.
_states = PerLoop(lambda: RedisState(settings.REDIS_URL))
_memory_state = MemoryState()


def get_state() -> SharedState:
    if not settings.REDIS_URL:
        return _memory_state
    return _states.get()


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
