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
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Browser, BrowserContext, Page, async_playwright  # noqa: E402

from bench.common import git_revision, machine, percentile  # noqa: E402
from bench.transfer import (  # noqa: E402
    BARE_HIGH,
    NO_THROTTLING,
    OPEN_BARE,
    RECEIVE_BARE,
    SEND_BARE,
)
from tests.browser.conftest import CHROMIUM  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS as BROWSER_ARGS  # noqa: E402
from tests.support.live import free_port_pair  # noqa: E402
from tests.support.procfile import set_up, stack_env, wait_healthy  # noqa: E402

# Many pages share the browser: none in front, none throttled.
CHROMIUM_ARGS = [*BROWSER_ARGS, *NO_THROTTLING]
MIB = 1024 * 1024
# (size, weight): mostly the 20 MiB of the targets, and the rest of the range.
SIZES = [(1024, 1), (300 * 1024, 2), (3 * MIB, 2), (20 * MIB, 6), (64 * MIB, 1)]
BARE_BYTES = 20 * MIB
SLOW_FIRST_BYTE_S = 1.5  # the target: slower first bytes keep the page's diagnostics
BARE_EVERY = 10  # rounds between measurements of the bare DataChannel (the median is used)
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


# Procfile roles by a piece of their command line (the worker's pool processes count too).
ROLES = [("web", "daphne"), ("worker", "worker"), ("beat", " beat"), ("superpeer", "superpeer")]


# --- the process set -------------------------------------------------------------------


STACKS: list[Stack] = []  # every stack started, stopped on SIGTERM/SIGINT (main)


