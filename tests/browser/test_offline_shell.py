"""The page without a network (docs/offline.md): the service worker keeps the app shell,
the page opens from it offline with its identity and feed, says why it is offline, and
reconnects when the network returns; a new deploy runs at the next load while a page
already open keeps its version, lazily loaded modules included."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import new_context
from tests.support.live import ROOT, Server, base_env, free_port, spawn_daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

STATUS = "#swarm-status"
UPLOT = "vendor/uplot/uPlot.esm.js"


def daphne_on(port: int, var_dir: Path, log_dir: Path, overrides: dict[str, str]) -> Server:
    """daphne on a chosen port: a restarted server is the same origin (the same worker)."""
    return spawn_daphne(
        base_env(var_dir, overrides),
        log_dir / f"offline-web-{port}.log",
        name="offline-web",
        port=port,
        append=True,
    )


@pytest.fixture
def var_dir(live_db: None, tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


def version_of(page: Page) -> str:
    """The static version the page runs (/static/v/<version>/swarm/main.js)."""
    return str(
        page.evaluate(
            "() => new URL(document.querySelector('script[type=module]').src)"
            ".pathname.split('/')[3]"
        )
    )


def wait_async(page: Page, predicate: str, arg: object = None, timeout_s: float = 30) -> None:
    """Until an async predicate holds (wait_for_function takes a promise for true)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate, arg):
        assert time.monotonic() < deadline, predicate
        page.wait_for_timeout(200)


def cached(page: Page) -> dict[str, list[str]]:
    """Every swarm cache of the origin and the paths it holds."""
    return dict(
        page.evaluate(
            """async () => Promise.all((await caches.keys()).map(async (name) =>
                 [name, (await (await caches.open(name)).keys()).map((r) => {
                   const u = new URL(r.url); return u.pathname + u.search; })]))"""
        )
    )


def wait_offline_ready(page: Page) -> str:
    """Until a worker controls the page (its install, all or nothing, is done) and holds
    every module the page preloads in its version's cache."""
    version = version_of(page)
    wait_async(
        page,
        """async (version) => {
             if (!navigator.serviceWorker.controller) return false;
             const cache = await caches.open(`swarm-${version}`);
             const links = document.querySelectorAll('link[rel=modulepreload]');
             const urls = [...links].map((l) => l.href);
             for (const url of urls) if (!(await cache.match(url))) return false;
             return urls.length > 50;
           }""",
        version,
    )
    return version


def status(page: Page) -> dict[str, str | None]:
    node = page.locator(STATUS)
    return {
        "state": node.get_attribute("data-state"),
        "reasons": node.get_attribute("data-reasons"),
        "text": node.locator(".state-reason").text_content(),
    }


def test_the_page_opens_offline_from_its_worker_and_reconnects_when_the_network_returns(
    browser: Browser, var_dir: Path, artifacts_dir: Path
) -> None:
    port = free_port()
    server = daphne_on(port, var_dir, artifacts_dir, {})
    url = f"{server.url}/?community=offline-{secrets.token_hex(3)}"
    a_context = new_context(browser, server.url)
    b_context = new_context(browser, server.url)
    try:
        a = a_context.new_page()
        a.goto(url)
        wait_offline_ready(a)
        b = b_context.new_page()
        b.goto(url)
        a.wait_for_function(
            "() => window.swarm?.node && window.swarm.connectedPeers().length === 1",
            timeout=45_000,
        )
        peer_id = a.evaluate("() => window.swarm.peerId")
        a.locator("#post-text").fill("written before the network went away")
        a.locator("#post-send").click()
        a.wait_for_selector(f'.post[data-author="{peer_id}"]')
        post_id = a.locator(f'.post[data-author="{peer_id}"]').get_attribute("data-id")

        a_context.set_offline(True)
        worker = a_context.service_workers[0]
        # Does the emulation reach the worker's own fetches? (It decides what this test shows.)
        reach = worker.evaluate(
            "() => fetch('/healthz', {cache: 'no-store'}).then(() => 'online', () => 'offline')"
        )
        assert reach == "offline", "set_offline does not cover the worker: stop the server too"
        response = a.reload(wait_until="domcontentloaded")
        assert response is not None
        assert response.ok
        assert response.from_service_worker
        a.wait_for_function(
            "(id) => document.querySelector('#swarm-status').dataset.peerId === id",
            arg=peer_id,
            timeout=20_000,
        )
        assert a.evaluate("() => window.swarm.peerId") == peer_id
        a.wait_for_selector(f'.post[data-id="{post_id}"]', timeout=10_000)
        assert "written before" in (a.locator(f'.post[data-id="{post_id}"]').text_content() or "")
        a.wait_for_function(
            "() => document.querySelector('#swarm-status').dataset.reasons"
            ".split(' ').includes('network_offline')",
            timeout=10_000,
        )
        shown = status(a)
        assert shown["state"] == "offline"
        assert {"network_offline", "signaling_down"} <= set((shown["reasons"] or "").split())
        assert "no network" in (shown["text"] or "")
        # Every file came from the worker: the page module graph and uPlot, loaded late.
        a.wait_for_function("() => document.querySelector('#chart-peers .uplot')", timeout=20_000)
        a.screenshot(path=str(artifacts_dir / "screenshots" / "offline-shell.png"))

        a_context.set_offline(False)
        a.wait_for_function(
            "() => ['online', 'degraded'].includes("
            "document.querySelector('#swarm-status').dataset.state)",
            timeout=45_000,
        )
        a.wait_for_function("() => window.swarm.connectedPeers().length === 1", timeout=45_000)
        codes = a.evaluate("() => window.swarm.diagnostics.list('debug').map((e) => e.code)")
        assert "network_online" in codes
        assert a.evaluate("() => window.swarm.peerId") == peer_id  # no reload
        assert "network_offline" not in (status(a)["reasons"] or "")
    finally:
        a_context.close()
        b_context.close()
        server.stop()


