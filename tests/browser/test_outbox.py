"""Offline first, end to end (issue 15): a page that goes offline keeps working from the
service worker, its outbox keeps what its person made, and a file key for a peer who has
closed its page waits in a real super-peer's mailbox until that peer returns.

A and B run in persistent browser profiles (their own Chromium with a user-data dir), so
closing one is a crash of the whole browser and opening it again finds its IndexedDB; C is a
fresh page that watches the feed. The super-peer is a real ``manage.py superpeer``.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright

from peers.superpeer.models import MailboxMessage
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, new_context
from tests.support.live import Server, start_daphne
from tests.support.superpeer import SuperPeerProcess, community_name, start_superpeer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

POSTS = ["first, on the train", "second, still offline", "third, before the tunnel ends"]


@pytest.fixture(scope="module")
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("outbox-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1"},
        name="outbox-web",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def community() -> str:
    return community_name("outbox")


@pytest.fixture(scope="module")
def superpeer(
    web: Server, community: str, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[SuperPeerProcess]:
    sp = start_superpeer(
        tmp_path_factory.mktemp("outbox-sp"), artifacts_dir, web, community, name="outbox-sp"
    )
    yield sp
    sp.stop()


def profile(playwright: Playwright, user_data: Path, origin: str) -> BrowserContext:
    """A browser with a profile on disk: closing it is a crash; opening it again keeps IndexedDB."""
    context = playwright.chromium.launch_persistent_context(
        str(user_data),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1366, "height": 900},
    )
    context.grant_permissions(["camera", "microphone"], origin=origin)
    return context


def open_page(context: BrowserContext, url: str) -> Page:
    page = context.pages[0] if context.pages else context.new_page()
    page.on("pageerror", lambda error: print(f"[page error] {error}"))
    page.goto(url)
    page.wait_for_function("() => window.swarm?.peerId && window.swarm.outbox", timeout=30_000)
    return page


def wait_peer(page: Page, other: str, timeout_s: float = 45) -> None:
    page.wait_for_function(
        "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)",
        arg=other,
        timeout=timeout_s * 1000,
    )


def outbox(page: Page) -> list[dict[str, Any]]:
    """The #outbox card as shown: [{id, kind, state}], newest first."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('#outbox .outbox-item')].map((li) =>
                ({ id: li.dataset.id, kind: li.dataset.kind, state: li.dataset.state }))"""
        )
    )


def wait_item(page: Page, item_id: str, state: str, timeout_s: float = 60) -> None:
    page.wait_for_function(
        "([id, s]) => document.querySelector(`#outbox .outbox-item[data-id='${id}']`)"
        "?.dataset.state === s",
        arg=[item_id, state],
        timeout=timeout_s * 1000,
    )


def feed_of(page: Page, author: str) -> list[str]:
    """Texts of `author`'s entries as page holds them, in log order (duplicates would show)."""
    return list(
        page.evaluate(
            "(a) => (window.swarm.posts.sync.logs.get(a)?.entries ?? []).map((e) => e.text)",
            author,
        )
    )


