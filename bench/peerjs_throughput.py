"""Raw DataConnection throughput: Python peer (aiortc) <-> Chromium (peerjs 1.5.5), and
Chromium <-> Chromium in the same run, 64 MiB each way on loopback.

    .venv/bin/python bench/peerjs_throughput.py [--mib 64] [--piece-kib 64] [--profile]

Signaling goes through the reference ``peer`` server (it is not what is measured). Each
transfer is timed from the sender's first send to the receiver's last byte (wall clocks of
the same machine). ``--profile`` runs py-spy on this process during the Python transfers
and prints where the Python side spends its time (own time per function, top modules).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench.common import machine  # noqa: E402
from peers.peerjs.dataconnection import DataConnection  # noqa: E402
from peers.peerjs.ice import IceConfig  # noqa: E402
from peers.peerjs.peer import Peer  # noqa: E402
from peers.peerjs.signaling import ServerAddress  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.aio_thread import LoopThread  # noqa: E402
from tests.support.peerjs_page import serve_page  # noqa: E402
from tests.support.peerjs_server import start_reference_server  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"
# Two pages share the browser: keep the one not in front from being throttled.
NO_THROTTLING = [
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def pattern(length: int) -> bytes:
    return bytes((i * 7 + (i >> 8) + 3) & 0xFF for i in range(length))


class Profiler:
    """py-spy attached to this process while a transfer runs (raw collapsed stacks)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled and PY_SPY.exists()
        self.label = label
        self.out = Path(tempfile.gettempdir()) / f"peerjs-bench-{label}.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.enabled:
            self.proc = subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(os.getpid()),
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
            time.sleep(1.0)  # let py-spy attach
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)
            self.proc.wait(30)

    def report(self, top: int = 12) -> str:
        if not self.enabled or not self.out.exists():
            return ""
        own: collections.Counter[str] = collections.Counter()
        modules: collections.Counter[str] = collections.Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            # Only the event loop thread that runs the peer; idle waits are not work.
            if "LoopThread" not in stack and "run_forever" not in stack:
                continue
            leaf = frames[-1]
            if "select" in leaf and ("selectors" in leaf or "epoll" in leaf):
                continue
            n = int(count)
            total += n
            own[leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split(":")[0].split("/")[-1]] += n
            seen = set()
            for frame in frames:
                path = frame.split(" (")[-1].split(":")[0]
                for mod in (
                    "aiortc",
                    "aioice",
                    "pylibsrtp",
                    "cryptography",
                    "OpenSSL",
                    "asyncio",
                    "peers/peerjs",
                ):
                    if mod in path and mod not in seen:
                        seen.add(mod)
                        modules[mod] += n
        lines = [f"  py-spy, {self.label}: {total} busy samples of the peer's loop thread"]
        lines += [f"    own {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
        lines += [f"    incl {100 * n / total:5.1f}%  {mod}" for mod, n in modules.most_common()]
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--piece-kib", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    total = args.mib * 1024 * 1024
    size = args.piece_kib * 1024
    piece = pattern(size)
    count = total // size

    print(machine())
    print(
        f"raw DataConnection, reliable, {args.mib} MiB in {args.piece_kib} KiB messages, loopback"
    )
    with tempfile.TemporaryDirectory() as logs:
        server = start_reference_server(Path(logs))
        loop = LoopThread()
        address = ServerAddress("127.0.0.1", server.port)
        try:
            with serve_page() as origin, sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *NO_THROTTLING]
                )
                pages = []
                for name in ("bench-a", "bench-b"):
                    context = browser.new_context()
                    context.grant_permissions(["camera", "microphone"], origin=origin)
                    page = context.new_page()
                    page.goto(origin + "/")
                    page.evaluate(
                        "([id, o]) => harness.start(id, o)",
                        [name, {"host": "127.0.0.1", "port": server.port, "path": "/"}],
                    )
                    pages.append(page)
                a, b = pages

                async def make_peer() -> Peer:
                    peer = Peer(
                        address, peer_id="bench-py", ice=IceConfig(host_addresses=("127.0.0.1",))
                    )
                    await peer.start()
                    return peer

                peer = loop.run(make_peer())

                async def connect() -> DataConnection:
                    conn = peer.connect("bench-a", serialization="raw", reliable=True)
                    await conn.wait_open(20)
                    return conn

                conn = loop.run(connect())
                cid = conn.connection_id
                a.evaluate("([c]) => harness.waitOpen(c)", [cid])
                results: dict[str, float] = {}

                # Python -> Chromium.
                a.evaluate("([c, n]) => harness.sink(c, n)", [cid, total])

                async def send_all() -> float:
                    start = time.time()
                    for _ in range(count):
                        await conn.send(piece)
                    return start

                with Profiler(args.profile, "python-send") as prof_send:
                    start = loop.run(send_all(), 600)
                    end = a.evaluate("() => harness.sinkDone")["end"]
                results["Python -> Chromium"] = end / 1000 - start

                # Chromium -> Python.
                async def receive_all() -> float:
                    got = 0
                    while got < total:
                        got += len(await conn.recv())
                    return time.time()

                with Profiler(args.profile, "python-receive") as prof_recv:
                    receiver = asyncio.run_coroutine_threadsafe(receive_all(), loop.loop)
                    start_ms = a.evaluate(
                        "([c, n, s]) => harness.blast(c, n, s)", [cid, total, size]
                    )
                    end_s = receiver.result(600)
                results["Chromium -> Python"] = end_s - start_ms / 1000

                # Chromium -> Chromium.
                cc = a.evaluate(
                    "() => harness.connect('bench-b', {serialization: 'raw', reliable: true})"
                )
                b.evaluate("([c]) => harness.waitOpen(c)", [cc])
                pair_py = a.evaluate("([c]) => harness.selectedPair(c)", [cid])
                pair_cc = a.evaluate("([c]) => harness.selectedPair(c)", [cc])
                print(f"  ICE pairs: Python<->Chromium {pair_py}; Chromium<->Chromium {pair_cc}")
                b.evaluate("([c, n]) => harness.sink(c, n)", [cc, total])
                start_ms = a.evaluate("([c, n, s]) => harness.blast(c, n, s)", [cc, total, size])
                end_ms = b.evaluate("() => harness.sinkDone")["end"]
                results["Chromium -> Chromium"] = (end_ms - start_ms) / 1000

                for label, seconds in results.items():
                    print(f"  {label:22s} {args.mib / seconds:7.1f} MiB/s  ({seconds:.2f} s)")
                for prof in (prof_send, prof_recv):
                    report = prof.report()
                    if report:
                        print(report)
                loop.run(peer.destroy())
                browser.close()
        finally:
            loop.close()
            server.stop()


if __name__ == "__main__":
    main()
