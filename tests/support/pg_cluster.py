"""A private PostgreSQL cluster for fault injection: stopped (fast or immediate) and
started again on the same port, with the data kept.

Never the machine's own PostgreSQL: this one lives in a temporary directory, listens on
a free port on 127.0.0.1 with trust authentication, and is removed afterwards. The
server refuses to run as root, so its files belong to the ``postgres`` user and its
commands run through ``runuser`` when the tests run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from tests.support.live import ROOT, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OWNER = "postgres"


def missing() -> str | None:
    """Why a private cluster cannot run here, or None."""
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        return f"no {OWNER} user"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is needed to start PostgreSQL as root"
    return None


class PgCluster:
    def __init__(self, log_dir: Path, name: str = "pg") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="swarm-faults-pg-"))
        self.data = self.root / "data"
        self.log_path = log_dir / f"{name}.log"
        self.port = free_port()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OWNER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OWNER, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                           "-o", options, "-w", "start", check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{self.server_log()}")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clients are told and disconnected; ``immediate``: every server
        process quits at once, as in a crash (recovery runs at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def server_log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, dbname: str = "swarm") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str = "swarm") -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')

    def migrate(self, env: dict[str, str]) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=180,
        )

    def destroy(self) -> None:
        self.log_path.write_text(self.server_log())
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
