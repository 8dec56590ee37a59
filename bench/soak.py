"""Soak: the whole `make run` stack driven by real Chromium pages, round after round.

Starts the Procfile's process set (web, worker, beat, super-peer) with honcho, as `make run`
does, on a free port and a temporary ``SWARM_VAR_DIR`` (embedded default: SQLite, in-process
channel layer, filesystem broker). Then, for N rounds, pages in fresh browser profiles go
through the real UI: a page shares a file (``#share-file``), a fresh page opens the share
link and waits on ``#download[data-state]``; pages join and leave (some closing without a
goodbye: their renderer is crashed), some downloads are reloaded mid-way, some sharers
reload mid-download (every holder gone for a moment), some rounds run two flows at once,
and pages post. Every download is recorded (outcome, time to first byte, total time,
sources, the page's own timings, diagnostics on failure); the summary gives failures by
reason, p50/p95/max of time to first byte and of download time by size, and the time of a
bare RTCDataChannel between two of the pages for 20 MiB, measured in the same run.

    .venv/bin/python bench/soak.py [--rounds 200] [--seed 1] [--json out.json]

The short version runs in `make test` (tests/browser/test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import secrets
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page  # noqa: E402

from bench.common import git_revision, machine, percentile  # noqa: E402
from bench.stack import (  # noqa: E402
    MIB,
    Stack,
    Swarm,
    bare_transfer,
    diagnostics,
    join_pair,
    make_run_stack,
    ready,
    share,
    state_of,
    stop_on_signal,
    wait_peers,
)

# (size, weight): mostly the 20 MiB of the targets, and the rest of the range.
SIZES = [(1024, 1), (300 * 1024, 2), (3 * MIB, 2), (20 * MIB, 6), (64 * MIB, 1)]
BARE_BYTES = 20 * MIB
SLOW_FIRST_BYTE_S = 1.5  # the target: slower first bytes keep the page's diagnostics
BARE_EVERY = 10  # rounds between measurements of the bare DataChannel (the median is used)
BARE_TIMEOUT_S = 60.0  # 20 MiB take about a second: a probe still going after this has stalled
BARE_STATE = """() => {
  const c = window.bare?.channel;
  return c ? `${c.readyState}, ${c.bufferedAmount} B queued` : "none";
}"""
# The first rounds: each size and each disturbance once (then rounds 5 and 6 run together).
SCRIPTED: list[tuple[int, str | None]] = [
    (20 * MIB, None),
    (1024, None),
    (20 * MIB, "reload"),
    (20 * MIB, "holder_left"),
    (300 * 1024, None),
    (3 * MIB, None),
    (64 * MIB, None),
]
PARALLEL_ROUND = 5
DOWNLOAD_TIMEOUT_S = 180.0
# How often a download page is read. The times reported are the page's own (its timings), so
# this only sets when a reload or a holder's departure is set off; every read is a DevTools
# round trip into the page's main thread and work for this process, on the CPU the pages
# share (at 20 ms, 50 reads a second per download).
WATCH_EVERY_S = 0.1
KEPT_OUT = {"reload", "holder_left"}  # disturbances that stop the download for a while
STACK_STOP_WAIT_S = 20.0  # a stopped soak waits this long for the stack to say how it ended


@dataclass
class Download:
    round: int
    size: int
    manifest: str | None = None
    outcome: str = "pending"  # complete | failed | timeout | wrong_sha256 | error
    reason: str | None = None
    ttfb_s: float | None = None  # link opened -> first chunk stored
    total_s: float | None = None  # link opened -> #download complete
    transfer_s: float | None = None  # first chunk stored -> complete
    events: list[str] = field(default_factory=list)  # reload, holder_left, parallel
    timings: dict[str, Any] | None = None  # the page's own (ms since the link was opened)
    sources: dict[str, int] | None = None
    diagnostics: list[str] | None = None


# --- one round ----------------------------------------------------------------------------


class Soak:
    def __init__(self, stack: Stack, swarm: Swarm, files_dir: Path, seed: int) -> None:
        self.stack = stack
        self.swarm = swarm
        self.files_dir = files_dir
        self.rng = random.Random(seed)
        self.downloads: list[Download] = []
        self.residents: list[Page] = []  # pages that stay (holders of earlier files)
        self.bare_s: list[float] = []
        self.posts = 0
        self.stopped: str | None = None  # why the rounds ended early, if they did

    def make_file(self, size: int) -> tuple[Path, str]:
        data = self.rng.randbytes(size)
        path = self.files_dir / f"soak-{secrets.token_hex(4)}.bin"
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()

    def plan(self, round_no: int) -> tuple[int, str | None]:
        """The size and the disturbance of a round: the first rounds go through each kind
        once (so a short soak sees them all), then they are drawn at random."""
        if round_no < len(SCRIPTED):
            return SCRIPTED[round_no]
        size = self.rng.choices([s for s, _ in SIZES], [w for _, w in SIZES])[0]
        roll = self.rng.random()
        if size >= 3 * MIB and roll < 0.1:
            return size, "reload"
        if size >= 3 * MIB and roll < 0.16:
            return size, "holder_left"
        return size, None

    async def flow(self, round_no: int, parallel: bool) -> Download:
        """A fresh page shares a file; a fresh page opens its link; both maybe leave."""
        size, event = self.plan(round_no)
        record = Download(round=round_no, size=size)
        if parallel:
            record.events.append("parallel")
        reload_download = event == "reload"
        holder_leaves = event == "holder_left"
        path, sha256 = self.make_file(size)
        sharer_context = await self.swarm.context()
        sharer = await self.swarm.open(context=sharer_context)
        downloader: Page | None = None
        try:
            await ready(sharer)
            await wait_peers(sharer)
            link = await share(sharer, path)
            record.manifest = link.split("/f/", 1)[1].split("?")[0].split("#")[0]
            started = time.time()
            downloader = await self.swarm.open(link)
            await self.watch(
                downloader, record, started, sha256, reload_download, holder_leaves, sharer
            )
        except Exception as error:
            if record.outcome == "pending":
                record.outcome = "error"
                record.reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            if downloader is not None and record.diagnostics is None:
                record.diagnostics = await diagnostics(downloader)
        finally:
            path.unlink(missing_ok=True)
        # Leaving: the sharer always; the downloader stays a while as a holder, or leaves.
        await self.leave(sharer)
        if downloader is not None:
            if record.outcome == "complete" and self.rng.random() < 0.3 and len(self.residents) < 3:
                self.residents.append(downloader)
            else:
                await self.leave(downloader)
        if self.rng.random() < 0.3 and self.residents:
            await self.leave(self.residents.pop(0))
        return record

    async def leave(self, page: Page) -> None:
        with contextlib.suppress(Exception):  # already gone
            await self.swarm.close(page, goodbye=self.rng.random() < 0.6)

    async def watch(
        self,
        page: Page,
        record: Download,
        started: float,
        sha256: str,
        reload_download: bool,
        holder_leaves: bool,
        sharer: Page,
    ) -> None:
        deadline = time.monotonic() + DOWNLOAD_TIMEOUT_S
        first: float | None = None
        opened: float | None = None  # the link page's navigation start (before any reload)
        reloaded = False
        left = False
        while True:
            try:
                state = await state_of(page)
            except Exception:
                await asyncio.sleep(0.05)
                state = {"state": None, "held": 0, "total": None}
            total = state.get("total") or 0
            held = state.get("held") or 0
            if opened is None and state.get("origin"):
                opened = state["origin"] / 1000
            if first is None and held > 0:
                first = time.time()
            if state["state"] in ("complete", "failed"):
                break
            if reload_download and not reloaded and total and held >= total * 0.3:
                reloaded = True
                record.events.append("reload")
                await page.reload(wait_until="commit")
            if holder_leaves and not left and total and held >= total * 0.3:
                left = True
                record.events.append("holder_left")
                await sharer.reload(wait_until="commit")  # same profile: it comes back
            if time.monotonic() > deadline:
                record.outcome = "timeout"
                record.reason = f"not complete after {DOWNLOAD_TIMEOUT_S:.0f} s ({held}/{total})"
                record.diagnostics = await diagnostics(page)
                return
            await asyncio.sleep(WATCH_EVERY_S)
        # Times from the link page's navigation start, by the page's own clock where it
        # says (its timings), else by when this loop saw the change.
        timings = record.timings = state.get("timings") or None
        start = opened if opened is not None else started
        done = timings["doneAt"] / 1000 if timings and timings.get("doneAt") else time.time()
        if timings and timings.get("firstChunkAt") and not reloaded:
            first = timings["firstChunkAt"] / 1000
        record.total_s = done - start
        record.ttfb_s = None if first is None else max(0.0, first - start)
        if record.ttfb_s is not None:
            record.transfer_s = record.total_s - record.ttfb_s
        record.sources = state.get("sources")
        if state["state"] == "failed":
            record.outcome = "failed"
            record.reason = state.get("reason")
            record.diagnostics = await diagnostics(page)
        elif state.get("sha256") != sha256:
            record.outcome = "wrong_sha256"
            record.diagnostics = await diagnostics(page)
        else:
            record.outcome = "complete"
            if record.ttfb_s is not None and record.ttfb_s > SLOW_FIRST_BYTE_S:
                record.diagnostics = await diagnostics(page)  # what the slow start was about

    async def post(self) -> None:
        if not self.residents:
            return
        page = self.residents[-1]
        text = f"soak post {self.posts} {secrets.token_hex(4)}"
        try:
            await page.locator("#post-text").fill(text)
            await page.locator("#post-send").click()
            self.posts += 1
        except Exception:
            pass

    async def bare(self) -> float | None:
        """Seconds for 20 MiB over a bare RTCDataChannel between two fresh pages."""
        a = await self.swarm.open()
        b = await self.swarm.open()
        try:
            await join_pair(a, b)
            # The first megabytes of a new connection open its congestion window (as in
            # bench/transfer.py): warm up, then measure on a second channel.
            await asyncio.wait_for(
                bare_transfer(a, b, BARE_BYTES // 2, channel=901), BARE_TIMEOUT_S
            )
            return await asyncio.wait_for(
                bare_transfer(a, b, BARE_BYTES, channel=903), BARE_TIMEOUT_S
            )
        except Exception as error:
            # A probe whose channel stalled or closed (its pages' connection dropped) waited
            # for ever on its promise: it is given up, said, and the soak goes on.
            states = []
            for page in (a, b):
                with contextlib.suppress(Exception):
                    states.append(await asyncio.wait_for(page.evaluate(BARE_STATE), 5))
            print(
                f"  bare DataChannel measurement failed: {type(error).__name__}: {error} "
                f"(channel on each side: {states})"
            )
            return None
        finally:
            for page in (a, b):
                await self.swarm.close(page, goodbye=True)

    async def run(self, rounds: int, report_every: int = 10) -> None:
        round_no = 0
        while round_no < rounds:
            if round_no % BARE_EVERY == 0:
                bare = await self.bare()
                if bare is not None:
                    self.bare_s.append(bare)
            parallel = rounds - round_no >= 2 and (
                round_no == PARALLEL_ROUND
                or (round_no > PARALLEL_ROUND and self.rng.random() < 0.2)
            )
            count = 2 if parallel else 1
            try:
                results = await asyncio.gather(
                    *(self.flow(round_no + i, parallel) for i in range(count))
                )
            except Exception as error:
                # Something a round cannot go on from (the web server refusing connections):
                # the rounds so far are still reported, with why the soak stopped.
                reason = str(error).splitlines()[0][:200]
                self.stopped = f"round {round_no}: {type(error).__name__}: {reason}"
                break
            self.downloads.extend(results)
            await self.post()
            for r in results:
                line = (
                    f"  round {r.round:3d}: {r.outcome:8s} {r.size / MIB:7.2f} MiB  "
                    f"ttfb {fmt(r.ttfb_s)}  total {fmt(r.total_s)}  {' '.join(r.events)}"
                )
                if r.outcome != "complete":
                    line += f"  reason: {r.reason}"
                print(line, flush=True)
            round_no += count
            if report_every and round_no % report_every < count:
                print(f"  -- after {round_no} rounds: {self.short_summary()}", flush=True)

    def short_summary(self) -> str:
        outcomes = Counter(d.outcome for d in self.downloads)
        return ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))


# --- the report -------------------------------------------------------------------------


def fmt(seconds: float | None) -> str:
    return "   -   " if seconds is None else f"{seconds:6.2f}s"


def stats(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50):6.2f} s  p95 {percentile(values, 95):6.2f} s  "
        f"max {max(values):6.2f} s  (n={len(values)})"
    )


def transfers(downloads: list[Download]) -> list[float]:
    return [d.transfer_s for d in downloads if d.transfer_s is not None]


def stopped_for_a_while(download: Download) -> bool:
    return bool(KEPT_OUT & set(download.events))


def ratio_line(label: str, values: list[float], bare: float) -> str:
    return (
        f"  {label}: p50 {percentile(values, 50) / bare:5.1f}x"
        f"  p95 {percentile(values, 95) / bare:5.1f}x  max {max(values) / bare:5.1f}x"
        f"  (n={len(values)})"
    )


def summary(soak: Soak) -> dict[str, Any]:
    """Print the figures (failures by reason, time to first byte, download times, the
    20 MiB downloads against the bare DataChannel) and return them with every record."""
    downloads = soak.downloads
    failures = [d for d in downloads if d.outcome != "complete"]
    complete = [d for d in downloads if d.outcome == "complete"]
    ttfb = [d.ttfb_s for d in complete if d.ttfb_s is not None]
    bare = statistics.median(soak.bare_s) if soak.bare_s else None
    twenty = [d for d in complete if d.size == 20 * MIB and d.total_s is not None]
    print(f"\nsoak: {len(downloads)} downloads, {soak.posts} posts")
    if soak.stopped:
        print(f"  STOPPED EARLY, {soak.stopped}")
        exited = soak.stack.exited(wait_s=STACK_STOP_WAIT_S)
        if exited:
            print(f"  the make run stack: {exited}")
    print(f"  outcomes: {soak.short_summary()}")
    reasons = Counter(f"{d.outcome}: {d.reason}" for d in failures)
    for reason, n in reasons.most_common():
        print(f"    {n:4d}  {reason}")
    print(f"  time to first byte (link opened -> first chunk stored): {stats(ttfb)}")
    for label, parallel in (("one flow", False), ("two flows at once", True)):
        values = [
            d.ttfb_s
            for d in complete
            if d.ttfb_s is not None and ("parallel" in d.events) == parallel
        ]
        print(f"    {label:18s} {stats(values)}")
    for size, _ in SIZES:
        times = [d.total_s for d in complete if d.size == size and d.total_s is not None]
        print(f"  download time (link opened -> complete), {size / MIB:7.2f} MiB: {stats(times)}")
    if bare and twenty:
        print(
            f"  bare RTCDataChannel, 20 MiB, same run: {bare:.2f} s (median of {len(soak.bare_s)})"
        )
        moving = [d for d in twenty if d.transfer_s is not None]
        print(ratio_line("20 MiB first byte -> complete / bare, all", transfers(moving), bare))
        # The page stays and its holder stays (the condition for "0 failures"); two
        # flows at once count here. A reload or the only holder's departure is a pause of
        # a page's start inside the download, shown on its own.
        for label, group in (
            ("page and holder stay", [d for d in moving if not stopped_for_a_while(d)]),
            ("undisturbed", [d for d in moving if not d.events]),
            ("reloaded or holder left", [d for d in moving if stopped_for_a_while(d)]),
        ):
            if group:
                label = f"20 MiB first byte -> complete / bare, {label}"
                print(ratio_line(label, transfers(group), bare))
        totals = [d.total_s for d in twenty if d.total_s]
        print(ratio_line("20 MiB link opened -> complete / bare, all", totals, bare))
    phases = [d.timings for d in twenty if d.timings and not d.events]
    if phases:
        print("  where the time goes, 20 MiB undisturbed (ms after the link was opened, p50):")
        for key in ("startAt", "firstPeerAt", "manifestAt", "firstChunkAt", "chunksAt", "doneAt"):
            values = [p[key] - p["openedAt"] for p in phases if p.get(key) and p.get("openedAt")]
            if values:
                print(f"    {key:13s} {percentile(values, 50):8.0f}")
    cpu = soak.stack.cpu_by_process()
    if cpu:
        print(
            "  CPU seconds of the make run processes: "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items()))
        )
    jobs = soak.stack.jobs()
    if jobs:
        print("  super-peer fetch jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(jobs.items())))
    redials = soak.stack.count("peer_unavailable")
    print(f"  super-peer dials answered peer_unavailable: {redials}")
    expired = soak.stack.metric("swarm_signal_expired_total")
    gone = soak.stack.metric("swarm_signal_gone_total") or 0
    if expired is not None:
        print(
            f"  signaling EXPIREs (offers to peers not connected, every peer's): "
            f"{expired + gone:.0f}, of which at once for a peer gone a while: {gone:.0f}"
        )
    for d in failures[:5]:
        print(f"\n  failure in round {d.round} ({d.outcome}: {d.reason}):")
        for line in (d.diagnostics or [])[:30]:
            print(f"    {line}")
    return {
        "downloads": [asdict(d) for d in downloads],
        "bare_s": soak.bare_s,
        "failures": len(failures),
        "posts": soak.posts,
        "stopped": soak.stopped,
    }


async def soak_run(
    rounds: int, seed: int, *, report_every: int = 10, env: dict[str, str] | None = None
) -> tuple[Soak, dict[str, Any]]:
    async with make_run_stack(env) as (stack, swarm, files_dir):
        soak = Soak(stack, swarm, files_dir, seed)
        print(
            f"soak: {rounds} rounds on the make run stack at {stack.url}, Chromium "
            f"{swarm.browser.version} ({machine()}, rev {git_revision()}, seed {seed})",
            flush=True,
        )
        await soak.run(rounds, report_every)
        # While the stack runs: the summary reads its processes' CPU, its log and its database.
        result = summary(soak)
    return soak, result


def main() -> None:
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every download's record here")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the make run processes (e.g. SWARM_REPLICATION_TARGET=0); repeatable",
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    _, result = asyncio.run(soak_run(args.rounds, args.seed, env=env))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    sys.exit(1 if result["failures"] or result["stopped"] else 0)


if __name__ == "__main__":
    main()
