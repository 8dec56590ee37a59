"""The lean ASGI paths' own cost per request, in-process: no server, no database, no Redis.

Drives ``beacon.asgi.BeaconApp`` and ``peers.signaling.asgi.SignalHttpApp`` directly with
the answers that touch nothing else (a CORS preflight, a refused method, the signaling's
``GET /id``), so that what is measured is routing and writing the response: the part
the two paths share (``shared/fastpath.py``). Whole announces and relayed messages are
``bench/beacon.py`` and ``bench/signaling.py``.

    .venv/bin/python bench/fastpath.py [--requests 200000] [--rounds 5]

Prints microseconds per request for each case, the best and the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")
os.environ.setdefault("SWARM_LOG_LEVEL", "WARNING")

import django

django.setup()

from beacon.asgi import BeaconApp  # noqa: E402
from bench.common import git_revision, machine  # noqa: E402
from peers.signaling.asgi import SignalHttpApp  # noqa: E402


async def _unreached(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError(f"fell through to Django: {scope['path']}")


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"origin", b"https://mirror.example")],
        "client": ("127.0.0.1", 40000),
    }


CASES = {
    "beacon OPTIONS announce": (BeaconApp, _scope("OPTIONS", "/beacon/v1/main/announce")),
    "beacon PUT announce (405)": (BeaconApp, _scope("PUT", "/beacon/v1/main/announce")),
    "signaling OPTIONS /id": (SignalHttpApp, _scope("OPTIONS", "/signal/peerjs/id")),
    "signaling GET /id": (SignalHttpApp, _scope("GET", "/signal/peerjs/id")),
}


async def _run(app: Any, scope: dict[str, Any], requests: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(requests):
        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    if len(statuses) != requests or statuses[0] >= 500:
        raise RuntimeError(f"unexpected answers: {statuses[:3]}")
    return elapsed / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"revision: {git_revision()}")
    results: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):
        for name, (app_class, scope) in CASES.items():
            app = app_class(_unreached)
            results[name].append(asyncio.run(_run(app, scope, args.requests)))
    print(f"us per request, {args.requests:,} requests per round, {args.rounds} rounds:")
    for name, values in results.items():
        print(f"  {name:28s} best {min(values):5.2f}  median {statistics.median(values):5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
