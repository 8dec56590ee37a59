"""Helpers for capsule, alerting and federation tests: a recording webhook, fake beacons,
tickets stored as an announce would store them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorder:
    """What a test HTTP server received, and what it should answer next."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def bodies(self, status: int | None = 200) -> list[dict[str, Any]]:
        with self.lock:
            return [r["json"] for r in self.requests if status is None or r["status"] == status]


class HttpServer:
    """A tiny HTTP server on 127.0.0.1 in a thread: ``handler(method, path, body)``
    returns ``(status, json_body)``."""

    def __init__(self, handler: Callable[[str, str, bytes], tuple[int, object]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = outer.handler(self.command, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook(recorder: Recorder) -> HttpServer:
    """A webhook receiver that records every POST and answers from ``recorder.statuses``."""

    def handle(method: str, path: str, body: bytes) -> tuple[int, object]:
        status = recorder.next_status()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        with recorder.lock:
            recorder.requests.append({"path": path, "json": parsed, "status": status})
        return status, {"ok": status == 200}

    return HttpServer(handle)


def fake_beacon(
    peers: Callable[[], list[object]], hold: threading.Event | None = None
) -> HttpServer:
    """A beacon that answers ``/peers`` with whatever ``peers()`` gives (forged or not);
    with ``hold``, each request waits until the event is set."""
    arrived = threading.Event()

    def handle(method: str, path: str, body: bytes) -> tuple[int, object]:
        arrived.set()
        if hold is not None:
            hold.wait(60)
        if "/peers" not in path:
            return 404, {"ok": False}
        return 200, {"ok": True, "peers": peers()}

    server = HttpServer(handle)
    server.arrived = arrived  # type: ignore[attr-defined]
    return server


def store_ticket(community: Any, envelope: dict[str, Any]) -> Any:
    """Keep a signed ticket in ``community`` (a ``beacon.models.Community``) as the
    beacon does when it accepts an announce; returns the ``PresenceTicket``."""
    from beacon.models import PresenceTicket

    body = envelope["body"]
    return PresenceTicket.objects.create(
        community=community,
        peer_id=body["peer_id"],
        public_key=envelope["pk"],
        issued_at=body["issued_at"],
        expires_at=body["expires_at"],
        nonce=body["nonce"],
        envelope=json.dumps(envelope),
    )
