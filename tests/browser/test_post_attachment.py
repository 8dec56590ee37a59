"""A post with an attached file between Chromium pages (static/swarm/ui/feed.js, feed.js).

Page A attaches a file with the composer's "Attach" (#post-attach) and posts: the file is
shared, its manifest id travels in the signed post and its link (with the key) in the text.
Page B sees the post with the attachment, follows the link and saves the file: the bytes
are the ones A attached.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from tests.browser.content_support import Site, peer_id, site, wait_connected  # noqa: F401
from tests.browser.test_files import wait_download
from tests.browser.test_posts import wait_post

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

NAME = "attached-figures.bin"
DATA = random.Random(5).randbytes(150_000)


def test_a_post_with_an_attachment_reaches_b_who_downloads_it(site: Site, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / NAME
    source.write_bytes(DATA)
    a, b = site.open(), site.open()
    ida, idb = peer_id(a), peer_id(b)
    wait_connected(a, [idb])
    wait_connected(b, [ida])

    a.wait_for_selector("#posts:not([hidden])")
    a.locator("#post-text").fill("Figures for Thursday")
    a.locator("#post-attach").set_input_files(str(source))
    a.wait_for_selector("#post-attachments .chip.attachment", timeout=30_000)
    assert NAME in str(a.locator("#post-attachments .chip.attachment").text_content())
    draft = a.locator("#post-text").input_value()
    assert draft.startswith(f"Figures for Thursday\nFile {NAME}: ")
    link = draft.split(f"File {NAME}: ")[1].strip()
    manifest_id = link.split("/f/")[1].split("#")[0].split("?")[0]
    assert "#k=" in link
    a.locator("#post-send").click()
    a.wait_for_function("() => document.querySelector('#post-text').value === ''")
    assert a.locator("#post-attachments .chip").count() == 0, "the composer is cleared"

    # B sees the post, its attachment chip and the link, and the signed post names the file.
    text = f"Figures for Thursday\nFile {NAME}: {link}"
    post = wait_post(b, text)
    assert post["author"] == ida
    shown = b.locator(f"#post-list .post[data-id='{post['id']}']")
    chip = shown.locator(".post-attachments .chip.attachment")
    assert chip.get_attribute("data-manifest-id") == manifest_id
    signed = b.evaluate(
        "(id) => window.swarm.posts.posts().find((p) => p.id === id).attachments", post["id"]
    )
    assert signed == [manifest_id]

    # B follows the link in the post: a new tab fetches the file from A; Save gives its bytes.
    with b.context.expect_page(timeout=30_000) as opening:
        shown.locator(f".post-text a[href='{link}']").click()
    tab = opening.value
    assert wait_download(tab)["sha256"] == hashlib.sha256(DATA).hexdigest()
    tab.wait_for_selector("#download-actions:not([hidden])")
    with tab.expect_download(timeout=30_000) as saving:
        tab.locator("#download-save").click()
    saved = saving.value
    assert saved.suggested_filename == NAME
    target = tmp_path / "saved.bin"
    saved.save_as(target)
    assert target.read_bytes() == DATA
