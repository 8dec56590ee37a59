"""Kill -9 of a super-peer during a browser's download (issue 7), with real processes:
daphne, two `manage.py superpeer` processes (S1, S2) and Chromium pages on the real UI.

Page A shares a file (input#share-file -> a#share-link); both super-peers pin it; A closes, so
S1 and S2 are the only holders. Page C opens the share link and fetches from both; while C's
download is under way (seen from the page: some chunks held, S1 and S2 have each supplied
chunks), S1 is killed with SIGKILL; it was told just before to pin another file that S2 holds,
so it is normally writing chunks of it when it dies (its job state is printed). C finishes
from S2 (its per-source counts show S2's chunks after the kill) with the original SHA-256
(#download[data-sha256]). S1 restarts on the same storage: its start-up scan finds no corrupt
chunk, its store verifies fully, holds every chunk of the shared file (which decrypts to the
original bytes with the link's key), and its interrupted pin completes.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, Page

from peers.protocol.chunks import parse_share_fragment
from peers.protocol.manifest import Manifest, decrypt_file, verify_manifest
from peers.superpeer.models import FetchJob, FileManifest, Holding, SuperPeer
from peers.superpeer.seed import seed_file
from peers.superpeer.services import superpeer_pin
from peers.superpeer.store import ChunkStore
from peers.superpeer.supervision import pin_job_id
from shared.identity import peer_id_of
from tests.browser.content_support import Site, peer_id, wait_connected
from tests.support.live import start_daphne
from tests.support.superpeer import (
    SuperPeerProcess,
    community_name,
    kill9,
    restart,
    start_superpeer,
    superpeer_key,
    wait_until,
)

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024
SIZE = 48 * MIB + 4321  # a few seconds from two super-peers on a loaded machine
CHUNKS = -(-SIZE // 65536)
KILL_AT = CHUNKS // 10  # chunks C holds before S1 is killed
# Super-peer timers short enough for the test (docs/superpeer.md).
FAST = {"SWARM_SUPERPEER_REQUEST_TIMEOUT_S": "3", "SWARM_SUPERPEER_SYNC_S": "1"}


@pytest.fixture
def site(
    live_db: None,
    browser: Browser,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[Site]:
    shots = artifacts_dir / "screenshots"
    shots.mkdir(exist_ok=True)
    server = start_daphne(
        tmp_path_factory.mktemp("kill-web"),
        artifacts_dir,
        {"SWARM_BEACON_PEER_INTERVAL_S": "1", "SWARM_BEACON_IP_BURST": "500"},
        name="kill-web",
    )
    state = Site(server, browser, community_name("kill"), shots)
    yield state
    state.close()


def share(page: Page, path: Path) -> str:
    page.wait_for_selector("#files:not([hidden])")
    page.locator("#share-file").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('#share-link')?.href.includes('/f/')", timeout=120_000
    )
    return str(page.locator("#share-link").get_attribute("href"))


def wait_download(page: Page, timeout_s: float) -> dict[str, Any]:
    page.wait_for_function(
        "() => ['complete', 'failed'].includes(document.querySelector('#download')?.dataset.state)",
        timeout=timeout_s * 1000,
    )
    node = page.locator("#download")
    return {
        "state": node.get_attribute("data-state"),
        "sha256": node.get_attribute("data-sha256"),
        "reason": node.get_attribute("data-reason"),
    }


def progress(page: Page, manifest_id: str) -> dict[str, Any]:
    """The running download as the page shows it: chunks held, and per source the chunks
    it supplied that were kept (``served``, as in the finished record's ``sources``)."""
    return dict(
        page.evaluate(
            "(id) => { const p = window.swarm.files.progressOf(id);"
            " return {held: p?.held ?? 0, served: p?.served ?? {}}; }",
            manifest_id,
        )
    )


def served(state: dict[str, Any], peer: str) -> int:
    return int(state["served"].get(peer, 0))


def complete_on(peer: str, manifest_id: str) -> bool:
    return Holding.objects.filter(
        superpeer__peer_id=peer, manifest__manifest_id=manifest_id, complete=True
    ).exists()


def stored_file(store: ChunkStore, manifest: Manifest, key: bytes) -> bytes:
    chunks = [store.read(chunk_id) for chunk_id in manifest.chunks]
    missing = [i for i, c in enumerate(chunks) if c is None]
    assert missing == [], f"{len(missing)} chunks missing from the store"
    return decrypt_file(manifest, key, chunks)  # type: ignore[arg-type]


def test_kill_9_of_a_super_peer_mid_download_the_browser_finishes_from_the_other_holder(
    site: Site, tmp_path: Path, artifacts_dir: Path
) -> None:
    community = site.community
    s1_dir, s2_dir = tmp_path / "s1", tmp_path / "s2"
    # S2 also holds another file that S1 will be told to pin: S1 is writing when it dies.
    other = os.urandom(40 * MIB + 77)
    f2 = seed_file(
        ChunkStore(s2_dir / "chunks"),
        peer_id=peer_id_of(superpeer_key(s2_dir)),
        author=Ed25519PrivateKey.generate(),
        data=other,
        name="other.bin",
        community=community,
    )
    data = random.Random(11).randbytes(SIZE)
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "film.mkv"
    path.write_bytes(data)

    s1 = start_superpeer(s1_dir, artifacts_dir, site.server, community, FAST, name="kill-s1")
    s2 = start_superpeer(s2_dir, artifacts_dir, site.server, community, FAST, name="kill-s2")
    procs: list[SuperPeerProcess] = [s1, s2]
    try:
        # A shares the file through the real UI; both super-peers pin it.
        a = site.open()
        peer_id(a)
        wait_connected(a, [s1.peer_id, s2.peer_id], 60)
        link = share(a, path)
        manifest_id = link.split("/f/", 1)[1].split("?")[0].split("#")[0]
        key = parse_share_fragment(link.split("#", 1)[1])
        superpeer_pin(manifest_id)
        wait_until(
            lambda: complete_on(s1.peer_id, manifest_id) and complete_on(s2.peer_id, manifest_id),
            180,
            "both super-peers' copies",
            *procs,
        )
        a.context.close()  # S1 and S2 are now the only holders

        superpeer_pin(f2.manifest.id, peer_id=s1.peer_id)  # S1 fetches it from S2 and writes
        c = site.open(link)
        pid_c = peer_id(c)
        wait_connected(c, [s1.peer_id, s2.peer_id], 60)
        # Mid-download, seen from the page: both super-peers have supplied chunks, S1 still
        # has requests in flight, and C holds some but not all of the file.
        c.wait_for_function(
            """([id, s1, s2, n]) => {
              const p = window.swarm.files.progressOf(id);
              if (!p) return false;
              const by = Object.fromEntries(p.sources.map((s) => [s.peerId, s]));
              return p.held >= n && by[s1]?.received > 0 && by[s1].inFlight > 0
                && by[s2]?.received > 0;
            }""",
            arg=[manifest_id, s1.peer_id, s2.peer_id, KILL_AT],
            timeout=120_000,
            polling=10,
        )
        before = progress(c, manifest_id)
        kill9(s1)
        at_kill = progress(c, manifest_id)
        s1_writing = FetchJob.objects.filter(job_id=pin_job_id(f2.manifest.id, s1.peer_id)).first()
        assert 0 < at_kill["held"] < CHUNKS, f"the download was not under way: {at_kill}"
        assert served(before, s1.peer_id) > 0, "S1 served C before it was killed"
        c.screenshot(path=str(site.shots / "superpeer-kill-mid-download.png"))

        final = wait_download(c, 240)
        assert final["state"] == "complete", final
        assert final["sha256"] == sha
        c.screenshot(path=str(site.shots / "superpeer-kill-download-complete.png"))
        sources = dict(
            c.evaluate(
                "(id) => window.swarm.files.files.get(id).sources ?? {}",
                manifest_id,
            )
        )
        # Only the two super-peers supplied C (A had closed), and S2 supplied chunks after
        # S1 died: every chunk C lacked at the kill came from S2, but for the few S1 had
        # already sent (on their way when it died).
        assert set(sources) <= {s1.peer_id, s2.peer_id}, sources
        assert sum(sources.values()) == CHUNKS, sources
        from_s1_late = sources.get(s1.peer_id, 0) - served(at_kill, s1.peer_id)
        from_s2_after = sources.get(s2.peer_id, 0) - served(at_kill, s2.peer_id)
        assert from_s2_after > 0, f"nothing from S2 after the kill: {sources}"
        assert from_s2_after == CHUNKS - at_kill["held"] - from_s1_late
        assert from_s1_late <= 64, sources  # at most what S1 had in flight (perSource)
        assert from_s2_after > from_s1_late, f"C did not finish from S2: {sources}"
        print(
            f"C ({pid_c[:7]}) held {at_kill['held']}/{CHUNKS} chunks at the kill "
            f"(S1 {served(at_kill, s1.peer_id)}, S2 {served(at_kill, s2.peer_id)}); "
            f"after it S2 sent {from_s2_after}, S1 {from_s1_late} already on their way; "
            f"S1's own pin was "
            + (
                f"{s1_writing.state} at {s1_writing.chunks_done}/{s1_writing.chunks_total}"
                if s1_writing
                else "not started"
            )
        )

        # S1 comes back on the same storage: the start-up scan finds nothing corrupt.
        s1 = restart(s1, artifacts_dir)
        procs[0] = s1
        scan = SuperPeer.objects.get(peer_id=s1.peer_id).last_scan
        assert scan["corrupt"] == [], scan
        wait_until(lambda: complete_on(s1.peer_id, f2.manifest.id), 180, "S1's pin", *procs)
    finally:
        for proc in procs:
            proc.stop()
    # A full verification of the restarted super-peer's store: every chunk file hashes to its
    # name, no partial write is left, and both files are whole.
    store = ChunkStore(s1.store_dir)
    assert store.verify_all() == []
    report = store.scan()
    assert report.corrupt == []
    assert report.stray == []
    assert report.temp_removed == 0
    envelope = FileManifest.objects.get(manifest_id=manifest_id).envelope
    manifest = verify_manifest(envelope, expected_id=manifest_id)
    assert stored_file(store, manifest, key) == data
    assert stored_file(store, f2.manifest, f2.key) == other
