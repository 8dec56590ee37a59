"""Super-peer throughput through the swarm chunk protocol, next to browser -> browser.

    .venv/bin/python bench/superpeer.py [--mib 64] [--browsers 8] [--each-mib 16] [--profile]

Runs on its own embedded set-up (SQLite and files in a temporary directory; no Redis, no
shared database): a daphne (signaling + beacon), one `manage.py superpeer` process and
headless Chromium pages running tests/support/superpeer_page.js (the real peerjs client and
the swarm's wire, chunk and manifest modules). Every transfer is a real swarm download:
manifest_req, then pipelined chunk_req/chunk frames of 64 KiB encrypted chunks, each one
checked against its id (window 16 requests per connection).

- browser -> super-peer: a page shares a file, the super-peer is told to pin it; from the
  page's first chunk served to the super-peer's job end (every chunk verified and fsynced);
- super-peer -> browser: a new page downloads the file from the super-peer alone;
- browser -> browser: a third page downloads the same file from the sharing page;
- N browsers at once: N pages download a file from the super-peer concurrently; aggregate
  throughput, the slowest page, and the longest gap between two chunks on any page (a stall).

``--profile`` runs py-spy on the super-peer process during its uploads and prints where its
time goes (own time per function, share per library).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = Path(tempfile.mkdtemp(prefix="bench-superpeer-"))
for name in ("DATABASE_URL", "REDIS_URL"):
    os.environ.pop(name, None)
os.environ["SWARM_VAR_DIR"] = str(VAR / "var")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import django  # noqa: E402

django.setup()

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from bench.common import machine  # noqa: E402
from bench.peerjs_throughput import NO_THROTTLING  # noqa: E402
from peers.superpeer.models import FetchJob, Holding  # noqa: E402
from peers.superpeer.services import superpeer_pin  # noqa: E402
from peers.superpeer.supervision import pin_job_id  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.live import VENV_BIN, Server, spawn_daphne  # noqa: E402
from tests.support.superpeer import SuperPeerProcess, start_superpeer, wait_until  # noqa: E402
from tests.support.superpeer_page import serve_swarm_page  # noqa: E402

PY_SPY = VENV_BIN / "py-spy"
MIB = 1024 * 1024
COMMUNITY = "bench"


def start_web(logs: Path) -> Server:
    """daphne on the embedded default, like `make run`'s web process."""
    env = {**os.environ, "SWARM_BEACON_PEER_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return spawn_daphne(env, logs / "web.log", name="web")


class Spy:
    """py-spy on another process (the super-peer) while a phase runs."""

    MODULES = (
        "aiortc",
        "aioice",
        "OpenSSL",
        "cryptography",
        "asyncio",
        "peers/superpeer",
        "peers/protocol",
        "peers/peerjs",
        "msgpack",
        "hashlib",
    )

    def __init__(self, enabled: bool, pid: int, label: str) -> None:
        self.enabled = enabled and PY_SPY.exists()
        self.pid = pid
        self.label = label
        self.out = VAR / f"spy-{label}.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Spy:
        if self.enabled:
            self.proc = subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(self.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--output",
                    str(self.out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)
            self.proc.wait(30)

    def report(self, top: int = 12) -> str:
        if not self.enabled or not self.out.exists():
            return ""
        own: collections.Counter[str] = collections.Counter()
        mods: collections.Counter[str] = collections.Counter()
        loop = writer = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            leaf = frames[-1]
            if "select" in leaf and ("selectors" in leaf or "epoll" in leaf):
                continue  # the loop waiting: idle
            if "_worker (" in stack:  # asyncio.to_thread: chunk writes
                if "_worker (" in leaf:
                    continue  # a worker waiting for work: idle
                writer += int(count)
                continue
            n = int(count)
            loop += n
            where = leaf.split(" (")[-1].split(":")[0].split("/")[-1]
            own[leaf.split(" (")[0] + " (" + where] += n
            seen = set()
            for frame in frames:
                path = frame.split(" (")[-1].split(":")[0]
                for mod in self.MODULES:
                    if mod in path and mod not in seen:
                        seen.add(mod)
                        mods[mod] += n
        if not loop:
            return f"  py-spy, {self.label}: no busy samples"
        lines = [
            f"  py-spy, super-peer during {self.label}: event loop busy {loop / 200:.1f} s"
            f" ({loop} samples at 200/s); chunk-write thread {writer / 200:.1f} s"
        ]
        lines += [f"    own {100 * n / loop:5.1f}%  {name}" for name, n in own.most_common(top)]
        lines += [f"    incl {100 * n / loop:5.1f}%  {mod}" for mod, n in mods.most_common()]
        return "\n".join(lines)


def mibps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MIB / seconds:7.1f} MiB/s  ({seconds:.2f} s)"


def spread(nbytes: int, seconds: list[float]) -> str:
    """Median throughput of repeated runs, with the range."""
    rates = sorted(nbytes / MIB / s for s in seconds)
    if len(rates) == 1:
        return mibps(nbytes, seconds[0])
    return (
        f"{statistics.median(rates):7.1f} MiB/s  median of {len(rates)} "
        f"(range {rates[0]:.1f}-{rates[-1]:.1f})"
    )


def open_page(context: Any, origin: str, web: Server) -> Page:
    page = context.new_page()
    page.goto(origin + "/")
    page.wait_for_function("() => window.harnessReady === true")
    options = {
        "host": "127.0.0.1",
        "port": web.port,
        "path": "/signal/",
        "key": "peerjs",
        "community": COMMUNITY,
    }
    page.evaluate("(o) => harness.start(o)", options)
    return page


def connect(page: Page, peer_id: str) -> str:
    cid: str = page.evaluate("([id]) => harness.connect(id, 'raw')", [peer_id])
    page.evaluate("(c) => harness.until(c, 's => s.hello')", cid)
    return cid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--browsers", type=int, default=8)
    parser.add_argument("--each-mib", type=int, default=16)
    parser.add_argument(
        "--window", type=int, default=16, help="chunk requests in flight per connection"
    )
    parser.add_argument("--phases", default="out,b2b,many", help="after the upload")
    parser.add_argument("--repeat", type=int, default=3, help="downloads per direction")
    parser.add_argument(
        "--send-buffer", type=int, default=None, help="SWARM_SUPERPEER_SEND_BUFFER_BYTES"
    )
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    spy_out: Spy | None = None
    spy_many: Spy | None = None
    size = args.mib * MIB
    logs = VAR / "logs"
    logs.mkdir(parents=True)
    print(machine())
    print(
        f"swarm chunk protocol (64 KiB chunks, 16 requests in flight per connection), loopback; logs in {logs}"
    )
    web = start_web(logs)
    sp: SuperPeerProcess = start_superpeer(
        VAR / "superpeer",
        logs,
        web,
        COMMUNITY,
        {
            "SWARM_SUPERPEER_SYNC_S": "0.5",
            "SWARM_SUPERPEER_STATUS_S": "0.2",
            "SWARM_SUPERPEER_STORAGE_BYTES": str(
                8 * size + 2 * args.browsers * args.each_mib * MIB
            ),
            **(
                {"SWARM_SUPERPEER_SEND_BUFFER_BYTES": str(args.send_buffer)}
                if args.send_buffer
                else {}
            ),
        },
        name="bench-superpeer",
    )
    results: dict[str, str] = {}
    try:
        with serve_swarm_page() as origin, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *NO_THROTTLING]
            )
            context = browser.new_context()
            context.grant_permissions(["camera", "microphone"], origin=origin)

            # browser -> super-peer: the super-peer pins what a page shares.
            sharer = open_page(context, origin, web)
            sharer_cid = connect(sharer, sp.peer_id)
            shared = sharer.evaluate("(n) => harness.share(n, 'bench.bin')", size)
            manifest_id = shared["manifestId"]
            with Spy(args.profile, sp.proc.pid, "browser -> super-peer") as spy_in:
                superpeer_pin(manifest_id, peer_id=sp.peer_id)
                wait_until(
                    lambda: Holding.objects.filter(
                        manifest__manifest_id=manifest_id, complete=True
                    ).exists(),
                    600,
                    "the super-peer's copy",
                    sp,
                    interval=0.05,
                )
                wait_until(
                    lambda: FetchJob.objects.filter(
                        job_id=pin_job_id(manifest_id, sp.peer_id), finished_at__isnull=False
                    ).exists(),
                    30,
                    "the job's end",
                    sp,
                )
            job = FetchJob.objects.get(job_id=pin_job_id(manifest_id, sp.peer_id))
            first = sharer.evaluate("() => harness.firstServedAt") / 1000
            results["browser -> super-peer"] = mibps(size, job.finished_at.timestamp() - first)

            def download(page: Page, cid: str) -> dict[str, Any]:
                got: dict[str, Any] = page.evaluate(
                    "([c, m, k, w]) => harness.download([c], m, k, w)",
                    [cid, manifest_id, shared["key"], args.window],
                )
                assert got["sha256"] == shared["sha256"], "downloaded bytes differ"
                return got

            # Interleaved, so that both directions see the same machine load.
            reader = open_page(context, origin, web)
            reader_cid = connect(reader, sp.peer_id)
            peer_reader = open_page(context, origin, web)
            direct_cid = connect(peer_reader, sharer.evaluate("() => harness.peerId"))
            times: dict[str, list[float]] = {"super-peer -> browser": [], "browser -> browser": []}
            for round_ in range(args.repeat):
                if "out" in phases:
                    # super-peer -> browser: a page downloads from the super-peer alone.
                    spy = Spy(args.profile and round_ == 0, sp.proc.pid, "super-peer -> browser")
                    with spy:
                        got = download(reader, reader_cid)
                    spy_out = spy_out or spy
                    times["super-peer -> browser"].append(got["ms"] / 1000)
                if "b2b" in phases:
                    # browser -> browser: the same download from the sharing page.
                    got = download(peer_reader, direct_cid)
                    times["browser -> browser"].append(got["ms"] / 1000)
            for label, seconds in times.items():
                if seconds:
                    results[label] = spread(size, seconds)
            reader.close()
            peer_reader.close()
            del sharer_cid
            if "many" in phases:
                # N browsers download from the super-peer at once.
                each = args.each_mib * MIB
                many = sharer.evaluate("(n) => harness.share(n, 'many.bin')", each)
                superpeer_pin(many["manifestId"], peer_id=sp.peer_id)
                wait_until(
                    lambda: Holding.objects.filter(
                        manifest__manifest_id=many["manifestId"], complete=True
                    ).exists(),
                    600,
                    "the second copy",
                    sp,
                    interval=0.05,
                )
                sharer.close()
                pages = [open_page(context, origin, web) for _ in range(args.browsers)]
                cids = [connect(page, sp.peer_id) for page in pages]
                start_at = time.time() + 1.0
                for page, cid in zip(pages, cids, strict=True):
                    page.evaluate(
                        """([c, m, k, at, w]) => { harness.result = null;
                            setTimeout(() => harness.download([c], m, k, w).then((r) => { harness.result = r; },
                              (e) => { harness.result = { error: String(e) }; }), Math.max(0, at - Date.now())); }""",
                        [cid, many["manifestId"], many["key"], start_at * 1000, args.window],
                    )
                with Spy(args.profile, sp.proc.pid, f"{args.browsers} browsers") as spy_many:
                    for page in pages:
                        page.wait_for_function("() => harness.result !== null", timeout=600_000)
                outcomes = [page.evaluate("() => harness.result") for page in pages]
                errors = [o["error"] for o in outcomes if "error" in o]
                assert not errors, errors
                assert all(o["sha256"] == many["sha256"] for o in outcomes), (
                    "concurrent: bytes differ"
                )
                begin = min(o["startedAt"] for o in outcomes)
                end = max(o["endedAt"] for o in outcomes)
                slowest = max(o["ms"] for o in outcomes) / 1000
                fastest = min(o["ms"] for o in outcomes) / 1000
                gap = max(o["maxGapMs"] for o in outcomes)
                results[f"{args.browsers} browsers <- super-peer"] = (
                    f"{mibps(args.browsers * each, (end - begin) / 1000)} aggregate; each {args.each_mib} MiB in "
                    f"{fastest:.2f}-{slowest:.2f} s; longest gap between chunks {gap:.0f} ms"
                )
            browser.close()
    finally:
        sp.stop()
        web.stop()
    print(f"  {args.mib} MiB file:")
    for label, figure in results.items():
        print(f"  {label:28s} {figure}")
    for spy in (spy_in, spy_out, spy_many):
        report = spy.report() if spy is not None else ""
        if report:
            print(report)


if __name__ == "__main__":
    main()
