"""Supernodes in the page (issue 16): a real super-peer advertises itself, pages elect it and
mark it in the peers table; a page that is not elected says so in #swarm-status
[data-supernode]; the opt-out is kept across a reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import new_context
from tests.support.live import Server, start_daphne
from tests.support.superpeer import SuperPeerProcess, community_name, start_superpeer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(tmp_path_factory.mktemp("sn-web"), artifacts_dir, name="sn-web")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def community() -> str:
    return community_name("sn")


@pytest.fixture(scope="module")
def superpeer(
    web: Server, community: str, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[SuperPeerProcess]:
    sp = start_superpeer(
        tmp_path_factory.mktemp("sn-sp"), artifacts_dir, web, community, name="sn-sp"
    )
    yield sp
    sp.stop()


def test_pages_elect_the_super_peer_and_keep_their_opt_out(
    browser: Browser, web: Server, superpeer: SuperPeerProcess, community: str
) -> None:
    url = f"{web.url}/?community={community}"
    context = new_context(browser, web.url)
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => window.swarm?.supernodes", timeout=30_000)
    row = page.locator(f'[data-peer-row][data-peer-id="{superpeer.peer_id}"]')
    row.wait_for(timeout=45_000)
    page.wait_for_function(
        "(id) => window.swarm.supernodes.elected().includes(id)",
        arg=superpeer.peer_id,
        timeout=30_000,
    )
    page.locator(
        f'[data-peer-row][data-peer-id="{superpeer.peer_id}"][data-supernode="true"]'
    ).wait_for()
    status = page.locator("#swarm-status")
    assert status.get_attribute("data-supernode") == "false", "a page minutes old is not elected"
    # Opting out is kept.
    assert page.locator("#toggle-supernode").is_checked()
    page.locator("#toggle-supernode").uncheck()
    page.wait_for_function("() => window.swarm.supernodes.optIn === false")
    page.reload()
    page.wait_for_function("() => window.swarm?.supernodes", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#toggle-supernode').checked === false")
    context.close()
