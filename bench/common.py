"""Shared helpers for benchmarks: machine description, server processes, a lean HTTP client."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {os.cpu_count()} cpus ({cpu}), {mem_gb:.0f} GiB, Python {platform.python_version()}"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms, "
        f"mean {statistics.fmean(values) * 1000:.1f} ms"
    )


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpConnection:
    """A minimal keep-alive HTTP/1.1 client: the load generator must cost less than the server."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        if self.writer is None or self.reader is None:
            await self.connect()
        assert self.writer is not None and self.reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for key, value in (headers or {}).items():
            head.append(f"{key}: {value}")
        if body or method == "POST":
            head.append("Content-Type: application/json")
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        resp_headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode().partition(":")
            resp_headers[key.strip().lower()] = value.strip()
        length = int(resp_headers.get("content-length", "0"))
        data = await self.reader.readexactly(length) if length else b""
        if resp_headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, resp_headers, data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def scratch_database(suffix: str) -> str:
    """A fresh, migrated PostgreSQL database beside DATABASE_URL's (``<name>_<suffix>``); its URL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL (PostgreSQL): see the docstring")
    scratch = url.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1] + f"_{suffix}"
    prepare_database(scratch)
    return scratch


def prepare_database(url: str) -> None:
    """Drop and re-create the PostgreSQL database at ``url``, then migrate it."""
    import psycopg

    admin_url, _, name = url.rpartition("/")
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (all their threads)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class CpuMeter:
    """Share of the machine's CPUs busy between start() and stop() (all processes)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def start(self) -> None:
        self.begin = cpu_jiffies()

    def stop(self) -> None:
        busy, total = cpu_jiffies()
        self.samples.append((busy - self.begin[0]) / max(1, total - self.begin[1]))


class CpuLimit:
    """Caps one process (all its threads) at ``cores`` of CPU time with its own cgroup.

    Scaling benchmarks use it to give every server process the same fixed CPU budget, so that
    "two processes vs one" measures what the design shares between processes rather than how
    many cores the load generator, PostgreSQL and Redis leave over on a small machine. Needs a
    writable cgroup file system (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``); ``available()``
    says whether this machine has one.
    """

    PERIOD_US = 100_000
    V2 = Path("/sys/fs/cgroup")
    V1 = Path("/sys/fs/cgroup/cpu")

    def __init__(self, pid: int, cores: float, name: str) -> None:
        self.path = self._base() / f"swarm-bench-{name}-{pid}"
        self.path.mkdir(exist_ok=True)
        quota = max(1000, int(cores * self.PERIOD_US))
        if (self.path / "cpu.max").exists():
            (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        (self.path / "cgroup.procs").write_text(str(pid))
        self.pid = pid

    @classmethod
    def _base(cls) -> Path:
        if (cls.V2 / "cgroup.controllers").exists():
            return cls.V2
        return cls.V1

    @classmethod
    def available(cls) -> bool:
        base = cls._base()
        probe = base / f"swarm-bench-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            return False
        ok = (probe / "cpu.max").exists() or (probe / "cpu.cfs_quota_us").exists()
        probe.rmdir()
        return ok

    def throttled_seconds(self) -> float:
        """CPU time the cap has withheld so far (cgroup ``cpu.stat``)."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_usec":
                return int(value) / 1e6
            if key == "throttled_time":
                return int(value) / 1e9
        return 0.0

    def release(self) -> None:
        """Remove the cgroup (its process must have exited, or it moves back to the root)."""
        try:
            if self.path.exists():
                for pid in (self.path / "cgroup.procs").read_text().split():
                    (self._base() / "cgroup.procs").write_text(pid)
                self.path.rmdir()
        except OSError:
            pass
