"""Fault injection, the long run: routine faults of Redis, PostgreSQL and a worker, against
real processes, with the figures printed (recovery times, messages lost, ids stuck).

Everything runs on private servers started here (never the machine's own): a PostgreSQL
15 cluster in a temporary directory and a redis-server on a free port, under two daphnes.

1. Redis (tests/support/fault_redis.py): ``--pairs`` pairs of signaling clients relaying
   across the two processes, ``--rate`` messages a second each; Redis killed (SIGKILL)
   and restarted empty ``--down`` seconds later; its subscriptions dropped; frozen
   (SIGSTOP) for ``--freeze`` seconds (past the 15 s alive keys); its command connections
   dropped just before everyone leaves.
2. PostgreSQL (tests/support/fault_postgres.py): announces at ``--announces`` a second
   while PostgreSQL is stopped (fast, then immediate) for ``--outage`` seconds each and
   started again; then a block made after the restarts; then ``--steady`` seconds more
   (past the block list's 30 s reload, where announces used to break for good).
3. A worker (tests/support/fault_worker.py) killed mid-publish with a ``--visibility``
   second visibility timeout: when the task comes back.

    .venv/bin/python bench/faults.py [--pairs 25] [--rate 10] [--freeze 20] [--outage 10]
        [--steady 70] [--visibility 30]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

from bench.common import ROOT, git_revision, machine
from tests.support.fault_postgres import PgDeployment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=25)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--down", type=float, default=2.0)
    parser.add_argument("--freeze", type=float, default=20.0)
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--announces", type=float, default=20.0)
    parser.add_argument("--steady", type=float, default=70.0)
    parser.add_argument("--visibility", type=int, default=30)
    parser.add_argument(
        "--only", default="redis,postgres,worker", help="comma-separated runs to do"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures as they come

    from tests.support.pg_cluster import missing

    reason = missing()
    if reason:
        sys.exit(f"cannot run: {reason}")
    print(f"machine: {machine()}")
    print(f"revision: {git_revision()}")
    tmp = Path(tempfile.mkdtemp(prefix="swarm-bench-faults-"))
    log_dir = ROOT / "test-artifacts" / "bench-faults"
    log_dir.mkdir(parents=True, exist_ok=True)

    from tests.support import fault_postgres

    deployment = fault_postgres.deployment_for(tmp, log_dir)
    # This process reads and writes the same database as the servers (the worker run).
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "swarmweb.settings",
            "DATABASE_URL": deployment.pg.url(),
            "REDIS_URL": deployment.redis.url(),
            "SWARM_VAR_DIR": str(tmp),
        }
    )
    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    fault_postgres.launch(deployment, tmp, log_dir)
    try:
        runs = set(args.only.split(","))
        if "redis" in runs:
            redis_faults(args, deployment)
        if "postgres" in runs:
            postgres_faults(args, deployment)
        if "worker" in runs:
            worker_faults(args, deployment, tmp / "worker", log_dir)
    finally:
        deployment.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def redis_faults(args: argparse.Namespace, deployment: PgDeployment) -> None:
    from tests.support import fault_redis

    print(f"\n== Redis ({2 * args.pairs} clients, {args.rate:.0f} messages/s each)")
    run = fault_redis.run(
        deployment.redis,
        deployment.servers,
        pairs=args.pairs,
        rate=args.rate,
        down_s=args.down,
        freeze_s=args.freeze,
        expire_s=5.0,
        bound_s=60.0,
        steady_s=5.0,
    )
    print(asyncio.run(run).report())


def postgres_faults(args: argparse.Namespace, deployment: PgDeployment) -> None:
    from tests.support import fault_postgres

    print(f"\n== PostgreSQL ({args.announces:.0f} announces/s)")
    run = fault_postgres.run(
        deployment,
        restarts=[("fast", args.outage), ("immediate", args.outage)],
        settle_s=10.0,
        steady_s=args.steady,
        rate=args.announces,
    )
    print(asyncio.run(run).report())


def worker_faults(
    args: argparse.Namespace, deployment: PgDeployment, var: Path, log_dir: Path
) -> None:
    from tests.support import fault_worker

    print(f"\n== Worker (visibility timeout {args.visibility} s)")
    env = fault_worker.worker_env(deployment.redis.url(), args.visibility, args.visibility // 2)
    var.mkdir()
    fault_worker.create_capsule_key(var, env)
    print(fault_worker.run(var, log_dir, env, wait_s=args.visibility + 60).report())


if __name__ == "__main__":
    main()
