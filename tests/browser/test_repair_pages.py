"""Repair by peers between real pages (docs/replication.md "Repair by peers"), with no
super-peer and so no evidence of a backfill worker: page A shares a file; pages B and C keep
copies for the swarm (opted in, with a budget) and, after a short warm-up (page config, from
``SWARM_REPAIR_WARMUP_S``), see it one replica short of three and each fetch a copy without
its key: a file record of role ``swarm`` (no key, never assembled), counted in the budget,
advertised as a replica (the other volunteer counts it) and listed apart in the keep card. A
closes (its departure reaches the volunteers); a fresh page D opens the share link and
downloads the file from B and C, byte for byte. B's person removes B's copy: it goes and is
not fetched again."""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import new_context
from tests.support.live import Server, start_daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SIZE = 7 * 65536 + 1234  # 8 chunks
BUDGET_MB = "10"


@pytest.fixture
def web(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Server]:
    server = start_daphne(
        tmp_path_factory.mktemp("repair-web"),
        artifacts_dir,
        {
            "SWARM_BEACON_PEER_INTERVAL_S": "1",
            "SWARM_REPAIR_WARMUP_S": "3",
            "SWARM_REPAIR_TICK_S": "1",
            "SWARM_REPAIR_ANNOUNCE_S": "3",
        },
        name="repair-web",
    )
    yield server
    server.stop()


def open_page(browser: Browser, web: Server, url: str, contexts: list[BrowserContext]) -> Page:
    context = new_context(browser, web.url)
    contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda error: print(f"[page error] {error}"))
    page.goto(url)
    page.wait_for_selector("html[data-ui=mounted]", state="attached", timeout=30_000)
    return page


def peer_id(page: Page) -> str:
    return str(page.evaluate("() => window.swarm.peerId"))


def wait_connected(page: Page, others: list[str], timeout_s: float = 45) -> None:
    page.wait_for_function(
        "(ids) => ids.every((id) => window.swarm.connectedPeers().some((p) => p.peerId === id))",
        arg=others,
        timeout=timeout_s * 1000,
    )


def keep_for_swarm(page: Page) -> None:
    page.locator("#keep-budget").fill(BUDGET_MB)
    page.locator("#keep-save").click()
    page.wait_for_function(f"() => window.swarm.files.keeping.budget === {BUDGET_MB}e6")
    page.locator("#toggle-keep").check()
    page.wait_for_function("() => window.swarm.repair.running")


def record(page: Page, manifest_id: str) -> dict[str, Any] | None:
    found = page.evaluate(
        """(id) => {
          const r = window.swarm.files.files.get(id);
          if (!r) return null;
          const advert = window.swarm.files.keeper.advertFor(r);
          return { role: r.role, state: r.state, key: r.key, sha256: r.sha256 ?? null,
                   name: r.name, held: r.held, chunkCount: r.chunkCount, advert,
                   keep: window.swarm.files.keepStateOf(id).state,
                   used: window.swarm.files.plan.used };
        }""",
        manifest_id,
    )
    return None if found is None else dict(found)


def repair_log(page: Page) -> str:
    entries = page.evaluate(
        "() => window.swarm.diagnostics.list('debug')"
        ".filter((e) => ['repair', 'files'].includes(e.source)).slice(-30)"
    )
    return "\n".join(f"{e['source']}/{e['code']}: {e['message']}" for e in entries)


