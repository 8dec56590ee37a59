"""/static/ in front of Django: ServeStatic's ASGI app over the folders Django's finders use.

Django's own ASGI static handler runs every file through the whole request machinery and a
thread (about 8 ms of CPU each here): a page's ~57 ES modules took 400-900 ms before the
page could start (bench/soak.py, docs/benchmarks.md "Soak"). ServeStatic indexes the files
once and answers them without Django. A path that is not a static file (``/static/../x``
included) goes on to Django, which answers 404.

With ``DEBUG`` on, files are looked up per request (edits show at once); otherwise the
index is made at start-up, as for a deployment.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.finders import AppDirectoriesFinder, FileSystemFinder
from servestatic import ServeStaticASGI  # type: ignore[import-untyped]

# The page's modules change with each deploy under the same names: revalidated (ETag /
# Last-Modified answered 304), never served stale from a cache.
MAX_AGE_S = 0


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


def static_app(application: Any) -> ServeStaticASGI:
    app = ServeStaticASGI(
        application,
        autorefresh=settings.DEBUG,
        max_age=MAX_AGE_S,
        allow_all_origins=False,
    )
    for root, prefix in static_roots():
        app.add_files(root, prefix=prefix)
    return app
