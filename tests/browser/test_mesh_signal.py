"""Signaling through the mesh in Chromium (issue 16, first part): with the server gone, a page
connects to a peer it is not connected to through a page they both know, by "Connect by id",
and fetches a file from it over that connection; when the server is back, nothing is doubled."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import new_context
from tests.browser.content_support import download_by_key, share_file
from tests.support.live import Server, spawn_daphne, start_daphne
from tests.support.superpeer import community_name, start_superpeer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(tmp_path_factory.mktemp("meshsig-web"), artifacts_dir, name="meshsig-web")
    yield server
    server.stop()


def open_page(browser: Browser, url: str, origin: str) -> Page:
    page = new_context(browser, origin).new_page()
    page.on("pageerror", lambda error: print(f"[page error] {error}"))
    page.goto(url)
    page.wait_for_function("() => window.swarm?.peerId && window.swarm.files", timeout=30_000)
    return page


def connected(page: Page, other: str) -> int:
    return int(
        page.evaluate(
            "(id) => window.swarm.connectedPeers().filter((p) => p.peerId === id).length", other
        )
    )


def wait_connected(page: Page, other: str, timeout_s: float = 45) -> None:
    page.wait_for_function(
        "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)",
        arg=other,
        timeout=timeout_s * 1000,
    )


def part(page: Page, other: str) -> None:
    """Close the connection to `other` and do not dial it again for an hour."""
    page.evaluate(
        """(id) => {
          const s = window.swarm, now = s.clock();
          s.node.book.deferDial(id, now + 3_600_000);
          for (const c of s.node.mesh.connsOf(id)) s.node.mesh.close(c, "test", now);
        }""",
        other,
    )


def stay_apart(
    a: Page,
    ida: str,
    b: Page,
    idb: str,
    *,
    part_with: Callable[[Page, str], None] = part,
    settle_ms: int = 1_500,
    tries: int = 5,
) -> None:
    """Part a and b (``part_with`` on both sides) until they stay apart for ``settle_ms``: a
    page's DHT may dial the other again on its own right after a part."""
    for _ in range(tries):
        part_with(a, idb)
        part_with(b, ida)
        a.wait_for_function(
            "(id) => !window.swarm.connectedPeers().some((p) => p.peerId === id)", arg=idb
        )
        a.wait_for_timeout(settle_ms)
        if connected(a, idb) == 0:
            return
    raise AssertionError("they kept dialing each other")


def test_a_page_dials_through_the_mesh_with_the_server_gone(
    browser: Browser, web: Server, artifacts_dir: Path
) -> None:
    url = f"{web.url}/?community={community_name('meshsig')}"
    a, b, c = (open_page(browser, url, web.url) for _ in range(3))
    ida, idb, idc = (p.evaluate("() => window.swarm.peerId") for p in (a, b, c))
    for page, others in ((a, [idb, idc]), (b, [ida, idc]), (c, [ida, idb])):
        for other in others:
            wait_connected(page, other)
    data = random.Random(16).randbytes(700_000)
    path = artifacts_dir / "meshsig-file.bin"
    path.write_bytes(data)
    manifest_id, key = share_file(c, path)
    # A and C part; B stays between them. Then the whole server goes.
    part(a, idc)
    part(c, ida)
    a.wait_for_function(
        "(id) => !window.swarm.connectedPeers().some((p) => p.peerId === id)", arg=idc
    )
    web.kill()
    a.wait_for_function("() => window.swarm.signaling.state !== 'open'", timeout=20_000)
    assert connected(a, idb) == 1, "B still joins them"
    assert connected(c, idb) == 1

    # Connect by id: no server, so through B.
    a.locator("#peer-connect").fill(idc)
    a.locator("#peer-connect-go").click()
    wait_connected(a, idc, timeout_s=30)
    assert a.evaluate("(id) => window.swarm.viaOf(id)", idc) == "mesh"
    a.locator(f'[data-peer-row][data-peer-id="{idc}"][data-via="mesh"]').wait_for()
    wait_connected(c, ida)
    assert b.evaluate("() => window.swarm.meshSignal.stats.relayed") > 0, "B relayed the signaling"
    # A fetches C's file over the mesh-signaled connection (B never had it).
    download_by_key(a, manifest_id, key, data)
    assert not b.evaluate("(id) => window.swarm.files.files.has(id)", manifest_id)
    a.screenshot(path=str(artifacts_dir / "screenshots" / "mesh-signal-connected.png"))

    # The server comes back on the same port: signaling reopens and A-C stays one connection.
    again = spawn_daphne(web.env, web.log_path, name=web.name, port=web.port)
    try:
        a.wait_for_function("() => window.swarm.signaling.state === 'open'", timeout=60_000)
        a.wait_for_timeout(3_000)
        assert connected(a, idc) == 1
        assert connected(c, ida) == 1
    finally:
        again.stop()


