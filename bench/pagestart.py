"""Time to first byte of a share link, phase by phase: where a fresh page's start goes.

Starts the `make run` process set as bench/soak.py does (honcho, the Procfile, a free port, a
temporary ``SWARM_VAR_DIR``), opens one sharer page that shares a small file, then opens the
link ``--runs`` times, each in a fresh browser profile, and reads from the page, in ms after
its navigation start (``performance.timeOrigin``):

- ``html``: the document's response in (navigation timing);
- ``modules``: the last script or ES module of the page's start fetched (resource timing);
- ``main``, ``store``, ``content``: main.js running, IndexedDB open, the content layers
  started (the page's ``swarm:`` performance marks, where the page has them);
- ``identity``, ``signal``: the identity loaded or made, signaling open (diagnostics);
- ``start``, ``peer``, ``manifest``, ``chunk``: the download started, the first peer
  connection, the manifest in, the first chunk stored (the download's own times; ``chunk``
  is the soak's time to first byte).

Prints p50 / p95 / max of each. ``--root`` runs the stack of another checkout (e.g. a
worktree at an earlier revision); given twice, both stacks run at once and their link pages
take turns, so that two revisions are compared under the same load on a shared machine:

    .venv/bin/python bench/pagestart.py [--runs 20] [--root PATH [--root PATH]] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, async_playwright  # noqa: E402

from bench.common import git_revision, machine, percentile  # noqa: E402
from bench.stack import (  # noqa: E402
    CHROMIUM_ARGS,
    Stack,
    Swarm,
    share,
    stop_on_signal,
    wait_peers,
)
from tests.browser.conftest import CHROMIUM  # noqa: E402
from tests.support.procfile import wait_healthy  # noqa: E402

PHASES: tuple[str, ...] = (
    *("html", "modules", "main", "store", "identity", "content", "signal", "mounted"),
    *("start", "peer", "manifest", "chunk"),
)
FILE_BYTES = 64 * 1024
TIMEOUT_S = 60.0

# Every phase in ms after the navigation start; null where the page does not say.
TIMELINE = r"""() => {
  const origin = performance.timeOrigin;
  const rel = (ts) => (ts ? Math.round(ts - origin) : null);
  const diag = (code) => rel(window.swarm?.diagnostics.list("debug").find((e) => e.code === code)?.ts);
  const mark = (name) => {
    const m = performance.getEntriesByName(name, "mark")[0];
    return m ? Math.round(m.startTime) : null;
  };
  const node = document.querySelector("#download");
  const record = window.swarm?.files?.files.get(node?.dataset.manifestId);
  const t = record?.timings ?? {};
  const nav = performance.getEntriesByType("navigation")[0];
  // The modules asked for before main() ran (where the page marks it; else before the
  // download started, less uPlot, which the page imports once started).
  const before = mark("swarm:main") ?? (t.startAt ? t.startAt - origin : Infinity);
  const modules = performance.getEntriesByType("resource")
    .filter((r) => /\.m?js$/.test(r.name) && r.startTime < before && !r.name.includes("/uplot/"))
    .map((r) => r.responseEnd);
  return {
    html: nav ? Math.round(nav.responseEnd) : null,
    modules: modules.length ? Math.round(Math.max(...modules)) : null,
    module_count: modules.length,
    resources: performance.getEntriesByType("resource").map((r) => [r.name.split("/").slice(-2).join("/"), Math.round(r.startTime), Math.round(r.responseEnd), r.initiatorType]),
    marks: performance.getEntriesByType("mark").map((m) => [m.name, Math.round(m.startTime)]),
    diagnostics: (window.swarm?.diagnostics.list("debug") ?? []).slice(0, 40).map((e) => [rel(e.ts), e.code]),
    main: mark("swarm:main"),
    store: mark("swarm:store"),
    identity: diag("identity_created") ?? diag("identity_loaded"),
    content: mark("swarm:content"),
    mounted: mark("swarm:mounted"),
    signal: diag("signal_open"),
    start: rel(t.startAt),
    peer: window.swarm?.firstPeerAt ? rel(window.swarm.firstPeerAt) : null,
    manifest: rel(t.manifestAt),
    chunk: rel(t.firstChunkAt),
  };
}"""


class RootStack(Stack):
    """The same process set, from another checkout's Procfile and virtualenv."""

    def __init__(self, var_dir: Path, root: Path) -> None:
        super().__init__(var_dir)
        self.root = root

    def start(self, timeout_s: float = 60.0) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        python = str(self.root / ".venv" / "bin" / "python")
        for command in (["migrate", "--noinput", "-v", "0"], ["swarm_keys"]):
            subprocess.run(
                [python, "manage.py", *command],
                cwd=self.root,
                env=self.env,
                check=True,
                capture_output=True,
            )
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.root / ".venv" / "bin" / "honcho"), "start", "-f", "Procfile"],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_healthy(self.url, self.proc, self.log, "the stack", timeout_s)


