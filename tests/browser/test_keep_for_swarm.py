"""The "keep copies for the swarm" opt-in of the real page (docs/replication.md "Browser"),
seen from the server: page A shares a file through the files UI, page B downloads it from
the share link. A super-peer (a real ``manage.py superpeer``) relays both pages' ``have``
adverts to the database (``replication.Advert``). A's own file is a kept copy. B's download
is a cached copy (``keep`` False: never a replica) while the opt-in is off (the default),
stays one when the opt-in is on but the storage budget is too small (the row says why),
becomes a kept copy once the budget fits, stays so after a reload (settings persist), and
goes back to cached when the opt-in is turned off. The pages also publish their adverts as
gossip (topic ``have``): the super-peer stores what it hears as holdings reported via
gossip, beside the relayed ones."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from peers.replication.models import Advert
from tests.browser.conftest import new_context
from tests.support.live import Server, start_daphne
from tests.support.superpeer import SuperPeerProcess, community_name, start_superpeer, wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SIZE = 5 * 65536 + 321  # 6 chunks, about 0.33 MB stored


@pytest.fixture
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("keep-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1"},
        name="keep-web",
    )
    yield server
    server.stop()


def advert_keep(holder: str, manifest_id: str) -> bool | None:
    """What the super-peer last relayed of ``holder``'s copy: kept, cached, or None (none)."""
    row = Advert.objects.filter(holder=holder, manifest_id=manifest_id, via=Advert.DIRECT).first()
    return None if row is None else row.keep


def gossiped(holder: str, manifest_id: str) -> tuple[int, bool] | None:
    """(chunks, keep) of the ``have`` gossip of ``holder`` the super-peer stored, or None."""
    row = Advert.objects.filter(holder=holder, manifest_id=manifest_id, via=Advert.GOSSIP).first()
    return None if row is None or row.heard_at is None else (row.chunks, row.keep)


def open_connected(page: Page, url: str, sp: SuperPeerProcess) -> str:
    page.goto(url)
    page.wait_for_function("() => window.swarm?.peerId && window.swarm.files")
    page.wait_for_function(
        "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)",
        arg=sp.peer_id,
        timeout=30_000,
    )
    return str(page.evaluate("() => window.swarm.peerId"))


def set_budget(page: Page, megabytes: str) -> None:
    page.locator("#keep-budget").fill(megabytes)
    page.locator("#keep-save").click()


def test_a_download_counts_as_a_replica_only_when_opted_in_and_within_the_budget(
    browser: Browser,
    web: Server,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> None:
    community = community_name("keep")
    env = {"SWARM_CELERY_QUEUE": f"keep-{uuid.uuid4().hex[:8]}"}
    sp = start_superpeer(
        tmp_path_factory.mktemp("keep-sp"), artifacts_dir, web, community, env, name="keep-sp"
    )
    try:
        a = new_context(browser, web.url).new_page()
        a_id = open_connected(a, f"{web.url}/?community={community}", sp)
        path = tmp_path_factory.mktemp("keep-file") / "notes.bin"
        path.write_bytes(random.Random(5).randbytes(SIZE))
        a.wait_for_selector("#files:not([hidden])")
        a.locator("#share-file").set_input_files(str(path))
        a.wait_for_function(
            "() => document.querySelector('#share-link')?.href.includes('/f/')", timeout=60_000
        )
        link = str(a.locator("#share-link").get_attribute("href"))
        manifest_id = link.split("/f/", 1)[1].split("?")[0].split("#")[0]

        b = new_context(browser, web.url).new_page()
        b_id = open_connected(b, link, sp)
        b.wait_for_function(
            "() => document.querySelector('#download')?.dataset.state === 'complete'",
            timeout=60_000,
        )
        row = b.locator(f'#file-list li[data-id="{manifest_id}"]')
        # Off by default: B's complete copy is relayed as cached; A's own file as kept.
        assert not b.locator("#toggle-keep").is_checked()
        wait_until(lambda: advert_keep(b_id, manifest_id) is False, 30, "B cached", sp)
        assert advert_keep(a_id, manifest_id) is True
        assert Advert.objects.get(holder=b_id, manifest_id=manifest_id, via="direct").chunks == 6
        # Both pages gossip what they hold; the super-peer stores it as reported via gossip
        # (changes are published at most every 30 s: B's complete copy may take that long).
        wait_until(lambda: gossiped(a_id, manifest_id) == (6, True), 30, "A by gossip", sp)
        wait_until(lambda: gossiped(b_id, manifest_id) == (6, False), 60, "B by gossip", sp)
        assert row.get_attribute("data-keep") == "cached"

        # Opted in with a budget too small for it: refused, with the reason shown.
        set_budget(b, "0.1")
        b.locator("#toggle-keep").check()  # the label's switch: the input itself
        b.wait_for_function(
            "(id) => document.querySelector(`#file-list li[data-id='${id}']`)"
            "?.dataset.keep === 'refused'",
            arg=manifest_id,
        )
        assert "not kept for the swarm" in row.inner_text()
        assert "1 not kept (budget full)" in b.locator("#keep-usage").inner_text()

        # A budget it fits in: kept, and the super-peer now relays a kept copy.
        set_budget(b, "10")
        b.wait_for_function(
            "(id) => document.querySelector(`#file-list li[data-id='${id}']`)"
            "?.dataset.keep === 'kept'",
            arg=manifest_id,
        )
        assert b.locator("#keep-usage").get_attribute("data-kept") == "1"
        wait_until(lambda: advert_keep(b_id, manifest_id) is True, 30, "B kept", sp)

        # The settings survive a reload; the copy is advertised as kept again.
        b.reload()
        b.wait_for_selector("html[data-ui=mounted]", state="attached")
        assert b.locator("#toggle-keep").is_checked()
        assert b.locator("#keep-budget").input_value() == "10"
        b.wait_for_function(
            "(id) => window.swarm.connectedPeers().some((p) => p.peerId === id)",
            arg=sp.peer_id,
            timeout=30_000,
        )
        wait_until(lambda: advert_keep(b_id, manifest_id) is True, 30, "B kept again", sp)

        # Opting out: the same copy is relayed as cached again; A's is untouched.
        b.locator("#toggle-keep").uncheck()
        wait_until(lambda: advert_keep(b_id, manifest_id) is False, 30, "B cached again", sp)
        assert advert_keep(a_id, manifest_id) is True

        # A bad budget is refused with a stable code and changes nothing.
        set_budget(b, "lots")
        assert b.locator("#keep-error").get_attribute("data-code") == "bad_budget"
        assert b.evaluate("() => window.swarm.files.keeping.budget") == 10_000_000
        b.screenshot(path=str(artifacts_dir / "keep-for-swarm.png"))
        a.context.close()
        b.context.close()
    finally:
        sp.stop()
