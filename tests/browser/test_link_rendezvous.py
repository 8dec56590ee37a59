"""A share link's page dials the link's holder before it asks the beacons (docs/browser.md
"Bootstrap and rendezvous"): its first rendezvous round waits LINK_RENDEZVOUS_DELAY_MS (1 s)
while the holder connects and the download starts; a link whose sharer has left still finds
the file at another holder through that round."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.content_support import Site, diagnostics, peer_id, site  # noqa: F401
from tests.browser.test_files import share, wait_download

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SIZE = 256 * 1024


def first(entries: list[dict[str, Any]], code: str) -> dict[str, Any]:
    """The earliest entry with ``code`` (the page lists its diagnostics newest first)."""
    found = [e for e in entries if e["code"] == code]
    assert found, f"no {code} in {[e['code'] for e in entries]}"
    return min(found, key=lambda e: e["ts"])


def shared(site: Site, tmp_path: Path, seed: int) -> tuple[bytes, Page, str]:  # noqa: F811
    """A fresh page that shared SIZE random bytes: the bytes, the page, its link (naming
    that page alone as the holder)."""
    data = random.Random(seed).randbytes(SIZE)
    path = tmp_path / f"shared-{seed}.bin"
    path.write_bytes(data)
    page = site.open()
    peer_id(page)
    return data, page, share(page, path)


def test_a_link_page_reaches_the_holder_before_the_beacons(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    data, _, link = shared(site, tmp_path, 21)
    b = site.open(link)
    state = wait_download(b)
    assert state["sha256"] == hashlib.sha256(data).hexdigest()
    b.wait_for_function(
        "() => window.swarm.diagnostics.list('debug').some((e) => e.code === 'beacon_ok')",
        timeout=20_000,
    )
    entries = diagnostics(b)
    started = first(entries, "cache_loaded")["ts"]  # logged as the holder is dialed
    beacons = first(entries, "beacon_ok")["ts"]
    assert beacons - started >= 800, f"the beacons were asked {beacons - started:.0f} ms in"


def test_a_link_whose_holder_left_finds_another_through_the_beacons(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    data, a, link = shared(site, tmp_path, 22)
    b = site.open(link)
    assert wait_download(b)["state"] == "complete"
    b_id = peer_id(b)
    a.close()  # the sharer leaves, with a goodbye
    c = site.open(link)
    state = wait_download(c, 60)
    assert state["sha256"] == hashlib.sha256(data).hexdigest()
    sources = c.evaluate(
        "() => window.swarm.files.files.get(document.querySelector('#download')"
        ".dataset.manifestId).sources"
    )
    assert set(sources) == {b_id}, sources
