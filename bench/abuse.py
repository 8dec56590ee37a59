"""One abusive address against two web processes, at the operator's scale (issue 20).

Two daphnes on PostgreSQL + Redis with the default limits (docs/configuration.md); the
abuser connects from 127.0.0.1, a legitimate client from 127.0.0.2 (loopback answers on
all of 127.0.0.0/8). Each scenario repeats what the operator found and prints what the
abuser got and how the legitimate client fared:

1. signaling: 5,000 sockets with fresh ids as fast as they open, then 24 legitimate ones;
2. slowloris: N connections trickling one header byte every 10 s, a legitimate request a
   second meanwhile;
3. bodies: four 500 MiB uploads declared by Content-Length and four streamed chunked,
   with the web process's resident memory (/proc) before, after and at its peak;
4. communities: new communities as fast as the beacon's bucket lets one address announce;
5. admin login: 300 wrong passwords, then the right one, from the guessing address and
   from another.

    .venv/bin/python bench/abuse.py [--slowloris 2000] [--slowloris-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis

from bench.common import ROOT, git_revision, machine, percentile, prepare_database
from tests.support import abuse
from tests.support.abuse import ATTACKER, LEGIT
from tests.support.keys import seeded_key, ticket
from tests.support.live import Server, spawn_daphne
from tests.support.signal import SignalClient, new_id

ADMIN_PASSWORD = "bench-right-horse"  # a throwaway account in the bench database


async def signaling(a: Server, b: Server, sockets: int) -> None:
    start = time.monotonic()
    outcomes: Counter[str] = Counter()
    held: list[SignalClient] = []

    async def one(n: int) -> None:
        base = (a, b)[n % 2].ws_url
        try:
            client = await SignalClient.connect(base, new_id(), source=ATTACKER)
        except OSError as exc:
            outcomes[type(exc).__name__] += 1
            return
        frame = await client.recv()
        if frame == {"type": "OPEN"}:
            outcomes["open"] += 1
            held.append(client)
        else:
            outcomes[_code(frame)] += 1
            await client.close()

    for batch in range(0, sockets, 100):
        await asyncio.gather(*(one(n) for n in range(batch, min(sockets, batch + 100))))
    took = time.monotonic() - start
    legit: Counter[str] = Counter()
    for n in range(24):
        client = await SignalClient.connect((a, b)[n % 2].ws_url, new_id(), source=LEGIT)
        frame = await client.recv()
        legit["open" if frame == {"type": "OPEN"} else _code(frame)] += 1
        held.append(client)
    print(f"signaling: {sockets} sockets from {ATTACKER} in {took:.1f} s -> {dict(outcomes)}")
    print(f"  legitimate sockets from {LEGIT}: {legit['open']}/24 OPEN ({dict(legit)})")
    await asyncio.gather(*(c.close() for c in held), return_exceptions=True)


def _code(frame: dict[str, object] | None) -> str:
    payload = (frame or {}).get("payload")
    return str(payload.get("code", payload.get("msg"))) if isinstance(payload, dict) else "closed"


async def slowloris(server: Server, count: int, seconds: float) -> None:
    stop = asyncio.Event()
    probe_task = asyncio.ensure_future(abuse.probe_until(server.url, "/healthz", stop, every_s=1.0))
    start = time.monotonic()
    answers: list[abuse.Answer] = []

    async def slot() -> None:
        # The abuser opens a connection again once one ends (after a second's pause: this
        # measures holding connections, not a connect flood).
        while (left := seconds - (time.monotonic() - start)) > 1:
            answers.append(await abuse.trickle(server.port, ATTACKER, 10.0, give_up_s=left))
            await asyncio.sleep(1.0)

    await asyncio.gather(*(slot() for _ in range(count)))
    stop.set()
    probe = await probe_task
    outcomes = Counter(f"{a.status} {a.code}" if a.status else "open at the end" for a in answers)
    cut = [a.ended_after_s for a in answers if a.code == "header_timeout" and a.ended_after_s]
    refused = [
        a.ended_after_s for a in answers if a.code == "too_many_connections" and a.ended_after_s
    ]
    print(
        f"slowloris: {count} connections at a time from {ATTACKER} (reopened when cut), "
        f"one byte per 10 s, for {seconds:.0f} s: {len(answers)} connections in all"
    )
    print(f"  abuser got: {dict(outcomes)}")
    if cut:
        print(
            f"  cut after: min {min(cut):.2f} s, median {percentile(cut, 50):.2f} s, "
            f"max {max(cut):.2f} s (header timeout)"
        )
    if refused:
        print(f"  refused after: median {percentile(refused, 50) * 1000:.0f} ms (per-address cap)")
    print(f"  legitimate client ({LEGIT}, one request a second): {probe.summary()}")


async def bodies(server: Server) -> None:
    pid = server.proc.pid
    rss_before, peak_before = abuse.rss_mib(pid)
    stop = asyncio.Event()
    probe_task = asyncio.ensure_future(abuse.probe_until(server.url, "/healthz", stop, every_s=0.2))
    half_gib = 500 * 2**20
    start = time.monotonic()
    declared = await asyncio.gather(
        *(abuse.declared_body(server.port, ATTACKER, "/admin/login/", half_gib) for _ in range(4))
    )
    streamed = await asyncio.gather(
        *(abuse.streamed_body(server.port, ATTACKER, "/admin/login/", half_gib) for _ in range(4))
    )
    took = time.monotonic() - start
    await asyncio.sleep(1.0)
    stop.set()
    probe = await probe_task
    rss_after, peak = abuse.rss_mib(pid)
    print("bodies: four 500 MiB uploads by Content-Length, four streamed chunked")
    for kind, answers in (("declared", declared), ("chunked", streamed)):
        got = Counter(f"{a.status} {a.code}" for a in answers)
        sent = ", ".join(f"{a.sent / 2**20:.1f}" for a in answers)
        print(f"  {kind}: {dict(got)}; MiB the client got out before the answer: {sent}")
    print(
        f"  web process RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after, "
        f"peak {peak:.0f} MiB (peak before {peak_before:.0f}); attack took {took * 1000:.0f} ms"
    )
    print(f"  legitimate client: {probe.summary()}")


def communities(a: Server, seconds: float) -> None:
    transport = httpx.HTTPTransport(local_address=ATTACKER)
    statuses: Counter[str] = Counter()
    start = time.monotonic()
    with httpx.Client(transport=transport, timeout=10) as client:
        while time.monotonic() - start < seconds:
            name = f"junk-{uuid.uuid4().hex[:10]}"
            body = ticket(seeded_key(name), name, int(time.time() * 1000))
            response = client.post(f"{a.url}/beacon/v1/{name}/announce", json=body)
            code = "created" if response.status_code == 200 else response.json()["error"]["code"]
            statuses[f"{response.status_code} {code}"] += 1
            if response.status_code == 429:
                time.sleep(min(1.0, float(response.headers.get("Retry-After", "1"))))
    name = f"mine-{uuid.uuid4().hex[:10]}"
    with httpx.Client(transport=httpx.HTTPTransport(local_address=LEGIT), timeout=10) as client:
        body = ticket(seeded_key(name), name, int(time.time() * 1000))
        legit = client.post(f"{a.url}/beacon/v1/{name}/announce", json=body).status_code
    print(f"communities: {ATTACKER} announcing new names for {seconds:.0f} s -> {dict(statuses)}")
    print(f"  a new community from {LEGIT}: {legit}")


def admin_login(a: Server, b: Server, guesses: int) -> None:
    def attempt(server: Server, source: str, password: str) -> int:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=10) as client:
            form = client.get(f"{server.url}/admin/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
            data = {"username": "root", "password": password}
            data["csrfmiddlewaretoken"] = token[1] if token else ""
            response = client.post(
                f"{server.url}/admin/login/?next=/admin/",
                data=data,
                headers={"Referer": f"{server.url}/admin/login/"},
            )
            return response.status_code

    start = time.monotonic()
    results = Counter(attempt((a, b)[i % 2], ATTACKER, f"wrong-{i}") for i in range(guesses))
    took = time.monotonic() - start
    right = attempt(a, ATTACKER, ADMIN_PASSWORD)
    elsewhere = attempt(b, LEGIT, ADMIN_PASSWORD)
    print(
        f"admin login: {guesses} wrong passwords from {ATTACKER} in {took:.1f} s -> {dict(results)}"
    )
    print(f"  then the right one from {ATTACKER}: {right}; from {LEGIT}: {elsewhere} (302 = in)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/swarm_bench_abuse"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--signal-sockets", type=int, default=5000)
    parser.add_argument("--slowloris", type=int, default=2000, help="trickling connections")
    parser.add_argument("--slowloris-seconds", type=float, default=30.0)
    parser.add_argument("--community-seconds", type=float, default=50.0)
    parser.add_argument("--guesses", type=int, default=300)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"revision: {git_revision()}")
    prepare_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SWARM_")},
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SECRET_KEY": "bench",
        "SWARM_LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "root",
            "--email",
            "root@bench.example",
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        check=True,
    )
    log_dir = ROOT / "test-artifacts"
    log_dir.mkdir(exist_ok=True)
    servers = [
        spawn_daphne(
            {**env, "SWARM_VAR_DIR": str(log_dir / f"bench-abuse-var-{n}")},
            log_dir / f"bench-abuse-{n}.log",
            name=f"web{n}",
        )
        for n in range(2)
    ]
    a, b = servers
    print("limits: the defaults (docs/configuration.md); two web processes, PostgreSQL, Redis")
    try:
        asyncio.run(signaling(a, b, args.signal_sockets))
        asyncio.run(slowloris(a, args.slowloris, args.slowloris_seconds))
        asyncio.run(bodies(a))
        communities(a, args.community_seconds)
        admin_login(a, b, args.guesses)
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
