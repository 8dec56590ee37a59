"""Restoring an identity from its passphrase export through the identity card (DESIGN section
11: `#restore-file`, `#restore-passphrase`, `#restore-go`; docs/recovery.md).

A writes a post that B receives, exports a backup through the export form and is gone (its
browser closed). A fresh profile R, which holds a file of its own, restores the backup: it
reloads with A's peer id, and so does a second tab of R's profile (told by BroadcastChannel);
A's earlier post shows in R as its own and R edits it, an edit B accepts as A's; the file R
held is still held. Restores that must fail (a wrong passphrase, a file that is not JSON, JSON
of another kind, a backup missing a field, a backup whose peer id is not its key's) each say
why in `#restore-result[data-error]`, and the page keeps running, and storing, the identity it
had.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.content_support import (  # noqa: F401
    Site,
    peer_id,
    site,
    wait_connected,
)
from tests.browser.test_files import share
from tests.browser.test_posts import shown, wait_post, write

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PASSPHRASE = "correct horse battery staple"

STORED_PEER_ID = """async () => {
  const { peerIdForKey } = await import('/static/swarm/protocol/encoding.js');
  const record = await window.swarm.store.getIdentity();
  return peerIdForKey(record.publicKey);
}"""


def export_backup(page: Page, path: Path) -> dict[str, Any]:
    """Export through the identity card and save the file the browser downloads."""
    page.locator("#export-pass").fill(PASSPHRASE)
    page.locator("#export-form button").click()
    link = page.locator("#export-result a[download]")
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    download.value.save_as(path)
    backup: dict[str, Any] = json.loads(path.read_text())
    return backup


def choose(page: Page, file: Path | bytes, passphrase: str) -> None:
    if isinstance(file, Path):
        page.locator("#restore-file").set_input_files(str(file))
    else:
        page.locator("#restore-file").set_input_files(
            {"name": "backup.json", "mimeType": "application/json", "buffer": file}
        )
    page.locator("#restore-passphrase").fill(passphrase)


def refused(page: Page, file: Path | bytes, passphrase: str) -> tuple[str, str]:
    """Restore what must be refused: (data-error, message) of the result."""
    page.evaluate("() => { delete document.querySelector('#restore-result').dataset.state; }")
    choose(page, file, passphrase)
    page.locator("#restore-go").click()
    result = page.locator("#restore-result[data-state=failed]")
    result.wait_for(timeout=30_000)
    return str(result.get_attribute("data-error")), result.inner_text()


def assert_still(page: Page, own_id: str) -> None:
    """The page did not reload and runs, shows and stores the identity it had."""
    assert page.evaluate("() => window.__beforeRestore === true"), "the page reloaded"
    assert page.evaluate("() => window.swarm.peerId") == own_id
    assert page.locator("#swarm-status").get_attribute("data-peer-id") == own_id
    assert page.evaluate(STORED_PEER_ID) == own_id


def test_restored_backup_reloads_as_its_peer_whose_posts_are_its_own(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    a, b = site.open(), site.open()
    ida, idb = peer_id(a), peer_id(b)
    wait_connected(a, [idb])
    write(a, "Written by A before its browser was lost", name="Ada")
    post = wait_post(b, "Written by A before its browser was lost")
    assert post["author"] == ida
    backup_path = tmp_path / "swarm-identity.json"
    backup = export_backup(a, backup_path)
    assert backup["peer_id"] == ida
    a.context.close()  # A's browser is gone: only B still has the post
    b.wait_for_function(
        "(id) => !window.swarm.connectedPeers().some((p) => p.peerId === id)", arg=ida
    )

    r = site.open()
    idr = peer_id(r)
    assert idr != ida
    held = tmp_path / "held-by-r.txt"
    held.write_bytes(b"a file this browser holds before the restore\n" * 4000)
    link = share(r, held)
    manifest_id = link.split("/f/")[1].split("#")[0].split("?")[0]
    second = site.open(context=r.context)  # another tab of the same profile
    assert peer_id(second) == idr

    choose(r, backup_path, PASSPHRASE)
    with r.expect_navigation(timeout=30_000):
        r.locator("#restore-go").click()
    r.wait_for_selector(f'#swarm-status[data-peer-id="{ida}"]', timeout=30_000)
    assert peer_id(r) == ida
    assert r.evaluate(STORED_PEER_ID) == ida
    # The other tab did not go on as the identity that was replaced.
    second.wait_for_selector(f'#swarm-status[data-peer-id="{ida}"]', timeout=30_000)
    assert peer_id(second) == ida
    second.close()

    # B still has A's post; R gets it by sync and shows it as its own.
    wait_connected(r, [idb], timeout_s=60)
    mine = wait_post(r, "Written by A before its browser was lost", timeout_s=60)
    assert mine["author"] == ida
    assert mine["id"] == post["id"]
    node = r.locator(f'.post.mine[data-author="{ida}"][data-id="{post["id"]}"]')
    assert node.count() == 1
    r.screenshot(path=str(site.shots / "identity-restored.png"))
    # Its own indeed: an edit R signs continues A's log, and B accepts it as A's.
    node.locator("button.edit").click()
    r.locator("#post-text").fill("Written by A, edited after the restore")
    r.locator("#post-send").click()
    edited = wait_post(b, "Written by A, edited after the restore")
    assert edited["id"] == post["id"]
    assert edited["author"] == ida
    assert {p["author"] for p in shown(b)} >= {ida}

    # The file R held before the restore is still held, every chunk of it.
    kept = r.evaluate(
        """async (id) => {
          const record = window.swarm.files.files.get(id);
          if (!record) return null;
          const chunks = record.envelope.body.chunks;
          const held = await window.swarm.files.store.heldIndices(chunks);
          return { state: record.state, chunks: chunks.length, held: held.length };
        }""",
        manifest_id,
    )
    assert kept is not None, "the file is gone"
    assert kept["state"] == "complete"
    assert kept["chunks"] > 1
    assert kept["held"] == kept["chunks"]


def test_a_refused_restore_says_why_and_keeps_the_identity(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner = site.open()
    owner_id = peer_id(owner)
    backup_path = tmp_path / "owner.json"
    backup = export_backup(owner, backup_path)

    r = site.open()
    idr = peer_id(r)
    r.evaluate("() => { window.__beforeRestore = true; }")

    code, message = refused(r, backup_path, "not the passphrase")
    assert code == "bad_passphrase"
    assert "wrong passphrase" in message
    assert_still(r, idr)

    code, message = refused(r, b"these are my holiday notes, not a backup\n", PASSPHRASE)
    assert code == "not_json"
    assert "not a backup" in message
    assert_still(r, idr)

    other_kind = json.dumps({**backup, "kind": "swarm-post"}).encode()
    code, message = refused(r, other_kind, PASSPHRASE)
    assert code == "bad_backup"
    assert "not a swarm identity backup" in message
    assert_still(r, idr)

    missing = json.dumps({k: v for k, v in backup.items() if k != "ciphertext"}).encode()
    code, message = refused(r, missing, PASSPHRASE)
    assert code == "bad_backup"
    assert "ciphertext is missing" in message
    assert_still(r, idr)

    # The backup claims another peer id (R's own, even) than its key gives.
    tampered = json.dumps({**backup, "peer_id": idr}).encode()
    code, message = refused(r, tampered, PASSPHRASE)
    assert code == "key_mismatch"
    assert "does not match its peer id" in message
    assert_still(r, idr)

    # No file chosen at all.
    r.locator("#restore-file").set_input_files([])
    r.locator("#restore-passphrase").fill(PASSPHRASE)
    r.evaluate("() => { delete document.querySelector('#restore-result').dataset.state; }")
    r.locator("#restore-go").click()
    r.locator("#restore-result[data-state=failed][data-error=no_file]").wait_for(timeout=10_000)
    assert_still(r, idr)
    r.screenshot(path=str(site.shots / "identity-restore-refused.png"))

    # The same untouched page then restores the real backup with the right passphrase (the
    # owner's browser closed first: one identity, one running page).
    owner.context.close()
    choose(r, backup_path, PASSPHRASE)
    with r.expect_navigation(timeout=30_000):
        r.locator("#restore-go").click()
    r.wait_for_selector(f'#swarm-status[data-peer-id="{owner_id}"]', timeout=30_000)
    assert r.evaluate(STORED_PEER_ID) == owner_id
