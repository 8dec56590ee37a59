"""The page people live in (issue 19), through the real UI: a peer known from the peer book
but not connected is listed with why and dialed from the list; the status popover names a
reason and its action works (paused -> Resume by keyboard, signaling down -> Retry now);
node health figures and the signaling endpoint and beacons are shown."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.conftest import new_context
from tests.browser.content_support import Site, peer_id, site, wait_connected  # noqa: F401

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def connected_ids(page: Page) -> set[str]:
    return set(page.evaluate("() => window.swarm.connectedPeers().map((p) => p.peerId)"))


def reasons(page: Page) -> list[str]:
    return str(page.locator("#swarm-status").get_attribute("data-reasons")).split()


def known_row(page: Page, other: str) -> str:
    return f'#known-peers li[data-known-peer][data-peer-id="{other}"]'


def test_a_known_but_unconnected_peer_is_dialed_from_the_list(site: Site) -> None:  # noqa: F811
    a = site.open()
    # A connection limit on A: it dials nobody and takes nobody in, so it only learns B from
    # the beacon (the limit is the mesh's; the page's config refuses a target of 0).
    a.wait_for_function("() => Boolean(window.swarm?.node)", timeout=20_000)
    a.evaluate("() => Object.assign(window.swarm.node.mesh.options, { target: 0, max: 0 })")
    ida = peer_id(a)
    b = site.open()
    idb = peer_id(b)
    row = a.locator(known_row(a, idb))
    # A's next rendezvous round (every 15 s while it has no peer) brings B's ticket.
    expect(row).to_be_visible(timeout=45_000)
    expect(row).to_have_attribute("data-why", "at_limit")
    expect(row.locator(".known-why")).to_have_text("at connection limit (0 of 0)")
    expect(row.locator(".known-meta")).to_contain_text("score")
    assert idb not in connected_ids(a)
    # B tried A and was refused (mesh_full): B lists A as held off.
    b_row = b.locator(known_row(b, ida))
    expect(b_row).to_be_visible(timeout=20_000)
    assert b_row.get_attribute("data-why") in {"held", "at_limit", "never_tried", "not_yet"}
    a.screenshot(path=str(site.shots / "peers-known.png"), full_page=True)

    # Always allow is a toggle kept in the settings.
    allow = row.locator("button.known-allow")
    expect(allow).to_have_attribute("aria-pressed", "false")
    allow.click()
    expect(allow).to_have_attribute("aria-pressed", "true")
    assert idb in a.evaluate("async () => (await window.swarm.store.getSettings()).allowed")

    row.locator("button.known-dial").click()
    wait_connected(a, [idb])
    wait_connected(b, [ida])
    expect(a.locator(f'#peer-rows tr[data-peer-row][data-peer-id="{idb}"]')).to_be_visible()
    expect(a.locator(known_row(a, idb))).to_have_count(0)
    assert a.locator("#swarm-status").get_attribute("data-peer-count") == "1"
    for page in (a, b):
        page.close()


def test_status_popover_names_paused_and_resume_works_by_keyboard(site: Site) -> None:  # noqa: F811
    c, d = site.open(), site.open()
    idc, idd = peer_id(c), peer_id(d)
    wait_connected(c, [idd])
    button = c.locator("#status-details")
    popover = c.locator("#status-popover")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(popover).to_be_hidden()

    c.locator("label:has(#toggle-pause)").click()
    expect(c.locator("#swarm-status")).to_have_attribute("data-reasons", re.compile(r"\bpaused\b"))
    # Keyboard: focus the button, Enter opens, the first action has the focus.
    button.focus()
    c.keyboard.press("Enter")
    expect(popover).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    reason = popover.locator('li.status-reason[data-code="paused"]')
    expect(reason).to_contain_text("paused")
    resume = reason.locator('button.reason-action[data-action="resume"]')
    expect(resume).to_have_text("Resume")
    expect(resume).to_be_focused()
    c.screenshot(path=str(site.shots / "status-popover-paused.png"))
    # Escape closes and gives the focus back to the button.
    c.keyboard.press("Escape")
    expect(popover).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()
    # Open again and resume from the popover: the mesh reconnects.
    c.keyboard.press("Enter")
    expect(resume).to_be_focused()
    c.keyboard.press("Enter")
    expect(c.locator("#swarm-status")).not_to_have_attribute(
        "data-reasons", re.compile(r"\bpaused\b")
    )
    assert c.evaluate("() => window.swarm.node.mesh.paused") is False
    expect(c.locator("#toggle-pause")).not_to_be_checked()
    wait_connected(c, [idd], timeout_s=40)
    wait_connected(d, [idc], timeout_s=40)
    # The popover stayed open and follows the state: paused is gone from it.
    expect(popover).to_be_visible()
    expect(popover.locator('li.status-reason[data-code="paused"]')).to_have_count(0)
    c.keyboard.press("Escape")
    expect(popover).to_be_hidden()

    # Open diagnostics: the popover closes and the diagnostics feed has the focus.
    button.click()
    expect(popover).to_be_visible()
    c.locator("#status-open-diagnostics").click()
    expect(popover).to_be_hidden()
    expect(c.locator("#debug-feed")).to_be_focused()
    for page in (c, d):
        page.close()


def test_health_figures_and_the_signaling_endpoint_and_beacons_are_shown(site: Site) -> None:  # noqa: F811
    e, f = site.open(), site.open()
    ide, idf = peer_id(e), peer_id(f)
    wait_connected(e, [idf])
    wait_connected(f, [ide])
    e.wait_for_timeout(6_000)  # a metrics sample (every 5 s) folds the node's counters in
    endpoint = e.locator("#signal-endpoint")
    expect(endpoint).to_have_attribute("data-state", "open")
    url = e.evaluate("() => window.swarm.signaling.endpoint.url")
    assert url.startswith(site.server.url)
    assert url.endswith("/signal/")
    expect(endpoint.locator(".endpoint-url")).to_have_text(url)
    expect(endpoint.locator(".endpoint-state")).to_contain_text("open")
    beacon = e.locator('#rendezvous-endpoints li[data-source="beacon"]')
    expect(beacon).to_have_count(1)
    expect(beacon).to_have_attribute("data-state", "ok")
    expect(beacon.locator(".endpoint-state")).to_have_text(re.compile(r"^ok · \d+ ms$"))

    def cell(page: Page, metric: str, span: str) -> str:
        selector = f'#health-rows tr[data-metric="{metric}"] td[data-span="{span}"]'
        return page.locator(selector).inner_text()

    for span in ("hour", "day"):
        assert re.fullmatch(r"\d+ min \(\d+ %\)", cell(e, "uptime", span)), cell(e, "uptime", span)
        assert re.fullmatch(r"\d+ % of \d+", cell(e, "rendezvous_ratio", span))
        assert re.fullmatch(r"\d+ ms", cell(e, "beacon_latency", span))
    # Whichever page dialed has a connection success ratio; the other was dialed.
    ratios = [cell(p, "conn_ratio", "hour") for p in (e, f)]
    assert any(re.fullmatch(r"\d+ % of \d+", r) for r in ratios), ratios
    assert re.fullmatch(r"\d+ min", e.locator("#health-session").inner_text())
    e.screenshot(path=str(site.shots / "health-endpoints.png"), full_page=True)
    for page in (e, f):
        page.close()


def test_signaling_down_is_explained_and_retry_now_reconnects_at_once(site: Site) -> None:  # noqa: F811
    """Signaling goes down for G only: the test stands between G and the server's WebSocket
    and refuses it, so G backs off (1, 2, 4, 8 s...); once it lets it through again, Retry
    now in the popover reconnects at once instead of at the end of the back-off."""
    down = {"on": False}
    sockets: list[WebSocketRoute] = []

    def handle(ws: WebSocketRoute) -> None:
        if down["on"]:
            ws.close()
            return
        ws.connect_to_server()
        sockets.append(ws)

    context = new_context(site.browser, site.server.url)
    site.contexts.append(context)
    g = context.new_page()
    g.route_web_socket(re.compile(r".*/signal/.*"), handle)
    g.goto(site.url, wait_until="commit")
    h = site.open()
    idh = peer_id(h)
    wait_connected(g, [idh])
    down["on"] = True
    for ws in sockets:
        ws.close()
    expect(g.locator("#swarm-status")).to_have_attribute(
        "data-reasons", re.compile(r"\bsignaling_down\b"), timeout=20_000
    )
    assert idh in {p["peerId"] for p in g.evaluate("() => window.swarm.connectedPeers()")}
    g.wait_for_function("() => window.swarm.signaling.failures >= 4", timeout=30_000)
    down["on"] = False
    assert "signaling_down" in reasons(g)
    g.locator("#status-details").click()
    reason = g.locator('#status-popover li.status-reason[data-code="signaling_down"]')
    expect(reason).to_contain_text("signaling unreachable")
    retry = reason.locator('button.reason-action[data-action="retry"]')
    expect(retry).to_have_text("Retry now")
    g.screenshot(path=str(site.shots / "status-popover-signaling.png"))
    retry.click()
    g.wait_for_function("() => window.swarm.signaling.state === 'open'", timeout=6_000)
    codes = g.evaluate("() => window.swarm.diagnostics.list('debug').map((e) => e.code)")
    assert "signal_retry_now" in codes, "a pending back-off was cut short"
    expect(g.locator("#swarm-status")).not_to_have_attribute(
        "data-reasons", re.compile(r"\bsignaling_down\b")
    )
    expect(g.locator("#signal-endpoint")).to_have_attribute("data-state", "open")
    for page in (g, h):
        page.close()
