"""A page joins the swarm with the server gone, through a super-peer's door (docs/superpeer.md
"The door", issue 16): a page that loaded once opens again from its service worker while the
web server is down, enters the door its cached config names, connects to the super-peer
through it, then to a page it never met through the super-peer; when the server returns it
signals through it again, with no connection doubled."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import new_context
from tests.browser.test_mesh_signal import connected, wait_connected
from tests.browser.test_offline_shell import daphne_on, wait_offline_ready
from tests.support.live import Server, free_port
from tests.support.superpeer import start_superpeer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def var_dir(live_db: None, tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def door_port() -> int:
    return free_port()


@pytest.fixture
def web(var_dir: Path, artifacts_dir: Path, door_port: int) -> Iterator[Server]:
    server = daphne_on(
        free_port(), var_dir, artifacts_dir, {"SWARM_DOOR_URLS": f"ws://127.0.0.1:{door_port}/"}
    )
    yield server
    server.stop()


def test_a_page_that_loaded_once_joins_through_the_door_with_the_server_gone(
    browser: Browser,
    web: Server,
    var_dir: Path,
    door_port: int,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> None:
    community = f"door-{secrets.token_hex(3)}"
    sp = start_superpeer(
        tmp_path_factory.mktemp("door-sp"),
        artifacts_dir,
        web,
        community,
        {"SWARM_SUPERPEER_DOOR": f"127.0.0.1:{door_port}"},
        name="door-sp",
    )
    url = f"{web.url}/?community={community}"
    a_context = new_context(browser, web.url)
    b_context = new_context(browser, web.url)
    try:
        # A visits once (its worker keeps the page, the config with the door in it) and leaves.
        a = a_context.new_page()
        a.goto(url)
        a.wait_for_function("() => window.swarm?.config", timeout=30_000)
        assert a.evaluate("() => window.swarm.config.doors") == [f"ws://127.0.0.1:{door_port}/"]
        wait_offline_ready(a)
        ida = a.evaluate("() => window.swarm.peerId")
        a.close()
        # B is in the swarm with the super-peer and stays through the outage.
        b = b_context.new_page()
        b.goto(url)
        b.wait_for_function("() => window.swarm?.peerId", timeout=30_000)
        idb = b.evaluate("() => window.swarm.peerId")
        wait_connected(b, sp.peer_id)

        web.kill()
        b.wait_for_function("() => window.swarm.signaling.state !== 'open'", timeout=20_000)
        assert connected(b, sp.peer_id) == 1

        # A comes back: the page from its worker, signaling unreachable, so the door.
        started = time.monotonic()
        a = a_context.new_page()
        response = a.goto(url, wait_until="domcontentloaded")
        assert response is not None
        assert response.from_service_worker
        a.wait_for_function("() => window.swarm?.peerId", timeout=30_000)
        assert a.evaluate("() => window.swarm.peerId") == ida
        wait_connected(a, sp.peer_id, timeout_s=30)
        joined_s = time.monotonic() - started
        assert a.evaluate("(id) => window.swarm.viaOf(id)", sp.peer_id) == "mesh"
        assert a.evaluate("() => window.swarm.signaling.state") != "open"
        # The door closed once the connection to its super-peer was open.
        a.wait_for_function("() => window.swarm.doorState() === null", timeout=10_000)
        codes = a.evaluate("() => window.swarm.diagnostics.list().map((e) => e.code)")
        assert "door_open" in codes
        assert "door_done" in codes
        phases = a.evaluate(
            """() => Object.fromEntries(window.swarm.diagnostics.list().reverse()
                 .filter((e) => ['signal_open', 'door_try', 'door_open', 'mesh_dial', 'first_peer',
                                 'door_done'].includes(e.code) || e.source === 'signal')
                 .map((e) => [e.code, Math.round(e.ts - performance.timeOrigin)]))"""
        )
        print(f"joined through the door {joined_s:.2f} s after opening the page; ms: {phases}")

        # Then B, whom A never met, through the super-peer (PEX from the super-peer may have
        # brought B already: A dials the peers it learns of through the mesh on its own).
        assert a.evaluate("(id) => window.swarm.connectTo(id)", idb) in ("dialing", "connected")
        wait_connected(a, idb, timeout_s=30)
        assert a.evaluate("(id) => window.swarm.viaOf(id)", idb) == "mesh"
        wait_connected(b, ida)
        a.screenshot(path=str(artifacts_dir / "screenshots" / "door-joined.png"))

        # The server returns: A signals through it again and nothing is doubled.
        again = daphne_on(web.port, var_dir, artifacts_dir, web_overrides(door_port))
        try:
            a.wait_for_function("() => window.swarm.signaling.state === 'open'", timeout=60_000)
            a.wait_for_timeout(3_000)
            assert connected(a, sp.peer_id) == 1
            assert connected(a, idb) == 1
            assert connected(b, ida) == 1
            assert a.evaluate("() => window.swarm.doorState()") is None
        finally:
            again.stop()
    finally:
        a_context.close()
        b_context.close()
        sp.stop()


def web_overrides(door_port: int) -> dict[str, str]:
    return {"SWARM_DOOR_URLS": f"ws://127.0.0.1:{door_port}/"}
