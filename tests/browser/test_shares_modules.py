"""The identity share modules load in real Chromium as plain ES modules (no bundler) and agree
with Python there: the official SLIP-39 vectors, the shared vectors, and a split made in the
page that Python combines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from peers.protocol.shares import combine_shares
from tests.browser.conftest import new_context
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

VECTORS = Path(__file__).parent.parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


SCRIPT = """async ({ official, shares }) => {
  const s = await import("/static/swarm/protocol/shares.js");
  const slip39 = await import("/static/swarm/protocol/slip39.js");
  const { fromHex, hex } = await import("/static/swarm/protocol/encoding.js");
  const outcome = async (fn) => {
    try { return hex(await fn()); } catch (e) { return e.code ?? String(e); }
  };
  const out = { official: [], valid: [], invalid: [] };
  for (const [, mnemonics] of official.vectors) {
    out.official.push(await outcome(() =>
      slip39.recoverMasterSecret(mnemonics.map(slip39.decodeMnemonic), official.passphrase)));
  }
  for (const c of shares.combine.valid) {
    out.valid.push(await outcome(() => s.combineShares(c.shares, { peerId: c.peer_id })));
  }
  for (const c of shares.combine.invalid) {
    out.invalid.push(await outcome(() => s.combineShares(c.shares, { peerId: c.peer_id })));
  }
  out.split = await s.splitSeed(fromHex(shares.seed_hex), { threshold: 2, count: 3 });
  return out;
}"""


def test_share_modules_match_python_in_chromium(beacon_server: Server, browser: Browser) -> None:
    official, shares = load("slip39_official.json"), load("shares.json")
    context = new_context(browser, beacon_server.url)
    page = context.new_page()
    page.goto(beacon_server.url + "/")
    out = page.evaluate(SCRIPT, {"official": official, "shares": shares})
    context.close()
    for vector, got in zip(official["vectors"], out["official"], strict=True):
        description, _, secret_hex, _ = vector
        if secret_hex:
            assert got == secret_hex, description
        else:
            assert got in {
                "bad_share",
                "share_set_mismatch",
                "duplicate_share",
                "bad_digest",
                "too_few_shares",
            }, f"{description}: {got}"
    assert out["valid"] == [c["seed_hex"] for c in shares["combine"]["valid"]]
    assert out["invalid"] == [c["error"] for c in shares["combine"]["invalid"]]
    split = out["split"]
    assert len(split) == 3
    for pair in ([split[0], split[1]], [split[2], split[0]]):
        assert combine_shares(pair, peer_id=shares["peer_id"]).hex() == shares["seed_hex"]
