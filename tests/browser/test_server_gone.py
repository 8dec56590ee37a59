"""The swarm outlives its server (issue 16), on the `make run` process set with each role a
process of its own (tests/support/procfile.py): six pages and the super-peer connected, then
the web process is killed (signaling, beacon, capsules: the whole server) with the worker and
beat. A page that was not connected to B dials B through the mesh and downloads B's file; a
page that loaded once opens again from its service worker and joins through the super-peer's
door (the one its cached config names); a file shared after the server went, whose sharer
then leaves, is repaired to its target (3) by the volunteers (two pages keeping copies for
the swarm) and the super-peer, without the worker; then the server comes back and every page
signals through it again, with no connection doubled."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import new_context
from tests.browser.content_support import download_by_key, share_file
from tests.browser.test_mesh_signal import connected, part, wait_connected
from tests.browser.test_offline_shell import wait_offline_ready
from tests.browser.test_repair_pages import keep_for_swarm
from tests.support.procfile import ProcfileStack

pytestmark = [pytest.mark.live]

PAGES = 6
# Repair sooner than in production: a short warm-up and announcement period, and a worker
# taken for gone 35 s after the last backfill run it made (they run every 30 s).
REPAIR = {
    "SWARM_REPAIR_WARMUP_S": "3",
    "SWARM_REPAIR_TICK_S": "1",
    "SWARM_REPAIR_ANNOUNCE_S": "3",
    "SWARM_REPAIR_WORKER_GRACE_S": "35",
    "SWARM_SUPERPEER_STATUS_S": "2",
}


@pytest.fixture
def stack(tmp_path: Path, artifacts_dir: Path) -> Iterator[ProcfileStack]:
    stack = ProcfileStack(tmp_path / "var", artifacts_dir, REPAIR)
    stack.set_up()
    try:
        for role in ("web", "worker", "beat", "superpeer"):
            stack.start(role)
        yield stack
    finally:
        stack.stop()


def super_peer_of(page: Page, timeout_s: float = 60) -> str:
    page.wait_for_function(
        "() => window.swarm.connectedPeers().some((p) => p.caps.includes('superpeer'))",
        timeout=timeout_s * 1000,
    )
    return str(
        page.evaluate(
            "() => window.swarm.connectedPeers().find((p) => p.caps.includes('superpeer')).peerId"
        )
    )


def open_page(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda error: print(f"[page error] {error}"))
    page.goto(url)
    page.wait_for_function("() => window.swarm?.peerId && window.swarm.files", timeout=30_000)
    return page


def doubled(pages: dict[str, Page]) -> dict[str, dict[str, int]]:
    """For each page, the peers it holds more than one open connection to."""
    out = {}
    for name, page in pages.items():
        counts = page.evaluate(
            """() => {
              const n = {};
              for (const p of window.swarm.connectedPeers()) n[p.peerId] = (n[p.peerId] ?? 0) + 1;
              return n;
            }"""
        )
        extra = {peer: n for peer, n in counts.items() if n > 1}
        if extra:
            out[name] = extra
    return out


def test_the_swarm_goes_on_without_its_server_and_comes_back_to_it(
    browser: Browser, stack: ProcfileStack, artifacts_dir: Path
) -> None:
    url = f"{stack.url}/"  # the community the super-peer serves (make run's default)
    contexts = [new_context(browser, stack.url) for _ in range(PAGES + 1)]
    try:
        # G visits once: its service worker keeps the page and the config naming the door.
        g = open_page(contexts[PAGES], url)
        assert g.evaluate("() => window.swarm.config.doors") == [
            f"ws://127.0.0.1:{stack.door_port}/"
        ]
        wait_offline_ready(g)
        idg = g.evaluate("() => window.swarm.peerId")
        g.close()

        pages = {name: open_page(contexts[i], url) for i, name in enumerate("ABCDEF")}
        ids = {name: page.evaluate("() => window.swarm.peerId") for name, page in pages.items()}
        sp = super_peer_of(pages["A"])
        for page in pages.values():
            wait_connected(page, sp, timeout_s=60)
        a, b = pages["A"], pages["B"]
        d, e, f = pages["D"], pages["E"], pages["F"]
        for volunteer in (e, f):  # keep copies for the swarm
            keep_for_swarm(volunteer)

        data = random.Random(16).randbytes(1_500_000)
        path = artifacts_dir / "server-gone.bin"
        path.write_bytes(data)
        manifest_id, key = share_file(b, path)
        # A and B part (B's file reaches A only through a connection A makes later).
        part(a, ids["B"])
        part(b, ids["A"])
        a.wait_for_function(
            "(id) => !window.swarm.connectedPeers().some((p) => p.peerId === id)", arg=ids["B"]
        )

        # The whole server goes, with the worker and beat.
        for role in ("web", "worker", "beat"):
            stack.kill(role)
        for page in pages.values():
            page.wait_for_function("() => window.swarm.signaling.state !== 'open'", timeout=20_000)
        assert all(connected(page, sp) == 1 for page in pages.values())

        # A dials B through the mesh (a page or the super-peer relays) and fetches B's file.
        started = time.monotonic()
        assert a.evaluate("(id) => window.swarm.connectTo(id)", ids["B"]) in (
            "dialing",
            "connected",
        )
        wait_connected(a, ids["B"], timeout_s=30)
        mesh_dial_s = time.monotonic() - started
        assert a.evaluate("(id) => window.swarm.viaOf(id)", ids["B"]) == "mesh"
        download_by_key(a, manifest_id, key, data)

        # G comes back from its worker's cache and joins through the super-peer's door.
        started = time.monotonic()
        g = contexts[PAGES].new_page()
        response = g.goto(url, wait_until="domcontentloaded")
        assert response is not None
        assert response.from_service_worker
        g.wait_for_function("() => window.swarm?.peerId", timeout=30_000)
        assert g.evaluate("() => window.swarm.peerId") == idg
        wait_connected(g, sp, timeout_s=30)
        door_join_s = time.monotonic() - started
        assert g.evaluate("(id) => window.swarm.viaOf(id)", sp) == "mesh"
        # and on from the super-peer to a page it never met, through the mesh
        g.wait_for_function("() => window.swarm.connectedPeers().length >= 2", timeout=30_000)
        pages["G"] = g
        print(
            f"\nserver gone: A -> B through the mesh open in {mesh_dial_s:.2f} s; G joined"
            f" through the door {door_join_s:.2f} s after opening"
        )
        a.screenshot(path=str(artifacts_dir / "screenshots" / "server-gone.png"))

        # D shares a file (no server: nobody but the swarm hears of it), then leaves. The
        # volunteers and the super-peer bring it to three complete kept copies without D.
        started = time.monotonic()
        repaired_data = random.Random(17).randbytes(700_000)
        repaired = artifacts_dir / "server-gone-repaired.bin"
        repaired.write_bytes(repaired_data)
        repaired_id, repaired_key = share_file(d, repaired)
        e.wait_for_function(
            "(id) => window.swarm.repair.view(id)?.replicas === 3", arg=repaired_id, timeout=120_000
        )
        first_repair_s = time.monotonic() - started
        d.close()
        del pages["D"]
        holders = f"""(id) => {{
          const h = window.swarm.files.holders.get(id), n = window.swarm.files.files.get(id);
          return ['{ids["E"]}', '{ids["F"]}', '{sp}'].filter((p) => h?.get(p) === n?.chunkCount
            || (p === window.swarm.peerId && n?.state === 'complete'));
        }}"""
        e.wait_for_function(
            f"(id) => ({holders})(id).length === 3 && window.swarm.repair.view(id)?.replicas === 3",
            arg=repaired_id,
            timeout=120_000,
        )
        repaired_s = time.monotonic() - started
        for volunteer in (e, f):
            copy = volunteer.evaluate(
                "(id) => { const r = window.swarm.files.files.get(id);"
                " return { role: r.role, state: r.state, key: r.key }; }",
                repaired_id,
            )
            assert copy == {"role": "swarm", "state": "complete", "key": None}, copy
        # Anyone with the link can still read it: from the copies made without the worker.
        download_by_key(a, repaired_id, repaired_key, repaired_data)
        print(
            f"repair without the worker: 3 replicas {first_repair_s:.1f} s after D shared,"
            f" 3 again without D {repaired_s:.1f} s after it shared"
        )

        # The server comes back: every page signals through it again, nothing doubled.
        for role in ("web", "worker", "beat"):
            stack.start(role)
        for page in pages.values():
            page.wait_for_function("() => window.swarm.signaling.state === 'open'", timeout=60_000)
        time.sleep(5)
        assert doubled(pages) == {}
        assert connected(a, ids["B"]) == 1
        assert connected(g, sp) == 1
    finally:
        for context in contexts:
            context.close()
