"""The page under its Content-Security-Policy (swarmweb/security.py, docs/operations.md
"Security headers").

Every page records the CSP violations it sees (``securitypolicyviolation`` events, set up
before any script of the page runs) and the console errors: the page starts and two
pages connect with none of either.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.browser.conftest import new_context
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const what = `${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`;
  window.__cspViolations.push(`${what} (${event.sourceFile}:${event.lineNumber})`);
});
"""


class Watched:
    """A page and the console errors it logged."""

    def __init__(self, context: BrowserContext, url: str) -> None:
        self.errors: list[str] = []
        context.add_init_script(RECORD_VIOLATIONS)
        self.page: Page = context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.goto(url)

    def _console(self, message: ConsoleMessage) -> None:
        url = message.location.get("url", "")
        # A new community has no capsule yet: its 404 is an expected answer (the page falls
        # back to the beacon), which Chromium logs as a failed load.
        if message.text.startswith("Failed to load resource") and "/capsules/" in url:
            return
        if message.type == "error":
            self.errors.append(f"{message.text} ({url})")

    def violations(self) -> list[str]:
        return list(self.page.evaluate("() => window.__cspViolations"))


def test_two_pages_start_and_connect_with_no_csp_violation(
    beacon_server: Server, browser: Browser, screenshots: Path
) -> None:
    url = f"{beacon_server.url}/?community=csp{secrets.token_hex(4)}"
    contexts = [new_context(browser, beacon_server.url) for _ in range(2)]
    pages = [Watched(context, url) for context in contexts]
    ids = []
    for watched in pages:
        watched.page.wait_for_function("() => window.swarm?.peerId", timeout=30_000)
        ids.append(watched.page.evaluate("() => window.swarm.peerId"))
    for watched, other in zip(pages, reversed(ids), strict=True):
        watched.page.wait_for_function(
            "(other) => window.swarm.connectedPeers().some((p) => p.peerId === other)",
            arg=other,
            timeout=60_000,
        )
    # The charts (uPlot, loaded later, styled through the CSSOM) and the service worker
    # (registered 3 s after load) under the policy too.
    for watched in pages:
        watched.page.wait_for_function(
            "() => document.querySelector('#chart-peers .uplot')", timeout=20_000
        )
        watched.page.wait_for_function(
            "() => navigator.serviceWorker.controller !== null", timeout=30_000
        )
    pages[0].page.screenshot(path=str(screenshots / "csp-page.png"))
    for watched in pages:
        header = watched.page.evaluate(
            "async () => (await fetch(location.href)).headers.get('content-security-policy')"
        )
        assert "script-src 'self' 'nonce-" in header
        assert watched.violations() == []
        assert watched.errors == []
    for context in contexts:
        context.close()
