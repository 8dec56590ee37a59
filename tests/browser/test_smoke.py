"""The site loads in Chromium and exposes the page hooks of DESIGN section 9."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import new_context
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_home_page_has_the_status_hook(
    beacon_server: Server, browser: Browser, screenshots: Path
) -> None:
    context = new_context(browser, beacon_server.url)
    page = context.new_page()
    page.goto(beacon_server.url + "/")
    status = page.locator("#swarm-status")
    assert status.get_attribute("data-community") == "main"
    assert status.get_attribute("data-state") in {"online", "degraded", "offline"}
    page.screenshot(path=str(screenshots / "home.png"))
    context.close()


def test_admin_login_page_renders(beacon_server: Server, browser: Browser) -> None:
    context = new_context(browser, beacon_server.url)
    page = context.new_page()
    page.goto(beacon_server.url + "/admin/")
    assert page.locator("input[name=username]").count() == 1
    context.close()


def test_every_module_the_page_loads_was_announced_as_a_modulepreload(
    beacon_server: Server, browser: Browser
) -> None:
    """The page lists its whole module graph up front (page/modules.py), so the
    browser fetches it at once instead of one import level per round trip: a module it
    loaded that the list missed would be discovered late again."""
    context = new_context(browser, beacon_server.url)
    page = context.new_page()
    page.goto(beacon_server.url + "/")
    page.wait_for_function("() => window.swarm?.files", timeout=20_000)
    preloaded = set(
        page.evaluate(
            "() => [...document.querySelectorAll('link[rel=modulepreload]')].map((l) => l.href)"
        )
    )
    # uPlot is imported once the page has started (ui/status.js): only the charts wait for it.
    page.wait_for_function("() => document.querySelector('#chart-peers .uplot')", timeout=20_000)
    loaded = set(
        page.evaluate(
            "() => performance.getEntriesByType('resource').map((r) => r.name)"
            ".filter((n) => /\\.m?js$/.test(n))"
        )
    )
    # The page's files live under its static version (page/modules.py, docs/offline.md).
    base = page.evaluate("() => document.querySelector('script[type=module]').src").removesuffix(
        "swarm/main.js"
    )
    assert base.startswith(beacon_server.url + "/static/v/")
    entry = {base + "swarm/main.js"}
    classic = {base + "vendor/peerjs/peerjs.min.js"}
    lazy = {base + "vendor/uplot/uPlot.esm.js"}
    assert len(preloaded) > 50
    assert lazy <= loaded
    assert not lazy & preloaded, "uPlot is not on the start's critical path"
    late = loaded - entry - classic - lazy - preloaded
    assert not late, sorted(late)
    context.close()
