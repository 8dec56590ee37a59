"""Hostile remote beacons, as the capsule worker's federation client meets them: real sockets
on 127.0.0.1 answering slowly, hugely, wrongly. Each answer becomes a stable error code, in
bounded time, and never an exception."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from beacon.federation import MAX_RESPONSE_BYTES, MAX_TICKETS, Remote, fetch_peers

Script = Callable[[socket.socket], None]


class RawServer:
    """Accepts connections and runs ``script(conn)`` on each, in a thread."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/beacon/v1"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                self.script(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(status: str, body: bytes, *headers: str) -> Script:
    def script(conn: socket.socket) -> None:
        head = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers, "", ""]
        conn.sendall("\r\n".join(head).encode() + body)

    return script


async def fetch(url: str, timeout_s: float = 1.0) -> tuple[str, list[object], float]:
    started = time.monotonic()
    async with httpx.AsyncClient(follow_redirects=False) as client:
        got = await fetch_peers(client, Remote("hostile", url, timeout_s), "main", retries=0)
    return got.error, got.tickets, time.monotonic() - started


async def test_a_remote_that_trickles_its_body_times_out_within_its_timeout(
    serve: Callable[[Script], RawServer],
) -> None:
    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
        for _ in range(200):  # each byte well within the read timeout, the whole never
            conn.sendall(b" ")
            time.sleep(0.2)

    error, tickets, took = await fetch(serve(trickle).url, timeout_s=1.0)
    assert (error, tickets) == ("timeout", [])
    assert took < 3.0


async def test_a_remote_that_never_answers_times_out(serve: Callable[[Script], RawServer]) -> None:
    error, _, took = await fetch(serve(lambda conn: time.sleep(10)).url, timeout_s=0.5)
    assert error == "timeout"
    assert took < 3.0


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (answer("200 OK", b"<html>not json</html>", "content-type: text/html"), "bad_json"),
        (answer("200 OK", b"\xff\xfe\x00garbage"), "bad_json"),
        (answer("200 OK", b"[" * 100_000 + b"]" * 100_000), "bad_json"),
        (answer("200 OK", b'{"ok":true,"peers":[' + b"9" * 5000 + b"]}"), "bad_json"),
        (answer("200 OK", b'{"ok":true,"peers":{}}'), "bad_response"),
        (answer("200 OK", b'{"ok":"yes","peers":[]}'), "bad_response"),
        (answer("200 OK", b"[]"), "bad_response"),
        (answer("200 OK", b" " * (MAX_RESPONSE_BYTES + 1)), "too_large"),
        (answer("302 Found", b"", "location: http://127.0.0.1:1/elsewhere"), "http_302"),
        (answer("500 Internal Server Error", b"{}"), "http_500"),
        (lambda conn: conn.sendall(b"SMTP ready\r\n\r\n"), "http_error"),
        (lambda conn: None, "http_error"),  # closed without a word
    ],
)
async def test_a_hostile_answer_is_a_stable_code(
    serve: Callable[[Script], RawServer], script: Script, code: str
) -> None:
    error, tickets, _ = await fetch(serve(script).url)
    assert (error, tickets) == (code, [])


async def test_a_remote_listing_too_many_tickets_is_cut_to_the_cap(
    serve: Callable[[Script], RawServer],
) -> None:
    body = b'{"ok":true,"peers":[' + b",".join([b"{}"] * (MAX_TICKETS * 3)) + b"]}"
    error, tickets, _ = await fetch(serve(answer("200 OK", body)).url)
    assert error == ""
    assert len(tickets) == MAX_TICKETS
