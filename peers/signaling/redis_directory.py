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

The scripts are in ``redis_scripts``. Commands go through a client with timeouts,
health checks and retries (``shared.redis.async_options``, passed in by the node);
the subscription has its own connection that is never renewed behind the caller's back
(:meth:`RedisDirectory.subscribe`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from . import directory as d
from . import redis_scripts as lua

log = logging.getLogger(__name__)

PREFIX = "swarm:sig:"
ALIVE_TTL_MS = 15_000
EXPIRE_BATCH = 200
POOL_SIZE = 32
ROUTE_CHUNK = 256  # frames per script call
POOL_TIMEOUT_S = 5.0
SUBSCRIBE_TIMEOUT_S = 5.0

ROUTE_FAILED = "error"  # the status of frames whose batch Redis did not answer
SWEEP_SCAN = 500  # registry entries per swept chunk

RouteCallback = Callable[[list[tuple[Any, str]]], None]


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
        options: Mapping[str, Any] | None = None,
        subscriber_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.proc = proc
        self.prefix = prefix
        self.queue_limit = queue_limit
        self.queue_ttl_ms = queue_ttl_ms
        self.url = url
        self._subscriber_options = dict(subscriber_options or {})
        # A blocking pool: a burst of connects waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_TIMEOUT_S,
            **{"socket_connect_timeout": 2, **(options or {})},
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self._reg = prefix + "reg"
        self._qdl = prefix + "qdl"
        self._procs = prefix + "procs"
        self.channel = prefix + "to:" + proc
        self._sha: dict[str, str] = {}
        self._scripts = {
            "claim": lua.CLAIM,
            "release": lua.RELEASE,
            "route": lua.ROUTE,
            "expire": lua.EXPIRE_DUE,
            "sweep": lua.SWEEP,
            "owned": lua.OWNED,
            "release_many": lua.RELEASE_MANY,
            "drop_dead": lua.DROP_DEAD,
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

    async def holding(self, peer_ids: list[str]) -> set[str]:
        """Those of ``peer_ids`` with an entry in the registry (held by some process)."""
        if not peer_ids:
            return set()
        values = await self.redis.hmget(self._reg, peer_ids)
        return {p for p, v in zip(peer_ids, values, strict=True) if v is not None}

    async def release(self, peer_id: str, proc: str, conn: int) -> bool:
        args = [self.prefix, peer_id, proc, conn]
        return bool(await self._call("release", [self._reg], args))

    async def release_many(self, held: Iterable[tuple[str, int]]) -> int:
        """Release ``(id, conn)`` pairs of this process in one call (see ``RELEASE_MANY``)."""
        args: list[Any] = [self.prefix, self.proc]
        for peer_id, conn in held:
            args += [peer_id, conn]
        if len(args) == 2:
            return 0
        return int(await self._call("release_many", [self._reg], args))

    async def owned(self, also: Iterable[str]) -> dict[str, tuple[str, int] | None]:
        """The registry's holder (proc, conn) of every id in this process's set and of
        ``also``; None for an id with no entry."""
        reply = await self._call("owned", [self._reg], [self.prefix, self.proc, *also])
        holders: dict[str, tuple[str, int] | None] = {}
        for i in range(0, len(reply), 2):
            entry = _text(reply[i + 1])
            proc, _, rest = entry.partition(" ")
            conn = rest.partition(" ")[0]
            holders[_text(reply[i])] = (proc, int(conn)) if entry and conn.isdigit() else None
        return holders

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
        """Free the ids of processes that stopped proving they are alive: those listed in
        ``procs``, then any other entry whose holder has no alive key (a scan of ``reg``)."""
        removed = int(await self._call("sweep", [self._reg, self._procs], [self.prefix]))
        cursor = 0
        while True:
            cursor, chunk = await self.redis.hscan(self._reg, cursor, count=SWEEP_SCAN)
            if chunk:
                ids = [_text(key) for key in chunk]
                removed += int(await self._call("drop_dead", [self._reg], [self.prefix, *ids]))
            if not cursor:
                return removed

    async def subscribe(self) -> Subscription:
        """A new subscription to this process's channel, on a connection of its own that
        is never renewed silently: its failure is the caller's cue that frames published
        meanwhile were lost. Returns once Redis confirmed it, so that no id is claimed
        before frames for it can reach this process."""
        client = aioredis.Redis.from_url(self.url, **self._subscriber_options)
        subscription = Subscription(client, client.pubsub())
        try:
            await subscription.pubsub.subscribe(self.channel)
            deadline = asyncio.get_running_loop().time() + SUBSCRIBE_TIMEOUT_S
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError("Redis did not confirm the subscription")
                reply = await subscription.pubsub.parse_response(block=False, timeout=left)
                if isinstance(reply, list) and _text(reply[0]) == "subscribe":
                    return subscription
        except BaseException:
            await subscription.close()
            raise

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
            except Exception as exc:
                log.warning("routing %d frames through Redis failed: %s", len(batch), exc)
                statuses = [ROUTE_FAILED] * len(batch)
            if self._on_routed is not None:
                self._on_routed([(token, s) for (token, _), s in zip(batch, statuses, strict=True)])

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
                statuses += [ROUTE_FAILED] * count
        return statuses

    async def close(self) -> None:
        if self._router is not None:
            self._router.cancel()
        await self.redis.aclose(close_connection_pool=True)


class Subscription:
    """One pub/sub connection and the client that owns it."""

    def __init__(self, client: aioredis.Redis, pubsub: Any) -> None:
        self.client = client
        self.pubsub = pubsub

    async def next_message(self) -> Any:
        """The next published message (waits as long as it takes; raises when the
        connection fails)."""
        while True:
            message = await self.pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                return message

    async def close(self) -> None:
        try:
            await self.pubsub.aclose()
        finally:
            await self.client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
