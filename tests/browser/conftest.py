"""Chromium from Debian driven by Playwright, with loopback WebRTC enabled (docs/testing.md)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

# Playwright's sync API keeps an event loop running in the test thread; the ORM calls
# that tests and pytest-django's teardown make there are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    # Each Playwright page is a window of its own, and in headless Chromium 156 each window
    # makes its omnibox popup (a WebUI page) in a renderer of its own at once: 0.6-0.8 CPU-s
    # per page opened, on the 2 cores the pages under test share (docs/testing.md). A person's
    # browser makes it once per window, not per link opened in a tab.
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup",
]

# An init script: the page's CSP violations (securitypolicyviolation events) collect in
# window.__cspViolations from before any script of the page runs (tests/browser/test_csp.py).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const what = `${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`;
  window.__cspViolations.push(`${what} (${event.sourceFile}:${event.lineNumber})`);
});
"""


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        # One line and the end of the run, not one error per test (scripts/need_chromium.sh).
        pytest.exit(
            f"The browser tests need Chromium at {CHROMIUM}: install it "
            "(Debian/Ubuntu: sudo apt-get install chromium).",
            returncode=4,
        )
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


def new_context(browser: Browser, origin: str) -> BrowserContext:
    """A fresh profile whose page may offer 127.0.0.1 ICE candidates."""
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    context.grant_permissions(["camera", "microphone"], origin=origin)
    return context


@pytest.fixture
def screenshots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "screenshots"
    path.mkdir(exist_ok=True)
    return path
