"""Errands in Chromium (docs/protocol.md "Errands"): a page at its mesh maximum (here 0: it
takes no one) still takes the download of a file it shared, because the share link names it
as a holder and the downloading page dials it for that manifest; a plain dial ("Connect by
id") still gets bye mesh_full."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from tests.browser.content_support import Site, diagnostics, peer_id, share_file, site  # noqa: F401

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_a_full_page_takes_the_download_of_its_file_and_refuses_a_plain_dial(
    site: Site,  # noqa: F811
    artifacts_dir: Path,
) -> None:
    sharer = site.open()
    sid = peer_id(sharer)
    # Full from the start: it dials nobody and takes nobody beyond its maximum of 0.
    sharer.evaluate(
        "() => { const m = window.swarm.node.mesh; m.options.target = 0; m.options.max = 0; }"
    )
    data = random.Random(5).randbytes(700_000)
    path = artifacts_dir / "errand-file.bin"
    path.write_bytes(data)
    manifest_id, _ = share_file(sharer, path)
    link = sharer.locator("#share-link").get_attribute("href") or ""
    assert f"h={sid}" in link, "the link names the sharer as a holder"

    # A plain dial is refused: the page is full.
    other = site.open()
    oid = peer_id(other)
    other.wait_for_function("() => window.swarm.signaling?.state === 'open'", timeout=30_000)
    other.evaluate("(id) => window.swarm.connectTo(id)", sid)
    sharer.wait_for_function(
        "(id) => window.swarm.diagnostics.list('debug')"
        ".some((e) => e.code === 'refused_mesh_full' && e.peerId === id)",
        arg=oid,
        timeout=30_000,
    )

    # The link's page dials the sharer for the manifest: taken beyond the maximum.
    downloader = site.open(link)
    did = peer_id(downloader)
    downloader.wait_for_function(
        "(id) => window.swarm.files.files.get(id)?.state === 'complete'",
        arg=manifest_id,
        timeout=60_000,
    )
    record = downloader.evaluate(
        "(id) => { const r = window.swarm.files.files.get(id); "
        "return {sha: r.sha256, sources: r.sources}; }",
        manifest_id,
    )
    assert record["sha"] == hashlib.sha256(data).hexdigest()
    assert sid in record["sources"]
    taken = [
        (e["peerId"], e["message"]) for e in diagnostics(sharer) if e["code"] == "errand_taken"
    ]
    assert (did, "taken beyond the maximum for content") in taken, taken
    assert oid not in [p for p, _ in taken], "the plain dial was not taken"
    assert not other.evaluate(
        "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)", sid
    )