async def first_chunk(page: Page) -> dict[str, Any]:
    await page.wait_for_function(
        "() => { const n = document.querySelector('#download');"
        " const r = window.swarm?.files?.files.get(n?.dataset.manifestId);"
        " return r?.timings?.firstChunkAt || n?.dataset.state === 'failed'; }",
        timeout=TIMEOUT_S * 1000,
        polling=20,
    )
    return dict(await page.evaluate(TIMELINE))


async def prepare(swarm: Swarm, files: Path) -> str:
    """A sharer page on the stack shares a small file; one link page warms the server."""
    sharer = await swarm.open()
    await wait_peers(sharer)
    path = files / f"file-{secrets.token_hex(4)}.bin"
    path.write_bytes(secrets.token_bytes(FILE_BYTES))
    link = await share(sharer, path)
    page = await swarm.open(link)
    await first_chunk(page)
    await swarm.close(page, goodbye=True)
    return link


async def run(roots: list[Path], runs: int) -> dict[Path, list[dict[str, Any]]]:
    """``runs`` link pages on the stack of each root; with several roots, all stacks run at
    once and their pages take turns (the order flipped each time), so that each revision
    sees the same load."""
    out: dict[Path, list[dict[str, Any]]] = {root: [] for root in roots}
    with tempfile.TemporaryDirectory(prefix="pagestart-") as tmp:
        stacks = [RootStack(Path(tmp) / f"var{i}", root) for i, root in enumerate(roots)]
        try:
            for stack in stacks:
                stack.start()
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                community = os.environ.get("SWARM_COMMUNITY", "main")
                swarms = [Swarm(browser, stack.url, community) for stack in stacks]
                for root in roots:
                    print(
                        f"pagestart: {runs} link pages on the make run stack of {root} "
                        f"(rev {git_revision_of(root)}), Chromium {browser.version} "
                        f"({machine()})",
                        flush=True,
                    )
                try:
                    links = [await prepare(swarm, Path(tmp)) for swarm in swarms]
                    turns = list(zip(roots, swarms, links, strict=True))
                    for i in range(runs):
                        for root, swarm, link in turns if i % 2 == 0 else turns[::-1]:
                            page = await swarm.open(link)
                            timeline = await first_chunk(page)
                            out[root].append(timeline)
                            steps = "  ".join(f"{k} {timeline[k]}" for k in PHASES)
                            print(f"  {i + 1:3d} {root.name}  {steps}", flush=True)
                            await swarm.close(page, goodbye=True)
                            await asyncio.sleep(0.5)
                finally:
                    for swarm in swarms:
                        for context in list(swarm.contexts):
                            await context.close()
                    await browser.close()
        except BaseException:
            for stack in stacks:
                print(stack.log()[-3000:], file=sys.stderr)
            raise
        finally:
            for stack in stacks:
                stack.stop()
    return out


def git_revision_of(root: Path) -> str:
    if root.resolve() == ROOT:
        return git_revision()
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def report(timelines: list[dict[str, Any]]) -> None:
    print(f"ms after navigation start, {len(timelines)} fresh link pages:")
    for phase in PHASES:
        values = [float(t[phase]) for t in timelines if t.get(phase) is not None]
        if not values:
            print(f"  {phase:9s} (not marked by this page)")
            continue
        print(
            f"  {phase:9s} p50 {percentile(values, 50):6.0f}  p95 {percentile(values, 95):6.0f}"
            f"  max {max(values):6.0f}  (n={len(values)})"
        )
    counts = [t["module_count"] for t in timelines]
    print(f"  scripts and modules asked for before main(): {min(counts)}-{max(counts)}")


def main() -> None:
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        help="a checkout whose stack runs (default this one); repeat to compare, in turns",
    )
    parser.add_argument("--json", type=Path, help="write every page's timeline here")
    args = parser.parse_args()
    started = time.monotonic()
    roots = [root.resolve() for root in args.root or [ROOT]]
    timelines = asyncio.run(run(roots, args.runs))
    for root, series in timelines.items():
        print(f"{root} (rev {git_revision_of(root)}):")
        report(series)
    print(f"  ({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in timelines.items()}, indent=1))


if __name__ == "__main__":
    main()