def test_offline_posts_and_a_key_for_an_absent_peer_arrive_once_each(
    playwright: Playwright,
    web: Server,
    superpeer: SuperPeerProcess,
    community: str,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    url = f"{web.url}/?community={community}"
    data = random.Random(15).randbytes(300_000)
    path = tmp_path / "minutes.pdf"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    sp = superpeer.peer_id

    ctx_a = profile(playwright, tmp_path / "a", web.url)
    ctx_b = profile(playwright, tmp_path / "b", web.url)
    browser_c = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    ctx_c = new_context(browser_c, web.url)
    try:
        a, b, c = open_page(ctx_a, url), open_page(ctx_b, url), open_page(ctx_c, url)
        ida, idb, idc = (p.evaluate("() => window.swarm.peerId") for p in (a, b, c))
        for page, others in ((a, [sp, idb, idc]), (b, [sp]), (c, [sp])):
            for other in others:
                wait_peer(page, other)
        a.wait_for_function("(id) => window.swarm.keys.knows(id)", arg=idb, timeout=30_000)
        a.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=30_000)

        # B closes its browser; A loses its network.
        ctx_b.close()
        ctx_a.set_offline(True)
        a.wait_for_function(
            "() => document.querySelector('#swarm-status').dataset.state === 'offline'"
            " && window.swarm.connectedPeers().length === 0",
            timeout=30_000,
        )
        for text in POSTS:
            a.locator("#post-text").fill(text)
            a.locator("#post-send").click()
            a.wait_for_function(
                "(t) => [...document.querySelectorAll('.post .post-text')]"
                ".some((p) => p.textContent === t)",
                arg=text,
            )
        a.set_input_files("#share-file", str(path))
        a.locator("#share-link").wait_for(timeout=30_000)
        link = a.locator("#share-link").get_attribute("href") or ""
        manifest_id = link.split("/f/")[1].split("?")[0].split("#")[0]
        row = a.locator(f'#file-list li.file[data-id="{manifest_id}"]')
        row.locator("button.share-with").click()
        row.locator("input.share-peer").fill(idb)
        row.locator("button.send-key").click()
        a.wait_for_function("() => document.querySelectorAll('#outbox .outbox-item').length === 4")
        before = outbox(a)
        assert sorted(i["kind"] for i in before) == ["key", "post", "post", "post"]
        assert {i["state"] for i in before} == {"waiting"}
        key_item = next(i["id"] for i in before if i["kind"] == "key")

        # Reloaded while offline: the page comes from the service worker, the outbox is intact.
        a.reload()
        a.wait_for_function("() => window.swarm?.peerId && window.swarm.outbox", timeout=30_000)
        assert a.evaluate("() => window.swarm.peerId") == ida
        a.wait_for_function("() => document.querySelectorAll('#outbox .outbox-item').length === 4")
        assert outbox(a) == before
        status = a.evaluate("() => ({...document.querySelector('#swarm-status').dataset})")
        assert status["state"] == "offline"
        assert "network_offline" in status["reasons"].split()

        # Back online: the posts reach C once each, in order; the key goes to the mailbox.
        ctx_a.set_offline(False)
        c.wait_for_function(
            "([a, n]) => (window.swarm.posts.sync.logs.get(a)?.length ?? 0) >= n",
            arg=[ida, len(POSTS)],
            timeout=60_000,
        )
        assert feed_of(c, ida) == POSTS
        wait_item(a, key_item, "sending")
        for item in outbox(a):
            if item["kind"] == "post":
                wait_item(a, item["id"], "delivered")
        assert MailboxMessage.objects.filter(recipient=idb).count() == 1

        # A's browser crashes before B acknowledges; it comes back with the item still open.
        ctx_a.close()
        ctx_a = profile(playwright, tmp_path / "a", web.url)
        a = open_page(ctx_a, url)
        assert a.evaluate("() => window.swarm.peerId") == ida
        assert a.evaluate("(id) => window.swarm.outbox.get(id)?.state", key_item) == "sending"
        wait_peer(a, sp)

        # B returns: the key comes from the mailbox, the file opens, A's item turns delivered.
        ctx_b = profile(playwright, tmp_path / "b", web.url)
        b = open_page(ctx_b, url)
        assert b.evaluate("() => window.swarm.peerId") == idb
        offered = b.locator(f'#file-list li.file[data-id="{manifest_id}"][data-state="offered"]')
        offered.wait_for(timeout=60_000)
        offered.locator("button.fetch").click()
        b.wait_for_function(
            "(id) => window.swarm.files.files.get(id)?.state === 'complete'",
            arg=manifest_id,
            timeout=60_000,
        )
        assert b.evaluate("(id) => window.swarm.files.files.get(id).sha256", manifest_id) == sha
        wait_item(a, key_item, "delivered")
        a.screenshot(path=str(screenshots / "outbox-delivered.png"), full_page=True)
        # Once each: B took the mail once, the mailbox holds nothing more for B, C has 3 posts.
        assert b.evaluate("() => window.swarm.mail.stats.taken") == 1
        assert MailboxMessage.objects.filter(recipient=idb, kind="mail").count() == 0
        assert feed_of(c, ida) == POSTS
    finally:
        for ctx in (ctx_a, ctx_b, ctx_c):
            with contextlib.suppress(Exception):  # already closed by the test
                ctx.close()
        browser_c.close()
