"""The signaling service of one web process: sockets, the hub, the directory, timers.

This is the IO adapter of :mod:`peers.signaling.hub`: it turns ASGI WebSocket events into
hub inputs and performs the effects the hub returns (send, close, claim, release, route).
With ``REDIS_URL`` the directory is shared in Redis and frames for ids held by other
processes arrive on this process's pub/sub channel; without it the directory lives in
memory and one process serves everyone (the embedded default).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from beacon import blocks as beacon_blocks
from beacon.limits import BLOCKS_VERSION_KEY, local_blocks_version
from swarmweb.clientaddr import network_of, scope_client
from swarmweb.clock import now_ms

from . import directory as d
from . import messages as m
from .config import SignalConfig
from .effects import Claim, Close, Effect, Release, Route, Send
from .hub import MSG_UNAVAILABLE, Blocks, Hub
from .metrics import record
from .redis_directory import RedisDirectory

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
SendFn = Callable[[dict[str, Any]], Awaitable[None]]

ALIVE_EVERY_S = 5.0
SWEEP_EVERY_S = 10.0
BLOCKS_EVERY_S = 2.0
METRICS_EVERY_S = 1.0
QUEUE_TTL_MARGIN_MS = 60_000


class SignalNode:
    def __init__(self, config: SignalConfig, redis_url: str) -> None:
        self.proc = secrets.token_hex(6)
        self.config = config
        self.hub = Hub(config, self.proc)
        self.memory: d.MemoryDirectory | None = None if redis_url else d.MemoryDirectory()
        self.redis: RedisDirectory | None = None
        if redis_url:
            self.redis = RedisDirectory(
                redis_url,
                self.proc,
                queue_limit=config.queue_limit,
                queue_ttl_ms=config.expire_timeout_ms + QUEUE_TTL_MARGIN_MS,
            )
        self._sockets: dict[int, SendFn] = {}
        self._conn_ids = itertools.count(1)
        self._start_lock = asyncio.Lock()
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._blocks: Blocks | None = None
        self._blocks_loading: asyncio.Task[None] | None = None
        self._enforced_version: str | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            loop = asyncio.get_running_loop()
            if self.redis is not None:
                await self.redis.load_scripts()
                await self.redis.stay_alive()
                pubsub = self.redis.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.redis.channel)
                # Wait for the confirmation: no id is claimed before frames can reach us.
                await pubsub.get_message(timeout=5)
                self.redis.start_router(self._on_routed)
                self._tasks.append(loop.create_task(self._listen(pubsub)))
            self._tasks.append(loop.create_task(self._housekeeping()))
            self._started = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.redis is not None:
            await self.redis.retire()
            await self.redis.close()

    # --- one WebSocket ----------------------------------------------------------------

    async def serve(self, scope: Scope, receive: Receive, send: SendFn) -> None:
        """Run one PeerJS signaling socket from connect to disconnect."""
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        try:
            await self.start()
        except Exception:
            log.exception("the signaling service cannot start (Redis down?)")
            frame = m.error_frame(MSG_UNAVAILABLE, "unavailable")
            await send({"type": "websocket.send", "text": frame})
            await send({"type": "websocket.close", "code": 1000})
            return
        conn = next(self._conn_ids)
        self._sockets[conn] = send
        try:
            query = scope.get("query_string", b"").decode("latin-1")
            params = dict(parse_qsl(query, keep_blank_values=True))
            blocks = await self._current_blocks()
            ip = scope_client(scope)  # resolved by swarmweb.clientaddr (trusted proxies)
            network = self.network_of(ip) if ip else None
            effects = self.hub.connect(
                conn, params, ip=ip, network=network, now=now_ms(), blocks=blocks
            )
            await self._run(effects)
            hub = self.hub
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.receive":
                    text = event.get("text")
                    if text is None:
                        try:
                            text = (event.get("bytes") or b"").decode("utf-8")
                        except UnicodeDecodeError:
                            continue
                    effects = hub.receive(conn, text, now_ms())
                    if effects:
                        await self._run(effects)
                elif kind == "websocket.disconnect":
                    break
        finally:
            self._sockets.pop(conn, None)
            effects = self.hub.disconnected(conn)
            if effects:
                await self._run(effects)

    def network_of(self, ip: str) -> str:
        v4, v6 = self.config.network_v4_prefix, self.config.network_v6_prefix
        return network_of(ip, v4_prefix=v4, v6_prefix=v6)

    # --- effects ----------------------------------------------------------------------

    async def _run(self, effects: list[Effect]) -> None:
        hub = self.hub
        i = 0
        while i < len(effects):
            effect = effects[i]
            i += 1
            if type(effect) is Send:
                send = self._sockets.get(effect.conn)
                if send is None:
                    continue
                try:
                    await send({"type": "websocket.send", "text": effect.frame})
                except Exception:
                    # The reference server's "peer dead" path: drop it, LEAVE to the sender.
                    effects.extend(hub.send_failed(effect.conn, effect.src, now_ms()))
            elif type(effect) is Route:
                self._route(effect, effects)
            elif type(effect) is Close:
                send = self._sockets.get(effect.conn)
                if send is not None:
                    try:
                        await send({"type": "websocket.close", "code": effect.code})
                    except Exception:
                        log.warning("closing socket %d failed", effect.conn, exc_info=True)
            elif type(effect) is Claim:
                effects.extend(await self._claim(effect))
            elif type(effect) is Release:
                await self._release(effect)

    def _route(self, route: Route, effects: list[Effect]) -> None:
        config = self.config
        if self.memory is not None:
            status = self.memory.route(
                route.dst,
                route.frame,
                queueable=route.queueable,
                queue_limit=config.queue_limit,
                deadline=route.deadline,
            )
            now = now_ms()
            if status == d.SENT:
                effects.extend(self.hub.deliver(route.dst, route.src, route.frame, now))
            effects.extend(self.hub.routed(route, status, now))
            return
        self._shared().route(
            route,
            route.dst,
            route.src,
            route.frame,
            queueable=route.queueable,
            deadline=route.deadline,
        )

    def _on_routed(self, route: Route, status: str) -> None:
        if status == "error":
            self.hub.counters["dropped", "unavailable"] += 1
            return
        effects = self.hub.routed(route, status, now_ms())
        if effects:
            asyncio.get_running_loop().create_task(self._run(effects))

    async def _claim(self, claim: Claim) -> list[Effect]:
        config = self.config
        quota = d.Quota(claim.ip, claim.network, config.ids_per_ip, config.ids_per_network)
        limit = config.concurrent_limit
        try:
            if self.memory is not None:
                result = self.memory.claim(claim.peer_id, claim.holder, limit=limit, quota=quota)
            else:
                result = await self._shared().claim(
                    claim.peer_id, claim.holder, limit=limit, quota=quota
                )
        except Exception:
            log.exception("claiming a signaling id failed")
            return self.hub.unavailable(claim.conn, claim.peer_id)
        return self.hub.claimed(claim.conn, claim.peer_id, result, now_ms())

    async def _release(self, release: Release) -> None:
        try:
            if self.memory is not None:
                self.memory.release(release.peer_id, self.proc, release.conn)
            else:
                await self._shared().release(release.peer_id, self.proc, release.conn)
        except Exception:
            # The id stays registered until this process's alive key lapses.
            log.exception("releasing signaling id %s failed", release.peer_id)

    # --- frames from other processes --------------------------------------------------

    async def _listen(self, pubsub: Any) -> None:
        hub = self.hub
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
                if message is None or message["type"] != "message":
                    continue
                data: str = message["data"].decode("utf-8")
                if data.startswith("!kick "):
                    effects = hub.kick(int(data[6:]))
                else:
                    # "dst\nsrc\nframe" lines, as many as the sender's batch held for us.
                    lines = data.split("\n")
                    now = now_ms()
                    effects = []
                    for i in range(0, len(lines) - 2, 3):
                        effects += hub.deliver(lines[i], lines[i + 1], lines[i + 2], now)
                if effects:
                    await self._run(effects)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Frames published meanwhile are lost and senders may have been told our
                # ids are gone: every socket of this process starts over.
                log.exception("signaling pub/sub failed; closing this process's sockets")
                await self._run(self.hub.close_all())
                await asyncio.sleep(0.5)

    # --- timers -----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        config = self.config
        step = min(config.tick_ms, config.expire_poll_ms) / 1000.0
        next_alive = next_sweep = next_blocks = next_metrics = 0.0
        while True:
            await asyncio.sleep(step)
            try:
                now = now_ms()
                effects = self.hub.tick(now)
                if self.memory is not None:
                    frames = self.memory.expire_due(now)
                else:
                    frames = await self._shared().expire_due(now)
                effects += self.hub.expired(frames, now)
                if effects:
                    await self._run(effects)
                clock = time.monotonic()
                if self.redis is not None and clock >= next_alive:
                    next_alive = clock + ALIVE_EVERY_S
                    if not await self.redis.stay_alive():
                        # Our ids were freed while we were away: every socket starts over.
                        await self._run(self.hub.close_all())
                if self.redis is not None and clock >= next_sweep:
                    next_sweep = clock + SWEEP_EVERY_S
                    await self.redis.sweep()
                if clock >= next_blocks:
                    next_blocks = clock + BLOCKS_EVERY_S
                    await self._enforce_blocks()
                if clock >= next_metrics:
                    next_metrics = clock + METRICS_EVERY_S
                    record(self.hub.counters)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("signaling housekeeping failed")

    # --- blocks -----------------------------------------------------------------------

    async def _blocks_version(self) -> str:
        if self.redis is None:
            return local_blocks_version()
        return await self.redis.blocks_version(BLOCKS_VERSION_KEY)

    async def _current_blocks(self) -> Blocks | None:
        # One load at a time: a burst of connects must not queue a database read each.
        if self._blocks_loading is None or self._blocks_loading.done():
            self._blocks_loading = asyncio.get_running_loop().create_task(self._load_blocks())
        await asyncio.shield(self._blocks_loading)
        return self._blocks

    async def _load_blocks(self) -> None:
        try:
            self._blocks = await beacon_blocks.current(await self._blocks_version())
        except Exception:
            log.exception("loading blocks failed; using the last known set")

    async def _enforce_blocks(self) -> None:
        version = await self._blocks_version()
        if version == self._enforced_version:
            return
        blocks = await beacon_blocks.current(version)
        self._blocks = blocks
        self._enforced_version = version
        effects = self.hub.enforce(blocks)
        if effects:
            await self._run(effects)

    def _shared(self) -> RedisDirectory:
        if self.redis is None:
            raise RuntimeError("this node has no shared directory")
        return self.redis

    # --- queries for the HTTP routes and /metrics -------------------------------------

    async def peer_ids(self) -> list[str]:
        if self.memory is not None:
            return self.memory.ids()
        return await self._shared().ids()

    def local_count(self) -> int:
        return self.memory.count() if self.memory is not None else self.hub.open_count()
