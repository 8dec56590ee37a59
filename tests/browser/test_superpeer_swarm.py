"""Chromium pages (the real peerjs client and the swarm's own browser modules) and a real
super-peer process: the swarm protocol over each PeerJS serialization, and a file that
outlives the page that shared it because the super-peer pinned it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ops.models import Block
from peers.superpeer.models import FetchJob, Holding, Post, SuperPeer
from peers.superpeer.services import superpeer_pin
from peers.superpeer.supervision import pin_job_id
from tests.browser.conftest import new_context
from tests.support.live import Server, start_daphne
from tests.support.superpeer import (
    SuperPeerProcess,
    community_name,
    start_superpeer,
    wait_until,
)
from tests.support.superpeer_page import serve_swarm_page

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("spb-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1"},
        name="spb-web",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def community() -> str:
    return community_name("spb")


@pytest.fixture(scope="module")
def superpeer(
    web: Server,
    community: str,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[SuperPeerProcess]:
    sp = start_superpeer(
        tmp_path_factory.mktemp("spb-sp"), artifacts_dir, web, community, name="spb-superpeer"
    )
    yield sp
    sp.stop()
    assert sp.proc.returncode == 0, sp.log()[-3000:]


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with serve_swarm_page() as url:
        yield url


def open_page(browser: Browser, origin: str, web: Server, community: str) -> Page:
    context = new_context(browser, origin)
    page = context.new_page()
    page.goto(origin + "/")
    page.wait_for_function("() => window.harnessReady === true")
    options = {"host": "127.0.0.1", "port": web.port, "path": "/signal/", "key": "peerjs"}
    page.evaluate("(o) => harness.start(o)", {**options, "community": community})
    return page


def state(page: Page, cid: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("(c) => harness.state(c)", cid)
    return result


def connections_of(peer_id: str) -> set[str]:
    # The previous test's flush deletes the row; the super-peer writes it again within
    # its status interval, so "no row yet" means "no connections seen yet".
    row = SuperPeer.objects.filter(peer_id=peer_id).first()
    return {c["peer_id"] for c in row.connections} if row is not None else set()


def stats_of(peer_id: str) -> dict[str, Any]:
    row = SuperPeer.objects.filter(peer_id=peer_id).first()
    return dict(row.stats) if row is not None else {}


@pytest.mark.parametrize("serialization", ["raw", "binary", "json"])
def test_a_page_speaks_the_swarm_protocol_with_the_super_peer(
    browser: Browser,
    origin: str,
    web: Server,
    community: str,
    superpeer: SuperPeerProcess,
    serialization: str,
) -> None:
    page = open_page(browser, origin, web, community)
    try:
        page_id = page.evaluate("() => harness.peerId")
        cid = page.evaluate(
            "([id, s]) => harness.connect(id, s)", [superpeer.peer_id, serialization]
        )
        hello = page.evaluate("(c) => harness.until(c, 's => s.hello')", cid)["hello"]
        assert hello["peerId"] == superpeer.peer_id
        assert hello["v"] == 1
        assert {"superpeer", "chunks"} <= set(hello["caps"])
        assert hello["agent"] == "swarm-superpeer/1"
        # It took our hello (ticket checked against the PeerJS id): it lists us as open.
        wait_until(lambda: page_id in connections_of(superpeer.peer_id), 10, "the super-peer")
        # Content frames round trip: an unknown manifest is answered with nil.
        unknown = "A" * 43
        answer = page.evaluate(
            "([c, id]) => harness.links[c].ask({t: 'manifest_req', id}, 'manifest:' + id)",
            [cid, unknown],
        )
        assert answer == {"t": "manifest", "id": unknown, "manifest": None}
        now = state(page, cid)
        assert now["bye"] is None
        assert now["other"] == []
        assert not any(k.startswith("error_") for k in now["counts"])
        if serialization == "json":  # the frames came as base64url strings
            assert now["counts"]["json_messages"] >= 2
    finally:
        page.context.close()


def test_what_is_not_a_frame_on_a_json_connection_is_counted_as_bad_frame(
    browser: Browser,
    origin: str,
    web: Server,
    community: str,
    superpeer: SuperPeerProcess,
) -> None:
    page = open_page(browser, origin, web, community)
    try:
        page_id = page.evaluate("() => harness.peerId")
        cid = page.evaluate("([id]) => harness.connect(id, 'json')", [superpeer.peer_id])
        page.evaluate("(c) => harness.until(c, 's => s.hello')", cid)
        wait_until(lambda: page_id in connections_of(superpeer.peer_id), 10, "the super-peer")
        before = stats_of(superpeer.peer_id).get("dropped", {}).get("bad_frame", 0)
        # A JSON object, a number, text that is not base64url, a frame's text with padding.
        bad = [{"t": "manifest_req", "id": "A" * 43}, 7, "not base64url!", "gqF0="]
        page.evaluate("([c, bad]) => bad.forEach((v) => harness.links[c].conn.send(v))", [cid, bad])
        wait_until(
            lambda: (
                stats_of(superpeer.peer_id).get("dropped", {}).get("bad_frame", 0)
                >= before + len(bad)
            ),
            30,
            "the bad messages counted",
            superpeer,
        )
        # Counted against the page (fewer than the disconnect threshold), not a crash: the
        # connection still carries frames.
        unknown = "Q" * 43
        answer = page.evaluate(
            "([c, id]) => harness.links[c].ask({t: 'manifest_req', id}, 'manifest:' + id)",
            [cid, unknown],
        )
        assert answer == {"t": "manifest", "id": unknown, "manifest": None}
        assert state(page, cid)["bye"] is None
    finally:
        page.context.close()


@pytest.mark.parametrize("serialization", ["raw", "binary", "json"])
def test_a_file_outlives_the_page_that_shared_it_once_the_super_peer_pins_it(
    browser: Browser,
    origin: str,
    web: Server,
    community: str,
    superpeer: SuperPeerProcess,
    serialization: str,
) -> None:
    uploader = open_page(browser, origin, web, community)
    cid = uploader.evaluate(
        "([id, s]) => harness.connect(id, s)", [superpeer.peer_id, serialization]
    )
    uploader.evaluate("(c) => harness.until(c, 's => s.hello')", cid)
    shared = uploader.evaluate("() => harness.share(5 * 1024 * 1024 + 777, 'holiday.mov')")
    manifest_id = shared["manifestId"]

    superpeer_pin(manifest_id)
    wait_until(
        lambda: Holding.objects.filter(
            superpeer__peer_id=superpeer.peer_id, manifest__manifest_id=manifest_id, complete=True
        ).exists(),
        60,
        "the super-peer's copy",
        superpeer,
    )
    served_by_page = uploader.evaluate("() => harness.served")
    assert served_by_page >= shared["chunks"]
    job = FetchJob.objects.get(job_id=pin_job_id(manifest_id, superpeer.peer_id))
    assert (job.state, job.chunks_done, job.chunks_total) == (
        "done",
        shared["chunks"],
        shared["chunks"],
    )
    # The super-peer advertises its new copy to the page.
    uploader.evaluate(
        "([c, m, n]) => harness.until(c, `s => s.have['${m}'] === ${n}`)",
        [cid, manifest_id, shared["chunks"]],
    )
    uploader.context.close()  # the only other holder is gone

    downloader = open_page(browser, origin, web, community)
    try:
        cid = downloader.evaluate(
            "([id, s]) => harness.connect(id, s)", [superpeer.peer_id, serialization]
        )
        have = downloader.evaluate(
            "(c) => harness.until(c, 's => Object.keys(s.have).length')", cid
        )
        assert have["have"][manifest_id] == shared["chunks"]
        got = downloader.evaluate(
            "([c, m, k]) => harness.download([c], m, k)", [cid, manifest_id, shared["key"]]
        )
        assert got["sha256"] == shared["sha256"]
        assert got["size"] == 5 * 1024 * 1024 + 777
    finally:
        downloader.context.close()


def test_a_peer_blocked_in_the_admin_is_disconnected_and_refused(
    browser: Browser,
    origin: str,
    web: Server,
    community: str,
    superpeer: SuperPeerProcess,
) -> None:
    page = open_page(browser, origin, web, community)
    try:
        page_id = page.evaluate("() => harness.peerId")
        cid = page.evaluate("([id]) => harness.connect(id, 'raw')", [superpeer.peer_id])
        page.evaluate("(c) => harness.until(c, 's => s.hello')", cid)
        Block.objects.create(kind=Block.PEER, value=page_id, reason="test")
        final = page.evaluate("(c) => harness.until(c, 's => s.bye')", cid)
        assert final["bye"] == "blocked"
        wait_until(lambda: page_id not in connections_of(superpeer.peer_id), 10, "the drop")
        # (The signaling server applies the block too: the page cannot even dial again.)
    finally:
        page.context.close()


def test_a_post_gossiped_by_a_page_is_kept_and_a_forged_one_is_not(
    browser: Browser,
    origin: str,
    web: Server,
    community: str,
    superpeer: SuperPeerProcess,
) -> None:
    page = open_page(browser, origin, web, community)
    try:
        page_id = page.evaluate("() => harness.peerId")
        cid = page.evaluate("([id]) => harness.connect(id, 'raw')", [superpeer.peer_id])
        page.evaluate("(c) => harness.until(c, 's => s.hello')", cid)
        envelope = page.evaluate("() => harness.gossip('post', null, 'hello swarm')")
        wait_until(lambda: Post.objects.filter(author=page_id).exists(), 10, "the post")
        post = Post.objects.get(author=page_id)
        assert (post.seq, post.kind, post.envelope) == (0, "post", envelope)
        forged = {**envelope, "body": {**envelope["body"], "text": "not what was signed"}}
        page.evaluate("(d) => harness.gossip('post', d)", forged)
        wait_until(
            lambda: stats_of(superpeer.peer_id).get("dropped", {}).get("gossip_post_bad_signature"),
            10,
            "the forged post counted",
        )
        assert Post.objects.count() == 1
    finally:
        page.context.close()
