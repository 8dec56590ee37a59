"""The real peerjs client in Chromium, loaded from our static files, signals through our
server: two pages on two web processes (one Redis) open DataConnections with ``raw``,
``json`` and ``binary`` serialization and exchange data both ways.

The test page is written into a document the server served (so it has the server's
origin and loopback address space, and loads /static/ from it) and uses the site's import
map (templates/swarm/_vendor.html).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.template.loader import render_to_string
from playwright.sync_api import Browser, Page

from tests.browser.conftest import new_context
from tests.support.signal import Cluster, start_cluster

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

MODULE = """
import { Peer } from "peerjs";
import * as ed25519 from "/static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "/static/swarm/protocol/encoding.js";
import { makeSignalToken } from "/static/swarm/protocol/signal_token.js";

const OPTIONS = {
  host: location.hostname,
  port: Number(location.port),
  path: "/signal/",
  key: "peerjs",
  secure: false,
  config: { iceServers: [] },
};
window.inbox = [];
window.errors = [];

function describe(value) {
  if (value instanceof ArrayBuffer) return { bytes: Array.from(new Uint8Array(value)) };
  if (ArrayBuffer.isView(value)) {
    return { bytes: Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)) };
  }
  if (Array.isArray(value)) return value.map(describe);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
  }
  return value;
}

const SENT = {
  raw: () => "hello raw \\u00e9",
  json: () => ({ text: "hi json", n: 42, nested: { list: [1, 2, 3] } }),
  binary: () => ({ text: "hi binary", n: 7, bytes: Uint8Array.from([0, 1, 2, 255]) }),
};
const REPLY = {
  raw: (data) => "echo:" + data,
  json: (data) => ({ echo: data, from: "answerer" }),
  binary: (data) => ({ echo: data, extra: Uint8Array.from([9, 8, 7]).buffer }),
};

function start(peer) {
  return new Promise((resolve, reject) => {
    peer.on("open", (id) => resolve(id));
    peer.on("error", (error) => {
      window.errors.push(error.type);
      reject(new Error(`${error.type}: ${error.message}`));
    });
    peer.on("connection", (conn) => {
      conn.on("data", (data) => {
        window.inbox.push({ serialization: conn.serialization, data: describe(data) });
        conn.send(REPLY[conn.serialization](data));
      });
    });
  });
}

window.startPlain = async () => {
  window.peer = new Peer(OPTIONS);  // the id comes from GET /signal/peerjs/id
  return start(window.peer);
};

window.startKeyBound = async () => {
  window.signer = await ed25519.generateSigner();
  const id = await peerIdForKey(window.signer.publicKey);
  const token = await makeSignalToken(window.signer, { now: Date.now() });
  window.peer = new Peer(id, { ...OPTIONS, token });
  return start(window.peer);
};

// A second tab of the same identity: a fresh proof takes the id over at once.
window.reclaim = async () => {
  const id = await peerIdForKey(window.signer.publicKey);
  const token = await makeSignalToken(window.signer, { now: Date.now() + 1 });
  const old = window.peer;
  const lost = new Promise((resolve) => old.on("error", (error) => resolve(error.type)));
  window.peer = new Peer(id, { ...OPTIONS, token });
  const opened = await start(window.peer);
  return { opened, oldError: await lost };
};

window.exchange = (dst, serialization) =>
  new Promise((resolve, reject) => {
    const conn = window.peer.connect(dst, { serialization, reliable: true });
    const timer = setTimeout(() => reject(new Error(`no reply over ${serialization}`)), 20000);
    conn.on("open", () => conn.send(SENT[serialization]()));
    conn.on("data", (data) => {
      clearTimeout(timer);
      resolve(describe(data));
      conn.close();
    });
    conn.on("error", (error) => reject(error));
  });

window.ready = true;
"""


@pytest.fixture(scope="module")
def two_processes(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Cluster]:
    cluster = start_cluster(
        "browser", 2, tmp_path_factory.mktemp("signal-browser"), artifacts_dir, {}, redis=True
    )
    yield cluster
    cluster.stop()


def _page(browser: Browser, origin: str) -> Page:
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        + render_to_string("swarm/_vendor.html")
        + "</head><body><script type='module'>"
        + MODULE
        + "</script></body></html>"
    )
    context = new_context(browser, origin)
    page = context.new_page()
    # A page fulfilled by Playwright itself counts as "public" for Chromium's local network
    # access checks and may not open ws://127.0.0.1; a document from the server may.
    page.goto(origin + "/signal/")
    page.set_content(html)
    page.wait_for_function("window.ready === true", timeout=10_000)
    return page


EXPECTED: dict[str, tuple[Any, Any]] = {
    # serialization: (what the answerer received, what the caller got back)
    "raw": ("hello raw \u00e9", "echo:hello raw \u00e9"),
    "json": (
        {"text": "hi json", "n": 42, "nested": {"list": [1, 2, 3]}},
        {"echo": {"text": "hi json", "n": 42, "nested": {"list": [1, 2, 3]}}, "from": "answerer"},
    ),
    "binary": (
        {"text": "hi binary", "n": 7, "bytes": {"bytes": [0, 1, 2, 255]}},
        {
            "echo": {"text": "hi binary", "n": 7, "bytes": {"bytes": [0, 1, 2, 255]}},
            "extra": {"bytes": [9, 8, 7]},
        },
    ),
}


def test_peerjs_pages_on_two_processes_exchange_data_over_every_serialization(
    browser: Browser, two_processes: Cluster, screenshots: Path
) -> None:
    answerer = _page(browser, two_processes.http(0))
    caller = _page(browser, two_processes.http(1))
    try:
        answerer_id = answerer.evaluate("window.startKeyBound()")
        assert answerer_id.startswith("p")
        assert len(answerer_id) == 33
        caller_id = caller.evaluate("window.startPlain()")
        assert len(caller_id) == 36  # a server-issued id

        for serialization, (_, reply) in EXPECTED.items():
            got = caller.evaluate(
                "([dst, s]) => window.exchange(dst, s)", [answerer_id, serialization]
            )
            assert got == reply, serialization
        inbox = answerer.evaluate("window.inbox")
        assert [(m["serialization"], m["data"]) for m in inbox] == [
            (s, received) for s, (received, _) in EXPECTED.items()
        ]

        # The same identity opens again (a reload, a second tab): the id moves at once.
        result = answerer.evaluate("window.reclaim()")
        assert result == {"opened": answerer_id, "oldError": "unavailable-id"}
        got = caller.evaluate("([dst, s]) => window.exchange(dst, s)", [answerer_id, "json"])
        assert got == EXPECTED["json"][1]
    finally:
        caller.screenshot(path=str(screenshots / "peerjs-signal-caller.png"))
        answerer.context.close()
        caller.context.close()
