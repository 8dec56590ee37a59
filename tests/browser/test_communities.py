"""Communities from the page (issue 19): join another one with the Controls card's form, see
which one the page is in and only that community's peers, leave it for the default."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.content_support import Site, peer_id, site, wait_connected  # noqa: F401

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def connected_ids(page: Page) -> set[str]:
    return set(page.evaluate("() => window.swarm.connectedPeers().map((p) => p.peerId)"))


def test_join_a_community_from_the_page_and_leave_it(site: Site) -> None:  # noqa: F811
    other = f"{site.community}-b"
    a, b = site.open(), site.open()
    c, d = (
        site.open(f"{site.server.url}/?community={other}"),
        site.open(f"{site.server.url}/?community={other}"),
    )
    ida, idb, idc, idd = (peer_id(p) for p in (a, b, c, d))
    wait_connected(c, [idd])
    assert c.locator("#community-current").inner_text() == f"#{other}"
    # A bad name is refused in words, and the page stays.
    c.locator("#community-name").fill("Not a name!")
    c.locator("#community-join").click()
    assert c.locator("#community-error").inner_text().startswith("bad_community")
    assert c.evaluate("() => document.querySelector('#swarm-status').dataset.community") == other
    # Joining: the page loads for that community and meets its peers, not the old ones.
    c.locator("#community-name").fill(site.community)
    c.locator("#community-join").click()
    c.wait_for_url(f"**/?community={site.community}")
    assert peer_id(c) == idc, "the same identity in every community"
    assert c.evaluate("() => document.querySelector('#swarm-status').dataset.community") == (
        site.community
    )
    wait_connected(c, [ida, idb])
    c.wait_for_timeout(2_000)
    assert idd not in connected_ids(c)
    assert connected_ids(c) <= {ida, idb}
    # Leaving goes to the server's default community, where none of them are.
    c.locator("#community-leave").click()
    c.wait_for_function(
        "(name) => window.swarm?.peerId && document.querySelector('#swarm-status')"
        ".dataset.community !== name",
        arg=site.community,
        timeout=20_000,
    )
    assert c.locator("#community-leave").is_hidden()
    c.wait_for_timeout(2_000)
    assert not connected_ids(c) & {ida, idb, idd}
    for page in (a, b, c, d):
        page.close()
