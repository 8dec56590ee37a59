"""A page with a minimal swarm peer (``superpeer_page.js``: the real peerjs client and the pure
swarm modules from ``static/``), served on 127.0.0.1 for super-peer tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.page_server import HTML, JS, serve

HERE = Path(__file__).resolve().parent
STATIC = HERE.parents[1] / "static"
PAGES = {
    "/": (HERE / "superpeer_page.html", HTML),
    "/harness.js": (HERE / "superpeer_page.js", JS),
}


@contextmanager
def serve_swarm_page() -> Iterator[str]:
    """Serve the page on a free 127.0.0.1 port; yields its origin."""
    with serve(PAGES, STATIC) as origin:
        yield origin
