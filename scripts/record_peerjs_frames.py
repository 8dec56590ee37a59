"""Record real PeerJS signaling frames into tests/fixtures/peerjs_frames.json.

The unmodified peerjs 1.5.5 client runs in Chromium, the reference ``peer`` server in node,
and a logging WebSocket relay between them writes down every frame in both directions.
The sans-IO client tests replay these frames. Run it again after a PeerJS upgrade:

    .venv/bin/python scripts/record_peerjs_frames.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websockets
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.live import free_port  # noqa: E402
from tests.support.peerjs_page import serve_page  # noqa: E402
from tests.support.peerjs_server import start_reference_server  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "peerjs_frames.json"


class Relay:
    """ws://127.0.0.1:<port>/peerjs?... -> the reference server, logging frames per session."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.session = "none"
        self.frames: list[dict[str, Any]] = []
        self._t0 = time.monotonic()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            async with websockets.serve(self._handle, "127.0.0.1", self.port):
                ready.set()
                await asyncio.Future()

        self._loop.run_until_complete(main())

    def _log(self, client: str, direction: str, text: str | bytes) -> None:
        self.frames.append(
            {
                "session": self.session,
                "client": client,
                "dir": direction,
                "t_ms": int((time.monotonic() - self._t0) * 1000),
                "text": text if isinstance(text, str) else text.decode(),
            }
        )

    async def _handle(self, downstream: Any) -> None:
        path = downstream.request.path
        query = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
        client = query.get("id", "?")
        self._log(client, "connect", path.split("&token=")[0] + "&token=<token>&version=1.5.5")
        url = f"ws://127.0.0.1:{self.upstream_port}{path}"
        async with websockets.connect(url) as upstream:

            async def pump(src: Any, dst: Any, direction: str) -> None:
                async for frame in src:
                    self._log(client, direction, frame)
                    await dst.send(frame)

            tasks = [
                asyncio.create_task(pump(downstream, upstream, "client_to_server")),
                asyncio.create_task(pump(upstream, downstream, "server_to_client")),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        self._log(client, "close", "")


def page(browser: Browser, origin: str) -> Any:
    context = browser.new_context()
    context.grant_permissions(["camera", "microphone"], origin=origin)
    tab = context.new_page()
    tab.goto(origin + "/")
    return tab


def main() -> None:
    with tempfile.TemporaryDirectory() as logs:
        server = start_reference_server(Path(logs))
        relay = Relay(server.port)
        try:
            with serve_page() as origin, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                opts = {"host": "127.0.0.1", "port": relay.port, "path": "/", "debug": 0}
                alice, bob = page(browser, origin), page(browser, origin)

                relay.session = "browser_pair"
                alice.evaluate("o => harness.start('alice', o)", opts)
                bob.evaluate("o => harness.start('bob', o)", opts)
                for serialization in ("binary", "json", "raw"):
                    cid = alice.evaluate(
                        "([s]) => harness.connect('bob', {serialization: s, reliable: true,"
                        " metadata: {kind: s}})",
                        [serialization],
                    )
                    bob.evaluate("cid => harness.waitOpen(cid)", cid)
                    alice.evaluate("cid => harness.send(cid, 'hello')", cid)
                    bob.evaluate("cid => harness.take(cid, 1)", cid)
                time.sleep(5.6)  # at least one HEARTBEAT (pingInterval 5000)

                relay.session = "id_taken"
                thief = page(browser, origin)
                thief.evaluate("o => harness.start('alice', o).catch(e => e)", opts)

                relay.session = "invalid_key"
                wrong = page(browser, origin)
                wrong.evaluate(
                    "o => harness.start('mallory', {...o, key: 'wrong'}).catch(e => e)", opts
                )

                relay.session = "expire"
                alice.evaluate("() => { harness.peer.connect('nobody'); return true; }")
                time.sleep(7.5)  # expire_timeout 5000 + the 1000 ms sweep
                relay.session = "done"
                browser.close()
        finally:
            server.stop()

    sessions: dict[str, list[dict[str, Any]]] = {}
    for frame in relay.frames:
        session = frame.pop("session")
        if session != "done":
            sessions.setdefault(session, []).append(frame)
    doc = {
        "about": (
            "Frames between the peerjs 1.5.5 client (Chromium) and the reference peer 1.0.2"
            " server, recorded by scripts/record_peerjs_frames.py. Tokens are redacted."
        ),
        "sessions": sessions,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    counts = {name: len(frames) for name, frames in sessions.items()}
    print(f"wrote {OUT}: {counts}")


if __name__ == "__main__":
    main()
