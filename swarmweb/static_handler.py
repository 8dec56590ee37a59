"""/static/ in front of Django: ServeStatic's ASGI app over the folders Django's finders use.

Django's own ASGI static handler runs every file through the whole request machinery and a
thread (about 8 ms of CPU each here): a page's ~57 ES modules took 400-900 ms before the
page could start (bench/soak.py, docs/benchmarks.md "Soak"). ServeStatic indexes the files
once and answers them without Django. A path that is not a static file (``/static/../x``
included) goes on to Django, which answers 404.

With ``DEBUG`` on, files are looked up per request (edits show at once); otherwise the
index is made at start-up, as for a deployment.

The page's own files are also answered under ``/static/v/<version>/`` (page/modules.py,
docs/offline.md): only the current version's, only the files that version is made of, and
with a year of ``immutable`` caching, since such a URL always means the same bytes. Another
version's URL goes on to Django (404): a page of an older deploy gets its files from its
service worker's cache or not at all, never a newer file under its old URL.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.finders import AppDirectoriesFinder, FileSystemFinder
from servestatic import ServeStaticASGI  # type: ignore[import-untyped]

from page.modules import page_assets, versioned_root

# The page's modules change with each deploy under the same names: revalidated (ETag /
# Last-Modified answered 304), never served stale from a cache.
MAX_AGE_S = 0
VERSIONED_CACHE_CONTROL = b"max-age=31536000, immutable"


def static_roots() -> list[tuple[str, str]]:
    """(folder, URL prefix) of every static folder, highest priority last (ServeStatic keeps
    the last file added for a URL; Django's finders take the first one found)."""
    prefix = settings.STATIC_URL
    roots: list[tuple[str, str]] = []
    for finder in finders.get_finders():
        if isinstance(finder, FileSystemFinder):
            for sub, root in finder.locations:
                roots.append((str(root), prefix + (f"{sub}/" if sub else "")))
        elif isinstance(finder, AppDirectoriesFinder):
            for storage in finder.storages.values():
                roots.append((str(storage.location), prefix))
    return list(reversed(roots))


class VersionedStatic:
    """``/static/v/<version>/<path>``: the current version's files, as ``/static/<path>``."""

    def __init__(self, static: Any, application: Any) -> None:
        self.static = static
        self.application = application
        self.root = versioned_root()
        page_assets()  # made now, not by the first request

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(self.root):
            await self.static(scope, receive, send)
            return
        version, _, rest = path.removeprefix(self.root).partition("/")
        assets = page_assets()
        if version != assets.version or rest not in assets.path_set:
            await self.application(scope, receive, send)
            return
        static_path = settings.STATIC_URL + rest
        inner = dict(scope, path=static_path, raw_path=static_path.encode())

        async def immutable(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 206, 304):
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers.append((b"cache-control", VERSIONED_CACHE_CONTROL))
                message = dict(message, headers=headers)
            await send(message)

        await self.static(inner, receive, immutable)


def static_app(application: Any) -> VersionedStatic:
    app = ServeStaticASGI(
        application,
        autorefresh=settings.DEBUG,
        max_age=MAX_AGE_S,
        allow_all_origins=False,
    )
    for root, prefix in static_roots():
        app.add_files(root, prefix=prefix)
    return VersionedStatic(app, application)
