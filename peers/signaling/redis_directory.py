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
``alive:<proc>``; ``ids:<proc>`` set of the ids a process registered; ``procs``;
``grp:ip:<address>`` / ``grp:net:<network>`` the "id proc conn" of the ids claimed from a
client address or network (per-address quotas, pruned lazily by the claims).
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
POOL_SIZE = 32
ROUTE_CHUNK = 256  # frames per script call
POOL_TIMEOUT_S = 5.0

_CLAIM = """
local prefix, id, proc = ARGV[1], ARGV[2], ARGV[3]
local entry = redis.call('HGET', KEYS[1], id)
local prev_proc, prev_conn, eproc = '', '', nil
if entry then
  local econn, erank, eproven, etoken
  eproc, econn, erank, eproven, etoken =
    string.match(entry, '^(%S+) (%S+) (%S+) (%S+) (.*)$')
  if redis.call('EXISTS', prefix .. 'alive:' .. eproc) == 1 then
    local proven = ARGV[6] == '1'
    if not (etoken == ARGV[5] or
            (proven and (eproven ~= '1' or tonumber(ARGV[7]) >= tonumber(erank)))) then
      return {'taken', '', ''}
    end
    prev_proc, prev_conn = eproc, econn
  end
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[8]) then
  return {'full', '', ''}
end
-- Quotas (ARGV[9..]: group, limit, refusal): members are "id proc conn", counted while
-- that connection still holds the id on a live process; stale members are dropped here.
for g = 9, #ARGV, 3 do
  local key, n = prefix .. 'grp:' .. ARGV[g], 0
  for _, member in ipairs(redis.call('SMEMBERS', key)) do
    local mid, mholder = string.match(member, '^(%S+) (.*)$')
    if mid ~= id then
      local held = redis.call('HGET', KEYS[1], mid)
      if held and string.sub(held, 1, #mholder + 1) == mholder .. ' ' and
         redis.call('EXISTS', prefix .. 'alive:' .. string.match(mholder, '^(%S+)')) == 1 then
        n = n + 1
      else
        redis.call('SREM', key, member)
      end
    end
  end
  if n >= tonumber(ARGV[g + 1]) then
    return {ARGV[g + 2], '', ''}
  end
end
if prev_proc ~= '' and prev_proc ~= proc then
  redis.call('PUBLISH', prefix .. 'to:' .. prev_proc, '!kick ' .. prev_conn)
end
if entry then
  redis.call('SREM', prefix .. 'ids:' .. eproc, id)
end
redis.call('HSET', KEYS[1], id,
  proc .. ' ' .. ARGV[4] .. ' ' .. ARGV[7] .. ' ' .. ARGV[6] .. ' ' .. ARGV[5])
redis.call('SADD', prefix .. 'ids:' .. proc, id)
for g = 9, #ARGV, 3 do
  local key = prefix .. 'grp:' .. ARGV[g]
  redis.call('SADD', key, id .. ' ' .. proc .. ' ' .. ARGV[4])
  redis.call('PEXPIRE', key, 604800000)
end
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

# Many frames in one call: each holder's process gets one PUBLISH for all its frames
# ("dst\nsrc\nframe" lines; JSON frames never contain a raw newline, ids cannot).
_ROUTE = """
local prefix, limit, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local status, holders, batches, procs, alive = {}, {}, {}, {}, {}
local n = 0
for i = 4, #ARGV, 5 do
  n = n + 1
  local dst = ARGV[i]
  local entry = redis.call('HGET', KEYS[1], dst)
  if entry then
    local eproc = string.match(entry, '^(%S+) ')
    if alive[eproc] == nil then
      alive[eproc] = redis.call('EXISTS', prefix .. 'alive:' .. eproc) == 1
    end
    if alive[eproc] then
      local batch = batches[eproc]
      if batch == nil then
        batch = {}
        batches[eproc] = batch
        procs[#procs + 1] = eproc
      end
      batch[#batch + 1] = dst .. '\\n' .. ARGV[i + 1] .. '\\n' .. ARGV[i + 2]
      status[n] = 'sent'
      holders[n] = eproc
    else
      redis.call('HDEL', KEYS[1], dst)
      redis.call('SREM', prefix .. 'ids:' .. eproc, dst)
      status[n] = 'dead'
    end
  elseif ARGV[i + 3] ~= '1' then
    status[n] = 'dropped'
  else
    local queue = prefix .. 'q:' .. dst
    local length = redis.call('LLEN', queue)
    if length >= limit then
      status[n] = 'queue_full'
    else
      redis.call('RPUSH', queue, ARGV[i + 2])
      if length == 0 then
        redis.call('ZADD', KEYS[2], ARGV[i + 4], dst)
        -- a safety net: the queue is gone even if no process is left to expire it
        redis.call('PEXPIRE', queue, ttl)
      end
      status[n] = 'queued'
    end
  end
end
local unreachable = {}
for _, proc in ipairs(procs) do
  if redis.call('PUBLISH', prefix .. 'to:' .. proc, table.concat(batches[proc], '\\n')) == 0 then
    unreachable[proc] = true
  end
end
if next(unreachable) then
  for k = 1, n do
    local proc = holders[k]
    if proc and unreachable[proc] then
      status[k] = 'dead'
      local dst = ARGV[4 + (k - 1) * 5]
      local entry = redis.call('HGET', KEYS[1], dst)
      if entry and string.sub(entry, 1, #proc + 1) == proc .. ' ' then
        redis.call('HDEL', KEYS[1], dst)
        redis.call('SREM', prefix .. 'ids:' .. proc, dst)
      end
    end
  end
end
return status
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

    def __init__(
        self,
        url: str,
        proc: str,
        *,
        prefix: str = PREFIX,
        queue_limit: int = 100,
        queue_ttl_ms: int = 65_000,
    ) -> None:
        self.proc = proc
        self.prefix = prefix
        self.queue_limit = queue_limit
        self.queue_ttl_ms = queue_ttl_ms
        # A blocking pool: a burst of connects waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_TIMEOUT_S, socket_connect_timeout=2
        )
        self.redis = aioredis.Redis(connection_pool=pool)
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

    async def claim(
        self, peer_id: str, claim: d.Holder, *, limit: int, quota: d.Quota | None = None
    ) -> d.ClaimResult:
        keys = [self._reg, self.prefix + "q:" + peer_id, self._qdl]
        args: list[Any] = [
            self.prefix,
            peer_id,
            claim.proc,
            claim.conn,
            claim.token,
            1 if claim.proven else 0,
            claim.rank,
            limit,
        ]
        for group in quota.groups() if quota is not None else ():
            args.extend(group)
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
        deadline: int,
    ) -> None:
        """Queue one frame for the next batch; ``on_routed(token, status)`` gets the answer."""
        self._batch.append((token, (dst, src, frame, 1 if queueable else 0, deadline)))
        self._batch_ready.set()

    async def route_now(
        self,
        dst: str,
        src: str,
        frame: str,
        *,
        queueable: bool,
        deadline: int,
    ) -> str:
        """One frame, answered directly (the batched :meth:`route` is for the hot path)."""
        statuses = await self.route_many([(dst, src, frame, 1 if queueable else 0, deadline)])
        return statuses[0]

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
                statuses = await self.route_many([args for _, args in batch])
            except Exception:
                log.exception("routing %d frames through Redis failed", len(batch))
                statuses = ["error"] * len(batch)
            callback = self._on_routed
            for (token, _), status in zip(batch, statuses, strict=True):
                if callback is not None:
                    callback(token, status)

    async def route_many(self, frames: list[tuple[Any, ...]]) -> list[str]:
        """Route ``(dst, src, frame, queueable, deadline)`` tuples in order, in few calls."""
        if not self._sha:
            await self.load_scripts()
        pipe = self.redis.pipeline(transaction=False)
        sha = self._sha["route"]
        head = (self.prefix, self.queue_limit, self.queue_ttl_ms)
        for start in range(0, len(frames), ROUTE_CHUNK):
            args = [value for item in frames[start : start + ROUTE_CHUNK] for value in item]
            pipe.evalsha(sha, 2, self._reg, self._qdl, *head, *args)
        replies = await pipe.execute(raise_on_error=False)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            await self.load_scripts()  # Redis restarted: nothing ran, run it all again
            return await self.route_many(frames)
        statuses: list[str] = []
        for reply, start in zip(replies, range(0, len(frames), ROUTE_CHUNK), strict=True):
            count = min(ROUTE_CHUNK, len(frames) - start)
            if isinstance(reply, list):
                statuses += [_text(status) for status in reply]
            else:
                log.error("routing %d frames failed: %s", count, reply)
                statuses += ["error"] * count
        return statuses

    async def close(self) -> None:
        if self._router is not None:
            self._router.cancel()
        await self.redis.aclose(close_connection_pool=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
