"""The cards that redraw on a timer change the DOM only where their content changed.

Every page redraws its peers table, feed, outbox and guardian lists every second. They were
rebuilt whole each time: style, layout and paint on every page, every second, growing with
the feed, and on a 2-core machine taken from the transfers and page starts beside them
(docs/browser.md "Redrawing"). `patch()` in ui/dom.js keeps what did not change; the first
test checks it on its own in Chromium, the second on a whole page with a post and a peer.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import new_context
from tests.browser.content_support import (  # noqa: F401
    Site,
    peer_id,
    site,
    wait_connected,
)
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PATCH = """async () => {
  const { el, patch } = await import("/static/swarm/ui/dom.js");
  const list = document.createElement("ul");
  document.body.append(list);
  const calls = [];
  const rows = (text, tag, onclick) => [
    el("li", { "data-id": "a", class: tag }, `row ${text}`,
      el("button", { type: "button", onclick }, "Go")),
    el("li", { "data-id": "b" }, "second"),
    "a text node",
  ];
  const records = [];
  const observer = new MutationObserver((r) => records.push(...r));
  const step = async (name, children) => {
    const all = { subtree: true, childList: true, characterData: true, attributes: true };
    observer.observe(list, all);
    patch(list, children);
    await new Promise((r) => setTimeout(r, 0));
    observer.takeRecords().forEach((r) => records.push(r));
    observer.disconnect();
    const kinds = records.splice(0).map((r) => r.type);
    return { name, kinds, html: list.innerHTML };
  };
  const out = [];
  out.push(await step("first", rows("1", "x", () => calls.push("first"))));
  const firstButton = list.querySelector("button");
  out.push(await step("same", rows("1", "x", () => calls.push("second"))));
  list.querySelector("button").click();
  const kept = list.querySelector("button") === firstButton;
  out.push(await step("text", rows("2", "x", () => calls.push("third"))));
  out.push(await step("attribute", rows("2", "y", () => calls.push("fourth"))));
  list.querySelector("button").click();
  // Another thing in the same place (the list shifted): that row is replaced, not changed
  // into the other (a click under way must not land on another peer's row).
  const before = list.firstElementChild;
  const other = rows("2", "y", null);
  other[0].dataset.id = "c";
  out.push(await step("shifted", other));
  const replaced = list.firstElementChild !== before && list.firstElementChild.dataset.id === "c";
  out.push(await step("shorter", rows("2", "y", null).slice(0, 2)));
  out.push(await step("empty", []));
  return { out, calls, kept, replaced };
}"""


def test_patch_touches_only_what_changed(beacon_server: Server, browser: Browser) -> None:
    context = new_context(browser, beacon_server.url)
    page = context.new_page()
    page.goto(beacon_server.url + "/")
    result: dict[str, Any] = page.evaluate(PATCH)
    context.close()
    steps = {s["name"]: s for s in result["out"]}
    assert steps["first"]["kinds"] == ["childList"]
    # Drawn again with the same content: no change at all; the button is the same node,
    # and a click runs the handler of the latest draw (what it closes over is current).
    assert steps["same"]["kinds"] == []
    assert result["kept"] is True
    # One text changed: one text node's data, nothing else.
    assert steps["text"]["kinds"] == ["characterData"]
    assert "row 2" in steps["text"]["html"]
    assert steps["attribute"]["kinds"] == ["attributes"]
    assert 'class="y"' in steps["attribute"]["html"]
    assert result["calls"] == ["second", "fourth"]
    assert steps["shifted"]["kinds"] == ["childList"]
    assert result["replaced"] is True
    # Another count of children: replaced.
    assert steps["shorter"]["kinds"] == ["childList"]
    assert "a text node" not in steps["shorter"]["html"]
    assert steps["empty"]["html"] == ""


WATCH = """async (ms) => {
  const seen = {};
  const observers = ["post-list", "peer-rows", "net-stats", "guardians", "outbox"].map((id) => {
    seen[id] = 0;
    const o = new MutationObserver((r) => {
      seen[id] += r.filter((x) => x.type === "childList").length;
    });
    o.observe(document.getElementById(id), { subtree: true, childList: true });
    return o;
  });
  await new Promise((r) => setTimeout(r, ms));
  observers.forEach((o) => o.disconnect());
  return seen;
}"""


def test_an_idle_page_rebuilds_no_list(site: Site) -> None:  # noqa: F811
    a, b = site.open(), site.open()
    wait_connected(a, [peer_id(b)])
    a.wait_for_selector("#posts:not([hidden])")
    a.locator("#post-text").fill("a post that stays")
    a.locator("#post-send").click()
    a.wait_for_selector("#post-list .post")
    a.wait_for_function("() => document.querySelectorAll('#peer-rows tr').length >= 1")
    # 2.5 s: two of the one-second redraws, and the figures and durations that change
    # meanwhile change as text, not as new rows.
    seen = a.evaluate(WATCH, 2500)
    assert seen == {"post-list": 0, "peer-rows": 0, "net-stats": 0, "guardians": 0, "outbox": 0}
    assert a.locator("#post-list .post .post-text").inner_text() == "a post that stays"
