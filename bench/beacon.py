"""Beacon announce throughput: verify + store + respond, over real HTTP.

Runs N concurrent keep-alive clients against one daphne process and then two
(clients spread over both), on PostgreSQL + Redis, next to the bare Ed25519
verifications per second of this machine measured in the same run.

    .venv/bin/python bench/beacon.py [--seconds 10] [--concurrency 32] [--cpu-per-process 0.4]

Targets (issue 2): one process >= 1/15 of the bare verify rate, p99 < 50 ms at 32
concurrent clients, two processes >= 1.7x one.

``--cpu-per-process C`` caps every web process at C cores (its own cgroup), so that two
processes vs one is measured at the same CPU budget per process even on a machine whose cores
the load generator and PostgreSQL already fill. It also prints the web processes' CPU time per
announce, which stays flat when nothing shared between processes gets in the way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import (
    ROOT,
    CpuLimit,
    CpuMeter,
    HttpConnection,
    cpu_seconds,
    git_revision,
    machine,
    percentile,
    prepare_database,
)
from peers.protocol.envelope import DOMAIN_TICKET, signing_input
from peers.protocol.ticket import make_ticket, verify_ticket
from tests.support.live import LOOPBACK_LIMITS_OFF, Server, spawn_daphne

COMMUNITY = "bench"


def bare_verify_rate(envelopes: list[dict[str, object]], seconds: float = 2.0) -> float:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from peers.protocol.encoding import b64url_decode

    prepared = []
    for env in envelopes[:2000]:
        pk = b64url_decode(env["pk"], field="pk")
        sig = b64url_decode(env["sig"], field="sig")
        prepared.append((pk, sig, signing_input(DOMAIN_TICKET, env["body"])))  # type: ignore[arg-type]
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for pk, sig, msg in prepared:
            Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        count += len(prepared)
    return count / (time.perf_counter() - start)


def full_verify_rate(envelopes: list[dict[str, object]], now: int, seconds: float = 2.0) -> float:
    """Parse + verify_ticket (what the server does before storing), single core."""
    raw = [json.dumps(e).encode() for e in envelopes[:2000]]
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for body in raw:
            env = json.loads(body)
            verify_ticket(env, now=now, community=env["body"]["community"])
        count += len(raw)
    return count / (time.perf_counter() - start)


def make_tickets(count: int, communities: int = 1) -> list[tuple[str, bytes]]:
    now = int(time.time() * 1000)
    out = []
    for i in range(count):
        name = COMMUNITY if communities == 1 else f"{COMMUNITY}-{i % communities}"
        env = make_ticket(Ed25519PrivateKey.generate(), community=name, now=now)
        out.append((f"/beacon/v1/{name}/announce", json.dumps(env).encode()))
    return out


def start_servers(count: int, env: dict[str, str], log_dir: Path) -> list[Server]:
    return [
        spawn_daphne(env, log_dir / f"bench-beacon-{count}p-{index}.log", name=f"web{index}")
        for index in range(count)
    ]


async def load(
    servers: list[Server], tickets: list[tuple[str, bytes]], concurrency: int, seconds: float
) -> dict[str, float]:
    queue = iter(tickets)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    samples: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def client(index: int) -> None:
        server = servers[index % len(servers)]
        conn = HttpConnection("127.0.0.1", server.port)
        while time.perf_counter() < stop_at:
            item = next(queue, None)
            if item is None:
                return
            path, body = item
            started = time.perf_counter()
            response = await conn.request("POST", path, body)
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status != 200 and len(samples) < 3:
                samples.append(f"{response.status} {response.body[:200]!r}")
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = statuses.get(200, 0)
    return {
        "rate": ok / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "ok": ok,
        "errors": sum(v for k, v in statuses.items() if k != 200),
        "exhausted": float(next(queue, None) is None),
        "samples": samples,  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/swarm_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--tickets", type=int, default=40_000)
    parser.add_argument(
        "--communities", type=int, default=1, help="spread announces over N communities"
    )
    parser.add_argument(
        "--cpu-per-process",
        type=float,
        default=0.0,
        help="cap every web process at this many cores (cgroup); 0: no cap",
    )
    args = parser.parse_args()
    if args.cpu_per_process and not CpuLimit.available():
        print("--cpu-per-process needs a writable cgroup file system (cpu controller)")
        return 2

    print(f"machine: {machine()}")
    print(f"revision: {git_revision()}")
    print(
        f"generating {args.tickets} signed tickets over {args.communities} community(ies) ...",
        flush=True,
    )
    tickets = make_tickets(args.tickets, args.communities)
    envelopes = [json.loads(body) for _, body in tickets[:2000]]
    bare = bare_verify_rate(envelopes)
    full = full_verify_rate(envelopes, now=int(time.time() * 1000))
    print(f"bare Ed25519 verify: {bare:,.0f}/s on one core; parse+verify_ticket: {full:,.0f}/s")

    prepare_database(args.database_url)
    log_dir = ROOT / "test-artifacts"
    log_dir.mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SWARM_")},
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SWARM_VAR_DIR": str(log_dir / "bench-var"),
        "DJANGO_SECRET_KEY": "bench",
        "SWARM_BEACON_IP_RATE": "1000000",
        "SWARM_BEACON_IP_BURST": "1000000",
        "SWARM_LOG_LEVEL": "WARNING",
        **LOOPBACK_LIMITS_OFF,
    }
    results = {}
    offset = 0
    for processes in (1, 2):
        redis.Redis.from_url(args.redis_url).flushdb()
        servers = start_servers(processes, env, log_dir)
        pids = [server.proc.pid for server in servers]
        limits = [
            CpuLimit(pid, args.cpu_per_process, "beacon") for pid in pids if args.cpu_per_process
        ]
        try:
            share = tickets[offset:]
            asyncio.run(load(servers, share[:500], 8, 2.0))  # warm-up (connections, caches)
            machine_cpu = CpuMeter()
            cpu_before = cpu_seconds(pids)
            machine_cpu.start()
            started = time.perf_counter()
            result = asyncio.run(load(servers, share[500:], args.concurrency, args.seconds))
            cpu_used = cpu_seconds(pids) - cpu_before
            machine_cpu.stop()
            duration = time.perf_counter() - started
            offset += 500 + int(result["ok"] + result["errors"])
        finally:
            for server in servers:
                server.stop()
            for limit in limits:
                limit.release()
        results[processes] = result
        cap = f" (each capped at {args.cpu_per_process} cores)" if args.cpu_per_process else ""
        print(
            f"{processes} web process(es){cap}, {args.concurrency} clients: "
            f"{result['rate']:,.0f} announces/s, "
            f"p50 {result['p50'] * 1000:.1f} ms, p99 {result['p99'] * 1000:.1f} ms, "
            f"{int(result['errors'])} errors"
            + (" (ran out of tickets)" if result["exhausted"] else ""),
            flush=True,
        )
        print(
            f"  web CPU {cpu_used / max(1, result['ok'] + result['errors']) * 1e6:,.0f} us per announce, "
            f"{cpu_used / duration:.2f} cores busy in web processes; "
            f"machine idle {1 - machine_cpu.samples[-1]:.0%}",
            flush=True,
        )
        for sample in result["samples"]:  # type: ignore[attr-defined]
            print(f"  error sample: {sample}")
    one, two = results[1]["rate"], results[2]["rate"]
    if args.cpu_per_process:
        print(
            f"two processes / one at {args.cpu_per_process} cores each: {two / one:.2f}x (target 1.7x)"
        )
        print("(the 1/15 and p99 targets are for uncapped runs: run without --cpu-per-process)")
        return 0
    print(f"ratio one process / bare verify: 1/{bare / one:.1f} (target at least 1/15)")
    print(f"two processes / one: {two / one:.2f}x (target 1.7x)")
    print(
        f"p99 at {args.concurrency} clients, one process: {results[1]['p99'] * 1000:.1f} ms (target < 50 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
