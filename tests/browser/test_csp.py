"""The page under its Content-Security-Policy, and outside a secure context
(swarmweb/security.py, docs/operations.md "Security headers" and "Production settings").

Every page records the CSP violations it sees (``securitypolicyviolation`` events, set up
before any script of the page runs) and the console errors: the page starts and two
pages connect with none of either. A page without WebCrypto says why it cannot start.
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.browser.conftest import RECORD_VIOLATIONS, new_context
from tests.support.live import Server, base_env, spawn_daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

STATUS = "#swarm-status"

NO_WEBCRYPTO = "Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined });"


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


def test_two_pages_start_connect_post_and_share_with_no_csp_violation(
    beacon_server: Server, browser: Browser, screenshots: Path, tmp_path: Path
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
    # A post (its author's avatar is coloured by a custom property) and a shared file (its
    # row's bar has a width): styles the cards set on elements they make.
    first = pages[0].page
    first.locator("#post-text").fill("a post under the policy")
    first.locator("#post-send").click()
    pages[1].page.wait_for_selector("#post-list .post .avatar", timeout=30_000)
    shared = tmp_path / "csp.bin"
    shared.write_bytes(secrets.token_bytes(200_000))
    first.locator("#share-file").set_input_files(str(shared))
    first.wait_for_selector("#file-list .bar span", timeout=30_000)
    hue = pages[1].page.evaluate(
        "() => document.querySelector('#post-list .avatar').style.getPropertyValue('--hue')"
    )
    assert hue.strip().isdigit()
    assert first.evaluate("() => document.querySelector('#file-list .bar span').style.width")
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


def assert_explains_insecure_context(page: Page) -> None:
    page.wait_for_function(
        "() => document.querySelector('#swarm-status').dataset.reasons === 'insecure_context'",
        timeout=30_000,
    )
    status = page.locator(STATUS)
    assert status.get_attribute("data-state") == "offline"
    assert "HTTPS" in status.locator(".state-reason").inner_text()
    notice = page.locator("#insecure-context")
    assert notice.is_visible()
    assert "secure connection" in notice.inner_text().lower()
    assert (
        page.locator("#insecure-https").get_attribute("href", timeout=1_000).startswith("https://")
    )
    # Nothing started: no peer, no identity.
    assert page.evaluate("() => window.swarm") is None


def test_a_page_without_webcrypto_says_so(beacon_server: Server, browser: Browser) -> None:
    context = new_context(browser, beacon_server.url)
    context.add_init_script(NO_WEBCRYPTO)
    watched = Watched(context, beacon_server.url + "/")
    assert_explains_insecure_context(watched.page)
    assert watched.violations() == []
    assert watched.errors == []
    context.close()


def non_loopback_ipv4() -> str | None:
    """An address of this machine that is not loopback (``hostname -I``), if any."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for word in out.split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback and not address.is_link_local:
            return str(address)
    return None


def test_plain_http_on_a_non_loopback_address_is_explained(
    live_db: None, browser: Browser, tmp_path: Path, artifacts_dir: Path, screenshots: Path
) -> None:
    host = non_loopback_ipv4()
    if host is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    server = spawn_daphne(
        base_env(var_dir, {"DJANGO_ALLOWED_HOSTS": host}),
        artifacts_dir / "insecure-web.log",
        name="insecure-web",
        host=host,
    )
    try:
        context = browser.new_context()
        watched = Watched(context, server.url + "/")
        assert watched.page.evaluate("() => isSecureContext") is False
        assert_explains_insecure_context(watched.page)
        assert watched.page.locator("#insecure-origin").inner_text() == server.url
        assert watched.violations() == []
        # Chromium says it ignores Cross-Origin-Opener-Policy on an untrustworthy origin.
        assert [e for e in watched.errors if "Cross-Origin-Opener-Policy" not in e] == []
        watched.page.screenshot(path=str(screenshots / "insecure-context.png"))
        context.close()
    finally:
        server.stop()
