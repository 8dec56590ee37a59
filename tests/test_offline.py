"""The page without a network, server side (docs/offline.md): the versioned static prefix,
what the service worker precaches, and /sw.js."""

from __future__ import annotations

import json
import posixpath
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client, override_settings

from page import modules
from page.modules import compute_page_assets, page_assets
from swarmweb.static_handler import static_app

pytestmark = pytest.mark.django_db

STATIC = Path(settings.BASE_DIR) / "static"
MANIFEST_ID = "QFOJZOg_EBr60ZjRehltCDxw_cMuzt-kUh6_Pa2NwOI"


def worker_manifest(body: str) -> dict[str, Any]:
    first, _, _ = body.partition("\n")
    match = re.fullmatch(r"self\.SWARM_OFFLINE = (\{.*\});", first)
    assert match, first[:200]
    manifest: dict[str, Any] = json.loads(match.group(1))
    return manifest


def test_sw_js_is_the_worker_behind_this_deploys_manifest(client: Client) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "no-cache"
    body = response.content.decode()
    assert body.endswith((STATIC / "swarm/sw.js").read_text())
    manifest = worker_manifest(body)
    assets = page_assets()
    assert manifest["version"] == assets.version
    assert manifest["static_root"] == "/static/v/"
    assert manifest["precache"] == [f"/static/v/{assets.version}/{p}" for p in assets.paths]
    assert manifest["pages"] == ["/"]
    assert manifest["version_header"] == "X-Swarm-Version"
    again = client.get("/sw.js", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_the_precache_list_is_the_page_graph() -> None:
    """What the templates name (styles, the classic peerjs script, main.js, the import
    map), uPlot (imported late), and closed under imports: every relative import of a listed
    module is listed. A file of the browser peer that nothing imports yet is not."""
    paths = set(page_assets().paths)
    assert {
        "swarm/main.js",
        "swarm/swarm.css",
        "swarm/ui/status.js",
        "swarm/adapters/offline.js",
        "swarm/vendor/peerjs.js",
        "vendor/uplot/uPlot.esm.js",
        "vendor/uplot/uPlot.min.css",
        "vendor/peerjs/peerjs.min.js",
        "vendor/idb/index.js",
        "vendor/msgpack/index.mjs",
        "vendor/msgpack/Decoder.mjs",  # imported by index.mjs
    } <= paths
    assert "swarm/sw.js" not in paths
    assert not any(p.startswith("admin/") for p in paths)
    relative = re.compile(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")
    imported: set[str] = set()
    for path in paths:
        if path.endswith((".js", ".mjs")):
            for spec in relative.findall((STATIC / path).read_text()):
                imported.add(posixpath.normpath(posixpath.join(posixpath.dirname(path), spec)))
    assert len(imported) > 50
    assert imported <= paths, sorted(imported - paths)
    peer_files = {str(p.relative_to(STATIC)) for p in (STATIC / "swarm").rglob("*.js")}
    assert len(peer_files & paths) > 50


def test_the_page_names_its_files_under_its_version(client: Client) -> None:
    for url in ("/", f"/f/{MANIFEST_ID}"):
        response = client.get(url)
        assets = page_assets()
        assert response["X-Swarm-Version"] == assets.version
        assert response["Cache-Control"] == "no-cache"
        html = response.content.decode()
        base = f"/static/v/{assets.version}/"
        assert f'<script type="module" src="{base}swarm/main.js">' in html
        imports = json.loads(
            re.search(r'<script type="importmap"[^>]*>(.*?)</script>', html, re.S).group(1)  # type: ignore[union-attr]
        )["imports"]
        assert imports["uplot"] == f"{base}vendor/uplot/uPlot.esm.js"
        assert all(u.startswith(base) for u in imports.values())
        preloads = re.findall(r'<link rel="modulepreload" href="([^"]+)">', html)
        assert len(preloads) > 50
        assert all(u.startswith(base) for u in preloads)
        assert set(preloads) <= set(assets.urls())
        assert "/static/swarm/" not in html
        assert "/static/vendor/" not in html


def test_other_pages_with_the_import_map_name_the_plain_static_prefix() -> None:
    """The operations dashboard includes the import map too; it is not versioned."""
    html = render_to_string("swarm/_vendor.html")
    assert '"uplot": "/static/vendor/uplot/uPlot.esm.js"' in html
    assert 'src="/static/vendor/peerjs/peerjs.min.js"' in html


def changed_copy(tmp_path: Path, name: str, extra: str) -> Path:
    target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STATIC / name, target)
    with target.open("a") as file:
        file.write(extra)
    return target


def test_the_version_changes_with_any_file_of_the_page_and_only_then(tmp_path: Path) -> None:
    before = compute_page_assets()
    assert re.fullmatch(r"[0-9a-f]{16}", before.version)
    assert compute_page_assets().version == before.version  # the same files, the same version
    # A file nobody imports (and an admin file) changes nothing.
    (tmp_path / "swarm").mkdir()
    (tmp_path / "swarm" / "unused.js").write_text("export const x = 1;\n")
    with override_settings(STATICFILES_DIRS=[tmp_path, *settings.STATICFILES_DIRS]):
        assert compute_page_assets().version == before.version
    for name in ("swarm/ui/dom.js", "vendor/uplot/uPlot.esm.js", "swarm/swarm.css"):
        changed_copy(tmp_path, name, "\n/* changed */\n")
        with override_settings(STATICFILES_DIRS=[tmp_path, *settings.STATICFILES_DIRS]):
            after = compute_page_assets()
        assert after.version != before.version, name
        assert after.paths == before.paths
        (tmp_path / name).unlink()
    # A new import joins the list (and the version).
    changed_copy(tmp_path, "swarm/ui/dom.js", '\nimport "./extra.js";\n')
    (tmp_path / "swarm/ui/extra.js").write_text("export {};\n")
    with override_settings(STATICFILES_DIRS=[tmp_path, *settings.STATICFILES_DIRS]):
        grown = compute_page_assets()
    assert set(grown.paths) == {*before.paths, "swarm/ui/extra.js"}
    assert "swarm/ui/extra.js" in grown.preloads


def test_with_debug_on_an_edit_shows_at_the_next_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = changed_copy(tmp_path, "swarm/ui/dom.js", "\n")
    with override_settings(STATICFILES_DIRS=[tmp_path, *settings.STATICFILES_DIRS], DEBUG=True):
        monkeypatch.setattr(modules, "_current", None)
        first = page_assets()
        assert page_assets() is first  # nothing changed: not made again
        changed.write_text(changed.read_text() + "// edited\n")
        assert page_assets().version != first.version
    monkeypatch.setattr(modules, "_current", None)


async def fallback(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"x-app", b"django")]})
    await send({"type": "http.response.body", "body": b"not static"})


