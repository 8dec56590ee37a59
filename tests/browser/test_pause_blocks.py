"""Pause and blocks through the Controls card (issue 19, docs/browser.md "Pause and blocks"):
a block by id of a peer never met refuses that peer's dial; pausing inbound refuses dials
yet the page still dials out; a timed pause and a timed block lift themselves, also across
a reload; the block list exported from one profile and imported into a fresh one is the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.content_support import Site, diagnostics, peer_id, site  # noqa: F401
from tests.browser.test_accessibility import DESKTOP, PHONE, axe_violations, overflowing

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

STATUS = "#swarm-status"
OTHER_ID = "p" + "a" * 32  # a well-formed peer id nobody has


def connected_ids(page: Page) -> set[str]:
    return set(page.evaluate("() => window.swarm.connectedPeers().map((p) => p.peerId)"))


def events(page: Page, code: str, peer: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in diagnostics(page) if e["code"] == code and (peer is None or e["peerId"] == peer)
    ]


def wait_event(page: Page, code: str, peer: str, timeout_s: float = 30) -> None:
    page.wait_for_function(
        "([code, peer]) => window.swarm.diagnostics.list('debug')"
        ".some((e) => e.code === code && e.peerId === peer)",
        arg=[code, peer],
        timeout=timeout_s * 1000,
    )


def wait_signaling(page: Page) -> None:
    page.wait_for_function("() => window.swarm?.signaling?.state === 'open'", timeout=20_000)


def block_rows(page: Page) -> list[dict[str, str]]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('#blocked-list .block-item')].map((li) => ({
                 peerId: li.dataset.peerId, direction: li.dataset.direction,
                 until: li.dataset.until, text: li.textContent }))"""
        )
    )


def open_blocks(page: Page) -> None:
    if not page.locator("#blocked-details").evaluate("(d) => d.open"):
        page.locator("#blocked-details summary").click()


def open_pause(page: Page) -> None:
    if not page.locator("#pause-details").evaluate("(d) => d.open"):
        page.locator("#pause-details summary").click()


def block_in_ui(
    page: Page, peer: str, direction: str = "both", reason: str = "", minutes: str | None = None
) -> None:
    open_blocks(page)
    page.locator("#block-peer-id").fill(peer)
    page.locator("#block-direction").select_option(direction)
    if minutes is None:
        page.locator("#block-for").select_option("")
    else:
        page.locator("#block-for").select_option("custom")
        page.locator("#block-minutes").fill(minutes)
    page.locator("#block-reason").fill(reason)
    page.locator("#block-go").click()


def pause_in_ui(page: Page, direction: str, minutes: str | None = None) -> None:
    open_pause(page)
    page.locator("#pause-direction").select_option(direction)
    if minutes is None:
        page.locator("#pause-for").select_option("")
    else:
        page.locator("#pause-for").select_option("custom")
        page.locator("#pause-minutes").fill(minutes)
    page.locator("#pause-go").click()


def stored_settings(page: Page) -> dict[str, Any]:
    return dict(page.evaluate("() => window.swarm.store.getSettings()"))


