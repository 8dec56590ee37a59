"""File sharing beyond the share link: a key wrapped for one named peer (only that peer can
open it), a download that resumes after a reload, the out-of-space message, a bad link."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from tests.browser.content_support import Site, peer_id, site, wait_connected  # noqa: F401
from tests.browser.test_files import share, wait_download

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def make_file(tmp_path: Path, name: str, size: int, seed: int) -> tuple[Path, str]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_a_key_wrapped_for_one_peer_opens_there_only(site: Site, tmp_path: Path) -> None:  # noqa: F811
    path, sha = make_file(tmp_path, "for-bea.pdf", 700_000, 11)
    a, b, c = site.open(), site.open(), site.open()
    ida, idb, idc = peer_id(a), peer_id(b), peer_id(c)
    wait_connected(a, [idb, idc])
    link = share(a, path)
    manifest_id = link.split("/f/")[1].split("?")[0]
    row = a.locator(f'#file-list li.file[data-id="{manifest_id}"]')
    row.locator("button.share-with").click()
    row.locator("input.share-peer").fill(idb)
    row.locator("button.send-key").click()
    a.wait_for_function(
        "(id) => document.querySelector(`li.file[data-id='${id}'] .share-status`)"
        "?.textContent.startsWith('key sent')",
        arg=manifest_id,
        timeout=30_000,
    )
    a.screenshot(path=str(site.shots / "files-share-with-peer.png"))
    offered = b.locator(f'#file-list li.file[data-id="{manifest_id}"][data-state="offered"]')
    offered.wait_for(timeout=20_000)
    assert ida[:7] in offered.inner_text()
    offered.locator("button.fetch").click()
    b.wait_for_function(
        "(id) => window.swarm.files.files.get(id)?.state === 'complete'",
        arg=manifest_id,
        timeout=30_000,
    )
    record = b.evaluate("(id) => window.swarm.files.files.get(id)", manifest_id)
    assert record["sha256"] == sha
    assert record["name"] == "for-bea.pdf"
    b.locator(f'#file-list li.file[data-id="{manifest_id}"][data-state="complete"]').wait_for()
    b.screenshot(path=str(site.shots / "files-offered-complete.png"))
    # C saw the same gossip (it relays it) but the key is not for C.
    assert c.evaluate("(id) => window.swarm.files.files.has(id)", manifest_id) is False
    assert a.evaluate("(id) => window.swarm.keys.knows(id)", idb), "B's key came by gossip"
    for page in (a, b, c):
        page.close()


def test_a_download_resumes_after_a_reload(site: Site, tmp_path: Path) -> None:  # noqa: F811
    size = 8 * 1024 * 1024
    chunks = size // 65536
    path, sha = make_file(tmp_path, "resume.bin", size, 12)
    a = site.open()
    link = share(a, path)
    manifest_id = link.split("/f/")[1].split("?")[0]
    a.evaluate("() => { window.swarm.files.uploader.limitBps = 2_000_000; }")
    e = site.open(link)
    peer_id(e)
    e.wait_for_function(
        "([id, n]) => (window.swarm.files.progressOf(id)?.held ?? 0) >= n",
        arg=[manifest_id, chunks // 3],
        timeout=60_000,
    )
    e.reload(wait_until="commit")
    peer_id(e)
    e.wait_for_function(
        "(id) => window.swarm.files.progressOf(id)?.phase === 'chunks'", arg=manifest_id
    )
    # What was in storage when the download resumed (chunks may arrive before this reads it).
    resumed_with = int(
        e.evaluate(
            "(id) => window.swarm.files.downloads.get(id).heldAtStart.reduce((n, x) => n + x, 0)",
            manifest_id,
        )
    )
    assert resumed_with >= chunks // 4, "chunks stored before the reload count"
    a.evaluate("() => { window.swarm.files.uploader.limitBps = 0; }")
    assert wait_download(e)["sha256"] == sha
    fetched_after = sum(
        e.evaluate("(id) => window.swarm.files.files.get(id).sources", manifest_id).values()
    )
    assert fetched_after == chunks - resumed_with
    a.close()
    e.close()


def test_out_of_space_and_bad_links_say_why(site: Site, tmp_path: Path) -> None:  # noqa: F811
    path, _ = make_file(tmp_path, "big.bin", 3_000_000, 13)
    page = site.open()
    peer_id(page)
    # What Chromium answers when this origin is near its quota.
    page.evaluate(
        "() => { navigator.storage.estimate ="
        " async () => ({ usage: 9_000_000, quota: 10_000_000 }); }"
    )
    page.locator("#share-file").set_input_files(str(path))
    error = page.locator("#files-error")
    error.wait_for(state="visible")
    assert error.get_attribute("data-code") == "storage_full"
    assert error.inner_text().startswith("Not enough browser storage")
    assert page.evaluate("() => window.swarm.files.list().length") == 0
    page.screenshot(path=str(site.shots / "files-out-of-space.png"))

    bad = site.open(f"{site.server.url}/f/{'A' * 43}?community={site.community}#k=short")
    bad.wait_for_function("() => document.querySelector('#download')?.dataset.state === 'failed'")
    assert bad.locator("#download").get_attribute("data-reason") == "bad_key"
