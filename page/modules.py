"""The page's static files: its ES module graph, what the service worker precaches, and the
version that names them (docs/offline.md).

Without a bundler the browser discovers the page's modules level by level: main.js, then
what it imports, then what those import... each level a round trip to the server. Listing
every module of the graph in the page lets the browser fetch them all at once (measured:
the last module of a fresh page arrived at 650-1000 ms before, see docs/browser.md).
The graph is read from the files themselves (static ``import``/``export ... from``), bare
specifiers through the page's import map (templates/swarm/_vendor.html, the one source).

The page references its files under a versioned prefix, ``/static/v/<version>/`` (relative
imports and the import map stay in it); the version is a hash of every file the page can
load: what the templates name (styles, the classic peerjs script, main.js, the import map's
targets) and every module those import, statically or with ``import("...")`` (uPlot, which
the page imports once started). A new deploy that changes any of them changes the version;
swarmweb/static_handler.py answers only the current version's URLs.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import get_template, render_to_string

PAGE_ENTRY = "swarm/main.js"
PAGE_TEMPLATES = ("swarm/index.html", "swarm/_vendor.html")
# What the templates write before a static path ({{ static_base }}swarm/main.js): rendered
# with this marker, the paths they name can be read back.
_MARKER = "/__swarm_static__/"
_MARKED_RE = re.compile(re.escape(_MARKER) + r"""([^"'\s<>]+)""")

# `import x from "s"`, `import {a,\n b} from "s"`, `export * from "s"`, `import "s"`.
IMPORT_RE = re.compile(
    r"""(?:^|[;}\s])(?:import|export)\s+(?:[\w*{}\s,$]*?\s*from\s*)?["']([^"'\n]+)["']""",
    re.MULTILINE,
)
# `import("s")`: loaded later, not preloaded, but precached (JSDoc's `import("./x.js")` type
# references match too: they name modules of the graph, nothing more).
DYNAMIC_IMPORT_RE = re.compile(r"""(?<![\w$.])import\(\s*["']([^"'\n]+)["']\s*\)""")
IMPORT_MAP_RE = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


def versioned_root() -> str:
    """The URL prefix under which every version's files live: ``/static/v/``."""
    return f"{settings.STATIC_URL}v/"


def _import_map() -> dict[str, str]:
    """Bare specifier -> static-relative path, from the page's import map."""
    html = render_to_string("swarm/_vendor.html", {"static_base": _MARKER})
    match = IMPORT_MAP_RE.search(html)
    if match is None:
        return {}
    imports: dict[str, str] = json.loads(match.group(1))["imports"]
    return {name: url.removeprefix(_MARKER) for name, url in imports.items()}


def _walk(entries: Iterable[str], import_map: dict[str, str], *, dynamic: bool) -> list[str]:
    """Static-relative paths of ``entries`` and every module they import, directly or not,
    in the order found (files that are not there are left out)."""
    seen: list[str] = []
    stack = list(reversed(list(entries)))
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        found = finders.find(path)
        if not isinstance(found, str):
            continue  # named but not there: nothing to load
        seen.append(path)
        if not path.endswith((".js", ".mjs")):
            continue
        with open(found, encoding="utf-8") as source:
            text = source.read()
        specs = IMPORT_RE.findall(text)
        if dynamic:
            specs += DYNAMIC_IMPORT_RE.findall(text)
        for spec in specs:
            if spec.startswith("."):
                stack.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), spec)))
            elif spec in import_map:
                stack.append(import_map[spec])
    return seen


def _entry_dynamic_imports(import_map: dict[str, str]) -> list[str]:
    """What the entry itself imports with ``import("...")``: the parts of the page it starts
    beside its start-up (main.js), static-relative."""
    found = finders.find(PAGE_ENTRY)
    if not isinstance(found, str):
        return []
    with open(found, encoding="utf-8") as source:
        specs = DYNAMIC_IMPORT_RE.findall(source.read())
    base = posixpath.dirname(PAGE_ENTRY)
    return [
        posixpath.normpath(posixpath.join(base, spec)) if spec.startswith(".") else import_map[spec]
        for spec in specs
        if spec.startswith(".") or spec in import_map
    ]


