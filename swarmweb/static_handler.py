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

Those versioned files are few (the ~100 a page loads) and never change under their URL, so
each is answered from memory after its first request: the whole response (ServeStatic's
headers, the year of caching, the body) is kept, and a request for it costs no file
opening, reading and closing in threads (ServeStatic's per-request work). A fresh page
fetches all of them before it can start (bench/pagestart.py, docs/benchmarks.md). With
``DEBUG`` on nothing is kept (edits show at once); a request with a ``Range`` goes through
ServeStatic as before.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class HeldResponse:
    """A versioned file's whole 200 response, kept in memory."""

    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes | None

    def not_modified(self, scope: dict[str, Any]) -> bool:
        if self.etag is None:
            return False
        for key, value in scope.get("headers", []):
            if key.lower() == b"if-none-match":
                tags = {tag.strip().removeprefix(b"W/") for tag in value.split(b",")}
                return self.etag in tags or b"*" in tags
        return False

    async def send(self, scope: dict[str, Any], send: Any) -> None:
        if self.not_modified(scope):
            keep = (b"etag", b"cache-control", b"last-modified", b"vary")
            headers = [(k, v) for k, v in self.headers if k in keep]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        body = b"" if scope["method"] == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})


def _can_hold(scope: dict[str, Any]) -> bool:
    """Whether a request can be answered from a held response (a plain GET or HEAD)."""
    if scope.get("method") not in ("GET", "HEAD"):
        return False
    return not any(key.lower() == b"range" for key, _ in scope.get("headers", []))


class VersionedStatic:
    """``/static/v/<version>/<path>``: the current version's files, as ``/static/<path>``."""

    def __init__(self, static: Any, application: Any) -> None:
        self.static = static
        self.application = application
        self.root = versioned_root()
        self.held: dict[str, HeldResponse] = {}  # path -> response, of self.held_version
        self.held_version = ""
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
        keep = not settings.DEBUG and _can_hold(scope)
        if keep:
            if self.held_version != assets.version:
                self.held, self.held_version = {}, assets.version
            held = self.held.get(rest)
            if held is not None:
                await held.send(scope, send)
                return
        static_path = settings.STATIC_URL + rest
        inner = dict(scope, path=static_path, raw_path=static_path.encode())
        start: dict[str, Any] = {}
        body: list[bytes] = []

        async def immutable(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 206, 304):
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers.append((b"cache-control", VERSIONED_CACHE_CONTROL))
                message = dict(message, headers=headers)
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        await self.static(inner, receive, immutable)
        if keep and start.get("status") == 200 and scope["method"] == "GET":
            headers = [(k.lower(), v) for k, v in start["headers"]]
            etag = next((v for k, v in headers if k == b"etag"), None)
            length = next((v for k, v in headers if k == b"content-length"), None)
            whole = b"".join(body)
            # Kept only when the body came as bytes (not as a path for the server to send),
            # and not encoded for this client (a compressed variant is not for every client).
            encoded = any(k == b"content-encoding" for k, _ in headers)
            if length is not None and int(length) == len(whole) and not encoded:
                self.held[rest] = HeldResponse(headers, whole, etag)


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
