"""Replication end to end with real processes: a Chromium page shares a file (the real
files UI, input#share-file -> a#share-link; and the minimal harness page), the backfill
worker (a real ``celery -A swarmweb worker``) has two super-peers fetch it so three hold it
(target 3); one super-peer is killed with SIGKILL; the admin shows 3 -> 2; a third
super-peer starts and the worker has it fetch a complete verified copy: 3 again."""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Browser, Page

from peers.replication.models import Advert, ReplicaStatus
from peers.superpeer.models import FetchJob, FileManifest, Holding
from tests.browser.conftest import new_context
from tests.support.live import Server, start_daphne
from tests.support.superpeer import (
    SuperPeerProcess,
    community_name,
    kill9,
    start_superpeer,
    wait_until,
)
from tests.support.superpeer_page import serve_swarm_page
from tests.support.worker import start_worker, stop_worker

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SIZE = 3 * 1024 * 1024 + 123
# Short timers so the test runs as fast as the processes allow (docs/replication.md).
REPLICATION = {
    "SWARM_REPLICATION_TARGET": "3",
    "SWARM_REPLICATION_SUPERPEER_TTL_S": "4",
    "SWARM_REPLICATION_JOB_TIMEOUT_S": "30",
    "SWARM_REPLICATION_RETRY_BASE_S": "2",
}


@pytest.fixture
def queue() -> str:
    return f"replication-e2e-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("repl-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1"},
        name="repl-web",
    )
    yield server
    server.stop()


def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.invalid", "pw")
    client = Client()
    client.force_login(user)
    return client


def admin_count(client: Client, manifest_id: str) -> str | None:
    """The "replicas / target" cell of the file manifests list in the admin."""
    page = client.get("/admin/peers/filemanifest/", {"q": manifest_id}).content.decode()
    match = re.search(r'class="replicas-(?:ok|under)">(\d+ / \d+)<', page)
    return None if match is None else match.group(1)


def under_target_listed(client: Client, manifest_id: str) -> bool:
    page = client.get("/admin/peers/filemanifest/", {"replicas": "under"}).content.decode()
    return manifest_id in page


def complete_on(peer_id: str, manifest_id: str) -> bool:
    return Holding.objects.filter(
        superpeer__peer_id=peer_id, manifest__manifest_id=manifest_id, complete=True
    ).exists()


def open_page(browser: Browser, origin: str, web: Server, community: str) -> Page:
    page = new_context(browser, origin).new_page()
    page.goto(origin + "/")
    page.wait_for_function("() => window.harnessReady === true")
    options = {"host": "127.0.0.1", "port": web.port, "path": "/signal/", "key": "peerjs"}
    page.evaluate("(o) => harness.start(o)", {**options, "community": community})
    return page


