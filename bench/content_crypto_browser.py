"""Content crypto throughput of the browser modules in Chromium (WebCrypto, headless).

Serves bench/content_crypto_core.mjs and static/swarm/ on 127.0.0.1 and runs the same
measurement as bench/content_crypto.mjs inside a page: the crypto ceiling of a real
browser's transfer pipeline.

    .venv/bin/python bench/content_crypto_browser.py [--mib 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from bench.common import ROOT, git_revision, machine

SERVED = ("/bench/content_crypto_core.mjs", "/static/swarm/")


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(ROOT), **kwargs)

    def do_GET(self) -> None:
        if self.path == "/":
            body = b"<!doctype html><title>content crypto</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith(SERVED) and ".." not in self.path:
            super().do_GET()
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--headless=new", "--no-sandbox"]
            )
            page = browser.new_page()
            page.goto(base + "/")
            version = browser.version
            print(
                f"content crypto, WebCrypto in Chromium {version} ({machine()}, rev {git_revision()})"
            )
            lines: list[str] = page.evaluate(
                """async ({ mib, repeat }) => {
                    const { run } = await import("/bench/content_crypto_core.mjs");
                    const lines = [];
                    await run({ mib, repeat, log: (line) => lines.push(line) });
                    return lines;
                }""",
                {"mib": args.mib, "repeat": args.repeat},
            )
            print("\n".join(lines))
            browser.close()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
