"""The signaling directory in Redis, shared by every web process (docs/signaling.md).

Each operation of :class:`~peers.signaling.directory.MemoryDirectory` is one Lua script,
so it is atomic across processes; ``now`` and deadlines are arguments, never Redis's
clock. A frame for an id held by another process is published on that process's
channel (``<prefix>to:<proc>``) by the same script that looked the holder up. Processes
prove they are alive with a key that expires (``alive:<proc>``); ids held by a process
whose key is gone are free, and a frame sent to one gets the sender a LEAVE, like a
failed socket in the reference server.

Keys (prefix ``swarm:sig:``): ``reg`` hash id -> "proc conn rank proven token";
``q:<id>`` list of waiting frames; ``qdl`` sorted set id -> expiry deadline (ms);
``alive:<proc>``; ``ids:<proc>`` set of the ids a process registered; ``procs``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from . import directory as d

log = logging.getLogger(__name__)

PREFIX = "swarm:sig:"
ALIVE_TTL_MS = 15_000
EXPIRE_BATCH = 200

_CLAIM = """
local prefix, id, proc = ARGV[1], ARGV[2], ARGV[3]
local entry = redis.call('HGET', KEYS[1], id)
local prev_proc, prev_conn = '', ''
if entry then
  local eproc, econn, erank, eproven, etoken =
    string.match(entry, '^(%S+) (%S+) (%S+) (%S+) (.*)$')
  if redis.call('EXISTS', prefix .. 'alive:' .. eproc) == 1 then
    local proven = ARGV[6] == '1'
    if not (etoken == ARGV[5] or
            (proven and (eproven ~= '1' or tonumber(ARGV[7]) >= tonumber(erank)))) then
      return {'taken', '', ''}
    end
    prev_proc, prev_conn = eproc, econn
    if eproc ~= proc then
      redis.call('PUBLISH', prefix .. 'to:' .. eproc, '!kick ' .. econn)
    end
  end
  redis.call('SREM', prefix .. 'ids:' .. eproc, id)
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[8]) then
  return {'full', '', ''}
end
redis.call('HSET', KEYS[1], id,
  proc .. ' ' .. ARGV[4] .. ' ' .. ARGV[7] .. ' ' .. ARGV[6] .. ' ' .. ARGV[5])
redis.call('SADD', prefix .. 'ids:' .. proc, id)
local queued = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], id)
local out = {'open', prev_proc, prev_conn}
if prev_proc ~= '' then out[1] = 'replaced' end
for i = 1, #queued do out[#out + 1] = queued[i] end
return out
"""

_RELEASE = """
local entry = redis.call('HGET', KEYS[1], ARGV[2])
local holder = ARGV[3] .. ' ' .. ARGV[4] .. ' '
if entry and string.sub(entry, 1, #holder) == holder then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('SREM', ARGV[1] .. 'ids:' .. ARGV[3], ARGV[2])
  return 1
end
return 0
"""

_ROUTE = """
local entry = redis.call('HGET', KEYS[1], ARGV[2])
if entry then
  local eproc = string.match(entry, '^(%S+) ')
  if redis.call('EXISTS', ARGV[1] .. 'alive:' .. eproc) == 1 and
     redis.call('PUBLISH', ARGV[1] .. 'to:' .. eproc,
                ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4]) > 0 then
    return 'sent'
  end
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('SREM', ARGV[1] .. 'ids:' .. eproc, ARGV[2])
  return 'dead'
end
if ARGV[5] ~= '1' then return 'dropped' end
local n = redis.call('LLEN', KEYS[2])
if n >= tonumber(ARGV[6]) then return 'queue_full' end
redis.call('RPUSH', KEYS[2], ARGV[4])
if n == 0 then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[2])
  -- a safety net: the queue is gone even if no process is left to expire it
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
return 'queued'
"""

_EXPIRE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  local key = ARGV[1] .. 'q:' .. id
  local frames = redis.call('LRANGE', key, 0, -1)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], id)
  for i = 1, #frames do out[#out + 1] = frames[i] end
end
return out
"""

_SWEEP = """
local removed = 0
for _, proc in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[1] .. 'alive:' .. proc) == 0 then
    local set = ARGV[1] .. 'ids:' .. proc
    for _, id in ipairs(redis.call('SMEMBERS', set)) do
      local entry = redis.call('HGET', KEYS[1], id)
      if entry and string.sub(entry, 1, #proc + 1) == proc .. ' ' then
        redis.call('HDEL', KEYS[1], id)
        removed = removed + 1
      end
    end
    redis.call('DEL', set)
    redis.call('SREM', KEYS[2], proc)
  end
end
return removed
"""

RouteCallback = Callable[[Any, str], None]


