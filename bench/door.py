"""Bootstrap of a page with the server down, through a super-peer's door, against the same
page with the server up (issue 16's benchmark; docs/superpeer.md "The door").

    DATABASE_URL=postgres://... [REDIS_URL=redis://.../N] \\
        .venv/bin/python bench/door.py [--rounds 6]

Creates a scratch PostgreSQL database beside ``DATABASE_URL``'s (``<name>_doorbench``), a
daphne whose page config names the door, and a ``manage.py superpeer`` with its door open.
Each of ``--rounds`` Chromium profiles loads the page once (its service worker keeps it) and
closes it. Then, with the server up, each profile opens the page again and is timed from the
navigation to its first open connection (the super-peer, the only other peer: the time of the
page's ``first_peer`` diagnostic, from ``performance.timeOrigin``); then the web process is stopped and each profile opens the page once
more, from its worker, and is timed the same way, now through the door. Printed: both
series and, for the door, the page's own marks (door entered, first peer).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VAR = Path(tempfile.mkdtemp(prefix="bench-door-"))


def ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.0f} ms, mean {statistics.fmean(values):.0f} ms,"
        f" min {min(values):.0f}, max {max(values):.0f} (n={len(values)})"
    )


MARKS = """() => {
  const t = (code) => window.swarm.diagnostics.list().find((e) => e.code === code)?.ts;
  const rel = (ts) => (ts === undefined ? null : Math.round(ts - performance.timeOrigin));
  return { door: rel(t("door_open")), first: rel(t("first_peer")) };
}"""


def bootstrap(context: object, url: str, superpeer: str, *, from_worker: bool) -> dict[str, int]:
    page = context.new_page()  # type: ignore[attr-defined]
    try:
        response = page.goto(url, wait_until="domcontentloaded")
        assert response is not None
        if from_worker:  # with the server up the worker passes the page on from the network
            assert response.from_service_worker
        page.wait_for_function(
            "(id) => window.swarm?.connectedPeers?.().some((p) => p.peerId === id)",
            arg=superpeer,
            timeout=60_000,
        )
        marks = page.evaluate(MARKS)
        via = page.evaluate("(id) => window.swarm.viaOf(id)", superpeer)
        assert via == ("mesh" if from_worker else "server"), via
        return dict(marks)
    finally:
        page.close()


def run(rounds: int) -> None:
    from playwright.sync_api import sync_playwright

    from bench.common import git_revision, machine
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, new_context
    from tests.browser.test_offline_shell import wait_offline_ready
    from tests.support.live import base_env, free_port, spawn_daphne
    from tests.support.superpeer import start_superpeer

    logs = VAR / "logs"
    logs.mkdir(parents=True)
    port, door_port = free_port(), free_port()
    web_env = base_env(VAR / "web", {"SWARM_DOOR_URLS": f"ws://127.0.0.1:{door_port}/"})
    web = spawn_daphne(web_env, logs / "web.log", name="web", port=port)
    community = f"door-{secrets.token_hex(3)}"
    sp = start_superpeer(
        VAR / "sp",
        logs,
        web,
        community,
        {"SWARM_SUPERPEER_DOOR": f"127.0.0.1:{door_port}"},
        name="door-sp",
    )
    url = f"{web.url}/?community={community}"
    up: list[dict[str, int]] = []
    down: list[dict[str, int]] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            contexts = [new_context(browser, web.url) for _ in range(rounds)]
            for context in contexts:
                page = context.new_page()
                page.goto(url)
                wait_offline_ready(page)
                page.close()
            for context in contexts:
                up.append(bootstrap(context, url, sp.peer_id, from_worker=False))
            web.stop()
            for context in contexts:
                down.append(bootstrap(context, url, sp.peer_id, from_worker=True))
            browser.close()
    finally:
        sp.stop()
        web.stop()
    print(machine(), f"(rev {git_revision()})")
    print("navigation -> first connection open (the super-peer), fresh page of a known profile:")
    print(f"  server up, through the signaling server:   {ms([m['first'] for m in up])}")
    print(f"  server down, from the worker, via the door: {ms([m['first'] for m in down])}")
    entered = [m["door"] for m in down if m["door"] is not None]
    if entered:
        print(f"    of which: door entered at                {ms(entered)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    from bench.common import scratch_database

    os.environ["DATABASE_URL"] = scratch_database("doorbench")
    os.environ["SWARM_VAR_DIR"] = str(VAR / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")
    import django

    django.setup()
    run(args.rounds)


if __name__ == "__main__":
    main()
