"""PeerJS signaling: relay throughput, relay latency and memory per idle socket.

One load generator (this process: asyncio + the ``websockets`` client) drives, in the same
run, the reference PeerJS server (npm ``peer`` 1.0.2 on Node) and ours:

- ``ours 1p memory``: one daphne, the directory in memory (the embedded default);
- ``ours 1p redis``: one daphne on Redis (what a single node with REDIS_URL runs);
- ``ours 2p split``: two daphnes on one Redis, every pair split across them (each message
  crosses processes through Redis: the worst case);
- ``ours 2p local``: two daphnes, pairs on the same process (the best case);
- ``ours 2p mixed``: the same two daphnes, half the pairs split and half on one process:
  what placement without sticky sessions gives on average;
- ``daphne bare``: ``bench/bare_relay.py`` on one daphne, a relay with no checks at all:
  the floor of what any relay hosted by daphne costs.

Phases, for each server:

1. throughput: ``--pairs`` pairs, each client keeps ``--window`` OFFER-sized messages
   (~1.3 KB) in flight to its partner (closed loop) for ``--seconds``;
2. latency at ``--latency-pairs`` pairs: each client sends to its partner at a fixed
   rate (open loop, ``--latency-rate`` messages/s in total), p50/p99 of send -> receive;
3. memory (measured first, on fresh servers): RSS growth of the server process(es) for
   ``--idle`` open, idle sockets.

    .venv/bin/python bench/signaling.py [--seconds 8] [--rounds 3] [--idle 2000]
        [--redis-url redis://127.0.0.1:6379/11]  (that Redis database is flushed)
        [--cpu-per-process 0.4]

Targets (issue 3): one process >= 0.5x the reference's relay throughput, two processes
>= 1.0x, p99 < 20 ms at 200 pairs. The machine's cores are shared by the load generator,
the servers and Redis; ``--cpu-per-process C`` caps every server process (the reference
included) at C cores with its own cgroup, so that servers are compared at the same CPU
budget per process whatever the load generator and Redis take.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import (
    ROOT,
    CpuLimit,
    cpu_seconds,
    git_revision,
    machine,
    percentile,
    prepare_database,
    rss_kb,
)
from tests.support.live import LOOPBACK_LIMITS_OFF, Server, spawn_daphne
from tests.support.peerjs_server import start_reference_server

PAD = "a=candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host generation 0\\r\\n" * 16


@dataclass
class Target:
    name: str
    servers: list[Server]
    placement: Callable[[int], int]  # client index -> server index
    pids: list[int] = field(default_factory=list)
    redis_url: str = ""

    def url(self, client: int) -> str:
        server = self.servers[self.placement(client) % len(self.servers)]
        return f"{server.ws_url}/signal/peerjs"

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


# --- servers -----------------------------------------------------------------------------


def mixed_placement(client: int) -> int:
    """Odd pairs split across the two processes; even pairs on one, alternating."""
    pair, side = divmod(client, 2)
    return side if pair % 2 else (pair // 2) % 2


def start_daphnes(count: int, env: dict[str, str], log_dir: Path, label: str) -> list[Server]:
    return [
        spawn_daphne(env, log_dir / f"bench-signal-{label}-{index}.log", name=f"{label}{index}")
        for index in range(count)
    ]


# --- load --------------------------------------------------------------------------------


def redis_cpu_seconds(url: str) -> float:
    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def new_id(n: int) -> str:
    return f"b{n}x{uuid.uuid4().hex[:10]}"


async def open_socket(url: str, peer_id: str) -> ClientConnection:
    ws = await connect(
        f"{url}?key=peerjs&id={peer_id}&token=t{peer_id}&version=1.5.5",
        max_queue=None,
        compression=None,
        open_timeout=30,
        close_timeout=2,
    )
    first = json.loads(await ws.recv())
    if first.get("type") != "OPEN":
        raise RuntimeError(f"{peer_id}: expected OPEN, got {first}")
    return ws


async def open_pairs(target: Target, pairs: int) -> list[tuple[ClientConnection, str, str]]:
    """2*pairs sockets; returns (socket, own id, partner id) per client."""
    ids = [new_id(n) for n in range(2 * pairs)]
    sockets: list[ClientConnection] = []
    for start in range(0, len(ids), 100):
        batch = ids[start : start + 100]
        sockets += await asyncio.gather(
            *(open_socket(target.url(start + n), pid) for n, pid in enumerate(batch))
        )
    out = []
    for n, ws in enumerate(sockets):
        partner = ids[n + 1] if n % 2 == 0 else ids[n - 1]
        out.append((ws, ids[n], partner))
    return out


def offer(dst: str) -> str:
    body = {
        "type": "OFFER",
        "dst": dst,
        "payload": {
            "t": time.perf_counter_ns(),
            "type": "data",
            "connectionId": "dc_b",
            "sdp": PAD,
        },
    }
    return json.dumps(body)


async def close_all(clients: list[tuple[ClientConnection, str, str]]) -> None:
    await asyncio.gather(*(ws.close() for ws, _, _ in clients), return_exceptions=True)


async def throughput(target: Target, pairs: int, window: int, seconds: float) -> dict[str, float]:
    clients = await open_pairs(target, pairs)
    latencies: list[int] = []
    state = {"count": 0, "measuring": False, "running": True}

    async def run(ws: ClientConnection, partner: str) -> None:
        try:
            for _ in range(window):
                await ws.send(offer(partner))
            async for raw in ws:
                if state["measuring"]:
                    state["count"] += 1
                    latencies.append(time.perf_counter_ns() - json.loads(raw)["payload"]["t"])
                if not state["running"]:
                    return
                await ws.send(offer(partner))
        except ConnectionClosed:
            return

    tasks = [asyncio.create_task(run(ws, partner)) for ws, _, partner in clients]
    await asyncio.sleep(2.0)  # warm-up
    state["measuring"] = True
    started = time.perf_counter()
    server_cpu = cpu_seconds(target.pids)
    own_cpu = time.process_time()
    redis_cpu = redis_cpu_seconds(target.redis_url) if target.redis_url else 0.0
    await asyncio.sleep(seconds)
    state["measuring"] = False
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(target.pids) - server_cpu
    own_cpu = time.process_time() - own_cpu
    if target.redis_url:
        redis_cpu = redis_cpu_seconds(target.redis_url) - redis_cpu
    state["running"] = False
    await close_all(clients)
    await asyncio.gather(*tasks, return_exceptions=True)
    ms = [v / 1e6 for v in latencies]
    count = max(1, state["count"])
    return {
        "rate": state["count"] / elapsed,
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "server_us": server_cpu / count * 1e6,  # server CPU per relayed message
        "redis_us": redis_cpu / count * 1e6,
        "loadgen_cores": own_cpu / elapsed,
    }


async def latency(target: Target, pairs: int, rate: float, seconds: float) -> dict[str, float]:
    clients = await open_pairs(target, pairs)
    interval = len(clients) / rate  # seconds between one client's messages
    latencies: list[int] = []
    state = {"measuring": False, "running": True, "sent": 0}

    async def receive(ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                if state["measuring"]:
                    latencies.append(time.perf_counter_ns() - json.loads(raw)["payload"]["t"])
        except ConnectionClosed:
            return

    async def send(ws: ClientConnection, partner: str) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        next_at = time.perf_counter()
        try:
            while state["running"]:
                await ws.send(offer(partner))
                state["sent"] += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        except ConnectionClosed:
            return

    tasks = [asyncio.create_task(receive(ws)) for ws, _, _ in clients]
    tasks += [asyncio.create_task(send(ws, partner)) for ws, _, partner in clients]
    await asyncio.sleep(2.0)
    state["measuring"] = True
    await asyncio.sleep(seconds)
    state["measuring"] = False
    state["running"] = False
    await close_all(clients)
    await asyncio.gather(*tasks, return_exceptions=True)
    ms = [v / 1e6 for v in latencies]
    return {
        "delivered": len(latencies) / seconds,
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
    }


async def idle_memory(target: Target, sockets: int) -> float:
    """KiB of server RSS per open idle socket."""
    warm = [await open_socket(target.url(n), new_id(n)) for n in range(20)]
    await asyncio.sleep(1.0)
    before = sum(rss_kb(pid) for pid in target.pids)
    opened: list[ClientConnection] = []
    for start in range(20, sockets + 20, 200):
        opened += await asyncio.gather(
            *(open_socket(target.url(n), new_id(n)) for n in range(start, start + 200))
        )
    await asyncio.sleep(2.0)
    after = sum(rss_kb(pid) for pid in target.pids)
    await asyncio.gather(*(ws.close() for ws in warm + opened), return_exceptions=True)
    return (after - before) / len(opened)


# --- main --------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--pairs", type=int, default=50, help="pairs in the throughput phase")
    parser.add_argument("--window", type=int, default=4, help="messages in flight per client")
    parser.add_argument("--latency-pairs", type=int, default=200)
    parser.add_argument("--latency-rate", type=float, default=2000.0, help="messages/s offered")
    parser.add_argument("--idle", type=int, default=2000, help="idle sockets for memory")
    parser.add_argument("--only", default="", help="comma-separated target names (default: all)")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/swarm_bench_signal"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument(
        "--cpu-per-process",
        type=float,
        default=0.0,
        help="cap every server process at this many cores (cgroup); 0: no cap",
    )
    args = parser.parse_args()
    if args.cpu_per_process and not CpuLimit.available():
        print("--cpu-per-process needs a writable cgroup file system (cpu controller)")
        return 2

    print(f"machine: {machine()}")
    print(f"revision: {git_revision()}")
    prepare_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    log_dir = ROOT / "test-artifacts"
    log_dir.mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SWARM_")},
        "DATABASE_URL": args.database_url,
        "SWARM_VAR_DIR": str(log_dir / "bench-signal-var"),
        "DJANGO_SECRET_KEY": "bench",
        "SWARM_LOG_LEVEL": "WARNING",
        # The load generator floods on purpose: lift the per-socket limits it would hit.
        "SWARM_SIGNAL_RATE": "1000000",
        "SWARM_SIGNAL_BURST": "1000000",
        "SWARM_SIGNAL_CONCURRENT_LIMIT": "100000",
        **LOOPBACK_LIMITS_OFF,
    }
    # Every server runs for the whole benchmark, so that the rounds interleave targets and
    # other load on the machine (it is shared) spreads over all of them alike.
    reference = start_reference_server(log_dir, "--concurrent_limit", "100000", path="/signal/")
    memory = start_daphnes(1, {**env, "REDIS_URL": ""}, log_dir, "1p-memory")
    one = start_daphnes(1, {**env, "REDIS_URL": args.redis_url}, log_dir, "1p-redis")
    two = start_daphnes(2, {**env, "REDIS_URL": args.redis_url}, log_dir, "2p")
    bare = [
        spawn_daphne(
            env, log_dir / "bench-signal-bare.log", name="bare", app="bench.bare_relay:application"
        )
    ]
    targets = [
        Target("reference", [reference], lambda n: 0),
        Target("ours 1p memory", memory, lambda n: 0),
        Target("ours 1p redis", one, lambda n: 0, redis_url=args.redis_url),
        Target("ours 2p split", two, lambda n: n, redis_url=args.redis_url),
        Target("ours 2p local", two, lambda n: n // 2, redis_url=args.redis_url),
        Target("ours 2p mixed", two, mixed_placement, redis_url=args.redis_url),
        Target("daphne bare", bare, lambda n: 0),
    ]
    for target in targets:
        target.pids = [server.proc.pid for server in target.servers]
    limits = [
        CpuLimit(server.proc.pid, args.cpu_per_process, "signal")
        for server in [reference, *memory, *one, *two, *bare]
        if args.cpu_per_process
    ]
    if limits:
        print(f"every server process capped at {args.cpu_per_process} cores")
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    targets = [t for t in targets if not wanted or t.name in wanted]
    rates: dict[str, list[float]] = {t.name: [] for t in targets}
    p99s: dict[str, list[float]] = {t.name: [] for t in targets}
    cpu: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        print(f"memory: server RSS growth for {args.idle} idle sockets (fresh servers)", flush=True)
        measured: set[tuple[int, ...]] = set()
        for target in targets:
            if tuple(target.pids) in measured:
                continue
            measured.add(tuple(target.pids))
            kib = asyncio.run(idle_memory(target, args.idle))
            print(f"  {target.name:15s} {kib:6.1f} KiB per socket", flush=True)
        print(
            f"throughput: {args.pairs} pairs x {args.window} in flight, ~1.3 KB OFFERs, "
            f"{args.seconds:.0f} s per run, {args.rounds} interleaved rounds",
            flush=True,
        )
        for round_no in range(1, args.rounds + 1):
            for target in targets:
                result = asyncio.run(throughput(target, args.pairs, args.window, args.seconds))
                rates[target.name].append(result["rate"])
                p99s[target.name].append(result["p99"])
                cpu[target.name].append(result["server_us"] + result["redis_us"])
                print(
                    f"  round {round_no} {target.name:15s} {result['rate']:8,.0f} msg/s"
                    f"  p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms"
                    f"  | CPU per message: server {result['server_us']:5.1f} us"
                    f" + Redis {result['redis_us']:4.1f} us"
                    f" | load generator {result['loadgen_cores']:.2f} cores",
                    flush=True,
                )
        print(
            f"latency: {args.latency_pairs} pairs, {args.latency_rate:,.0f} msg/s offered "
            f"(open loop); then the same pairs with 1 message in flight each (closed loop)",
            flush=True,
        )
        for target in targets:
            lat = asyncio.run(latency(target, args.latency_pairs, args.latency_rate, args.seconds))
            closed = asyncio.run(throughput(target, args.latency_pairs, 1, args.seconds))
            print(
                f"  {target.name:15s} open loop p50 {lat['p50']:6.1f} ms  p99 {lat['p99']:6.1f} ms"
                f" | closed loop {closed['rate']:8,.0f} msg/s  p99 {closed['p99']:6.1f} ms",
                flush=True,
            )
    finally:
        for server in [reference, *memory, *one, *two, *bare]:
            server.stop()
        for limit in limits:
            limit.release()
    if "reference" in rates:
        ref_best, ref_median = max(rates["reference"]), median(rates["reference"])
        print("relay throughput, median (best) of the rounds, relative to the reference:")
        for name, values in rates.items():
            print(
                f"  {name:15s} {median(values):8,.0f} ({max(values):,.0f}) msg/s"
                f"  {median(values) / ref_median:.2f}x ({max(values) / ref_best:.2f}x)"
                f"  p99 median {median(p99s[name]):.1f} ms"
                f"  CPU {median(cpu[name]):.1f} us/message"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