def test_a_page_reaches_the_super_peer_through_the_mesh(
    browser: Browser,
    web: Server,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> None:
    community = community_name("meshsp")
    sp = start_superpeer(
        tmp_path_factory.mktemp("meshsig-sp"), artifacts_dir, web, community, name="meshsig-sp"
    )
    try:
        url = f"{web.url}/?community={community}"
        a, b = (open_page(browser, url, web.url) for _ in range(2))
        ida, idb = (p.evaluate("() => window.swarm.peerId") for p in (a, b))
        for page, others in ((a, [idb, sp.peer_id]), (b, [ida, sp.peer_id])):
            for other in others:
                wait_connected(page, other)
        part(a, sp.peer_id)
        a.wait_for_function(
            "(id) => !window.swarm.connectedPeers().some((p) => p.peerId === id)", arg=sp.peer_id
        )
        web.kill()
        a.wait_for_function("() => window.swarm.signaling.state !== 'open'", timeout=20_000)
        assert a.evaluate("(id) => window.swarm.connectTo(id)", sp.peer_id) == "dialing"
        wait_connected(a, sp.peer_id, timeout_s=30)
        assert a.evaluate("(id) => window.swarm.viaOf(id)", sp.peer_id) == "mesh"
        caps = a.evaluate(
            "(id) => window.swarm.connectedPeers().find((p) => p.peerId === id).caps", sp.peer_id
        )
        assert "superpeer" in caps, "the super-peer's verified hello came over the mesh link"
        assert b.evaluate("() => window.swarm.meshSignal.stats.relayed") > 0
    finally:
        sp.stop()


def test_with_the_server_up_a_page_measures_both_paths_and_uses_the_mesh_too(
    browser: Browser, web: Server
) -> None:
    """Dials to a peer a neighbour reaches go through the server and through the mesh in turn
    until each path has its figures (protocol/dialpath.js), both with the server up."""
    url = f"{web.url}/?community={community_name('dialpath')}"
    a, b, c = (open_page(browser, url, web.url) for _ in range(3))
    ida, idb, idc = (p.evaluate("() => window.swarm.peerId") for p in (a, b, c))
    for page, others in ((a, [idb, idc]), (b, [ida, idc]), (c, [ida, idb])):
        for other in others:
            wait_connected(page, other)
    # Fresh figures: A's first dials (to B or C, through the server) counted for the server.
    a.evaluate("() => { window.swarm.dialPaths = new window.swarm.dialPaths.constructor(); }")
    vias = []
    for _ in range(4):
        stay_apart(a, ida, c, idc)
        # B's reach adverts (at most every 5 s) list C: A knows a route to it through B.
        a.wait_for_function(
            """([b, c]) => [...window.swarm.meshSignal.neighbours.values()].some(
                 (n) => n.peerId === b && n.reach.has(c))""",
            arg=[idb, idc],
            timeout=20_000,
        )
        assert a.evaluate("() => window.swarm.signaling.state") == "open"
        routed = a.evaluate("() => window.swarm.dialPaths.routed")
        assert a.evaluate("(id) => window.swarm.dial(id)", idc)
        wait_connected(a, idc, timeout_s=30)
        vias.append(a.evaluate("(id) => window.swarm.viaOf(id)", idc))
        assert a.evaluate("() => window.swarm.dialPaths.routed") == routed + 1, "A dialed C"
        assert a.evaluate(
            "(id) => window.swarm.connectedPeers().find((p) => p.peerId === id).outbound", idc
        )
    # Alternating from the server while either path has fewer than three figures.
    assert vias == ["server", "mesh", "server", "mesh"]
    figures = a.evaluate("() => window.swarm.dialPaths.data()")
    print(f"\nA's dial paths after four dials to C: {figures}")
    assert figures["routed"] == 4
    for path in ("server", "mesh"):
        assert figures[path]["samples"] == 2, figures
        assert figures[path]["failures"] == 0, figures
        assert 0 < figures[path]["avg_ms"] < 20_000, figures
    assert b.evaluate("() => window.swarm.meshSignal.stats.relayed") > 0, "B relayed the offers"
