"""A static page running the real peerjs 1.5.5 browser build, served on 127.0.0.1.

``peerjs_page.html`` exposes ``window.harness`` (start a Peer, connect, send, take received
messages, throughput helpers); tests and benchmarks drive it with Playwright.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.page_server import HTML, JS, serve

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "/": (Path(__file__).with_name("peerjs_page.html"), HTML),
    "/peerjs.min.js": (ROOT / "node_modules" / "peerjs" / "dist" / "peerjs.min.js", JS),
}


@contextmanager
def serve_page(host: str = "127.0.0.1", *, loopback_ice: bool = True) -> Iterator[str]:
    """Serve the page on a free port of ``host`` (127.0.0.1); yields its origin. Its
    candidates are kept to loopback unless ``loopback_ice`` is False."""
    with serve(FILES, host=host, loopback_ice=loopback_ice) as origin:
        yield origin