@pytest.fixture
def static_client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=static_app(fallback))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_current_versions_files_are_immutable(
    static_client: httpx.AsyncClient,
) -> None:
    assets = page_assets()
    async with static_client:
        for path in ("swarm/main.js", "vendor/uplot/uPlot.esm.js", "swarm/swarm.css"):
            response = await static_client.get(assets.base + path)
            assert response.status_code == 200, path
            assert response.content == (STATIC / path).read_bytes()
            assert response.headers["cache-control"] == "max-age=31536000, immutable"
            again = await static_client.get(
                assets.base + path, headers={"if-none-match": response.headers["etag"]}
            )
            assert again.status_code == 304
        # Unversioned URLs are still answered, revalidated (pages of tests, old bookmarks).
        plain = await static_client.get("/static/swarm/main.js")
        assert plain.headers["cache-control"] == "max-age=0, public"


@pytest.mark.parametrize(
    "path",
    [
        "/static/v/0123456789abcdef/swarm/main.js",  # another version: never the current bytes
        "/static/v/{version}/admin/css/base.css",  # not a file of the page
        "/static/v/{version}/swarm/nothing.js",
        "/static/v/{version}/../swarm/main.js",
        "/static/v/{version}/",
        "/static/v/",
    ],
)
async def test_anything_else_under_the_versioned_prefix_is_not_found(
    static_client: httpx.AsyncClient, path: str
) -> None:
    async with static_client:
        response = await static_client.get(path.format(version=page_assets().version))
        assert response.status_code == 404
        assert response.headers["x-app"] == "django"


