"""A static HTTP server on 127.0.0.1 for the test pages driven by Playwright.

Every page gets ``/loopback-ice.js`` (keeps WebRTC on 127.0.0.1); a page adds its own
files and, optionally, a directory served under ``/static/``.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
LOOPBACK_ICE = {"/loopback-ice.js": (Path(__file__).with_name("loopback_ice.js"), JS)}
EMPTY_JS = Path(__file__).with_name("empty.js")


class _Handler(BaseHTTPRequestHandler):
    def __init__(
        self, *args: Any, files: Mapping[str, tuple[Path, str]], static: Path | None
    ) -> None:
        self.files = files
        self.static = static
        super().__init__(*args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        entry = self.files.get(path)
        if entry is None and self.static is not None and path.startswith("/static/"):
            file = (self.static / path.removeprefix("/static/")).resolve()
            if file.is_relative_to(self.static) and file.is_file():
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                if file.suffix in (".js", ".mjs"):
                    kind = "text/javascript"
                entry = (file, kind)
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
def serve(
    files: Mapping[str, tuple[Path, str]],
    static: Path | None = None,
    *,
    host: str = "127.0.0.1",
    loopback_ice: bool = True,
) -> Iterator[str]:
    """Serve ``files`` (URL path -> (file, content type)) and ``static`` under ``/static/``
    on a free port of ``host``; yields the origin. ``loopback_ice=False`` serves an empty
    ``/loopback-ice.js`` (a page whose candidates must leave loopback: the NAT test)."""
    ice = LOOPBACK_ICE if loopback_ice else {"/loopback-ice.js": (EMPTY_JS, JS)}
    handler = partial(_Handler, files={**ice, **files}, static=static)
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
