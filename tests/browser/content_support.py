"""Helpers for the content browser tests (files, posts): a server, pages in fresh
profiles joined to one community, and waits on the page hooks of DESIGN section 9."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import new_context
from tests.support.live import Server, start_daphne


@dataclass
class Site:
    server: Server
    browser: Browser
    community: str
    shots: Path
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.server.url}/?community={self.community}"

    def open(self, url: str | None = None, context: BrowserContext | None = None) -> Page:
        """A page in a fresh browser profile (its own identity and IndexedDB)."""
        if context is None:
            context = new_context(self.browser, self.server.url)
            self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: print(f"[page error] {error}"))
        page.goto(url or self.url, wait_until="commit")
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.server.stop()


@pytest.fixture(scope="module")
def site(
    live_db: None, browser: Browser, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Site]:
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    server = start_daphne(tmp_path_factory.mktemp("content-var"), artifacts_dir, name="content-web")
    state = Site(server, browser, f"content-{secrets.token_hex(3)}", shots)
    yield state
    state.close()


def peer_id(page: Page) -> str:
    """The page's peer id, once its cards are mounted (they mount after a share link's
    download has started, so the page's hooks come before its controls)."""
    page.wait_for_function(
        "() => window.swarm?.peerId && window.swarm.files"
        " && document.documentElement.dataset.ui === 'mounted'",
        timeout=20_000,
    )
    return str(page.evaluate("() => window.swarm.peerId"))


def wait_connected(page: Page, others: list[str], timeout_s: float = 30) -> None:
    page.wait_for_function(
        "(ids) => window.swarm?.node && ids.every((id) => "
        "window.swarm.connectedPeers().some((p) => p.peerId === id))",
        arg=others,
        timeout=timeout_s * 1000,
    )


def diagnostics(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("() => window.swarm.diagnostics.list('debug')"))


def codes(page: Page) -> set[str]:
    return {e["code"] for e in diagnostics(page)}


def share_file(page: Page, path: Path) -> tuple[str, list[int]]:
    """Share ``path`` through the Files card: the manifest id of its link and the file key."""
    page.set_input_files("#share-file", str(path))
    page.locator("#share-link").wait_for(timeout=30_000)
    manifest_id = (page.locator("#share-link").get_attribute("href") or "").split("/f/")[1][:43]
    key = page.evaluate("(id) => [...window.swarm.files.files.get(id).key]", manifest_id)
    return manifest_id, key


def download_by_key(page: Page, manifest_id: str, key: list[int], data: bytes) -> None:
    """Download ``manifest_id`` with its key through the file service and check every byte."""
    page.evaluate(
        "([id, key]) => window.swarm.files.download(id, new Uint8Array(key))", [manifest_id, key]
    )
    page.wait_for_function(
        "(id) => window.swarm.files.files.get(id)?.state === 'complete'",
        arg=manifest_id,
        timeout=60_000,
    )
    sha = page.evaluate("(id) => window.swarm.files.files.get(id).sha256", manifest_id)
    assert sha == hashlib.sha256(data).hexdigest()
