"""Browser-to-browser file transfer through the full pipeline, next to a bare DataChannel.

Two Chromium pages of the real site (daphne on 127.0.0.1, embedded SQLite, no Redis) join
one community. In the same run, page A sends page B:

- ``bare``: 64 MiB over a bare RTCDataChannel (negotiated, on the RTCPeerConnection the
  pages' swarm connection already uses: the same transport) in 64 KiB messages, with
  bufferedamountlow backpressure at the uploader's thresholds, first send to last byte;
- ``pipeline``: A shares a 64 MiB file (encrypt, hash, store in IndexedDB, sign the
  manifest); B fetches it with ``window.swarm.files.download`` (manifest request and check,
  chunk requests, every chunk id recomputed, stored in IndexedDB, then decrypted and
  SHA-256'd to complete), from the download call to the completion event.

    .venv/bin/python bench/transfer.py [--mib 64] [--repeat 3] [--profile]

``--profile`` then measures the CPU time of every Chromium thread during one more bare
transfer and one more fetch (from /proc: the box has 2 cores, so CPU is what both are
bound by), and where both pages' main threads spend their time during a fetch (Chromium's
sampling profiler over CDP, self time by function).
"""

from __future__ import annotations

import argparse
import collections
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from bench.common import CpuMeter, git_revision, machine  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.live import Server, spawn_daphne  # noqa: E402