class Stack:
    """`honcho start -f Procfile` on a free port and a temporary var dir, after the set-up
    `make run` does (migrations, keys)."""

    def __init__(self, var_dir: Path, env: dict[str, str] | None = None) -> None:
        self.var_dir = var_dir
        self.port = free_port_pair()  # the door goes on the next one
        self.env = stack_env(var_dir, self.port, env)
        self.log_path = var_dir / "stack.log"
        self.proc: subprocess.Popen[bytes] | None = None
        STACKS.append(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        set_up(self.var_dir, self.env)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "honcho"), "start", "-f", "Procfile"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_healthy(self.url, self.proc, self.log, "the stack", timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def count(self, needle: str) -> int:
        return self.log().count(needle)

    def jobs(self) -> dict[str, int]:
        """The super-peer's fetch jobs by kind and state (from the embedded database)."""
        import sqlite3

        try:
            with sqlite3.connect(self.var_dir / "swarm.sqlite3") as db:
                rows = db.execute(
                    "SELECT kind, state, COUNT(*) FROM peers_fetchjob GROUP BY kind, state"
                ).fetchall()
        except sqlite3.Error:
            return {}
        return {f"{kind} {state}": int(n) for kind, state, n in rows}

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the set (by Procfile role), from /proc:
        every descendant of the honcho process, grouped by what its command line runs."""
        if self.proc is None:
            return {}
        procs: dict[int, tuple[int, str, float]] = {}  # pid -> (parent, command line, cpu s)
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            procs[int(pid)] = (int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / ticks)
        family = {self.proc.pid}
        for _ in range(4):  # honcho -> its shell -> the process -> pool processes
            family |= {pid for pid, (parent, _, _) in procs.items() if parent in family}
        out: dict[str, float] = {}
        for member in family - {self.proc.pid}:
            if member in procs:
                _, cmd, cpu = procs[member]
                role = next((r for r, key in ROLES if key in cmd), "other")
                out[role] = out.get(role, 0.0) + cpu
        return out


# --- pages ---------------------------------------------------------------------------------


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


class Swarm:
    """The browser and its pages, all in fresh profiles."""

    def __init__(self, browser: Browser, origin: str, community: str) -> None:
        self.browser = browser
        self.origin = origin
        self.community = community
        self.contexts: list[BrowserContext] = []

    async def context(self) -> BrowserContext:
        context = await self.browser.new_context(viewport={"width": 1280, "height": 800})
        await context.grant_permissions(["camera", "microphone"], origin=self.origin)
        self.contexts.append(context)
        return context

    async def open(self, url: str | None = None, context: BrowserContext | None = None) -> Page:
        context = context or await self.context()
        page = await context.new_page()
        await page.goto(url or f"{self.origin}/?community={self.community}", wait_until="commit")
        return page

    async def close(self, page: Page, goodbye: bool) -> None:
        """Leave: close the page (pagehide runs) or crash its renderer (no goodbye at all)."""
        context = page.context
        try:
            if goodbye:
                await page.close()
            else:
                cdp = await context.new_cdp_session(page)
                # The crash answers with an error, or not at all.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(cdp.send("Page.crash"), 2)
        finally:
            if context in self.contexts:
                self.contexts.remove(context)
            await context.close()


async def join_pair(a: Page, b: Page, timeout_s: float = 30) -> list[str]:
    """Wait until pages a and b are up and connected to each other; their peer ids."""
    await ready(a, timeout_s)
    await ready(b, timeout_s)
    ids = [str(await p.evaluate("() => window.swarm.peerId")) for p in (a, b)]
    await a.wait_for_function(
        "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)",
        arg=ids[1],
        timeout=timeout_s * 1000,
    )
    return ids


async def ready(page: Page, timeout_s: float = 30) -> None:
    await page.wait_for_function(
        "() => window.swarm?.files && document.querySelector('#files:not([hidden])')",
        timeout=timeout_s * 1000,
    )


async def wait_peers(page: Page, count: int = 1, timeout_s: float = 30) -> None:
    await page.wait_for_function(
        "(n) => window.swarm?.node && window.swarm.connectedPeers().length >= n",
        arg=count,
        timeout=timeout_s * 1000,
    )


async def share(page: Page, path: Path) -> str:
    await ready(page)
    await page.locator("#share-file").set_input_files(str(path))
    await page.wait_for_function(
        "() => document.querySelector('#share-link')?.href.includes('/f/')", timeout=120_000
    )
    return str(await page.locator("#share-link").get_attribute("href"))


async def diagnostics(page: Page) -> list[str]:
    try:
        entries = await page.evaluate(
            "() => window.swarm.diagnostics.list('debug').slice(-60)"
            ".map((e) => ({ ...e, ms: Math.round(e.ts - performance.timeOrigin) }))"
        )
        connected = await page.evaluate("() => window.swarm.connectedPeers().map((p) => p.peerId)")
    except Exception as error:
        return [f"(page unreadable: {error})"]
    return [f"connected: {connected}"] + [
        f"{e.get('ms')} ms {e.get('level')} {e.get('source')}/{e.get('code')} "
        f"{e.get('peerId') or ''}: "
        f"{e.get('message')}"
        for e in entries
    ]


DOWNLOAD_STATE = """() => {
  const node = document.querySelector('#download');
  const id = node?.dataset.manifestId;
  const files = window.swarm?.files;
  const record = files?.files.get(id);
  const progress = files?.progressOf(id);
  return {
    state: node?.dataset.state ?? null,
    reason: node?.dataset.reason ?? null,
    sha256: node?.dataset.sha256 ?? null,
    held: progress?.held ?? record?.held ?? 0,
    total: progress?.total ?? record?.chunkCount ?? null,
    timings: record?.timings ?? null,
    sources: record?.sources ?? null,
    origin: performance.timeOrigin,
  };
}"""


async def state_of(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate(DOWNLOAD_STATE))


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
            await bare_transfer(a, b, BARE_BYTES // 2, channel=901)
            return await bare_transfer(a, b, BARE_BYTES, channel=903)
        except Exception as error:
            print(f"  bare DataChannel measurement failed: {error}")
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
            results = await asyncio.gather(
                *(self.flow(round_no + i, parallel) for i in range(count))
            )
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


async def bare_transfer(
    a: Page, b: Page, total: int, *, channel: int, high: int = BARE_HIGH
) -> float:
    """Seconds for `total` bytes over a bare RTCDataChannel (negotiated, id `channel`) on the
    connection pages a and b already share, queuing at most `high` bytes."""
    ids = [await p.evaluate("() => window.swarm.peerId") for p in (a, b)]
    await asyncio.gather(
        a.evaluate(OPEN_BARE, {"other": ids[1], "id": channel}),
        b.evaluate(OPEN_BARE, {"other": ids[0], "id": channel}),
    )
    await b.evaluate(RECEIVE_BARE, total)
    start = await a.evaluate(SEND_BARE, {"total": total, "high": high})
    end = await b.evaluate("() => window.bare.done")
    return float(end - start) / 1000


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
    print(f"  outcomes: {soak.short_summary()}")
    reasons = Counter(f"{d.outcome}: {d.reason}" for d in failures)
    for reason, n in reasons.most_common():
        print(f"    {n:4d}  {reason}")
    print(f"  time to first byte (link opened -> first chunk stored): {stats(ttfb)}")
    for size, _ in SIZES:
        times = [d.total_s for d in complete if d.size == size and d.total_s is not None]
        print(f"  download time (link opened -> complete), {size / MIB:7.2f} MiB: {stats(times)}")
    if bare and twenty:
        print(
            f"  bare RTCDataChannel, 20 MiB, same run: {bare:.2f} s (median of {len(soak.bare_s)})"
        )
        moving = [d.transfer_s for d in twenty if d.transfer_s is not None]
        plain = [d.transfer_s for d in twenty if d.transfer_s is not None and not d.events]
        print(ratio_line("20 MiB first byte -> complete / bare, all", moving, bare))
        if plain:
            print(ratio_line("20 MiB first byte -> complete / bare, undisturbed", plain, bare))
        print(
            ratio_line(
                "20 MiB link opened -> complete / bare, all",
                [d.total_s for d in twenty if d.total_s],
                bare,
            )
        )
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
    for d in failures[:5]:
        print(f"\n  failure in round {d.round} ({d.outcome}: {d.reason}):")
        for line in (d.diagnostics or [])[:30]:
            print(f"    {line}")
    return {
        "downloads": [asdict(d) for d in downloads],
        "bare_s": soak.bare_s,
        "failures": len(failures),
        "posts": soak.posts,
    }


@contextlib.asynccontextmanager
async def make_run_stack(
    env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Stack, Swarm, Path]]:
    """The `make run` process set on a temporary var dir, Chromium, and a folder for files;
    all stopped on the way out (``SOAK_KEEP_LOG``: copy the stack's log there)."""
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        stack = Stack(Path(tmp) / "var", env)
        stack.start()
        files_dir = Path(tmp) / "files"
        files_dir.mkdir()
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                swarm = Swarm(browser, stack.url, os.environ.get("SWARM_COMMUNITY", "main"))
                try:
                    yield stack, swarm, files_dir
                finally:
                    for context in list(swarm.contexts):
                        await context.close()
                    await browser.close()
        finally:
            stack.stop()
            kept = os.environ.get("SOAK_KEEP_LOG")
            if kept:
                shutil.copy(stack.log_path, kept)


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


def stop_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM or SIGINT: the stack runs in a session of its own, so stop it here (the
    round in flight is lost) rather than leave web, worker, beat and super-peer running."""
    for stack in list(STACKS):
        stack.stop()
    raise SystemExit(128 + signum)


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
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
