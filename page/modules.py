"""The page's ES module graph, for ``<link rel="modulepreload">``.

Without a bundler the browser discovers the page's modules level by level: main.js, then
what it imports, then what those import... each level a round trip to the server. Listing
every module of the graph in the page lets the browser fetch them all at once (measured:
the last module of a fresh page arrived at 650-1000 ms before, see docs/browser.md).
The graph is read from the files themselves (static ``import``/``export ... from``), bare
specifiers through the page's import map (templates/swarm/_vendor.html, the one source).
"""

from __future__ import annotations

import json
import posixpath
import re
from functools import lru_cache

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.templatetags.static import static

# `import x from "s"`, `import {a,\n b} from "s"`, `export * from "s"`, `import "s"`.
IMPORT_RE = re.compile(
    r"""(?:^|[;}\s])(?:import|export)\s+(?:[\w*{}\s,$]*?\s*from\s*)?["']([^"'\n]+)["']""",
    re.MULTILINE,
)
IMPORT_MAP_RE = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


@lru_cache(maxsize=1)
def _import_map() -> dict[str, str]:
    """Bare specifier -> static-relative path, from the page's import map."""
    match = IMPORT_MAP_RE.search(render_to_string("swarm/_vendor.html"))
    if match is None:
        return {}
    prefix = static("")
    imports: dict[str, str] = json.loads(match.group(1))["imports"]
    return {name: url.removeprefix(prefix) for name, url in imports.items()}


@lru_cache(maxsize=4)
def module_graph(entry: str) -> tuple[str, ...]:
    """Static-relative paths of every module ``entry`` imports, directly or not (in the
    order found; the entry itself not included)."""
    import_map = _import_map()
    seen: list[str] = []
    stack = [entry]
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        found = finders.find(path)
        if not isinstance(found, str):
            continue  # named but not there: nothing to preload
        seen.append(path)
        with open(found, encoding="utf-8") as source:
            text = source.read()
        for spec in IMPORT_RE.findall(text):
            if spec.startswith("."):
                stack.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), spec)))
            elif spec in import_map:
                stack.append(import_map[spec])
    return tuple(p for p in seen if p != entry)


def module_preloads(entry: str) -> list[str]:
    """URLs for ``<link rel="modulepreload">`` of everything ``entry`` imports."""
    return [static(path) for path in module_graph(entry)]