async def test_a_versioned_file_is_answered_from_memory_after_its_first_request() -> None:
    """The second request for a versioned file does not reach ServeStatic: the same bytes and
    headers come from the held response (304 and HEAD too); a Range goes through it again."""
    app = static_app(fallback)
    assets = page_assets()
    url = assets.base + "swarm/main.js"
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    async with client:
        first = await client.get(url)
        assert first.status_code == 200
        reached: list[str] = []
        serve_static = app.static

        async def watched(scope: dict[str, Any], receive: Any, send: Any) -> None:
            reached.append(scope["path"])
            await serve_static(scope, receive, send)

        app.static = watched
        again = await client.get(url)
        assert again.status_code == 200
        assert again.content == first.content == (STATIC / "swarm/main.js").read_bytes()
        assert again.headers == first.headers
        cached = await client.get(url, headers={"if-none-match": first.headers["etag"]})
        assert cached.status_code == 304
        assert cached.content == b""
        assert cached.headers["cache-control"] == "max-age=31536000, immutable"
        head = await client.head(url)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == first.headers["content-length"]
        assert reached == []
        part = await client.get(url, headers={"range": "bytes=0-9"})
        assert part.status_code == 206
        assert part.content == first.content[:10]
        assert reached == ["/static/swarm/main.js"]


async def test_nothing_is_held_with_debug_on() -> None:
    app = static_app(fallback)
    url = page_assets().base + "swarm/main.js"
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    with override_settings(DEBUG=True):
        async with client:
            await client.get(url)
            await client.get(url)
    assert app.held == {}


def test_the_preloads_are_the_start_first_then_what_main_imports_dynamically() -> None:
    """main.js runs once its static graph is in; what it imports with import() is preloaded
    too, after it (read from main.js itself: a new import() there is preloaded with no list
    to keep); uPlot, imported deeper once the page has started, is not."""
    assets = compute_page_assets()
    main_js = (STATIC / "swarm/main.js").read_text()
    dynamic = {
        posixpath.normpath(posixpath.join("swarm", spec))
        for spec in re.findall(r"""(?<![\w$.])import\(\s*["'](\.[^"'\n]+)["']\s*\)""", main_js)
    }
    assert {"swarm/content/feed.js", "swarm/ui/status.js", "swarm/adapters/dht.js"} <= dynamic
    preloads = list(assets.preloads)
    assert dynamic <= set(preloads), sorted(dynamic - set(preloads))
    static_graph = set(modules._walk([modules.PAGE_ENTRY], modules._import_map(), dynamic=False))
    assert not dynamic & static_graph, "a module main.js imports dynamically is also static"
    first_dynamic = min(preloads.index(p) for p in preloads if p not in static_graph)
    assert all(p in static_graph for p in preloads[:first_dynamic])
    assert static_graph - {modules.PAGE_ENTRY} == set(preloads[:first_dynamic])
    # What those modules import is preloaded too (their own static graphs).
    later = set(modules._walk(sorted(dynamic), modules._import_map(), dynamic=False))
    assert later <= set(preloads) | {modules.PAGE_ENTRY}
    assert "vendor/uplot/uPlot.esm.js" not in preloads
    assert "vendor/uplot/uPlot.esm.js" in assets.paths
