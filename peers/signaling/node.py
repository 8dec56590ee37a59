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
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from ops import blocks as ops_blocks
from ops.blocks import BLOCKS_VERSION_KEY, local_blocks_version
from shared.clientaddr import network_of, scope_client
from shared.clock import now_ms
from shared.redis import async_options

from . import directory as d
from . import messages as m
from .config import SignalConfig
from .effects import Claim, Close, Effect, Release, Route, Send
from .hub import MSG_UNAVAILABLE, Blocks, Hub
from .metrics import record
from .redis_directory import ROUTE_FAILED, RedisDirectory
from .shared import SharedLink

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
SendFn = Callable[[dict[str, Any]], Awaitable[None]]

BLOCKS_EVERY_S = 2.0
METRICS_EVERY_S = 1.0
QUEUE_TTL_MARGIN_MS = 60_000
CLAIM_WAIT_S = 2.0  # a claim while the link to Redis is being set up again waits this long
ROUTE_FAULT_WINDOW_S = 30.0
# Departures remembered for the beacon (beacon/presence.py): the newest, at most this many,
# none older than the longest ticket lifetime (600 s), after which its ticket has expired anyway.
DEPARTED_MAX = 10_000
DEPARTED_KEEP_MS = 600_000


class SignalNode:
    def __init__(self, config: SignalConfig, redis_url: str) -> None:
        self.proc = secrets.token_hex(6)
        self.config = config
        self.hub = Hub(config, self.proc)
        self.memory: d.MemoryDirectory | None = None if redis_url else d.MemoryDirectory()
        self.redis: RedisDirectory | None = None
        self.link: SharedLink | None = None
        if redis_url:
            self.redis = RedisDirectory(
                redis_url,
                self.proc,
                queue_limit=config.queue_limit,
                queue_ttl_ms=config.expire_timeout_ms + QUEUE_TTL_MARGIN_MS,
                options=async_options(),
                subscriber_options=async_options(retries=0, reply_timeout=False),
            )
            self.link = SharedLink(
                self.redis,
                self.hub.counters,
                on_message=self._on_message,
                on_lost=self._restart_all,
                holdings=self.hub.holdings,
                close=self._restart,
            )
        # When relaying through Redis last failed and last worked (for /healthz).
        self.route_failed_at = 0.0
        self.route_worked_at = 0.0
        self._sockets: dict[int, SendFn] = {}
        self._conn_ids = itertools.count(1)
        self._start_lock = asyncio.Lock()
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._blocks: Blocks | None = None
        self._blocks_loading: asyncio.Task[None] | None = None
        self._enforced_version: str | None = None
        self._failing: set[str] = set()
        self._departed: dict[str, int] = {}  # id -> when its socket here closed (oldest first)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            loop = asyncio.get_running_loop()
            if self.redis is not None and self.link is not None:
                await self.link.start()
                self.redis.start_router(self._on_routed)
            self._tasks.append(loop.create_task(self._housekeeping()))
            self._started = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.link is not None:
            await self.link.stop()
        if self.redis is not None:
            await self.redis.retire()
            await self.redis.close()

    def health(self) -> str | None:
        """Why relaying does not work right now, or None."""
        if self.link is not None and self._started and not self.link.ready.is_set():
            return "not linked to Redis (setting up again)"
        failed = self.route_failed_at
        # Only a recent failure: with no traffic since, an old one proves nothing.
        if failed > self.route_worked_at and time.monotonic() - failed < ROUTE_FAULT_WINDOW_S:
            return "relaying through Redis failed"
        return None

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
            ip = scope_client(scope)  # resolved by shared.clientaddr (trusted proxies)
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
            now = now_ms()
            if route.queueable and self._gone(route.dst, now):
                effects.extend(self.hub.gone(route, now))
                return
            status = self.memory.route(
                route.dst,
                route.frame,
                queueable=route.queueable,
                queue_limit=config.queue_limit,
                deadline=route.deadline,
            )
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

    def _on_routed(self, batch: list[tuple[Route, str]]) -> None:
        now = now_ms()
        effects: list[Effect] = []
        failed = [route for route, status in batch if status == ROUTE_FAILED]
        if failed:
            self.route_failed_at = time.monotonic()
            effects += self.hub.unrouted(failed, now)
        if len(failed) < len(batch):
            self.route_worked_at = time.monotonic()
        for route, status in batch:
            if status != ROUTE_FAILED:
                effects += self.hub.routed(route, status, now)
        if effects:
            asyncio.get_running_loop().create_task(self._run(effects))

    async def _claim(self, claim: Claim) -> list[Effect]:
        config = self.config
        quota = d.Quota(claim.ip, claim.network, config.ids_per_ip, config.ids_per_network)
        limit = config.concurrent_limit
        try:
            if self.memory is not None:
                result = self.memory.claim(claim.peer_id, claim.holder, limit=limit, quota=quota)
            elif self.link is not None and not await self.link.wait_ready(CLAIM_WAIT_S):
                return self.hub.unavailable(claim.conn, claim.peer_id)
            else:
                result = await self._shared().claim(
                    claim.peer_id, claim.holder, limit=limit, quota=quota
                )
        except Exception:
            log.exception("claiming a signaling id failed")
            return self.hub.unavailable(claim.conn, claim.peer_id)
        if result.status in (d.OPENED, d.REPLACED):
            self._departed.pop(claim.peer_id, None)
        return self.hub.claimed(claim.conn, claim.peer_id, result, now_ms())

    async def _release(self, release: Release) -> None:
        if self.memory is not None:
            if self.memory.release(release.peer_id, self.proc, release.conn):
                self._departure(release.peer_id)
        elif self.link is not None:
            # Queued, and retried until Redis takes it: an id must never stay taken.
            self.link.release(release.peer_id, release.conn)
            self._departure(release.peer_id)  # `holding` tells if another socket took it

    # --- departures, for the beacon (beacon/presence.py) -------------------------------

    def _departure(self, peer_id: str) -> None:
        now = now_ms()
        self._departed.pop(peer_id, None)
        self._departed[peer_id] = now
        while self._departed:
            oldest, at = next(iter(self._departed.items()))
            if len(self._departed) <= DEPARTED_MAX and at > now - DEPARTED_KEEP_MS:
                break
            del self._departed[oldest]

    def _gone(self, peer_id: str, now: int) -> bool:
        """An OFFER to a peer whose socket here closed at least ``gone_after_ms`` ago, and
        that holds none now, is answered EXPIRE at once instead of waiting in the queue for
        the expire timeout: the queue is for a peer reconnecting (a reload takes a second or
        two), and a dial of a page that left minutes ago (its ticket in a capsule, a PEX
        answer or a DHT table) held the dialer's slot for those 5 s. Only where the directory
        is this process's own (the embedded default); with Redis another process may hold
        the id by now, and the queue decides (docs/signaling.md "A peer that left")."""
        after = self.config.gone_after_ms
        left = self._departed.get(peer_id)
        if after <= 0 or left is None or self.memory is None or now - left < after:
            return False
        return not self.memory.holds(peer_id)

    def any(self) -> bool:
        return bool(self._departed)

    def left_at(self, peer_id: str) -> int | None:
        """When ``peer_id``'s socket on this process last closed (None: not known to)."""
        return self._departed.get(peer_id)

    async def holding(self, peer_ids: Iterable[str]) -> set[str]:
        """Those of ``peer_ids`` that hold a socket now, on any process; with Redis out of
        reach, all of them (nothing is skipped on a guess)."""
        wanted = list(peer_ids)
        if self.memory is not None:
            return {p for p in wanted if self.memory.holds(p)}
        try:
            return await self._shared().holding(wanted)
        except Exception as exc:
            log.info("signaling directory not read for the beacon: %s", exc)
            return set(wanted)

    # --- the shared directory's callbacks ---------------------------------------------

    async def _on_message(self, data: str) -> None:
        """A message on this process's channel: a kick, or frames for our sockets."""
        hub = self.hub
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

    async def _restart_all(self) -> None:
        await self._run(self.hub.close_all())

    async def _restart(self, conns: list[int]) -> None:
        await self._run(self.hub.close_all(conns))

    # --- timers -----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        config = self.config
        step = min(config.tick_ms, config.expire_poll_ms) / 1000.0
        next_blocks = next_metrics = 0.0
        while True:
            await asyncio.sleep(step)
            now = now_ms()
            await self._chore("heartbeat check", self._run(self.hub.tick(now)))
            await self._chore("queue expiry", self._expire(now))
            clock = time.monotonic()
            if clock >= next_metrics:
                next_metrics = clock + METRICS_EVERY_S
                record(self.hub.counters)
            if clock >= next_blocks:
                next_blocks = clock + BLOCKS_EVERY_S
                await self._chore("blocks check", self._enforce_blocks())

    async def _chore(self, name: str, work: Awaitable[None]) -> None:
        """One housekeeping job: a failure (Redis or the database away) is logged once
        when it starts and once when it ends, and the other jobs go on."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if name not in self._failing:
                self._failing.add(name)
                log.warning("signaling %s failed: %s (retrying)", name, exc)
            return
        if name in self._failing:
            self._failing.discard(name)
            log.warning("signaling %s works again", name)

    async def _expire(self, now: int) -> None:
        if self.memory is not None:
            frames = self.memory.expire_due(now)
        else:
            frames = await self._shared().expire_due(now)
        if frames:
            await self._run(self.hub.expired(frames, now))

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
            self._blocks = await ops_blocks.current(await self._blocks_version())
        except Exception as exc:
            log.warning("loading blocks failed (%s); using the last known set", exc)

    async def _enforce_blocks(self) -> None:
        version = await self._blocks_version()
        if version == self._enforced_version:
            return
        blocks = await ops_blocks.current(version)
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
