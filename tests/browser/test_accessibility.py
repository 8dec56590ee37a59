"""Accessibility and phone width (issue 19): axe-core (npm, injected by the test) finds no
serious or critical violation on the home page, a download page and the admin dashboard,
on a desktop and at 390x844; at phone width nothing is wider than the viewport. The peers
table keeps to its card on a 1280x800 laptop and on a phone, rows tagged mesh and
supernode included."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page

from tests.browser.content_support import Site, peer_id, site, wait_connected  # noqa: F401
from tests.browser.test_files import share

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
AXE = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 860}
LAPTOP = {"width": 1280, "height": 800}


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE)
    result = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:5]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def overflowing(page: Page) -> list[str]:
    """Visible elements reaching past the viewport's right edge, and the page's scroll width."""
    return list(
        page.evaluate(
            """() => {
              const out = [...document.querySelectorAll('body *')].filter((e) => {
                const r = e.getBoundingClientRect();
                return r.width > 0 && r.height > 0 && r.right > innerWidth + 1;
              }).slice(0, 10).map((e) => `${e.tagName}#${e.id}.${e.className}`);
              if (document.documentElement.scrollWidth > innerWidth) out.push('scrollWidth');
              return out;
            }"""
        )
    )


def check(page: Page, what: str, shots: Path, phone: bool) -> None:
    assert axe_violations(page) == [], what
    if phone:
        assert overflowing(page) == [], what
    page.screenshot(path=str(shots / f"a11y-{what}.png"), full_page=True)


def open_at(site: Site, viewport: dict[str, int], url: str | None = None) -> Page:  # noqa: F811
    page = site.open(url)
    page.set_viewport_size(viewport)
    peer_id(page)
    page.wait_for_timeout(1_000)  # charts and lists drawn
    return page


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_home_and_download_pages(
    site: Site,  # noqa: F811
    tmp_path: Path,
    viewport: dict[str, int],
) -> None:
    phone = viewport is PHONE
    tag = "phone" if phone else "desktop"
    home = open_at(site, viewport)
    check(home, f"home-{tag}", site.shots, phone)
    data = random.Random(19).randbytes(200_000)
    path = tmp_path / "notes.pdf"
    path.write_bytes(data)
    link = share(home, path)
    download = open_at(site, viewport, link)
    download.wait_for_function(
        "() => document.querySelector('#download')?.dataset.state === 'complete'", timeout=30_000
    )
    assert download.locator("#download").get_attribute("data-sha256") == (
        hashlib.sha256(data).hexdigest()
    )
    check(download, f"download-{tag}", site.shots, phone)
    for page in (home, download):
        page.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_admin_dashboard(site: Site, browser: Browser, viewport: dict[str, int]) -> None:  # noqa: F811
    get_user_model().objects.create_superuser("a11y", "a11y@example.org", "a11y-pass-123")
    page = site.open(f"{site.server.url}/admin/login/?next=/admin/dashboard/")
    page.set_viewport_size(viewport)
    page.fill("#id_username", "a11y")
    page.fill("#id_password", "a11y-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/dashboard/**")
    page.wait_for_timeout(1_000)
    check(page, f"dashboard-{'phone' if viewport is PHONE else 'desktop'}", site.shots, False)
    page.close()


# The widest row the peers card shows: the real connection, told to be signaled through the
# mesh and an elected supernode, with a day's uptime and hundreds of MB each way. The page
# renders it itself (ui/status.js and swarm.css); only the figures it reads are changed.
WIDEST_ROW = """() => {
  const swarm = window.swarm;
  const real = swarm.connectedPeers.bind(swarm);
  const MB = 1024 * 1024;
  swarm.viaOf = () => "mesh";
  swarm.supernodes.isSupernode = () => true;
  swarm.connectedPeers = () => real().map((p) => ({
    ...p, rtt: 1234, loss: 0.37, bytesOut: 987.6 * MB, bytesIn: 876.5 * MB,
    since: swarm.clock() - (23 * 3600 + 59 * 60) * 1000,
  }));
}"""

PEERS_BOX = """() => {
  const card = document.getElementById("peers-card");
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
  };
  const c = card.getBoundingClientRect();
  const style = getComputedStyle(card);
  return {
    card: box(card),
    content: {
      left: c.left + card.clientLeft + parseFloat(style.paddingLeft),
      right: c.left + card.clientLeft + card.clientWidth - parseFloat(style.paddingRight),
    },
    scrollWidth: card.scrollWidth,
    clientWidth: card.clientWidth,
    table: box(card.querySelector("table.peers")),
    buttons: [...card.querySelectorAll("#peer-rows button.block-peer")].map(box),
  };
}"""


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_peers_table_keeps_to_its_card(
    site: Site,  # noqa: F811
    viewport: dict[str, int],
) -> None:
    a, b = open_at(site, viewport), site.open()
    idb = peer_id(b)  # the full id is in the cell's title; the cell shows 7…4 of its characters
    wait_connected(a, [idb])
    a.wait_for_function("() => Boolean(window.swarm.supernodes)", timeout=20_000)
    a.evaluate(WIDEST_ROW)
    # The next render (every second, or on a change) draws the tagged row.
    row = a.locator(f'#peer-rows tr[data-peer-row][data-peer-id="{idb}"][data-via="mesh"]')
    row.locator(".supernode-tag").wait_for(timeout=10_000)
    first = row.locator("td").first
    assert first.inner_text().endswith("· mesh · supernode")
    assert (first.get_attribute("title") or "").startswith(idb)
    assert "23h 59m" in row.inner_text()
    assert "987.6 MB" in row.inner_text()

    tag = "laptop" if viewport is LAPTOP else "phone"
    a.locator("#peers-card").screenshot(path=str(site.shots / f"a11y-peers-{tag}.png"))
    got = a.evaluate(PEERS_BOX)
    assert got["buttons"], "the row has its Block button"
    card, content = got["card"], got["content"]
    outside = [
        button
        for button in got["buttons"]
        if button["left"] < content["left"] - 0.5
        or button["right"] > content["right"] + 0.5
        or button["top"] < card["top"]
        or button["bottom"] > card["bottom"]
    ]
    assert outside == [], f"Block buttons reach out of the peers card: {got}"
    assert got["table"]["right"] <= content["right"] + 0.5, f"the table overflows the card: {got}"
    assert got["scrollWidth"] <= got["clientWidth"], f"the peers card scrolls sideways: {got}"
    if viewport is PHONE:
        assert overflowing(a) == []
    assert axe_violations(a) == [], f"peers-{tag}"
    for page in (a, b):
        page.close()
