"""The files card's own controls in Chromium (static/swarm/ui/files.js, DESIGN section 9).

Page A shares a file by dropping it on the drop zone (a real drop event carrying a DataTransfer
built in the page). B fetches it from the share link, then uses the list's "Save" (a browser
download whose bytes are compared) and "Open" (a new tab showing the plaintext), and finally
"Delete": the row, the record and the chunks leave B's storage, A stops counting B as a holder,
a reload does not bring the file back and the link has to fetch it again from A.
"""

from __future__ import annotations

import base64
import hashlib
import random
import string
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.content_support import Site, peer_id, site  # noqa: F401
from tests.browser.test_files import record, wait_download

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

NAME = "dropped-notes.txt"
# Text (so that "Open" shows it in a tab rather than downloading it), a little over 3 chunks.
DATA = "".join(random.Random(11).choices(string.ascii_letters + "\n ", k=200_000)).encode()
CHUNKS = 4

DROP = """({ name, b64 }) => {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type: 'text/plain' }));
  const zone = document.getElementById('drop-zone');
  const fire = (type) => zone.dispatchEvent(
    new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  fire('dragenter');
  fire('dragover');
  const over = zone.classList.contains('over');
  const handled = !fire('drop'); // the zone's handler calls preventDefault()
  return { over, handled, after: zone.classList.contains('over') };
}"""

STORED = """async (id) => {
  const files = window.swarm.files;
  const rec = await files.store.getFile(id);
  const chunkIds = window.chunkIds ?? rec.envelope.body.chunks;
  window.chunkIds = chunkIds;
  const chunks = await files.store.getChunks(chunkIds);
  return { record: rec !== undefined, chunks: chunks.filter((c) => c !== undefined).length,
           inMemory: files.files.has(id) };
}"""


def row(page: Page, manifest_id: str) -> str:
    return f"#file-list li.file[data-id='{manifest_id}']"


def test_drop_save_open_and_delete(site: Site, tmp_path: Path) -> None:  # noqa: F811
    sha = hashlib.sha256(DATA).hexdigest()
    a = site.open()
    pid_a = peer_id(a)
    a.wait_for_selector("#files:not([hidden])")
    dropped = a.evaluate(DROP, {"name": NAME, "b64": base64.b64encode(DATA).decode()})
    assert dropped == {"over": True, "handled": True, "after": False}, dropped
    a.wait_for_function(
        "() => document.querySelector('#share-link')?.href.includes('/f/')", timeout=60_000
    )
    link = str(a.locator("#share-link").get_attribute("href"))
    manifest_id = link.split("/f/")[1].split("#")[0].split("?")[0]
    assert a.locator("#share-name").text_content() == NAME
    shared = a.locator(row(a, manifest_id))
    shared.wait_for()
    assert shared.get_attribute("data-role") == "shared"
    assert shared.get_attribute("data-state") == "complete"
    assert NAME in str(shared.locator(".file-name").text_content())
    assert a.evaluate("(id) => window.swarm.files.files.get(id).size", manifest_id) == len(DATA)

    # B fetches it by the link; its files card lists the complete download.
    b = site.open(link)
    pid_b = peer_id(b)
    assert wait_download(b)["sha256"] == sha
    assert record(b, manifest_id)["sources"] == {pid_a: CHUNKS}
    got = b.locator(row(b, manifest_id))
    b.wait_for_selector(f"{row(b, manifest_id)}[data-state='complete']", timeout=10_000)
    assert got.get_attribute("data-role") == "download"

    # "Save": a download of the plaintext under the file's name.
    with b.expect_download(timeout=30_000) as saving:
        got.locator("button.save").click()
    saved = saving.value
    assert saved.suggested_filename == NAME
    target = tmp_path / "saved.txt"
    saved.save_as(target)
    assert target.read_bytes() == DATA

    # "Open": a new tab on an object URL of the plaintext.
    with b.context.expect_page(timeout=30_000) as opening:
        got.locator("button.open").click()
    tab = opening.value
    tab.wait_for_load_state()
    assert tab.url.startswith("blob:")
    opened = tab.evaluate(
        """async () => {
          const bytes = await (await fetch(location.href)).arrayBuffer();
          const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
          return { size: bytes.byteLength,
                   sha256: [...digest].map((x) => x.toString(16).padStart(2, '0')).join('') };
        }"""
    )
    assert opened == {"size": len(DATA), "sha256": sha}
    assert DATA.decode()[:200].split()[0] in tab.locator("body").inner_text()
    tab.close()

    # A counts B as a holder of the file (B advertised it).
    a.wait_for_function(
        "([id, peer]) => (window.swarm.files.holders.get(id)?.get(peer) ?? 0) > 0",
        arg=[manifest_id, pid_b],
        timeout=30_000,
    )
    assert b.evaluate(STORED, manifest_id) == {"record": True, "chunks": CHUNKS, "inMemory": True}

    # "Delete": gone from the list, the records and the chunk store; A hears of it.
    got.locator("button.delete").click()
    b.wait_for_selector(row(b, manifest_id), state="detached", timeout=20_000)
    assert b.evaluate(STORED, manifest_id) == {"record": False, "chunks": 0, "inMemory": False}
    a.wait_for_function(
        "([id, peer]) => !window.swarm.files.holders.get(id)?.has(peer)",
        arg=[manifest_id, pid_b],
        timeout=30_000,
    )
    assert "file_deleted" in {
        e["code"] for e in b.evaluate("() => window.swarm.diagnostics.list('debug')")
    }

    # A reload (same profile) does not bring it back.
    b.goto(site.url)
    peer_id(b)
    b.wait_for_selector("#files:not([hidden])")
    b.wait_for_timeout(1000)  # a few renders of the list
    assert b.locator(row(b, manifest_id)).count() == 0
    assert not b.evaluate("(id) => window.swarm.files.files.has(id)", manifest_id)

    # The link now has to fetch the file again, from A.
    b.goto(link)
    assert wait_download(b)["sha256"] == sha
    assert record(b, manifest_id)["sources"] == {pid_a: CHUNKS}
