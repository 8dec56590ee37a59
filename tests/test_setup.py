"""Set-up from nothing: `make test` stops at once without Chromium
(scripts/need_chromium.sh), and `make run` says where to go once it is up
(ops/management/commands/swarm_ready.py; the whole Procfile in tests/test_embedded.py)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command

from ops.management.commands.swarm_ready import answers, site_url
from tests.support.live import ROOT, free_port

NO_CHROMIUM = {"CHROMIUM": "/nonexistent/chromium", "SWARM_INSTALL_CHROMIUM": "0"}


# A make that runs this suite (`make test`) passes its level and flags down; a make started
# here must behave as one started by hand ("Entering directory" lines, jobserver flags).
MAKE_VARS = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    return subprocess.run(
        command, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_missing_chromium_is_one_line_saying_what_to_install() -> None:
    result = run(["sh", "scripts/need_chromium.sh"], NO_CHROMIUM)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "apt-get install chromium" in lines[0]


def test_present_chromium_passes_silently() -> None:
    result = run(["sh", "scripts/need_chromium.sh"], {"CHROMIUM": "sh"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_make_test_stops_at_once_without_chromium() -> None:
    """Before any set-up, lint or test runs (it used to fail minutes later, once per test)."""
    started = time.monotonic()
    result = run(["make", "test"], NO_CHROMIUM)
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert "apt-get install chromium" in result.stderr
    assert "pytest" not in result.stdout + result.stderr
    assert "ruff" not in result.stdout + result.stderr


def test_make_test_checks_chromium_first() -> None:
    result = run(["make", "-n", "test"], {})
    assert result.stdout.splitlines()[0] == "sh scripts/need_chromium.sh"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000/"),
        ("0.0.0.0", "http://127.0.0.1:8000/"),
        ("::", "http://127.0.0.1:8000/"),
        ("::1", "http://[::1]:8000/"),
        ("swarm.local", "http://swarm.local:8000/"),
    ],
)
def test_the_url_to_open(host: str, url: str) -> None:
    assert site_url(host, 8000) == url


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_ready_prints_the_url_and_the_admin_command_once_web_answers(web: int) -> None:
    out = StringIO()
    call_command("swarm_ready", "--port", str(web), "--once", "--timeout", "10", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Swarm is up: open http://127.0.0.1:{web}/"
    assert ".venv/bin/python manage.py createsuperuser" in lines[1]
    assert f"http://127.0.0.1:{web}/admin/" in lines[1]


def test_nothing_is_up_on_a_free_port() -> None:
    assert not answers(f"http://127.0.0.1:{free_port()}/healthz", timeout_s=1)
