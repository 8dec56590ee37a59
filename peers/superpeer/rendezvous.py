"""Presence: announce the super-peer's ticket to the beacons, learn the tickets they return.

``POST <beacon>/<community>/announce`` with the signed ticket (docs/protocol.md "Beacon");
every ticket in the answer is verified before it reaches the peer book. A beacon that
answers ``429`` is skipped until its ``Retry-After`` has passed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from peers.protocol.encoding import parse_json
from peers.protocol.errors import ProtocolError
from peers.protocol.ticket import Ticket, verify_ticket

logger = logging.getLogger(__name__)

TIMEOUT_S = 8.0


class Announcer:
    def __init__(self, beacon_urls: tuple[str, ...], community: str) -> None:
        self.urls = tuple(u if u.endswith("/") else u + "/" for u in beacon_urls)
        self.community = community
        self.attempts = 0
        self.successes = 0
        self.last_error: dict[str, str] = {}
        self._retry_at: dict[str, float] = {}
        self._client = httpx.AsyncClient(timeout=TIMEOUT_S)

    async def announce(self, ticket: dict[str, object], now: int) -> list[Ticket]:
        """Announce to every beacon at once; the verified tickets they know of."""
        results = await asyncio.gather(*(self._one(url, ticket, now) for url in self.urls))
        return [t for tickets in results for t in tickets]

    async def _one(self, base: str, ticket: dict[str, object], now: int) -> list[Ticket]:
        if time.monotonic() < self._retry_at.get(base, 0.0):
            return []
        self.attempts += 1
        url = f"{base}{self.community}/announce"
        try:
            response = await self._client.post(url, json=ticket)
        except httpx.HTTPError as exc:
            self.last_error[base] = f"network: {exc!r}"
            logger.info("announce to %s failed: %r", url, exc)
            return []
        if response.status_code == 429:
            retry = float(response.headers.get("Retry-After", "15") or 15)
            self._retry_at[base] = time.monotonic() + retry
        if response.status_code != 200:
            self.last_error[base] = f"{response.status_code}: {response.text[:200]}"
            logger.info("announce to %s: %s %s", url, response.status_code, response.text[:200])
            return []
        self.successes += 1
        self.last_error.pop(base, None)
        try:
            body = parse_json(response.content)
        except ValueError:
            return []
        peers = body.get("peers") if isinstance(body, dict) else None
        out = []
        for envelope in peers if isinstance(peers, list) else []:
            try:
                out.append(verify_ticket(envelope, now=now, community=self.community))
            except ProtocolError as exc:
                logger.info("beacon %s gave a bad ticket: %s", base, exc.code)
        return out

    async def close(self) -> None:
        await self._client.aclose()
