"""Serving 20 MiB between pages of the `make run` stack: the chunk phase, and the queue target.

Starts the `make run` process set as bench/soak.py does, then either

- ``--fetch N`` (default): N times, a fresh page shares 20 MiB through the UI and a fresh page
  opens its link (with ``--residents K`` idle pages open beside them, as the soak's resident
  holders are). Prints each download's chunk phase (first chunk stored -> last chunk stored,
  the page's own times), the CPU seconds Chromium and the stack used meanwhile, then a bare
  RTCDataChannel (the uploader's thresholds) on the same, now warm, connection; or
- ``--bare 64,256,1024``: N times per queue target (KiB), two fresh pages connect and send
  20 MiB over a new negotiated channel of that connection, queuing at most the target
  (``bufferedamountlow`` at a quarter of it): the first transfer of a fresh connection.

Prints each run and the median / max per setting:

    .venv/bin/python bench/serving.py [--fetch 10] [--residents 3]
    .venv/bin/python bench/serving.py --bare 64,128,256,1024,4096 --runs 8
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page  # noqa: E402

from bench.common import git_revision, machine  # noqa: E402
from bench.soak import Soak  # noqa: E402
from bench.stack import (  # noqa: E402
    MIB,
    Swarm,
    bare_transfer,
    join_pair,
    make_run_stack,
    ready,
    share,
    state_of,
    stop_on_signal,
    wait_peers,
)
from bench.transfer import chromium_threads, thread_seconds  # noqa: E402

SIZE = 20 * MIB


async def bare_first_transfer(swarm: Swarm, target: int, channel: int) -> float:
    """Seconds for SIZE bytes, the first transfer on a fresh connection, queuing `target`."""
    a, b = await swarm.open(), await swarm.open()
    try:
        await join_pair(a, b)
        return await bare_transfer(a, b, SIZE, channel=channel, high=target)
    finally:
        for page in (a, b):
            await swarm.close(page, goodbye=True)


async def fetch_once(soak: Soak, swarm: Swarm) -> dict[str, Any]:
    path, _ = soak.make_file(SIZE)
    sharer = await swarm.open()
    downloader: Page | None = None
    try:
        await ready(sharer)
        await wait_peers(sharer)
        link = await share(sharer, path)
        downloader = await swarm.open(link)
        cpu0: tuple[dict[str, int], dict[str, float]] | None = None
        while True:
            try:
                state = await state_of(downloader)
            except Exception:  # the page is still navigating
                await asyncio.sleep(0.02)
                continue
            if cpu0 is None and (state.get("held") or 0) > 0:
                cpu0 = (chromium_threads(), soak.stack.cpu_by_process())
            if state["state"] in ("complete", "failed"):
                break
            await asyncio.sleep(0.02)
        threads = thread_seconds(cpu0[0], chromium_threads()) if cpu0 else {}
        stack = soak.stack.cpu_by_process()
        timings = state["timings"] or {}
        out: dict[str, Any] = {
            "state": state["state"],
            "chunk_s": (timings["chunksAt"] - timings["firstChunkAt"]) / 1000
            if timings.get("chunksAt") and timings.get("firstChunkAt")
            else None,
            "chromium_cpu_s": sum(threads.values()),
            "stack_cpu_s": sum(stack.values()) - sum(cpu0[1].values()) if cpu0 else None,
        }
        out["bare_s"] = await bare_transfer(sharer, downloader, SIZE, channel=905)
        return out
    finally:
        path.unlink(missing_ok=True)
        for page in (sharer, downloader):
            if page is not None:
                await swarm.close(page, goodbye=True)


def summary(label: str, values: list[float]) -> str:
    values = sorted(values)
    shown = ", ".join(f"{v:.2f}" for v in values)
    return f"  {label}: median {statistics.median(values):.2f} s, max {values[-1]:.2f} s  [{shown}]"


async def run(args: argparse.Namespace) -> None:
    async with make_run_stack() as (stack, swarm, files):
        print(
            f"serving 20 MiB on the make run stack, Chromium {swarm.browser.version} "
            f"({machine()}, rev {git_revision()})",
            flush=True,
        )
        if args.bare:
            await run_bare(swarm, [int(k) * 1024 for k in args.bare.split(",")], args.runs)
        else:
            await run_fetch(Soak(stack, swarm, files, seed=1), swarm, args)


async def run_bare(swarm: Swarm, targets: list[int], runs: int) -> None:
    results: dict[int, list[float]] = {t: [] for t in targets}
    channel = 900
    for n in range(runs):
        for target in targets:  # in turns, so that every setting sees the same load
            channel += 2
            seconds = await bare_first_transfer(swarm, target, channel)
            results[target].append(seconds)
            print(f"  run {n + 1}: queue {target // 1024:5d} KiB  {seconds:.2f} s", flush=True)
    print("first 20 MiB on a fresh connection, by queue target:")
    for target, values in results.items():
        print(summary(f"{target // 1024:5d} KiB", values))


async def run_fetch(soak: Soak, swarm: Swarm, args: argparse.Namespace) -> None:
    residents = [await swarm.open() for _ in range(args.residents)]
    for page in residents:
        await ready(page)
    chunks: list[float] = []
    bare: list[float] = []
    for n in range(args.fetch):
        started = time.monotonic()
        result = await fetch_once(soak, swarm)
        print(
            f"  download {n + 1}: {result['state']}, chunk phase {result['chunk_s']:.2f} s, "
            f"Chromium CPU {result['chromium_cpu_s']:.2f} s, stack CPU {result['stack_cpu_s']:.2f} s, "
            f"then bare {result['bare_s']:.2f} s  ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
        if result["chunk_s"] is not None:
            chunks.append(result["chunk_s"])
        bare.append(result["bare_s"])
    print(f"{args.fetch} downloads of 20 MiB, {args.residents} idle pages beside them:")
    print(summary("chunk phase", chunks))
    print(summary("bare channel, warm", bare))


def main() -> None:
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", type=int, default=10, help="downloads to measure")
    parser.add_argument("--residents", type=int, default=0, help="idle pages open beside them")
    parser.add_argument("--bare", help="queue targets in KiB, comma-separated (bare channel mode)")
    parser.add_argument("--runs", type=int, default=8, help="bare mode: runs per target")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
