"""``make run``'s last word: once the web process answers, where to go and how to log in.

A Procfile process (``ready``): it polls the web process's ``/healthz`` and, when it
answers, prints the URL to open and the command that creates an admin account. Then it
waits until honcho stops it (honcho stops every process once one exits, so it must not
exit on its own); ``--once`` exits after printing (tests).
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

# Addresses that mean "every interface": the page is opened on loopback.
ANY_ADDRESS = {"0.0.0.0", "::", "[::]", ""}  # noqa: S104


def site_url(host: str, port: int) -> str:
    if host in ANY_ADDRESS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 200 (a 503 /healthz is up but not ready)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def announcement(url: str) -> list[str]:
    return [
        f"Swarm is up: open {url}",
        "Create an admin account with: .venv/bin/python manage.py createsuperuser"
        f" (then log in at {url}admin/)",
    ]


class Command(BaseCommand):
    help = "Wait for the web process, then print the URL to open and the admin command."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--timeout", type=float, default=120.0, help="warn after (s)")
        parser.add_argument("--interval", type=float, default=0.5)
        parser.add_argument("--once", action="store_true", help="exit after printing")

    def handle(self, *args: Any, **options: Any) -> None:
        url = site_url(options["host"], options["port"])
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        deadline = time.monotonic() + options["timeout"]
        warned = False
        while not stop.is_set() and not answers(url + "healthz"):
            if not warned and time.monotonic() > deadline:
                self.stderr.write(f"{url}healthz does not answer yet: see the web log above")
                warned = True
            stop.wait(options["interval"])
        if stop.is_set():
            return
        for line in announcement(url):
            self.stdout.write(self.style.SUCCESS(line))
        self.stdout.flush()
        if not options["once"]:
            stop.wait()
