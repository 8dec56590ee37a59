"""A static page running the real peerjs 1.5.5 browser build, served on 127.0.0.1.

``peerjs_page.html`` exposes ``window.harness`` (start a Peer, connect, send, take received
messages, throughput helpers); tests and benchmarks drive it with Playwright.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "/": (Path(__file__).with_name("peerjs_page.html"), "text/html; charset=utf-8"),
    "/peerjs.min.js": (
        ROOT / "node_modules" / "peerjs" / "dist" / "peerjs.min.js",
        "text/javascript; charset=utf-8",
    ),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        entry = FILES.get(self.path.split("?", 1)[0])
        if entry is None:
            self.send_error(404)
            return
        body = entry[0].read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", entry[1])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_page() -> Iterator[str]:
    """Serve the page on a free 127.0.0.1 port; yields its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