def _preload_order(import_map: dict[str, str]) -> list[str]:
    """The entry's static graph first (main.js runs once all of it is in), then the graphs of
    what the entry imports dynamically at once (fetched while the start-up runs): the
    browser asks for the preloads in the page's order, so the start's modules come first.
    Dynamic imports deeper in the graph (uPlot, for the charts) are not preloaded."""
    order = _walk([PAGE_ENTRY], import_map, dynamic=False)
    for path in _walk(_entry_dynamic_imports(import_map), import_map, dynamic=False):
        if path not in order:
            order.append(path)
    return order


def _template_paths() -> list[str]:
    """The static paths the page's templates name (styles, scripts, the import map)."""
    html = render_to_string("swarm/index.html", {"static_base": _MARKER})
    return list(dict.fromkeys(_MARKED_RE.findall(html)))


@dataclass(frozen=True)
class PageAssets:
    """Every static file the page can load, and the version that names them."""

    version: str
    paths: tuple[str, ...]  # static-relative, sorted
    preloads: tuple[str, ...]  # the start's graph, then the rest (_preload_order)
    stamp: tuple[tuple[str, int, int], ...]  # (file, mtime, size): what the version was made of

    @property
    def base(self) -> str:
        """The URL prefix the page's files are referenced under."""
        return f"{versioned_root()}{self.version}/"

    @cached_property
    def path_set(self) -> frozenset[str]:
        return frozenset(self.paths)

    def urls(self) -> list[str]:
        return [self.base + path for path in self.paths]


def _files_stamp(files: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    stamp = []
    for name in files:
        try:
            info = os.stat(name)
        except OSError:
            stamp.append((name, -1, -1))
            continue
        stamp.append((name, info.st_mtime_ns, info.st_size))
    return tuple(stamp)


def _template_files() -> list[str]:
    return [str(get_template(name).origin.name) for name in PAGE_TEMPLATES]  # type: ignore[attr-defined]


def compute_page_assets() -> PageAssets:
    """Read the templates and files now (no cache)."""
    import_map = _import_map()
    named = _template_paths()
    paths = sorted(set(_walk(named, import_map, dynamic=True)))
    preloads = tuple(p for p in _preload_order(import_map) if p != PAGE_ENTRY)
    digest = hashlib.sha256()
    files: list[str] = []
    for path in paths:
        found = finders.find(path)
        assert isinstance(found, str)  # _walk kept only files that are there
        files.append(found)
        with open(found, "rb") as source:
            content = hashlib.sha256(source.read()).hexdigest()
        digest.update(f"{path}\0{content}\n".encode())
    stamp = _files_stamp([*files, *_template_files()])
    version = digest.hexdigest()[:16]
    return PageAssets(version=version, paths=tuple(paths), preloads=preloads, stamp=stamp)


def _changed(assets: PageAssets) -> bool:
    return _files_stamp(name for name, _, _ in assets.stamp) != assets.stamp


_lock = threading.Lock()
_current: PageAssets | None = None


def page_assets() -> PageAssets:
    """The page's files and version: made once (a deployment's files do not change under a
    running server); with ``DEBUG`` on, made again when one of the files or templates it was
    made of changed (edits show at the next load, with a new version)."""
    global _current
    with _lock:
        current = _current
        stale = current is not None and settings.DEBUG and _changed(current)
        if current is None or stale:
            current = _current = compute_page_assets()
        return current


def module_preloads() -> list[str]:
    """URLs for ``<link rel="modulepreload">`` of everything the page's entry imports."""
    assets = page_assets()
    return [assets.base + path for path in assets.preloads]
