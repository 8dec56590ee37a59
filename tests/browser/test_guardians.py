"""Guardians and recovery between Chromium pages (DESIGN section 11: `#guardians
.guardian[data-peer-id][data-state]`, `#recovery[data-state][data-have][data-need]`,
`.recovery-request[data-for][data-code]` with `.recovery-approve` / `.recovery-refuse`;
docs/recovery.md "Guardians in the page").

Five pages. A has met B, C and D; C goes offline, then A chooses B, C and D as guardians with
k = 2 through the card: B and D hold their shares at once, C receives its share when it comes
back (its receipt turns it `held`), then C is gone again for good. A writes a post, and B
shares a file with A by name (its key wrapped to A's X25519 key). A's storage is wiped (its
browser profile closed); a fresh profile asks for A's peer id, shows the verification code
that B and D show next to the request, says one more share is needed after B approves, and
after D approves reloads as A: the same peer id, A's post its own (an edit of it is accepted
by B as A's), and the key B wrapped to A before the wipe, published again unchanged, opens.

A second flow: a guardian whose page answers with a corrupted share (signed, one word
altered) is named and skipped, and a share kept on paper, typed in, completes the recovery.
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
    peer_id,
    site,
    wait_connected,
)
from tests.browser.test_files import share
from tests.browser.test_posts import wait_post, write

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# A guardian's page that answers a request with its share altered (one word swapped: the
# checksum fails), signed as that guardian: what a broken or hostile guardian would send.
CORRUPT_RELEASE = """async (forPeer) => {
  const { makeRelease, openShare } = await import('/static/swarm/protocol/shard.js');
  const service = window.swarm.guardians;
  const held = service.guardian.held().find((h) => h.share.owner === forPeer).share;
  const text = await openShare(held, { keyPair: service.keyPair, peerId: window.swarm.peerId });
  const words = text.split(' ');
  words[10] = words[10] === 'academic' ? 'acid' : 'academic';
  const incoming = service.guardian.requests().find((r) => r.forPeer === forPeer);
  const share = words.join(' ');
  const fields = { setId: held.set, index: held.index, k: held.k, n: held.n, share };
  const bad = await makeRelease(window.swarm.identity.signer, incoming.request, fields);
  const temp = incoming.request.temp;
  return window.swarm.send(temp, { t: 'shard_msg', to: temp, msg: bad });
}"""


def wait_keys(page: Page, ids: list[str]) -> None:
    """The page knows these peers' X25519 keys (announced on connect, else asked for)."""
    page.evaluate("(ids) => Promise.all(ids.map((id) => window.swarm.keys.keyOf(id)))", ids)


def guardian_state(page: Page, peer: str) -> str | None:
    return page.locator(f'#guardians .guardian[data-peer-id="{peer}"]').get_attribute("data-state")


def wait_guardian(page: Page, peer: str, state: str, timeout_s: float = 30) -> None:
    page.locator(f'#guardians .guardian[data-peer-id="{peer}"][data-state="{state}"]').wait_for(
        timeout=timeout_s * 1000
    )


def split(page: Page, guardians: list[str], k: int, paper: int = 0) -> None:
    for peer in guardians:
        page.locator(f'input.guardian-pick[value="{peer}"]').check()
    page.locator("#guardians-k").fill(str(k))
    page.locator("#guardians-paper").fill(str(paper))
    page.locator("#guardians-split").click()
    page.wait_for_selector("#guardians-result[data-state=done]", timeout=30_000)


def start_recovery(page: Page, old: str) -> str:
    """Ask for `old` in the recover form; the verification code the page shows."""
    page.locator("#recover-peer").fill(old)
    page.locator("#recover-go").click()
    page.wait_for_selector(f'#recovery[data-state=collecting][data-for="{old}"]')
    page.wait_for_function("() => document.querySelector('#recovery-code').dataset.code")
    return str(page.locator("#recovery-code").get_attribute("data-code"))


def request_of(page: Page, old: str, code: str) -> Any:
    row = page.locator(f'.recovery-request[data-for="{old}"][data-code="{code}"]')
    row.wait_for(timeout=30_000)
    return row


