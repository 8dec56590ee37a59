"""A real Celery worker for live tests and benchmarks (``celery -A swarmweb worker`` on the
tests' Redis, consuming its own queue so other tests' tasks stay apart)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.live import ROOT, VENV_BIN, Process, base_env


def start_worker(var_dir: Path, log_dir: Path, env: Mapping[str, str], name: str) -> Process:
    """Start a worker (concurrency 1) with ``env`` (its ``SWARM_CELERY_QUEUE`` included)."""
    full = base_env(var_dir, env)
    log_path = log_dir / f"{name}-{full.get('SWARM_CELERY_QUEUE', 'celery')}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "celery"),
                "-A",
                "swarmweb",
                "worker",
                "--loglevel=info",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Process(name=name, proc=proc, log_path=log_path)
    deadline = time.monotonic() + 60
    while " ready." not in worker.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_worker(worker)
            raise RuntimeError(f"worker did not start:\n{worker.log()[-4000:]}")
        time.sleep(0.1)
    return worker


def stop_worker(worker: Process, sig: int = signal.SIGTERM) -> None:
    """Stop the worker's whole process group (Celery forks its pool) with ``sig``."""
    if worker.proc.poll() is None:
        os.killpg(worker.proc.pid, sig)
        try:
            worker.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait(timeout=5)