def test_a_new_deploy_runs_at_the_next_load_while_an_open_page_keeps_its_version(
    browser: Browser, var_dir: Path, artifacts_dir: Path, tmp_path: Path
) -> None:
    override = tmp_path / "static-override"
    override.mkdir()
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.support.settings_static_override",
        "SWARM_TEST_STATIC_OVERRIDE": str(override),
    }
    port = free_port()
    server = daphne_on(port, var_dir, artifacts_dir, env)
    url = f"{server.url}/?community=deploy-{secrets.token_hex(3)}"
    context = new_context(browser, server.url)
    try:
        old = context.new_page()
        old.goto(url)
        v1 = wait_offline_ready(old)
        old.evaluate(
            "() => { window.takeovers = 0; navigator.serviceWorker.addEventListener("
            "'controllerchange', () => { window.takeovers += 1; }); }"
        )
        # The deploy: uPlot (which pages import once started) changes.
        changed = override / UPLOT
        changed.parent.mkdir(parents=True)
        shutil.copyfile(ROOT / "static" / UPLOT, changed)
        with changed.open("a") as file:
            file.write('\nexport const SWARM_TEST_BUILD = "v2";\n')
        server.stop()
        server = daphne_on(port, var_dir, artifacts_dir, env)
        v2 = httpx.get(server.url + "/").headers["X-Swarm-Version"]
        assert v2 != v1
        old_uplot = f"/static/v/{v1}/{UPLOT}"
        assert httpx.get(server.url + old_uplot).status_code == 404  # the server has only v2

        new = context.new_page()
        new.goto(url)
        new.wait_for_function("() => window.swarm?.peerId", timeout=20_000)
        assert version_of(new) == v2
        assert new.evaluate("async () => (await import('uplot')).SWARM_TEST_BUILD") == "v2"
        # The new worker installed at this load and took over both pages.
        wait_offline_ready(new)
        old.wait_for_function("() => window.takeovers >= 1", timeout=30_000)
        caches = cached(new)
        assert sorted(caches) == sorted([f"swarm-{v1}", f"swarm-{v2}"])
        assert f"/static/v/{v1}/{UPLOT}" in caches[f"swarm-{v1}"]
        assert f"/static/v/{v2}/{UPLOT}" in caches[f"swarm-{v2}"]
        pages = {p for p in caches[f"swarm-{v2}"] if not p.startswith("/static/")}
        assert pages == {"/", url.removeprefix(server.url)}, pages

        # The old page loads uPlot again, as a module it has not seen (a new instance):
        # its version's bytes, from the worker, not the new file.
        with old.expect_response(lambda r: UPLOT in r.url) as late:
            build = old.evaluate(
                "async (url) => { const m = await import(url + '#late');"
                " return [typeof m.default, m.SWARM_TEST_BUILD ?? null]; }",
                arg=old_uplot,
            )
        assert build == ["function", None]
        assert late.value.from_service_worker
        assert version_of(old) == v1
        assert old.evaluate("() => window.swarm.peerId") == new.evaluate(
            "() => window.swarm.peerId"
        )

        # Once no page runs v1, its cache goes (the clean-up runs when a page says hello).
        old.close()
        new.evaluate(
            "(v) => navigator.serviceWorker.controller"
            ".postMessage({type: 'swarm-hello', version: v})",
            arg=v2,
        )
        wait_async(new, "async (v) => (await caches.keys()).join() === `swarm-${v}`", v2)
    finally:
        context.close()
        server.stop()
