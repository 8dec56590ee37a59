"""Announces and /healthz probes under fault injection, with the bookkeeping of what
each got and when. Used by ``tests/test_faults_postgres.py`` and ``bench/faults.py``."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from shared.clock import now_ms
from tests.support.keys import seeded_key, ticket


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic()
    took: float
    server: int
    status: int  # 0: no HTTP answer (timeout, refused)


@dataclass
class AnnounceLoad:
    """``rate`` announces a second, alternating between ``servers``, from ``keys`` peers
    taking turns (each with its own X-Forwarded-For address: the servers must trust it)."""

    servers: list[str]
    community: str
    rate: float = 20.0
    keys: int = 200
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._keys = [seeded_key(f"faults-{self.community}-{i}") for i in range(self.keys)]
        self._turn = itertools.count()
        self._running = False
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self, client: httpx.AsyncClient) -> None:
        self._running = True
        interval = 1.0 / self.rate
        while self._running:
            task = asyncio.get_running_loop().create_task(self._one(client))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _one(self, client: httpx.AsyncClient) -> None:
        n = next(self._turn)
        index = n % self.keys
        server = n % len(self.servers)
        envelope = ticket(self._keys[index], self.community, now_ms())
        started = time.monotonic()
        try:
            response = await client.post(
                f"{self.servers[server]}/beacon/v1/{self.community}/announce",
                json=envelope,
                headers={"X-Forwarded-For": f"10.77.{index // 250}.{index % 250 + 1}"},
                timeout=10,
            )
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        self.outcomes.append(Outcome(started, time.monotonic() - started, server, status))

    def recovered_at(self, after: float, until: float = float("inf")) -> float | None:
        """The start of the first announce in [after, until) from which every later one
        in it answered 200; None if the last one did not."""
        window = sorted(
            (o for o in self.outcomes if after <= o.started < until), key=lambda o: o.started
        )
        recovered = None
        for outcome in window:
            if outcome.status == 200:
                recovered = outcome.started if recovered is None else recovered
            else:
                recovered = None
        return recovered

    def statuses(self, start: float, end: float) -> Counter[int]:
        return Counter(o.status for o in self.outcomes if start <= o.started < end)


@dataclass
class HealthProbe:
    """``GET /healthz`` on every server every ``every`` seconds."""

    servers: list[str]
    every: float = 0.25
    samples: list[Outcome] = field(default_factory=list)

    async def run(self, client: httpx.AsyncClient) -> None:
        while True:
            await asyncio.gather(*(self._one(client, n) for n in range(len(self.servers))))
            await asyncio.sleep(self.every)

    async def _one(self, client: httpx.AsyncClient, server: int) -> None:
        started = time.monotonic()
        try:
            status = (await client.get(f"{self.servers[server]}/healthz", timeout=10)).status_code
        except httpx.HTTPError:
            status = 0
        self.samples.append(Outcome(started, time.monotonic() - started, server, status))

    def statuses(self, start: float, end: float) -> Counter[int]:
        """Statuses of the probes *answered* between ``start`` and ``end``."""
        return Counter(s.status for s in self.samples if start <= s.started + s.took < end)

    def first(self, status: int, after: float) -> float | None:
        """When the first probe answered ``status`` after ``after``."""
        times = [s.started + s.took for s in self.samples if s.status == status]
        return min((t for t in times if t >= after), default=None)