# Two pages share the browser: keep the one not in front from being throttled.
NO_THROTTLING = [
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def start_server(var_dir: Path, log_dir: Path) -> Server:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | {
        "SWARM_VAR_DIR": str(var_dir),
        "DJANGO_SECRET_KEY": "bench-secret-key-not-for-production",
        "PYTHONUNBUFFERED": "1",
    }
    for command in (["migrate", "--noinput", "-v", "0"], ["swarm_keys"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    return spawn_daphne(env, log_dir / "bench-transfer-web.log", name="web")


# A negotiated DataChannel (same id on both sides, no in-band announcement) on the
# RTCPeerConnection the two pages already share: the same transport the pipeline uses.
OPEN_BARE = """async ({ other, id }) => {
  const swarm = window.swarm;
  const conn = swarm.node.mesh.open().find((c) => c.peerId === other);
  const pc = swarm.conns.get(conn.id).peerConnection;
  const channel = pc.createDataChannel(`bare-${id}`, { negotiated: true, id, ordered: true });
  channel.binaryType = "arraybuffer";
  window.bare = { channel };
  if (channel.readyState !== "open") await new Promise((r) => channel.addEventListener("open", r, { once: true }));
}"""


# The receiving page resolves window.bare.done with the time the last byte arrived.
RECEIVE_BARE = """(total) => {
  window.bare.done = new Promise((resolve) => {
    let got = 0;
    window.bare.channel.onmessage = (e) => {
      got += e.data.byteLength;
      if (got >= total) resolve(performance.timeOrigin + performance.now());
    };
  });
}"""

# The sending page sends `total` bytes in 64 KiB messages, queuing at most `high` bytes and
# resuming at a quarter of it (by default the uploader's thresholds: content/uploader.js
# BUFFER_TARGET), and answers the time it started.
BARE_HIGH = 256 * 1024
SEND_BARE = """async ({ total, high }) => {
  const { channel } = window.bare;
  channel.bufferedAmountLowThreshold = high / 4;
  const piece = crypto.getRandomValues(new Uint8Array(65536));
  const t0 = performance.timeOrigin + performance.now();
  for (let sent = 0; sent < total; sent += piece.length) {
    if (channel.bufferedAmount > high) await new Promise((r) => channel.addEventListener("bufferedamountlow", r, { once: true }));
    channel.send(piece);
  }
  return t0;
}"""


def chromium_threads() -> dict[str, int]:
    """CPU jiffies of every Chromium thread, keyed by what it does (both renderers summed)."""
    out: collections.Counter[str] = collections.Counter()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "chromium" not in cmd:
                continue
            if "--type=renderer" in cmd:
                process = "renderers"
            elif "NetworkService" in cmd:
                process = "network service"
            elif "--type=" in cmd:
                process = "other"
            else:
                process = "browser"
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat.rsplit(")", 1)[1].split()
                thread = THREAD_NAMES.get(name, name)
                out[f"{process}: {thread}"] += int(fields[11]) + int(fields[12])
        except (OSError, ValueError):
            continue
    return dict(out)


THREAD_NAMES = {
    "chromium": "main (JS)",
    "Chrome_ChildIOT": "IO",
    "Chrome_IOThread": "IO",
    "WebRTC_W_and_N": "WebRTC worker + network (SCTP, DTLS)",
    "ThreadPoolForeg": "thread pool (IndexedDB in the browser, WebCrypto in renderers)",
}


def thread_seconds(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    return {k: (after[k] - before.get(k, 0)) / ticks for k in after}


BARE_CPU = CpuMeter()
FETCH_CPU = CpuMeter()


def bare_transfer(a: Page, b: Page, mib: int, run: int) -> float:
    """Seconds for `mib` MiB over a bare RTCDataChannel from page a to page b."""
    ids = [str(p.evaluate("() => window.swarm.peerId")) for p in (a, b)]
    channel_id = 900 + run  # PeerJS's own channel has an even id far below this
    opening = [
        p.evaluate_handle(OPEN_BARE, {"other": other, "id": channel_id})
        for p, other in ((a, ids[1]), (b, ids[0]))
    ]
    for handle in opening:
        handle.json_value()
    b.evaluate(RECEIVE_BARE, mib * 1024 * 1024)
    BARE_CPU.start()
    start = a.evaluate(SEND_BARE, {"total": mib * 1024 * 1024, "high": BARE_HIGH})
    end = b.evaluate("() => window.bare.done")
    BARE_CPU.stop()
    for page in (a, b):
        page.evaluate("() => window.bare.channel.close()")
    return float(end - start) / 1000


SHARE = """async ({ mib }) => {
  const parts = [];
  for (let i = 0; i < mib * 16; i++) parts.push(crypto.getRandomValues(new Uint8Array(65536)));
  const file = new File(parts, `bench-${Date.now()}.bin`, { type: "application/octet-stream" });
  const whole = new Uint8Array(await file.arrayBuffer());
  const sha256 = [...new Uint8Array(await crypto.subtle.digest("SHA-256", whole))].map((b) => b.toString(16).padStart(2, "0")).join("");
  const t0 = performance.now();
  const record = await window.swarm.files.share(file);
  const seconds = (performance.now() - t0) / 1000;
  const { b64urlEncode } = await import("/static/swarm/protocol/encoding.js");
  return { id: record.id, key: b64urlEncode(record.key), sha256, seconds };
}"""

FETCH = """async ({ id, key }) => {
  const { b64urlDecode } = await import("/static/swarm/protocol/encoding.js");
  const files = window.swarm.files;
  const done = new Promise((resolve, reject) => {
    files.addEventListener("complete", (e) => e.detail.id === id && resolve(e.detail));
    files.addEventListener("failed", (e) => e.detail.id === id && reject(new Error(e.detail.code)));
  });
  const t0 = performance.now();
  await files.download(id, b64urlDecode(key, "k"));
  const { sha256 } = await done;
  const seconds = (performance.now() - t0) / 1000;
  const record = files.files.get(id);
  return { seconds, sha256, sources: record.sources, times: files.lastTimes };
}"""

DELETE = "async (id) => { await window.swarm.files.remove(id); }"


def pipeline_transfer(a: Page, b: Page, mib: int) -> dict[str, Any]:
    shared = a.evaluate(SHARE, {"mib": mib})
    FETCH_CPU.start()
    fetched = b.evaluate(FETCH, {"id": shared["id"], "key": shared["key"]})
    FETCH_CPU.stop()
    if fetched["sha256"] != shared["sha256"]:
        raise SystemExit(f"sha256 mismatch: {fetched['sha256']} != {shared['sha256']}")
    a.evaluate(DELETE, shared["id"])
    b.evaluate(DELETE, shared["id"])
    return {"share": shared["seconds"], "fetch": fetched["seconds"], "times": fetched["times"]}


def summarize_profile(profile: dict[str, Any]) -> list[tuple[str, float]]:
    nodes = {n["id"]: n for n in profile["nodes"]}
    per_node: collections.Counter[int] = collections.Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        per_node[sample] += delta
    by_where: collections.Counter[str] = collections.Counter()
    for node_id, micros in per_node.items():
        frame = nodes[node_id]["callFrame"]
        url = frame["url"].rsplit("/", 1)[-1] or "(native)"
        by_where[f"{url} {frame['functionName'] or '(anonymous)'}"] += micros
    total = sum(by_where.values())
    return [(where, micros / total) for where, micros in by_where.most_common(14)]


def profile_fetch(a: Page, b: Page, mib: int) -> dict[str, list[tuple[str, float]]]:
    """Self time of both pages' main threads during one download, by function (CDP)."""
    shared = a.evaluate(SHARE, {"mib": mib})
    sessions = {
        "A (serves)": a.context.new_cdp_session(a),
        "B (fetches)": b.context.new_cdp_session(b),
    }
    for cdp in sessions.values():
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 200})
        cdp.send("Profiler.start")
    b.evaluate(FETCH, {"id": shared["id"], "key": shared["key"]})
    out = {
        name: summarize_profile(cdp.send("Profiler.stop")["profile"])
        for name, cdp in sessions.items()
    }
    a.evaluate(DELETE, shared["id"])
    b.evaluate(DELETE, shared["id"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    mb = args.mib * 1024 * 1024 / 1e6

    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        server = start_server(Path(tmp) / "var", Path(tmp))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *NO_THROTTLING], headless=True
                )
                url = f"{server.url}/?community=bench-{secrets.token_hex(3)}"
                pages = []
                for _ in range(2):
                    context = browser.new_context()
                    context.grant_permissions(["camera", "microphone"], origin=server.url)
                    page = context.new_page()
                    page.goto(url)
                    page.wait_for_function("() => window.swarm?.files", timeout=20_000)
                    pages.append(page)
                a, b = pages
                b_id = b.evaluate("() => window.swarm.peerId")
                a.wait_for_function(
                    "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)",
                    arg=b_id,
                    timeout=30_000,
                )
                print(
                    f"file transfer, {args.mib} MiB, Chromium {browser.version} on loopback "
                    f"({machine()}, rev {git_revision()})"
                )
                bare_transfer(a, b, 16, 99)  # warm-up: the connection's congestion window
                BARE_CPU.samples.clear()
                bare: list[float] = []
                share: list[float] = []
                fetch: list[float] = []
                for run in range(args.repeat):
                    bare.append(bare_transfer(a, b, args.mib, run))
                    result = pipeline_transfer(a, b, args.mib)
                    share.append(result["share"])
                    fetch.append(result["fetch"])
                    t = result["times"]
                    print(
                        f"  run {run + 1}: bare {mb / bare[-1]:6.1f} MB/s   pipeline fetch "
                        f"{mb / fetch[-1]:6.1f} MB/s (manifest {t['manifestMs']:.0f} ms, chunks "
                        f"{t['chunksMs']:.0f} ms, decrypt + SHA-256 {t['assembleMs']:.0f} ms)   "
                        f"share {mb / share[-1]:6.1f} MB/s"
                    )
                med = statistics.median
                print(f"  median of {args.repeat}:")
                print(f"    bare RTCDataChannel                   {mb / med(bare):7.1f} MB/s")
                print(
                    f"    pipeline: fetch (verify, store, open) {mb / med(fetch):7.1f} MB/s  "
                    f"({med(bare) / med(fetch):.0%} of bare)"
                )
                print(f"    pipeline: share (encrypt, hash, store) {mb / med(share):6.1f} MB/s")
                cpus = os.cpu_count() or 1
                print(
                    f"    machine CPU busy (all processes, {cpus} cpus): bare "
                    f"{med(BARE_CPU.samples):.0%}, pipeline fetch {med(FETCH_CPU.samples):.0%}"
                )
                end_to_end = med(share) + med(fetch)
                print(
                    f"    pipeline: share then fetch, end to end {mb / end_to_end:6.1f} MB/s  "
                    f"({med(bare) / end_to_end:.0%} of bare)"
                )
                if args.profile:
                    before = chromium_threads()
                    bare_transfer(a, b, args.mib, 98)
                    bare_cpu = thread_seconds(before, chromium_threads())
                    shared = a.evaluate(SHARE, {"mib": args.mib})
                    before = chromium_threads()
                    b.evaluate(FETCH, {"id": shared["id"], "key": shared["key"]})
                    fetch_cpu = thread_seconds(before, chromium_threads())
                    a.evaluate(DELETE, shared["id"])
                    b.evaluate(DELETE, shared["id"])
                    print(f"  Chromium CPU seconds per {args.mib} MiB, by thread (both pages):")
                    print(f"    {'':64} {'bare':>6} {'fetch':>6}")
                    keys = sorted(
                        set(bare_cpu) | set(fetch_cpu), key=lambda k: -fetch_cpu.get(k, 0)
                    )
                    for key in keys:
                        x, y = bare_cpu.get(key, 0.0), fetch_cpu.get(key, 0.0)
                        if max(x, y) >= 0.03:
                            print(f"    {key:64} {x:6.2f} {y:6.2f}")
                    print(
                        f"    {'total':64} {sum(bare_cpu.values()):6.2f} "
                        f"{sum(fetch_cpu.values()):6.2f}"
                    )
                    for name, rows in profile_fetch(a, b, args.mib).items():
                        print(f"  page {name}, main thread during one fetch (self time):")
                        for where, share_of in rows:
                            print(f"    {share_of:6.1%}  {where}")
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