def test_volunteers_keep_keyless_copies_and_a_new_page_downloads_from_them(
    browser: Browser, web: Server, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> None:
    community = f"repair-{secrets.token_hex(3)}"
    root = f"{web.url}/?community={community}"
    contexts: list[BrowserContext] = []
    data = random.Random(16).randbytes(SIZE)
    path = tmp_path_factory.mktemp("repair-file") / "minutes.bin"
    path.write_bytes(data)
    try:
        a = open_page(browser, web, root, contexts)
        a.locator("#share-file").set_input_files(str(path))
        a.wait_for_function(
            "() => document.querySelector('#share-link')?.href.includes('/f/')", timeout=60_000
        )
        link = str(a.locator("#share-link").get_attribute("href"))
        manifest_id = link.split("/f/", 1)[1].split("?")[0].split("#")[0]
        a_id = peer_id(a)
        assert a.evaluate("() => window.swarm.repair.running") is False, "A is not opted in"

        b = open_page(browser, web, root, contexts)
        c = open_page(browser, web, root, contexts)
        b_id, c_id = peer_id(b), peer_id(c)
        for page in (b, c):
            keep_for_swarm(page)
            wait_connected(page, [a_id])

        # Both volunteers learn the manifest from A and, one replica (A's) of three, fetch it.
        started = time.monotonic()
        for page in (b, c):
            try:
                page.wait_for_function(
                    "(id) => window.swarm.files.files.get(id)?.state === 'complete'",
                    arg=manifest_id,
                    timeout=90_000,
                )
            except Exception as error:
                raise AssertionError(f"no copy on {peer_id(page)}:\n{repair_log(page)}") from error
        print(f"keyless copies made in {time.monotonic() - started:.1f} s")
        for page in (b, c):
            r = record(page, manifest_id)
            assert r is not None
            assert r["role"] == "swarm", r
            assert r["key"] is None, "no key"
            assert r["sha256"] is None, "never assembled"
            assert r["name"] == "minutes.bin", "from the signed manifest"
            assert r["chunkCount"] == 8
            assert r["held"] == 8
            assert r["keep"] == "kept"
            assert r["advert"] == {"id": manifest_id, "chunks": 8}, "advertised as a replica"
            assert r["used"] == SIZE + 16 * 8, "counted in the budget (ciphertext)"
            # Listed in the keep card, not among the person's files.
            page.wait_for_function(
                "(id) => document.querySelector(`#swarm-copies li[data-id='${id}']`)"
                "?.dataset.keep === 'kept'",
                arg=manifest_id,
                timeout=5_000,
            )
            row = page.locator(f'#swarm-copies li[data-id="{manifest_id}"]')
            assert "kept for the swarm without a key" in row.inner_text()
            assert "460.0 KB" in row.inner_text(), "its size"
            assert "(1 without a key)" in page.locator("#keep-usage").inner_text()
            assert page.locator(f'#file-list li[data-id="{manifest_id}"]').count() == 0
            failure = page.evaluate(
                "(id) => window.swarm.files.open(id).then(() => null, (e) => e.code)", manifest_id
            )
            assert failure == "no_key"
        # Each volunteer counts the other's copy (its `have`, keep true): three replicas.
        for page in (b, c):
            page.wait_for_function(
                "(id) => window.swarm.repair.view(id)?.replicas === 3", arg=manifest_id
            )
        # A holds B's and C's adverts of the whole file.
        assert a.evaluate(
            "([id, ids]) => ids.every((p) => window.swarm.files.holders.get(id)?.get(p) === 8)",
            [manifest_id, [b_id, c_id]],
        )
        b.screenshot(path=str(artifacts_dir / "repair-keep-card.png"))

        # A leaves: the volunteers hear it (bye) and count two replicas.
        a.close()
        for page in (b, c):
            page.wait_for_function(
                "(id) => window.swarm.repair.view(id)?.replicas === 2",
                arg=manifest_id,
                timeout=20_000,
            )

        # A fresh page opens the link and gets every byte from B and C.
        d = open_page(browser, web, link, contexts)
        d.wait_for_function(
            "() => ['complete', 'failed'].includes(document.querySelector('#download')"
            "?.dataset.state)",
            timeout=90_000,
        )
        node = d.locator("#download")
        assert node.get_attribute("data-state") == "complete", node.get_attribute("data-reason")
        assert node.get_attribute("data-sha256") == hashlib.sha256(data).hexdigest()
        sources = d.evaluate(
            "(id) => Object.keys(window.swarm.files.files.get(id).sources)", manifest_id
        )
        assert sources, "served by someone"
        assert set(sources) <= {b_id, c_id}, sources
        assert a_id not in sources

        # B's person removes B's copy: gone from storage and the card, not fetched again.
        b.locator(f'#swarm-copies li[data-id="{manifest_id}"] .remove-swarm-copy').click()
        b.wait_for_function("(id) => !window.swarm.files.files.get(id)", arg=manifest_id)
        b.wait_for_function(
            "(id) => !document.querySelector(`#swarm-copies li[data-id='${id}']`)",
            arg=manifest_id,
            timeout=5_000,
        )
        b.wait_for_timeout(5_000)  # several ticks past the warm-up
        assert record(b, manifest_id) is None
        assert b.evaluate("() => window.swarm.repair.stats.fetched") == 1
        # Declined for good: kept with the settings, so a reload does not fetch it again.
        assert b.evaluate(
            "(id) => window.swarm.store.getSettings().then((s) => s.repairDeclined.includes(id))",
            manifest_id,
        )
    finally:
        for context in contexts:
            context.close()
