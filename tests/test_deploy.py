"""The deployment (Dockerfile, compose.yaml, deploy/): checked here, since this machine has
no container runtime, and the image's commands run as plain processes on exactly the
packages the image installs (requirements.txt without deploy/dev-only.txt) in a fresh
virtual environment: migrate, web (answers /healthz and the page), worker, beat, super-peer."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scripts.runtime_requirements import canonical, runtime_requirements
from tests.support.live import base_env, free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SWARM = ["migrate", "web1", "web2", "worker", "beat", "superpeer"]
ENTRYPOINT = (ROOT / "deploy" / "entrypoint.sh").read_text()
DOCUMENTED = set(
    re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text())
)
# Packages the running processes import at start (the test below proves it for these).
RUNTIME_MUST = ["django", "daphne", "celery", "aiortc", "channels-redis", "psycopg", "servestatic"]


def test_compose_has_every_part_of_the_site() -> None:
    assert set(SERVICES) == {"postgres", "redis", "coturn", "proxy", *SWARM}
    for name in SWARM:
        service = SERVICES[name]
        assert service["image"].startswith("${SWARM_IMAGE:-swarm"), name
        assert "swarm-var:/var/lib/swarm" in service["volumes"], f"{name} shares var/ (keys)"
        (command,) = service["command"]
        assert re.search(rf"^\s+{command}\)$", ENTRYPOINT, re.MULTILINE), f"{name}: {command}"
    for name in ("postgres", "redis", "coturn", "web1", "web2", "worker"):
        assert SERVICES[name]["healthcheck"]["test"], name
    for name in ("web1", "web2", "worker", "beat", "superpeer"):
        assert SERVICES[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert SERVICES["proxy"]["ports"][:2] == ["80:80", "443:443"]
    assert set(SERVICES["proxy"]["depends_on"]) == {"web1", "web2"}
    assert "--use-auth-secret" in SERVICES["coturn"]["command"]
    assert set(COMPOSE["volumes"]) == {"pgdata", "swarm-var", "caddy-data", "caddy-config"}


def test_every_setting_compose_passes_is_documented_and_every_variable_has_an_example() -> None:
    for name in SWARM:
        for key in SERVICES[name]["environment"]:
            assert key in DOCUMENTED, f"{name}: {key} is not in docs/configuration.md"
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "compose.yaml").read_text()))
    example = (ROOT / "deploy" / "env.example").read_text()
    for variable in used:
        assert re.search(rf"^#?\s*{variable}=", example, re.MULTILINE), variable


def test_the_image_runs_unprivileged_without_build_or_dev_tools() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "USER swarm" in runtime
    assert not re.search(
        r"\b(npm|node|gcc|build-essential)\b", runtime.replace("--from=vendor", "")
    )
    assert "runtime_requirements.py" in runtime
    assert 'ENTRYPOINT ["deploy/entrypoint.sh"]' in runtime
    assert os.access(ROOT / "deploy" / "entrypoint.sh", os.X_OK)
    names = {canonical(re.split(r"[=<>]", line, maxsplit=1)[0]) for line in runtime_requirements()}
    for dev in ("pytest", "ruff", "mypy", "playwright", "hypothesis", "django-stubs", "honcho"):
        assert dev not in names
    for needed in RUNTIME_MUST:
        assert needed in names
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".venv", "node_modules", "var", ".git"):
        assert path in ignored


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the image's packages and nothing else."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    reqs = venv.parent / "runtime.txt"
    reqs.write_text("".join(f"{line}\n" for line in runtime_requirements()))
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "-r", str(reqs)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return venv


def spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(ROOT / "deploy" / "entrypoint.sh"), command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(predicate: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} not seen in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def image_env(
    live_db: None, runtime_venv: Path, tmp_path: Path
) -> Iterator[tuple[dict[str, str], int]]:
    port = free_port()
    env = base_env(
        tmp_path / "var",
        {
            "PATH": f"{runtime_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "VIRTUAL_ENV": str(runtime_venv),
            "SWARM_HOST": "127.0.0.1",
            "SWARM_PORT": str(port),
            "SWARM_SUPERPEER_SIGNAL_URL": f"http://127.0.0.1:{port}/signal/",
            "SWARM_SUPERPEER_BEACON_URLS": f"http://127.0.0.1:{port}/beacon/v1/",
            "SWARM_SUPERPEER_HOST_ADDRESSES": "127.0.0.1",
            "SWARM_WORKER_CONCURRENCY": "1",
        },
    )
    (tmp_path / "var").mkdir()
    yield env, port
    shutil.rmtree(tmp_path / "var", ignore_errors=True)


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_image_commands_run_on_the_image_packages(
    image_env: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, port = image_env
    log = tmp_path / "image.log"
    migrate = subprocess.run(
        [str(ROOT / "deploy" / "entrypoint.sh"), "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stdout.decode() + migrate.stderr.decode()
    assert (Path(env["SWARM_VAR_DIR"]) / "keys" / "superpeer.pem").exists()
    procs = {name: spawn(name, env, log) for name in ("web", "worker", "beat", "superpeer")}
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "web /healthz 200", log)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200
        assert 'id="swarm-config"' in page.text
        wait_for(lambda: " ready." in log.read_text(), 60, "the worker ready", log)
        wait_for(lambda: "beat: Starting" in log.read_text(), 60, "beat starting", log)
        wait_for(lambda: "super-peer " in log.read_text(), 60, "the super-peer running", log)
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited early:\n{log.read_text()[-3000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
