"""The `make run` process set and Chromium pages on it, for the benches that drive the whole
stack (bench/soak.py, bench/serving.py, bench/pagestart.py).

- `Stack`: the Procfile's processes (web, worker, beat, super-peer) under honcho, as `make run`
  starts them, on a free port and a temporary ``SWARM_VAR_DIR``, with their CPU by role, the
  super-peer's fetch jobs and the log.
- `Swarm`: the browser and its pages, each in a fresh profile; a page leaves with or without
  a goodbye.
- What a bench does with pages through the real UI: wait until one is up (`ready`), has
  peers (`wait_peers`) or is connected to another (`join_pair`), share a file (`share`), read
  a download's state (`state_of`) and diagnostics, and time a bare RTCDataChannel between
  two pages (`bare_transfer`).
- `make_run_stack()`: all of that started, and stopped on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Browser, BrowserContext, Page, async_playwright  # noqa: E402

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

    def exited(self, wait_s: float = 0.0) -> str | None:
        """None while the process set runs (after waiting up to `wait_s` for it to end: honcho
        takes a few seconds to stop the rest once one process exits); else how it ended:
        honcho's exit code and its own lines (which process stopped first, and how), with the
        log's last lines."""
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None
        lines = self.log().splitlines()
        # honcho's own lines past the start: "<time> system      | worker.1 stopped (rc=1)"
        system = [
            line
            for line in lines
            if line.split("|", 1)[0].split()[-1:] == ["system"] and " started (pid=" not in line
        ]
        return "\n    ".join(
            [
                f"honcho exited with {self.proc.returncode}",
                *system[-12:],
                "last lines:",
                *lines[-25:],
            ]
        )

    def count(self, needle: str) -> int:
        return self.log().count(needle)

    def metric(self, name: str) -> float | None:
        """The sum of a metric's samples in the web process's /metrics (None: unreadable)."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
                text = answer.read().decode()
        except OSError:
            return None
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((f"{name} ", f"{name}{{"))
        )

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


def stop_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM or SIGINT: the stack runs in a session of its own, so stop it here (the
    round in flight is lost) rather than leave web, worker, beat and super-peer running."""
    for stack in list(STACKS):
        stack.stop()
    raise SystemExit(128 + signum)


# --- pages ---------------------------------------------------------------------------------


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


# How often a waiting helper checks its page. Playwright's default polls in
# requestAnimationFrame, which keeps a waiting page producing frames (main thread, compositor,
# the GPU process's software compositing) for as long as it waits, on the CPU the measured
# pages share: a sharer encrypting 64 MiB would paint at 60 frames a second meanwhile.
POLL_MS = 50


async def join_pair(a: Page, b: Page, timeout_s: float = 30) -> list[str]:
    """Wait until pages a and b are up and connected to each other; their peer ids."""
    await ready(a, timeout_s)
    await ready(b, timeout_s)
    ids = [str(await p.evaluate("() => window.swarm.peerId")) for p in (a, b)]
    await a.wait_for_function(
        "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)",
        arg=ids[1],
        timeout=timeout_s * 1000,
        polling=POLL_MS,
    )
    return ids


async def ready(page: Page, timeout_s: float = 30) -> None:
    await page.wait_for_function(
        "() => window.swarm?.files && document.querySelector('#files:not([hidden])')",
        timeout=timeout_s * 1000,
        polling=POLL_MS,
    )


async def wait_peers(page: Page, count: int = 1, timeout_s: float = 30) -> None:
    await page.wait_for_function(
        "(n) => window.swarm?.node && window.swarm.connectedPeers().length >= n",
        arg=count,
        timeout=timeout_s * 1000,
        polling=POLL_MS,
    )


async def share(page: Page, path: Path) -> str:
    await ready(page)
    await page.locator("#share-file").set_input_files(str(path))
    await page.wait_for_function(
        "() => document.querySelector('#share-link')?.href.includes('/f/')",
        timeout=120_000,
        polling=POLL_MS,
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
