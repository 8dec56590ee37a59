"""Encrypted file sharing between Chromium pages (DESIGN sections 7 and 9).

Page A shares a 20 MiB file; B fetches it from the share link; C fetches it from A and B at
once (both serve chunks) and finishes from B alone after A closes mid-transfer; D fetches it
while B corrupts one chunk it serves (a page whose sendEncoded() is altered): the chunk is refused,
fetched again from another holder and B is penalised. Every download ends with the SHA-256
of the plaintext the test computed. The steps run in order on one set of pages.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.content_support import (  # noqa: F401
    Site,
    codes,
    diagnostics,
    peer_id,
    site,
    wait_connected,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SIZE = 20 * 1024 * 1024
CHUNKS = SIZE // 65536
# Pages slow their uploads down so that "mid-transfer" lasts long enough to act in.
SLOW_BPS = 3_000_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("files") / "field-notes.bin"
    data = random.Random(7).randbytes(SIZE)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def share(page: Page, path: Path) -> str:
    page.wait_for_selector("#files:not([hidden])")
    page.locator("#share-file").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('#share-link')?.href.includes('/f/')", timeout=60_000
    )
    return str(page.locator("#share-link").get_attribute("href"))


def wait_download(page: Page, timeout_s: float = 90) -> dict[str, Any]:
    page.wait_for_function(
        "() => ['complete', 'failed'].includes(document.querySelector('#download')?.dataset.state)",
        timeout=timeout_s * 1000,
    )
    node = page.locator("#download")
    state = {
        "state": node.get_attribute("data-state"),
        "sha256": node.get_attribute("data-sha256"),
        "reason": node.get_attribute("data-reason"),
    }
    if state["state"] != "complete":
        # What the page saw, to tell a product fault from a slow machine.
        recent = [
            f"{e.get('source')}/{e.get('code')}: {e.get('message')}"
            for e in diagnostics(page)[-40:]
        ]
        connected = page.evaluate("() => window.swarm.connectedPeers().map((p) => p.peerId)")
        raise AssertionError(
            f"{state}; connected to {connected}; diagnostics:\n" + "\n".join(recent)
        )
    return state


def record(page: Page, manifest_id: str) -> dict[str, Any]:
    return dict(
        page.evaluate(
            "(id) => { const r = window.swarm.files.files.get(id);"
            " return {state: r.state, held: r.held, sources: r.sources ?? {}, sha256: r.sha256}; }",
            manifest_id,
        )
    )


def served_to(page: Page, peer: str) -> int:
    return int(page.evaluate("(id) => window.swarm.files.uploader.stats.servedTo[id] ?? 0", peer))


def held_now(page: Page, manifest_id: str) -> int:
    """Chunks of the file the page holds: the download's count while it runs, all once done."""
    return int(
        page.evaluate(
            """([id, all]) => window.swarm.files.progressOf(id)?.held
                 ?? (window.swarm.files.files.get(id)?.state === 'complete' ? all : 0)""",
            [manifest_id, CHUNKS],
        )
    )


def test_a_shared_file_reaches_b_then_c_from_two_holders_then_d_despite_a_bad_chunk(
    site: Site,  # noqa: F811
    big_file: tuple[Path, str],
) -> None:
    path, sha = big_file
    a = site.open()
    pid_a = peer_id(a)
    link = share(a, path)
    manifest_id = link.split("/f/")[1].split("?")[0].split("#")[0]
    assert "#k=" in link
    a.screenshot(path=str(site.shots / "files-shared.png"))

    # B opens the link: a fresh profile that joins the community and fetches from A.
    b = site.open(link)
    pid_b = peer_id(b)
    assert wait_download(b)["sha256"] == sha
    assert record(b, manifest_id)["sources"] == {pid_a: CHUNKS}
    b.screenshot(path=str(site.shots / "files-download-complete.png"))

    # C fetches from A and B at once; both upload slowly so that A can leave mid-transfer.
    for page in (a, b):
        page.evaluate("(bps) => { window.swarm.files.uploader.limitBps = bps; }", SLOW_BPS)
    c = site.open(link)
    pid_c = peer_id(c)
    c.wait_for_function(
        "(id) => (window.swarm.files.progressOf(id)?.sources ?? [])"
        ".filter((s) => s.received > 0).length === 2",
        arg=manifest_id,
        timeout=60_000,
    )
    c.wait_for_function(
        "([id, n]) => (window.swarm.files.progressOf(id)?.held ?? 0) >= n",
        arg=[manifest_id, CHUNKS // 4],
        timeout=60_000,
    )
    from_a_before_close = served_to(a, pid_c)
    assert from_a_before_close > 0
    assert served_to(b, pid_c) > 0
    a.close()
    held_at_close = held_now(c, manifest_id)
    assert held_at_close < CHUNKS, "A closed mid-transfer"
    c.screenshot(path=str(site.shots / "files-two-sources.png"))
    assert wait_download(c)["sha256"] == sha
    sources = record(c, manifest_id)["sources"]
    assert sources[pid_a] > 0
    assert sources[pid_b] > 0
    assert sources[pid_a] + sources[pid_b] == CHUNKS
    # Whatever C lacked when A left came from B (how much each sent before depends on the load).
    assert sources[pid_b] >= CHUNKS - held_at_close, "B served the rest after A left"

    # D: B corrupts the first chunk it sends to D (its page code is altered for the test).
    b.evaluate("() => { window.swarm.files.uploader.limitBps = 0; }")
    c.evaluate("() => { window.swarm.files.uploader.limitBps = 0; }")
    d = site.open(site.url)
    pid_d = peer_id(d)
    # D knows B and C (its peer cache) before it opens the link and reconnects to fetch.
    wait_connected(d, [pid_b, pid_c], timeout_s=60)
    b.evaluate(
        """(victim) => {
          const send = window.swarm.sendEncoded.bind(window.swarm);
          window.corrupted = 0;
          window.swarm.sendEncoded = (peerId, bytes, t) => {
            if (peerId === victim && t === 'chunk' && window.corrupted === 0) {
              bytes = bytes.slice();
              bytes[bytes.length - 100] ^= 0xff; // inside the chunk's data
              window.corrupted = 1;
            }
            return send(peerId, bytes, t);
          };
        }""",
        pid_d,
    )
    d.goto(link)
    assert wait_download(d)["sha256"] == sha
    assert b.evaluate("() => window.corrupted") == 1, "B served D at least one chunk"
    d_sources = record(d, manifest_id)["sources"]
    assert d_sources.get(pid_c, 0) > 0, "the corrupted chunk (and the rest) came from C"
    mismatch = [
        e
        for e in d.evaluate("() => window.swarm.diagnostics.list('debug')")
        if e["code"] == "chunk_mismatch"
    ]
    assert mismatch
    assert mismatch[0]["peerId"] == pid_b
    assert d.evaluate("() => window.swarm.node.stats.dropped.chunk_mismatch") == 1
    d.screenshot(path=str(site.shots / "files-after-bad-chunk.png"))