def test_a_block_by_id_refuses_a_peer_never_met_and_the_list_moves_to_a_fresh_profile(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    # B's identity exists first, in a community of its own: A has never met it.
    b = site.open(f"{site.server.url}/?community={site.community}-alone")
    idb = peer_id(b)
    a = site.open()
    ida = peer_id(a)

    # A malformed id is refused with a stable code, and nothing is blocked.
    block_in_ui(a, "not a peer id")
    a.wait_for_selector("#block-error[data-error='bad_peer_id']")
    assert a.locator("#block-error").inner_text().startswith("bad_peer_id")
    block_in_ui(a, ida)
    a.wait_for_selector("#block-error[data-error='own_peer_id']")
    assert a.locator("#blocked-count").inner_text() == "0"

    block_in_ui(a, idb, "both", "spam from this one")
    a.wait_for_selector(f'#blocked-list .block-item[data-peer-id="{idb}"]')
    assert a.locator("#block-error").is_hidden()
    assert a.locator("#blocked-count").inner_text() == "1"
    [row] = block_rows(a)
    assert (row["direction"], row["until"]) == ("both", "")
    assert "spam from this one" in row["text"]

    # B comes to A's community: it finds A through the beacon and dials it, and dials it by
    # id from its page too. A refuses with bye "blocked"; the two never connect.
    b.goto(site.url)
    assert peer_id(b) == idb
    wait_signaling(b)
    b.locator("#peer-connect").fill(ida)
    b.locator("#peer-connect-go").click()
    wait_event(b, "peer_bye_blocked", ida)
    wait_event(a, "refused_blocked", idb)
    b.wait_for_timeout(2_000)
    assert idb not in connected_ids(a)
    assert ida not in connected_ids(b)
    assert not events(a, "peer_open", idb)
    a.screenshot(path=str(site.shots / "blocks-refused.png"))

    # The block survives a reload.
    a.reload()
    peer_id(a)
    open_blocks(a)
    a.wait_for_selector(f'#blocked-list .block-item[data-peer-id="{idb}"]')

    # Export: a JSON file with the block.
    with a.expect_download(timeout=10_000) as saving:
        a.locator("#blocks-export").click()
    exported = tmp_path / "blocks.json"
    saving.value.save_as(exported)
    data = json.loads(exported.read_text())
    assert data["format"] == "swarm-blocks"
    assert [(x["peer_id"], x["direction"], x["reason"]) for x in data["blocks"]] == [
        (idb, "both", "spam from this one")
    ]

    # A fresh profile: a malformed file is refused in words and changes nothing; the export
    # merges with what it has.
    c = site.open()
    peer_id(c)
    block_in_ui(c, OTHER_ID, "outbound")
    c.wait_for_selector(f'#blocked-list .block-item[data-peer-id="{OTHER_ID}"]')
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "blocks": [*data["blocks"], {"peer_id": "nope"}]}))
    c.locator("#blocks-import-file").set_input_files(str(bad))
    c.locator("#blocks-import-go").click()
    c.wait_for_selector("#blocks-result[data-state='failed']")
    assert c.locator("#blocks-result").get_attribute("data-error") == "bad_blocks_file"
    assert "block 1: bad_peer_id" in c.locator("#blocks-result").inner_text()
    assert [r["peerId"] for r in block_rows(c)] == [OTHER_ID]

    c.locator("#blocks-import-file").set_input_files(str(exported))
    c.locator("#blocks-import-go").click()
    c.wait_for_selector("#blocks-result[data-state='imported']")
    assert "1 added" in c.locator("#blocks-result").inner_text()
    rows = {r["peerId"]: r for r in block_rows(c)}
    assert set(rows) == {OTHER_ID, idb}
    assert rows[idb]["direction"] == "both"
    assert "spam from this one" in rows[idb]["text"]
    assert c.locator("#blocked-count").inner_text() == "2"
    # Kept in the settings store: a reload shows the same list.
    c.reload()
    peer_id(c)
    assert {r["peerId"] for r in block_rows(c)} == {OTHER_ID, idb}
    c.screenshot(path=str(site.shots / "blocks-imported.png"))

    # Lifting a block from the list.
    open_blocks(c)
    c.locator(f'#blocked-list .block-item[data-peer-id="{OTHER_ID}"] button.unblock').click()
    c.wait_for_function("() => document.querySelectorAll('#blocked-list .block-item').length === 1")
    assert [b["peerId"] for b in stored_settings(c)["blocks"]] == [idb]
    for page in (a, b, c):
        page.close()


def test_pausing_inbound_refuses_dials_yet_the_page_dials_out(site: Site) -> None:  # noqa: F811
    a = site.open()
    ida = peer_id(a)
    wait_signaling(a)
    pause_in_ui(a, "inbound")
    a.wait_for_selector("#pause-state[data-direction='inbound']")
    assert a.locator("#pause-state").get_attribute("data-until") == ""
    assert "Paused inbound until you resume" in a.locator("#pause-state").inner_text()
    assert "paused" in (a.locator(STATUS).get_attribute("data-reasons") or "").split()
    assert "paused inbound" in a.locator(f"{STATUS} .state-reason").inner_text()
    assert a.locator("#toggle-pause").is_checked()

    # B dials A (found through the beacon, and by id from its page): refused, with the reason.
    b = site.open()
    idb = peer_id(b)
    wait_signaling(b)
    b.locator("#peer-connect").fill(ida)
    b.locator("#peer-connect-go").click()
    wait_event(b, "peer_bye_paused", ida)
    wait_event(a, "refused_paused", idb)
    assert ida not in connected_ids(b)

    # A still dials out: Connect by id to B opens a connection A dialed.
    a.locator("#peer-connect").fill(idb)
    a.locator("#peer-connect-go").click()
    a.wait_for_function(
        "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id && p.outbound)",
        arg=idb,
        timeout=30_000,
    )
    assert a.locator(STATUS).get_attribute("data-state") == "degraded"
    a.screenshot(path=str(site.shots / "pause-inbound.png"))

    # The pause survives a reload; Resume ends it.
    a.reload()
    assert peer_id(a) == ida
    a.wait_for_selector("#pause-state[data-direction='inbound']")
    assert stored_settings(a)["pause"] == {"direction": "inbound", "until": None}
    assert a.evaluate("() => window.swarm.node.mesh.pause.inbound")
    a.locator("#pause-resume").click()
    a.wait_for_selector("#pause-state[data-direction='']", state="attached")
    assert "paused" not in (a.locator(STATUS).get_attribute("data-reasons") or "").split()
    assert not a.locator("#toggle-pause").is_checked()
    assert stored_settings(a)["pause"] is None
    for page in (a, b):
        page.close()


