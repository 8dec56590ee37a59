"""The community feed between Chromium pages (DESIGN sections 7 and 9).

Posts written in page A appear live in B (gossip) and in C, which joins later (sync frames
on connect); edits and deletions travel as new signed entries. A test peer D (a page whose
code is altered, connected to B only) injects forged posts by gossip and by a sync frame:
B refuses them (diagnostics say why), never shows or stores them, and C never even sees
the forged gossip (B did not pass it on).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.content_support import (  # noqa: F401
    Site,
    diagnostics,
    peer_id,
    site,
    wait_connected,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def write(page: Page, text: str, name: str | None = None) -> None:
    page.wait_for_selector("#posts:not([hidden])")
    if name is not None:
        page.locator("#post-name").fill(name)
        page.locator("#post-name").dispatch_event("change")
    page.locator("#post-text").fill(text)
    page.locator("#post-send").click()


def shown(page: Page) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('#post-list .post')].map((p) => ({
              id: p.dataset.id, author: p.dataset.author,
              name: p.querySelector('.post-name').textContent,
              text: p.querySelector('.post-text')?.textContent ?? '',
              edited: Boolean(p.querySelector('.edited')),
            }))"""
        )
    )


def wait_post(page: Page, text: str, timeout_s: float = 20) -> dict[str, Any]:
    page.wait_for_function(
        "(text) => [...document.querySelectorAll('#post-list .post .post-text')]"
        ".some((t) => t.textContent === text)",
        arg=text,
        timeout=timeout_s * 1000,
    )
    return next(p for p in shown(page) if p["text"] == text)


FORGE = """async ({ target }) => {
  const { nextPost, AuthorLog } = await import('/static/swarm/protocol/postlog.js');
  const swarm = window.swarm;
  const mine = swarm.posts.sync.logs.get(swarm.peerId) ?? new AuthorLog(swarm.peerId);
  const fields = { now: Date.now(), text: 'honest words' };
  const real = await nextPost(mine, swarm.identity.signer, fields);
  // 1. Altered after signing: the signature no longer verifies.
  const altered = { ...real, body: { ...real.body, text: 'forged words' } };
  // 2. Signed by D but claiming to be the victim's entry.
  const claims = { ...real, body: { ...real.body, author: target, text: 'forged in their name' } };
  const gossipId = await swarm.publish('post', altered);
  const frame = { t: 'sync_entries', entries: [claims], complete: true };
  swarm.send(swarm.connectedPeers()[0].peerId, frame);
  return { gossipId };
}"""


def test_posts_reach_live_and_late_peers_and_forged_ones_never_appear(site: Site) -> None:  # noqa: F811
    a, b = site.open(), site.open()
    ida, idb = peer_id(a), peer_id(b)
    wait_connected(a, [idb])

    write(a, "Hello from A, the first post", name="Ada")
    post = wait_post(b, "Hello from A, the first post")
    assert post["author"] == ida
    assert post["name"] == "Ada"
    assert post["id"] == shown(a)[0]["id"]
    write(a, "A second thought")
    write(b, "B says hi")
    wait_post(a, "B says hi")
    wait_post(b, "A second thought")

    # C joins after those were gossiped: sync on connect brings them.
    c = site.open()
    idc = peer_id(c)
    wait_connected(c, [ida, idb])
    for text in ("Hello from A, the first post", "A second thought", "B says hi"):
        wait_post(c, text)
    assert {p["author"] for p in shown(c)} == {ida, idb}
    c.screenshot(path=str(site.shots / "posts-late-peer.png"))

    # Edits and deletes are new entries of A's log; B and C follow.
    first = next(p for p in shown(a) if p["text"] == "Hello from A, the first post")
    a.locator(f'.post[data-id="{first["id"]}"] button.edit').click()
    a.locator("#post-text").fill("Hello from A (edited)")
    a.locator("#post-send").click()
    second = next(p for p in shown(a) if p["text"] == "A second thought")
    a.locator(f'.post[data-id="{second["id"]}"] button.delete').click()
    for page in (b, c):
        edited = wait_post(page, "Hello from A (edited)")
        assert edited["id"] == first["id"]
        assert edited["edited"]
        page.wait_for_function(
            "(id) => !document.querySelector(`.post[data-id='${id}']`)", arg=second["id"]
        )
    a.screenshot(path=str(site.shots / "posts-feed.png"))

    # D: a test peer that only B lets in, injecting forged entries.
    d = site.open()
    idd = peer_id(d)
    wait_connected(d, [idb])  # first meet B, then keep only B
    b.evaluate("(id) => window.swarm.node.mesh.allowed.add(id)", idd)
    d.evaluate(
        "async (id) => { window.swarm.node.mesh.allowed.add(id);"
        " await window.swarm.setIsolated(true); }",
        idb,
    )
    d.wait_for_function("() => window.swarm.connectedPeers().length === 1", timeout=20_000)
    forged = d.evaluate(FORGE, {"target": ida})
    b.wait_for_function(
        "() => window.swarm.diagnostics.list('debug')"
        ".filter((e) => e.code === 'bad_signature').length >= 2",
        timeout=10_000,
    )
    bad = [e for e in diagnostics(b) if e["code"] == "bad_signature"]
    # gossip: dropped before delivery or relay; posts: the sync entry refused; wire: that
    # refusal counted against D's connection (an honest peer never forwards a bad entry).
    assert {e["source"] for e in bad} == {"gossip", "posts", "wire"}
    assert all(e["peerId"] == idd for e in bad)
    dropped = b.evaluate("() => window.swarm.node.stats.dropped")
    assert dropped["gossip_post_bad_signature"] == 1
    assert dropped["bad_signature"] == 1
    c.wait_for_timeout(1_500)  # anything B would have relayed has arrived by now
    assert not c.evaluate("(id) => window.swarm.node.log.has(id)", forged["gossipId"])
    for page in (a, b, c):
        texts = {p["text"] for p in shown(page)}
        assert not texts & {"forged words", "forged in their name", "honest words"}
        stored = page.evaluate(
            "async () => (await window.swarm.posts.store.loadPosts()).map((e) => e.text)"
        )
        assert "forged words" not in stored
        assert "forged in their name" not in stored
    assert idc not in {p["peerId"] for p in d.evaluate("() => window.swarm.connectedPeers()")}
