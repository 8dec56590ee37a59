"""The signaling node's link to the shared directory in Redis: the subscription, this
process's liveness, releases that must not be lost, and the sweeps that keep the
registry true to the sockets (docs/signaling.md, "Failures").

The link is *ready* once its subscription is confirmed and its alive key set; claims
wait for that. When the subscription fails or the alive key had lapsed, frames for this
process may have been lost and its ids freed or taken: every socket is told to
reconnect (``on_lost``) and the link is set up again, retried with backoff until Redis
answers. Releases are queued and retried until Redis takes them; whatever still slips
through (a claim answered after its socket left, a release lost with Redis's memory) is
found by the reconciler (``upkeep.Reconciler``) and by the sweep of dead owners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from shared.clock import now_ms

from .redis_directory import ALIVE_TTL_MS, RedisDirectory, Subscription
from .upkeep import Reconciler, Retries

log = logging.getLogger(__name__)

ALIVE_EVERY_S = 2.0  # the alive key lives 15 s (redis_directory.ALIVE_TTL_MS)
SWEEP_EVERY_S = 10.0
RECONCILE_EVERY_S = 5.0
RECONCILE_GRACE_MS = 4_000
RELEASE_RETRY_BASE_MS = 200
RELEASE_RETRY_CAP_MS = 5_000
RELEASE_BATCH = 200
RESYNC_FIRST_S = 0.1
RESYNC_MAX_S = 0.5

Holdings = tuple[dict[str, int], dict[str, int]]


class SharedLink:
    def __init__(
        self,
        directory: RedisDirectory,
        counters: Counter[tuple[str, str]],
        *,
        on_message: Callable[[str], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        holdings: Callable[[], Holdings],
        close: Callable[[list[int]], Awaitable[None]],
    ) -> None:
        self.directory = directory
        self.counters = counters
        self._on_message = on_message
        self._on_lost = on_lost
        self._holdings = holdings
        self._close = close
        self.ready = asyncio.Event()
        self._subscription: Subscription | None = None
        self._listener: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._releases: Retries[tuple[str, int]] = Retries(
            RELEASE_RETRY_BASE_MS, RELEASE_RETRY_CAP_MS
        )
        self._release_wakeup = asyncio.Event()
        self._reconciler = Reconciler(directory.proc, RECONCILE_GRACE_MS)
        self._alive_at = 0.0  # when the alive key was last refreshed (monotonic)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect for the first time; raises if Redis cannot be reached."""
        await self._connect()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._releaser()),
            loop.create_task(self._every(ALIVE_EVERY_S, self._keep_alive, "alive key")),
            loop.create_task(self._every(SWEEP_EVERY_S, self._sweep, "sweep")),
            loop.create_task(self._every(RECONCILE_EVERY_S, self._reconcile, "reconcile")),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, self._listener, self._resync]:
            if task is not None:
                task.cancel()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.close()

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _connect(self) -> None:
        await self.directory.load_scripts()
        subscription = await self.directory.subscribe()
        try:
            await self.directory.stay_alive()
        except BaseException:
            await subscription.close()
            raise
        self._subscription = subscription
        self._alive_at = time.monotonic()
        self._listener = asyncio.get_running_loop().create_task(self._listen(subscription))
        self.ready.set()

    async def _listen(self, subscription: Subscription) -> None:
        while True:
            try:
                message = await subscription.next_message()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._lost(f"the subscription failed: {exc}")
                return
            try:
                await self._on_message(message["data"].decode("utf-8"))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling a message from another signaling process failed")

    async def _lost(self, reason: str) -> None:
        if not self.ready.is_set():
            return  # already starting over
        self.ready.clear()
        log.warning("signaling lost its link to Redis (%s): every socket reconnects", reason)
        await self._on_lost()
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(self._start_over())

    async def _start_over(self) -> None:
        if self._listener is not None and self._listener is not asyncio.current_task():
            self._listener.cancel()
        old, self._subscription = self._subscription, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        delay = RESYNC_FIRST_S
        while True:
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("signaling cannot reach Redis yet (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(RESYNC_MAX_S, delay * 2)
            else:
                log.warning("signaling is linked to Redis again")
                return

    # --- releases that must not be lost -----------------------------------------------

    def release(self, peer_id: str, conn: int) -> None:
        """Free ``peer_id`` if connection ``conn`` of this process still holds it: at
        once, and again with growing delays for as long as Redis does not answer."""
        if self._releases.add((peer_id, conn), now_ms()):
            self._release_wakeup.set()
        else:
            log.warning("too many releases pending; %s is left to the reconciler", peer_id)

    def pending_releases(self) -> int:
        return len(self._releases)

    async def _releaser(self) -> None:
        while True:
            self._release_wakeup.clear()
            now = now_ms()
            due = self._releases.due(now)[:RELEASE_BATCH]
            if not due:
                next_due = self._releases.next_due()
                timeout = None if next_due is None else max(0.0, (next_due - now) / 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release_wakeup.wait(), timeout)
                continue
            try:
                await self.directory.release_many(due)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("releasing %d signaling ids failed (%s); will retry", len(due), exc)
                for key in due:
                    self._releases.failed(key, now_ms())
            else:
                for key in due:
                    self._releases.succeeded(key)

    # --- timers -----------------------------------------------------------------------

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("signaling %s failed: %s", name, exc)
            except Exception:
                log.exception("signaling %s failed", name)

    async def _keep_alive(self) -> None:
        if not self.ready.is_set():
            return
        lapsed = not await self.directory.stay_alive()
        now = time.monotonic()
        # Unrefreshed for longer than its lifetime, the key may have lapsed and been set
        # again since (a refresh that timed out during a stall runs when Redis resumes).
        stale = now - self._alive_at > ALIVE_TTL_MS / 1000
        self._alive_at = now
        if lapsed or stale:
            # Taken for dead (Redis restarted, or stalled past the key's lifetime): our
            # ids may have been freed and taken, frames for us dropped.
            await self._lost("its alive key had lapsed")

    async def _sweep(self) -> None:
        removed = await self.directory.sweep()
        if removed:
            self.counters["swept", "dead_owner"] += removed

    async def _reconcile(self) -> None:
        if not self.ready.is_set():
            return
        held, _ = self._holdings()
        entries = await self.directory.owned(held)
        held, claiming = self._holdings()  # as they are now, after the read
        review = self._reconciler.review(
            entries=entries, held=held, claiming=claiming, now=now_ms()
        )
        if review.release or review.forget:
            stale = [*review.release, *((peer_id, -1) for peer_id in review.forget)]
            await self.directory.release_many(stale)
            if review.release:
                self.counters["swept", "orphan"] += len(review.release)
                log.warning("released %d signaling ids no socket held", len(review.release))
        if review.close:
            self.counters["swept", "ghost"] += len(review.close)
            log.warning("closing %d sockets whose ids the registry lost", len(review.close))
            await self._close(list(review.close))
