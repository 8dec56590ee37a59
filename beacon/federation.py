"""HTTP client for remote beacons: their ``/peers`` for capsules, and health probes.

Nothing here trusts a remote: responses are size-capped and shape-checked, and the
tickets they carry are verified again by the caller (``peers.protocol.capsule``).
Every failure is reported as a short stable code, never raised.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

MAX_RESPONSE_BYTES = 1 << 20
MAX_TICKETS = 200
USER_AGENT = "swarm-beacon-federation/1"


@dataclass(frozen=True, slots=True)
class Remote:
    name: str
    base_url: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one remote answered: tickets (unverified) or an error code."""

    name: str
    tickets: list[object] = field(default_factory=list)
    error: str = ""
    status: int | None = None
    latency_ms: float | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return not self.error


class _Failure(Exception):
    def __init__(self, code: str, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


def peers_url(base_url: str, community: str, limit: int) -> str:
    return f"{base_url.rstrip('/')}/{community}/peers?limit={limit}"


async def _get_peers(client: httpx.AsyncClient, url: str, timeout_s: float) -> list[object]:
    try:
        # httpx's timeout bounds each read, not the whole: a remote dripping a byte now and
        # then would hold the worker for hours. The deadline covers the whole exchange.
        async with asyncio.timeout(timeout_s):
            async with client.stream("GET", url, timeout=timeout_s) as response:
                if response.status_code != 200:
                    raise _Failure(f"http_{response.status_code}", response.status_code)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise _Failure("too_large", 200)
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise _Failure("timeout") from exc
    except httpx.ConnectError as exc:
        raise _Failure("connect") from exc
    except httpx.HTTPError as exc:
        raise _Failure("http_error") from exc
    try:
        payload = json.loads(bytes(body))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Failure("bad_json", 200) from exc
    if (
        not isinstance(payload, dict)
        or payload.get("ok") is not True
        or not isinstance(payload.get("peers"), list)
    ):
        raise _Failure("bad_response", 200)
    peers: list[object] = payload["peers"][:MAX_TICKETS]
    return peers


async def fetch_peers(
    client: httpx.AsyncClient,
    remote: Remote,
    community: str,
    *,
    limit: int = 50,
    retries: int = 2,
    backoff_s: float = 0.5,
) -> Fetched:
    """GET the remote's peers, retrying failures ``retries`` times with doubling backoff."""
    url = peers_url(remote.base_url, community, limit)
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        try:
            tickets = await _get_peers(client, url, remote.timeout_s)
        except _Failure as failure:
            if attempt > retries:
                return Fetched(
                    remote.name, error=failure.code, status=failure.status, attempts=attempt
                )
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
            continue
        latency = (time.perf_counter() - started) * 1000
        return Fetched(remote.name, tickets, status=200, latency_ms=latency, attempts=attempt)


async def _fetch_all(
    remotes: Sequence[Remote], community: str, retries: int, backoff_s: float
) -> list[Fetched]:
    headers = {"user-agent": USER_AGENT, "accept": "application/json"}
    async with httpx.AsyncClient(headers=headers, follow_redirects=False) as client:
        return list(
            await asyncio.gather(
                *(
                    fetch_peers(client, r, community, retries=retries, backoff_s=backoff_s)
                    for r in remotes
                )
            )
        )


def fetch_all(
    remotes: Sequence[Remote], community: str, *, retries: int, backoff_s: float
) -> list[Fetched]:
    """Every remote's peers for ``community``, fetched concurrently (blocking call)."""
    if not remotes:
        return []
    return asyncio.run(_fetch_all(remotes, community, retries, backoff_s))


def probe(remote: Remote, community: str) -> Fetched:
    """One attempt at the remote's ``/peers?limit=1``: success and latency (blocking call)."""

    async def once() -> Fetched:
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        async with httpx.AsyncClient(headers=headers, follow_redirects=False) as client:
            return await fetch_peers(client, remote, community, limit=1, retries=0)

    return asyncio.run(once())