def test_a_timed_pause_and_a_timed_block_lift_themselves_across_a_reload(
    site: Site,  # noqa: F811
) -> None:
    a = site.open()
    ida = peer_id(a)
    # 0.25 minutes: the custom duration's minimum is 0.1 (docs/browser.md).
    pause_in_ui(a, "outbound", "0.25")
    a.wait_for_selector("#pause-state[data-direction='outbound']")
    until = int(a.locator("#pause-state").get_attribute("data-until") or 0)
    now = a.evaluate("() => Date.now()")
    assert 10_000 < until - now <= 15_000
    assert "until" in a.locator("#pause-state").inner_text()
    block_in_ui(a, OTHER_ID, "inbound", "for a moment", "0.2")
    a.wait_for_selector(f'#blocked-list .block-item[data-peer-id="{OTHER_ID}"]')
    [row] = block_rows(a)
    assert row["direction"] == "inbound"
    assert row["until"] != ""
    # A duration under the minimum is refused with a stable code.
    pause_in_ui(a, "both", "0.01")
    a.wait_for_selector("#pause-error[data-error='bad_deadline']")
    assert a.locator("#pause-state").get_attribute("data-direction") == "outbound"

    # Reload: the deadline is stored, not the duration.
    a.reload()
    assert peer_id(a) == ida
    a.wait_for_selector("#pause-state[data-direction='outbound']")
    assert int(a.locator("#pause-state").get_attribute("data-until") or 0) == until
    assert a.evaluate("(id) => window.swarm.node.mesh.blocked.has(id)", OTHER_ID)
    # Both end at their time with no click.
    a.wait_for_selector("#pause-state[data-direction='']", state="attached", timeout=30_000)
    assert a.evaluate("() => Date.now()") >= until
    a.wait_for_function(
        "() => document.querySelectorAll('#blocked-list .block-item').length === 0",
        timeout=30_000,
    )
    assert "paused" not in (a.locator(STATUS).get_attribute("data-reasons") or "").split()
    assert events(a, "pause_ended")
    assert events(a, "block_expired", OTHER_ID)
    a.wait_for_function(
        "() => window.swarm.store.getSettings()"
        ".then((s) => s.pause === null && s.blocks.length === 0)"
    )
    a.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_pause_and_block_controls_work_by_keyboard_and_pass_axe(
    site: Site,  # noqa: F811
    viewport: dict[str, int],
) -> None:
    tag = "phone" if viewport is PHONE else "desktop"
    a = site.open()
    a.set_viewport_size(viewport)
    peer_id(a)
    # Keyboard only: open the block list, type an id, Enter blocks it.
    a.locator("#blocked-details summary").focus()
    a.keyboard.press("Enter")
    a.keyboard.press("Tab")
    assert a.evaluate("() => document.activeElement.id") == "block-peer-id"
    a.keyboard.type(OTHER_ID)
    a.keyboard.press("Enter")
    a.wait_for_selector(f'#blocked-list .block-item[data-peer-id="{OTHER_ID}"]')
    # The pause form: both ways for a custom number of minutes, by keyboard.
    a.locator("#pause-details summary").focus()
    a.keyboard.press("Enter")
    a.keyboard.press("Tab")
    assert a.evaluate("() => document.activeElement.id") == "pause-direction"
    a.locator("#pause-for").select_option("custom")
    assert a.evaluate("() => document.activeElement.id") == "pause-minutes"
    a.keyboard.type("30")
    a.keyboard.press("Enter")
    a.wait_for_selector("#pause-state[data-direction='both']")
    assert a.locator("#pause-state").get_attribute("data-until") != ""
    a.wait_for_timeout(500)
    assert axe_violations(a) == []
    if viewport is PHONE:
        assert overflowing(a) == []
    a.locator("#controls-card").screenshot(path=str(site.shots / f"pause-blocks-{tag}.png"))
    # Lift and resume by keyboard too.
    a.locator(f'#blocked-list .block-item[data-peer-id="{OTHER_ID}"] button.unblock').focus()
    a.keyboard.press("Enter")
    a.wait_for_function("() => document.querySelectorAll('#blocked-list .block-item').length === 0")
    a.locator("#pause-resume").focus()
    a.keyboard.press("Enter")
    a.wait_for_selector("#pause-state[data-direction='']", state="attached")
    a.close()
