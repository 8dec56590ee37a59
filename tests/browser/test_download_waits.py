"""A download whose only holder leaves waits for it (the card says so, `#download
[data-waiting=holders_gone]`) and finishes when the holder comes back; it never gives up
while the page is open (the waiting itself, for any length of time, is shown with a fake
clock in tests/vectors/transfer.json and tests/js/transfer*.test.js)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from tests.browser.content_support import Site, peer_id, site  # noqa: F401
from tests.browser.test_files import share, wait_download

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SIZE = 8 * 1024 * 1024


def test_a_download_waits_for_its_holder_to_come_back_and_completes(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = random.Random(11).randbytes(SIZE)
    path = tmp_path / "waiting.bin"
    path.write_bytes(data)
    a = site.open()
    a_id = peer_id(a)
    a.evaluate("() => { window.swarm.files.uploader.limitBps = 2_000_000; }")
    link = share(a, path)
    b = site.open(link)
    peer_id(b)
    b.wait_for_function(
        "() => (window.swarm.files.progressOf(document.querySelector('#download').dataset"
        ".manifestId)?.held ?? 0) > 10",
        timeout=30_000,
    )
    # The only holder leaves (its profile, with the file, stays).
    context = a.context
    a.close()
    b.wait_for_selector("#download[data-waiting=holders_gone]", timeout=20_000)
    assert b.locator("#download").get_attribute("data-state") == "fetching"
    message = b.locator("#download-message").inner_text()
    assert "waiting for a holder to come back" in message
    b.wait_for_timeout(3_000)
    assert b.locator("#download").get_attribute("data-state") == "fetching", "no giving up"
    # It comes back (same identity, the file in its storage) at full speed.
    a2 = site.open(context=context)
    assert peer_id(a2) == a_id
    state = wait_download(b, 90)
    assert state["sha256"] == hashlib.sha256(data).hexdigest()
    assert b.locator("#download").get_attribute("data-waiting") is None