def make_file(tmp_path: Path, name: str, size: int, seed: int) -> tuple[Path, str]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_a_wiped_identity_comes_back_from_two_of_three_guardians(
    site: Site,  # noqa: F811
    tmp_path: Path,
) -> None:
    a, b, c, d = site.open(), site.open(), site.open(), site.open()
    ida, idb, idc, idd = peer_id(a), peer_id(b), peer_id(c), peer_id(d)
    wait_connected(a, [idb, idc, idd])
    wait_keys(a, [idb, idc, idd])

    # C has been met but is offline when A splits.
    c_profile = c.context
    c.close()
    a.wait_for_function(
        "(id) => !window.swarm.connectedPeers().some((p) => p.peerId === id)", arg=idc
    )
    split(a, [idb, idc, idd], k=2)
    wait_guardian(a, idb, "held")
    wait_guardian(a, idd, "held")
    assert guardian_state(a, idc) == "sent"
    b.locator(f'#guarding .guarded[data-owner="{ida}"]').wait_for()
    a.locator("#guardians-card").screenshot(path=str(site.shots / "guardians-split.png"))

    # C comes back (the same profile): its share is sent on connect and its receipt arrives.
    c = site.open(context=c_profile)
    assert peer_id(c) == idc
    wait_guardian(a, idc, "held", timeout_s=60)
    c.locator(f'#guarding .guarded[data-owner="{ida}"]').wait_for()
    assert "seen" in a.locator(f'.guardian[data-peer-id="{idc}"] .last-seen').inner_text()
    c.close()  # and is offline for the whole recovery

    write(a, "Written by A before its storage was wiped", name="Ada")
    post = wait_post(b, "Written by A before its storage was wiped")
    assert post["author"] == ida
    wait_post(d, "Written by A before its storage was wiped")
    path, sha = make_file(tmp_path, "for-ada.bin", 300_000, 21)
    link = share(b, path)
    manifest_id = link.split("/f/")[1].split("#")[0].split("?")[0]
    wrapped = b.evaluate("([m, to]) => window.swarm.keys.shareWith(m, to)", [manifest_id, ida])
    assert wrapped["to"] == ida
    a.wait_for_function(
        "(id) => window.swarm.files.files.get(id)?.state === 'offered'", arg=manifest_id
    )

    a.context.close()  # A's storage is gone
    b.wait_for_function(
        "(id) => !window.swarm.connectedPeers().some((p) => p.peerId === id)", arg=ida
    )

    n = site.open()
    idn = peer_id(n)
    assert idn != ida
    wait_connected(n, [idb, idd])
    code = start_recovery(n, ida)
    assert n.locator("#recovery").get_attribute("data-have") == "0"
    on_b = request_of(b, ida, code)
    on_d = request_of(d, ida, code)
    b.locator("#guardians-card").screenshot(path=str(site.shots / "guardians-request.png"))
    on_b.locator(".recovery-approve").click()
    n.wait_for_selector("#recovery[data-state=collecting][data-have='1'][data-need='2']")
    assert "1 more needed" in n.locator("#recovery-status").inner_text()
    n.locator("#guardians-card").screenshot(path=str(site.shots / "guardians-collecting.png"))
    with n.expect_navigation(timeout=30_000):
        on_d.locator(".recovery-approve").click()
    n.wait_for_selector(f'#swarm-status[data-peer-id="{ida}"]', timeout=30_000)
    assert peer_id(n) == ida
    n.wait_for_selector(f'#recovery[data-state=recovered][data-for="{ida}"]')
    n.locator("#guardians-card").screenshot(path=str(site.shots / "guardians-recovered.png"))

    # A's post comes back by sync as its own, and an edit signed now continues A's log.
    wait_connected(n, [idb, idd], timeout_s=60)
    mine = wait_post(n, "Written by A before its storage was wiped", timeout_s=60)
    assert mine["id"] == post["id"]
    node = n.locator(f'.post.mine[data-author="{ida}"][data-id="{post["id"]}"]')
    assert node.count() == 1
    node.locator("button.edit").click()
    n.locator("#post-text").fill("Written by A, edited after the recovery")
    n.locator("#post-send").click()
    edited = wait_post(b, "Written by A, edited after the recovery")
    assert (edited["id"], edited["author"]) == (post["id"], ida)
    assert wait_post(d, "Written by A, edited after the recovery")["author"] == ida

    # The key B wrapped to A before the wipe opens here: B publishes the same wrapped key again
    # (gossip of then has aged out; a page does not re-send wrapped keys by itself).
    b.evaluate(
        "([m, w]) => window.swarm.publish('wrapped-key', { manifest: m, wrapped: w })",
        [manifest_id, wrapped],
    )
    offered = n.locator(f'#file-list li.file[data-id="{manifest_id}"][data-state="offered"]')
    offered.wait_for(timeout=30_000)
    offered.locator("button.fetch").click()
    n.wait_for_function(
        "(id) => window.swarm.files.files.get(id)?.state === 'complete'",
        arg=manifest_id,
        timeout=60_000,
    )
    assert n.evaluate("(id) => window.swarm.files.files.get(id).sha256", manifest_id) == sha
    for page in (b, d, n):
        page.close()


def test_a_corrupted_share_is_named_and_skipped_and_a_paper_share_completes(
    site: Site,  # noqa: F811
) -> None:
    a, b, c = site.open(), site.open(), site.open()
    ida, idb, idc = peer_id(a), peer_id(b), peer_id(c)
    wait_connected(a, [idb, idc])
    wait_keys(a, [idb, idc])
    split(a, [idb, idc], k=2, paper=1)
    paper = a.locator('#paper-shares .paper-share[data-index="3"] code').inner_text()
    assert len(paper.split()) == 33
    wait_guardian(a, idb, "held")
    wait_guardian(a, idc, "held")
    a.context.close()

    n = site.open()
    peer_id(n)
    wait_connected(n, [idb, idc])
    code = start_recovery(n, ida)
    request_of(b, ida, code)
    assert b.evaluate(CORRUPT_RELEASE, ida) is True
    bad = n.locator(f'#recovery-answers .recovery-bad[data-peer-id="{idb}"]')
    bad.wait_for(timeout=30_000)
    assert bad.get_attribute("data-code") == "bad_share"
    assert n.locator("#recovery").get_attribute("data-have") == "0"
    # B's real approval now is dropped: a guardian named once is skipped.
    request_of(b, ida, code).locator(".recovery-approve").click()
    request_of(c, ida, code).locator(".recovery-approve").click()
    n.wait_for_selector("#recovery[data-state=collecting][data-have='1'][data-need='2']")
    assert "1 more needed" in n.locator("#recovery-status").inner_text()
    n.locator("#guardians-card").screenshot(path=str(site.shots / "guardians-bad-share.png"))

    n.locator("#recover-share").fill("these are not the words of a share")
    n.locator("#recover-share-add").click()
    n.wait_for_selector("#recovery-error[data-error=bad_share]")
    n.locator("#recover-share").fill(paper)
    with n.expect_navigation(timeout=30_000):
        n.locator("#recover-share-add").click()
    n.wait_for_selector(f'#swarm-status[data-peer-id="{ida}"]', timeout=30_000)
    assert peer_id(n) == ida
    for page in (b, c, n):
        page.close()