class RedisDirectory:
    """The directory of every process on one Redis; ``proc`` names this process."""

    def __init__(self, url: str, proc: str, *, prefix: str = PREFIX) -> None:
        self.proc = proc
        self.prefix = prefix
        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        self._reg = prefix + "reg"
        self._qdl = prefix + "qdl"
        self._procs = prefix + "procs"
        self.channel = prefix + "to:" + proc
        self._sha: dict[str, str] = {}
        self._scripts = {
            "claim": _CLAIM,
            "release": _RELEASE,
            "route": _ROUTE,
            "expire": _EXPIRE_DUE,
            "sweep": _SWEEP,
        }
        # Routes are batched into one pipeline at a time: fewer round trips, and frames
        # keep their order because one batch finishes before the next starts.
        self._batch: list[tuple[Any, tuple[Any, ...]]] = []
        self._batch_ready = asyncio.Event()
        self._on_routed: RouteCallback | None = None
        self._router: asyncio.Task[None] | None = None

    async def load_scripts(self) -> None:
        for name, source in self._scripts.items():
            self._sha[name] = await self.redis.script_load(source)

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if not self._sha:
            await self.load_scripts()
        try:
            return await self.redis.evalsha(self._sha[name], len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted and forgot the scripts
            await self.load_scripts()
            return await self.redis.evalsha(self._sha[name], len(keys), *keys, *args)

    # --- the directory operations -----------------------------------------------------

    async def claim(self, peer_id: str, claim: d.Holder, *, limit: int) -> d.ClaimResult:
        keys = [self._reg, self.prefix + "q:" + peer_id, self._qdl]
        args = [
            self.prefix,
            peer_id,
            claim.proc,
            claim.conn,
            claim.token,
            1 if claim.proven else 0,
            claim.rank,
            limit,
        ]
        reply = await self._call("claim", keys, args)
        status = reply[0].decode()
        previous = None
        if reply[1]:
            previous = (reply[1].decode(), int(reply[2]))
        queued = tuple(frame.decode() for frame in reply[3:])
        return d.ClaimResult(status, previous, queued)

    async def release(self, peer_id: str, proc: str, conn: int) -> bool:
        args = [self.prefix, peer_id, proc, conn]
        return bool(await self._call("release", [self._reg], args))

    def route(
        self,
        token: Any,
        dst: str,
        src: str,
        frame: str,
        *,
        queueable: bool,
        queue_limit: int,
        deadline: int,
        queue_ttl_ms: int,
    ) -> None:
        """Queue one route for the next batch; ``on_routed(token, status)`` gets the answer."""
        keys = (self._reg, self.prefix + "q:" + dst, self._qdl)
        args = (self.prefix, dst, src, frame, 1 if queueable else 0, queue_limit, deadline)
        self._batch.append((token, (*keys, *args, queue_ttl_ms)))
        self._batch_ready.set()

    async def route_now(
        self,
        dst: str,
        src: str,
        frame: str,
        *,
        queueable: bool,
        queue_limit: int,
        deadline: int,
        queue_ttl_ms: int,
    ) -> str:
        """One route, answered directly (the batched :meth:`route` is for the hot path)."""
        keys = [self._reg, self.prefix + "q:" + dst, self._qdl]
        args = [self.prefix, dst, src, frame, 1 if queueable else 0, queue_limit, deadline]
        return _text(await self._call("route", keys, [*args, queue_ttl_ms]))

    async def expire_due(self, now: int) -> list[str]:
        reply = await self._call("expire", [self._qdl], [self.prefix, now, EXPIRE_BATCH])
        return [frame.decode() for frame in reply]

    async def count(self) -> int:
        return int(await self.redis.hlen(self._reg))

    async def ids(self) -> list[str]:
        return [_text(key) for key in await self.redis.hkeys(self._reg)]

    async def blocks_version(self, key: str) -> str:
        value = await self.redis.get(key)
        return _text(value) if value else ""

    # --- process liveness -------------------------------------------------------------

    async def stay_alive(self, ttl_ms: int = ALIVE_TTL_MS) -> bool:
        """Refresh this process's alive key; False if it had lapsed (its ids were freed)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.prefix + "alive:" + self.proc, 1, px=ttl_ms, get=True)
        pipe.sadd(self._procs, self.proc)
        previous, _ = await pipe.execute()
        return previous is not None

    async def sweep(self) -> int:
        """Free the ids of processes that stopped proving they are alive."""
        return int(await self._call("sweep", [self._reg, self._procs], [self.prefix]))

    async def retire(self) -> None:
        """A clean shutdown: this process's ids are free at once."""
        await self.redis.delete(self.prefix + "alive:" + self.proc)
        await self.sweep()

    # --- routing ----------------------------------------------------------------------

    def start_router(self, on_routed: RouteCallback) -> None:
        self._on_routed = on_routed
        self._router = asyncio.get_running_loop().create_task(self._route_batches())

    async def _route_batches(self) -> None:
        while True:
            await self._batch_ready.wait()
            self._batch_ready.clear()
            batch, self._batch = self._batch, []
            if not batch:
                continue
            try:
                statuses = await self._run_batch([args for _, args in batch])
            except Exception:
                log.exception("routing %d frames through Redis failed", len(batch))
                statuses = ["error"] * len(batch)
            callback = self._on_routed
            for (token, _), status in zip(batch, statuses, strict=True):
                if callback is not None:
                    callback(token, status)

    async def _run_batch(self, batch: list[tuple[Any, ...]]) -> list[str]:
        if not self._sha:
            await self.load_scripts()
        pipe = self.redis.pipeline(transaction=False)
        sha = self._sha["route"]
        for args in batch:
            pipe.evalsha(sha, 3, *args)
        replies = await pipe.execute(raise_on_error=False)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            await self.load_scripts()
            return await self._run_batch(batch)
        return [r.decode() if isinstance(r, bytes) else "error" for r in replies]

    async def close(self) -> None:
        if self._router is not None:
            self._router.cancel()
        await self.redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
