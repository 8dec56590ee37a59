"""The `make run` process set with each Procfile role as a process of its own, so that a
test can kill one role (the web process: the whole server) and start it again, which honcho
(which stops every process when one exits) cannot. The same commands as `make run`: the
Procfile's lines, run by `sh -c` from the repository root on the embedded default (SQLite
under a temporary var dir, the in-process layer), after the set-up `make run` does
(migrations, keys)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tests.support.live import LOOPBACK_LIMITS_OFF, ROOT, free_port_pair


def procfile_roles(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """Role -> command line, in the Procfile's order."""
    roles: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            role, _, command = line.partition(":")
            roles[role.strip()] = command.strip()
    return roles


def stack_env(var_dir: Path, port: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment `make run` gives its processes: this one's, without any SWARM_ setting
    or server URL (the embedded default), on ``port`` and ``var_dir``; then ``extra``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWARM_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env = base | {"SWARM_VAR_DIR": str(var_dir), "SWARM_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    return env | dict(extra or {})


def wait_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Callable[[], str],
    what: str,
    timeout_s: float = 60.0,
) -> None:
    """Until ``url``/healthz answers 200; RuntimeError with the log's tail if ``proc`` exits
    or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log()[-4000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer /healthz:\n{log()[-4000:]}")


def set_up(var_dir: Path, env: Mapping[str, str]) -> None:
    """What `make run` does before it starts the processes: migrations, keys."""
    var_dir.mkdir(parents=True, exist_ok=True)
    python = str(ROOT / ".venv" / "bin" / "python")
    for command in (["migrate", "--noinput", "-v", "0"], ["swarm_keys"]):
        subprocess.run(
            [python, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )


class ProcfileStack:
    """Start, kill and restart the Procfile's roles one by one on a free port."""

    def __init__(self, var_dir: Path, log_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.var_dir = var_dir
        self.log_dir = log_dir
        self.port = free_port_pair()  # the door goes on the next one
        self.env = stack_env(var_dir, self.port, {**LOOPBACK_LIMITS_OFF, **(env or {})})
        self.roles = procfile_roles()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def door_port(self) -> int:
        """The Procfile puts the super-peer's door on the port after the web's."""
        return self.port + 1

    def set_up(self) -> None:
        set_up(self.var_dir, self.env)

    def log_path(self, role: str) -> Path:
        return self.log_dir / f"procfile-{self.port}-{role}.log"

    def log(self, role: str) -> str:
        path = self.log_path(role)
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, role: str) -> None:
        assert role not in self.procs or self.procs[role].poll() is not None, f"{role} runs"
        with self.log_path(role).open("ab") as log:
            self.procs[role] = subprocess.Popen(
                ["sh", "-c", self.roles[role]],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if role == "web":
            self.wait_web()

    def wait_web(self, timeout_s: float = 60.0) -> None:
        wait_healthy(self.url, self.procs["web"], lambda: self.log("web"), "web", timeout_s)

    def kill(self, role: str) -> None:
        """SIGKILL to the role's whole process group (a crash: nothing is said to anyone)."""
        proc = self.procs.get(role)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        while _alive(proc.pid):
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to every role's process group, SIGKILL to what is left after 15 s (the
        groups, not only the shells: a celery worker outlives its shell)."""
        groups = [proc.pid for proc in self.procs.values()]
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for proc in self.procs.values():
                proc.poll()  # reap the shell: a zombie still counts as a member
            if not any(_alive(pgid) for pgid in groups):
                break
            time.sleep(0.2)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
