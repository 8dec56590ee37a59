"""Replication with real processes: time from a holder's loss to full redundancy.

    DATABASE_URL=postgres://... REDIS_URL=redis://.../N \\
        .venv/bin/python bench/replication.py [--manifests 50] [--mib 100] [--ttl 3]

Creates a scratch PostgreSQL database next to ``DATABASE_URL``'s (``<name>_replbench``,
dropped first) and uses ``REDIS_URL`` with a queue of its own. Starts a daphne (signaling and
beacon), a real ``celery -A swarmweb worker`` (the backfill worker) and four
``manage.py superpeer`` processes. Three of them hold every manifest at the start (seeded
into their stores, as the original holders); the fourth is empty. Target 3: nothing to do.
Then the first holder is killed with SIGKILL and the clock runs until every manifest is back
at 3 complete verified replicas, as the backfill runs count them:

- detection: the kill until the first replication job (the silent super-peer is noticed
  after ``SWARM_REPLICATION_SUPERPEER_TTL_S``, ``--ttl``);
- repair: the first job until the last manifest counts 3 again (every chunk fetched over
  WebRTC from the two remaining holders, verified and fsynced by the spare super-peer).

Then the planner simulation at 2,000 manifests (bench/replication_sim.py) runs as well.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MIB = 1024 * 1024


def scratch_database() -> str:
    """A fresh database beside DATABASE_URL's; returns its URL."""
    import psycopg

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL: see the docstring")
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'swarm'}_replbench"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifests", type=int, default=50)
    parser.add_argument("--mib", type=int, default=100, help="total plaintext, MiB")
    parser.add_argument("--ttl", type=float, default=3.0, help="super-peer TTL, seconds")
    parser.add_argument("--no-sim", action="store_true", help="skip the 2,000-manifest sim")
    parser.add_argument("--runs-at", type=int, default=2000, help="manifests for run cost")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    queue = f"replbench-{uuid.uuid4().hex[:8]}"
    settings_env = {
        "SWARM_REPLICATION_TARGET": "3",
        "SWARM_REPLICATION_SUPERPEER_TTL_S": str(args.ttl),
        "SWARM_REPLICATION_JOB_TIMEOUT_S": "60",
        "SWARM_CELERY_QUEUE": queue,
    }
    os.environ.update(
        {
            "DATABASE_URL": scratch_database(),
            "SWARM_VAR_DIR": str(var / "var"),
            "DJANGO_SETTINGS_MODULE": "swarmweb.settings",
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
            **settings_env,
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True
    )
    import django

    django.setup()
    from bench.common import git_revision, machine
    from peers.replication.models import BackfillRun, ReplicaStatus
    from peers.superpeer.models import FetchJob
    from tests.support.live import Process, start_daphne
    from tests.support.superpeer import kill9, start_superpeer, superpeer_key, wait_until
    from tests.support.worker import start_worker, stop_worker

    logs = var / "logs"
    logs.mkdir()
    print(f"machine: {machine()}, revision {git_revision()}")
    size = args.mib * MIB // args.manifests
    print(
        f"{args.manifests} manifests x {size / MIB:.2f} MiB = {args.mib} MiB, target 3, "
        f"super-peer TTL {args.ttl:g} s, loopback WebRTC (aiortc), PostgreSQL, Redis"
    )
    holders = [var / f"sp{i}" for i in range(1, 5)]
    seeded = seed(holders[:3], args.manifests, size)
    print(f"seeded {seeded} manifests into 3 super-peer stores")

    web = start_daphne(var / "web", logs, {"SWARM_BEACON_PEER_INTERVAL_S": "1"}, name="web")
    processes: list[Process] = [web]
    community = f"bench-{secrets.token_hex(3)}"
    try:
        worker = start_worker(var / "worker", logs, settings_env, "backfill-worker")
        processes.append(worker)
        sps = [start_superpeer(d, logs, web, community, settings_env, name=d.name) for d in holders]
        processes += sps

        def counted(n: int) -> int:
            return ReplicaStatus.objects.filter(replicas__gte=n).count()

        wait_until(lambda: counted(3) == args.manifests, 60, "3 replicas everywhere", *sps)
        victim, spare = sps[0], sps[3]
        assert superpeer_key(holders[0]) is not None
        killed_at = time.time()
        kill9(victim)
        t0 = time.monotonic()
        wait_until(
            lambda: ReplicaStatus.objects.filter(replicas__lt=3).exists(), 60, "the loss", spare
        )
        noticed = time.monotonic() - t0
        wait_until(
            lambda: FetchJob.objects.filter(peer_id=spare.peer_id).exists(), 60, "a job", spare
        )
        first_job = time.monotonic() - t0
        wait_until(lambda: counted(3) == args.manifests, 600, "full redundancy", spare, worker)
        full = time.monotonic() - t0
        jobs = FetchJob.objects.filter(peer_id=spare.peer_id, kind=FetchJob.REPLICATION)
        done = jobs.filter(state=FetchJob.DONE).count()
        runs = BackfillRun.objects.filter(started_at__gte=_aware(killed_at)).count()
        repair = full - first_job
        print(f"loss noticed (a run counts 2):      {noticed:6.2f} s")
        print(f"first replication job:              {first_job:6.2f} s")
        print(f"full redundancy again:              {full:6.2f} s")
        print(
            f"repair (first job -> all at 3):     {repair:6.2f} s, "
            f"{args.mib / repair:.1f} MiB/s into the spare"
        )
        print(f"jobs done {done} of {jobs.count()}, backfill runs since the kill: {runs}")
    finally:
        for process in reversed(processes):
            if process.name.startswith("backfill"):
                stop_worker(process)
            else:
                process.stop()
    print(f"\nbackfill run cost at {args.runs_at} manifests (in-process, rows only):")
    run_cost(args.runs_at)
    if not args.no_sim:
        print("\nsimulation (bench/replication_sim.py, 2,000 manifests):")
        subprocess.run([sys.executable, "bench/replication_sim.py"], cwd=ROOT, check=True)


def seed(stores: list[Path], count: int, size: int) -> int:
    """``count`` random files of ``size`` bytes, held complete by every super-peer."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from peers.superpeer.seed import hold, seed_file
    from peers.superpeer.store import ChunkStore
    from shared import identity
    from tests.support.superpeer import superpeer_key

    author = Ed25519PrivateKey.generate()
    ids = [identity.peer_id_of(superpeer_key(d)) for d in stores]
    for i in range(count):
        data = os.urandom(size)
        first = seed_file(
            ChunkStore(stores[0] / "chunks"),
            peer_id=ids[0],
            author=author,
            data=data,
            name=f"file-{i}.bin",
            pinned=False,
        )
        chunks = [ChunkStore(stores[0] / "chunks").read(c) for c in first.manifest.chunks]
        for store, peer_id in zip(stores[1:], ids[1:], strict=True):
            hold(
                ChunkStore(store / "chunks"),
                peer_id=peer_id,
                manifest=first.manifest,
                chunks=[c for c in chunks if c is not None],
                pinned=False,
            )
    return count


def run_cost(count: int) -> None:
    """Time backfill runs over ``count`` manifests held by two super-peers and a browser."""
    import hashlib

    from peers.protocol.encoding import b64url_encode, peer_id_for_key
    from peers.replication.models import Advert
    from peers.replication.services import backfill_run
    from peers.superpeer.models import FileManifest, Holding, SuperPeer
    from shared.clock import now_ms

    def pid(name: str) -> str:
        return peer_id_for_key(hashlib.sha256(name.encode()).digest())

    now = now_ms()
    seen = _aware(now / 1000)
    supers = [
        SuperPeer.objects.create(
            peer_id=pid(f"cost-{i}"),
            community="cost",
            state=SuperPeer.RUNNING,
            last_seen=seen,
            storage_budget=2**40,
            stats={"max_jobs": 4},
        )
        for i in range(3)
    ]
    manifests = FileManifest.objects.bulk_create(
        FileManifest(
            manifest_id=b64url_encode(hashlib.sha256(f"cost-{i}".encode()).digest()),
            envelope={},
            file_id="f" * 22,
            name=f"cost-{i}",
            mime="application/octet-stream",
            size=(i % 48 + 1) * 65536,
            chunk_count=i % 48 + 1,
            author=pid("author"),
            created_at_ms=now,
        )
        for i in range(count)
    )
    Holding.objects.bulk_create(
        Holding(superpeer=sp, manifest=m, chunks_held=m.chunk_count, complete=True)
        for m in manifests
        for sp in supers[:2]
    )
    Advert.objects.bulk_create(
        Advert(
            holder=pid("browser"),
            manifest_id=m.manifest_id,
            chunks=m.chunk_count,
            reporter=supers[0].peer_id,
        )
        for m in manifests
    )

    def timed(label: str, at: int) -> None:
        started = time.perf_counter()
        result = backfill_run(now=at, trigger="bench")
        ms = (time.perf_counter() - started) * 1000
        print(
            f"  {label:<34} {ms:7.0f} ms  ({result.run.manifests} manifests, "
            f"{result.run.under_target} under target, {result.run.jobs_started} jobs started)"
        )

    timed("first run (status rows created)", now)
    timed("steady run (nothing changed)", now + 1000)
    SuperPeer.objects.filter(pk=supers[1].pk).update(state=SuperPeer.STOPPED)
    timed("a holder of everything stopped", now + 2000)
    timed("the next run (jobs in flight)", now + 3000)


def _aware(ts: float) -> object:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC)


if __name__ == "__main__":
    main()