@pytest.mark.parametrize("ui", [True, False], ids=["files-ui", "harness-page"])
def test_a_killed_super_peer_is_replaced_and_the_admin_shows_3_2_3(
    ui: bool,
    browser: Browser,
    web: Server,
    queue: str,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> None:
    community = community_name("repl")
    env = {**REPLICATION, "SWARM_CELERY_QUEUE": queue}
    worker = start_worker(
        tmp_path_factory.mktemp("repl-worker"), artifacts_dir, env, "backfill-worker"
    )
    started: list[SuperPeerProcess] = []

    def superpeer(name: str) -> SuperPeerProcess:
        sp = start_superpeer(
            tmp_path_factory.mktemp(name), artifacts_dir, web, community, env, name=name
        )
        started.append(sp)
        return sp

    try:
        sp1, sp2 = superpeer("repl-sp1"), superpeer("repl-sp2")
        with serve_swarm_page() as origin:
            if ui:
                # The real page: it finds the super-peers through the beacon, shares with
                # input#share-file and shows the link in a#share-link.
                page = new_context(browser, web.url).new_page()
                page.goto(f"{web.url}/?community={community}")
                page.wait_for_function("() => window.swarm?.peerId && window.swarm.files")
                page_id = page.evaluate("() => window.swarm.peerId")
                page.wait_for_function(
                    "(ids) => ids.every((id) => "
                    "window.swarm.connectedPeers().some((p) => p.peerId === id))",
                    arg=[sp1.peer_id, sp2.peer_id],
                    timeout=30_000,
                )
                path = tmp_path_factory.mktemp("repl-file") / "album.zip"
                path.write_bytes(random.Random(3).randbytes(SIZE))
                page.wait_for_selector("#files:not([hidden])")
                page.locator("#share-file").set_input_files(str(path))
                page.wait_for_function(
                    "() => document.querySelector('#share-link')?.href.includes('/f/')",
                    timeout=60_000,
                )
                link = str(page.locator("#share-link").get_attribute("href"))
                manifest_id = link.split("/f/", 1)[1].split("?")[0].split("#")[0]
                chunks = -(-SIZE // 65536)
            else:
                page = open_page(browser, origin, web, community)
                page_id = page.evaluate("() => harness.peerId")
                shared = page.evaluate("(n) => harness.share(n, 'album.zip')", SIZE)
                manifest_id, chunks = shared["manifestId"], shared["chunks"]
                for sp in (sp1, sp2):
                    cid = page.evaluate("([id]) => harness.connect(id, 'raw')", [sp.peer_id])
                    page.evaluate("(c) => harness.until(c, 's => s.hello')", cid)

            # The super-peers relay the page's advert and learn its manifest; the worker
            # has both fetch it from the page: page + 2 super-peers = 3.
            wait_until(
                lambda: (
                    complete_on(sp1.peer_id, manifest_id) and complete_on(sp2.peer_id, manifest_id)
                ),
                60,
                "both super-peers to hold a complete copy",
                sp1,
                sp2,
                worker,
            )
            assert Advert.objects.filter(holder=page_id, manifest_id=manifest_id).exists()
            manifest = FileManifest.objects.get(manifest_id=manifest_id)
            assert manifest.chunk_count == chunks
            client = admin_client()
            wait_until(lambda: admin_count(client, manifest_id) == "3 / 3", 30, "3 / 3", worker)
            assert not under_target_listed(client, manifest_id)
            # Each super-peer got a job; a job whose only source's connection flapped can
            # be cancelled (no_source) after its copy completed: the holding is what counts.
            jobs = FetchJob.objects.filter(manifest_id=manifest_id, kind=FetchJob.REPLICATION)
            assert {j.peer_id for j in jobs} == {sp1.peer_id, sp2.peer_id}
            assert {j.state for j in jobs} <= {FetchJob.DONE, FetchJob.CANCELLED}
            if not ui:
                assert page.evaluate("() => harness.served") >= chunks

            kill9(sp1)
            wait_until(lambda: admin_count(client, manifest_id) == "2 / 3", 30, "2 / 3", worker)
            assert under_target_listed(client, manifest_id)
            status = ReplicaStatus.objects.get(manifest=manifest)
            assert {h["peer"] for h in status.holders} == {page_id, sp2.peer_id}

            sp3 = superpeer("repl-sp3")
            wait_until(
                lambda: complete_on(sp3.peer_id, manifest_id),
                60,
                "the third super-peer's complete copy",
                sp3,
                sp2,
                worker,
            )
            wait_until(lambda: admin_count(client, manifest_id) == "3 / 3", 30, "3 / 3", worker)
            status.refresh_from_db()
            assert {h["peer"] for h in status.holders if h["kind"] == "replica"} == {
                page_id,
                sp2.peer_id,
                sp3.peer_id,
            }
            assert not under_target_listed(client, manifest_id)
            job = FetchJob.objects.filter(
                manifest_id=manifest_id, kind=FetchJob.REPLICATION, peer_id=sp3.peer_id
            ).latest("created_at")
            assert job.state in (FetchJob.DONE, FetchJob.CANCELLED)
            assert job.chunks_total == chunks
            # Every chunk on disk hashes to its id: a complete verified replica.
            verify_store(sp3, manifest)
            page.context.close()
    finally:
        for sp in started:
            sp.stop()
        stop_worker(worker)


def verify_store(sp: SuperPeerProcess, manifest: FileManifest) -> None:
    from peers.protocol.encoding import b64url_decode

    for chunk_id in manifest.envelope["body"]["chunks"]:
        digest = b64url_decode(chunk_id, field="chunk").hex()
        data = (sp.store_dir / digest[:2] / digest).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
