"""The page's signaling client: failover to the next endpoint, reconnect after an outage.

Pages keep their DataConnections while signaling is down (the status says degraded and
why) and get back to online when the server returns.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import new_context
from tests.support.live import Server, base_env, free_port, spawn_daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def daphne_on(port: int, var_dir: Path, log_dir: Path, overrides: dict[str, str]) -> Server:
    """daphne on a chosen port (a restarted server must come back where the page looks)."""
    return spawn_daphne(
        base_env(var_dir, overrides),
        log_dir / f"signal-web-{port}.log",
        name="signal-web",
        port=port,
        append=True,
    )


@pytest.fixture
def var_dir(live_db: None, tmp_path: Path) -> Path:
    return tmp_path


def open_pages(browser: Browser, url: str, origin: str, n: int) -> list[Page]:
    pages = []
    for _ in range(n):
        page = new_context(browser, origin).new_page()
        page.goto(url, wait_until="commit")
        pages.append(page)
    return pages


def signal_state(page: Page) -> str:
    return str(page.evaluate("() => window.swarm?.signaling?.state ?? 'none'"))


def test_a_dead_first_signaling_endpoint_fails_over_to_the_next(
    browser: Browser, var_dir: Path, artifacts_dir: Path
) -> None:
    dead = free_port()  # nothing listens there
    port = free_port()
    server = daphne_on(
        port,
        var_dir,
        artifacts_dir,
        {"SWARM_SIGNAL_URLS": f"http://127.0.0.1:{dead}/signal/,/signal/"},
    )
    try:
        url = f"{server.url}/?community=failover-{secrets.token_hex(3)}"
        pages = open_pages(browser, url, server.url, 2)
        for page in pages:
            page.wait_for_function(
                "() => window.swarm?.signaling?.state === 'open'", timeout=30_000
            )
            endpoint = page.evaluate("() => window.swarm.signaling.endpoint.url")
            assert endpoint == f"{server.url}/signal/"
            codes = page.evaluate("() => window.swarm.diagnostics.list('debug').map((e) => e.code)")
            assert "signal_failover" in codes
        for page in pages:
            page.wait_for_function("() => window.swarm.connectedPeers().length === 1")
        for page in pages:
            page.context.close()
    finally:
        server.stop()


def test_signaling_outage_degrades_then_reconnects_and_the_mesh_survives(
    browser: Browser, var_dir: Path, artifacts_dir: Path
) -> None:
    port = free_port()
    server = daphne_on(port, var_dir, artifacts_dir, {})
    url = f"{server.url}/?community=outage-{secrets.token_hex(3)}"
    pages = open_pages(browser, url, server.url, 2)
    try:
        for page in pages:
            page.wait_for_function(
                "() => window.swarm?.node && window.swarm.connectedPeers().length === 1"
            )
        server.kill()
        for page in pages:
            page.wait_for_function(
                "() => document.querySelector('#swarm-status').dataset.state === 'degraded'",
                timeout=20_000,
            )
            reason = page.locator("#swarm-status").get_attribute("data-reason")
            assert reason == "signaling unreachable"
            assert page.evaluate("() => window.swarm.connectedPeers().length") == 1
        pages[0].screenshot(path=str(artifacts_dir / "screenshots" / "signaling-outage.png"))
        server = daphne_on(port, var_dir, artifacts_dir, {})
        for page in pages:
            page.wait_for_function(
                "() => window.swarm.signaling.state === 'open' && "
                "document.querySelector('#swarm-status').dataset.state === 'online'",
                timeout=45_000,
            )
        assert all(signal_state(p) == "open" for p in pages)
    finally:
        for page in pages:
            page.context.close()
        server.stop()


@pytest.fixture(autouse=True)
def _screenshots_dir(artifacts_dir: Path) -> None:
    (artifacts_dir / "screenshots").mkdir(exist_ok=True)
