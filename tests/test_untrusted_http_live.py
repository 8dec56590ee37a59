"""Odd HTTP against a real daphne (the session's beacon server): framing a client controls,
huge headers, duplicates racing each other. Each gets its stable answer and the server goes
on answering others."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import httpx
import pytest

from shared.clock import now_ms
from tests.support.keys import seeded_key, ticket
from tests.support.live import Server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def raw_request(server: Server, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
            if b"\r\n\r\n" in out and out.rstrip().endswith(b"}"):
                break
        return out


def test_a_chunked_body_over_4_kib_is_413_too_large(beacon_server: Server) -> None:
    body = b"x" * 5000
    request = (
        b"POST /beacon/v1/main/announce HTTP/1.1\r\nHost: beacon\r\n"
        b"Transfer-Encoding: chunked\r\nX-Forwarded-For: 10.250.0.1\r\n\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n\r\n"
    )
    answer = raw_request(beacon_server, request)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert (
        answer.split(b"\r\n\r\n", 1)[1]
        == json.dumps(
            {
                "ok": False,
                "error": {"code": "too_large", "message": "request body exceeds 4096 bytes"},
            }
        ).encode()
    )


def test_a_huge_header_is_refused_and_the_server_goes_on(beacon_server: Server) -> None:
    request = (
        b"GET /beacon/v1/main/peers HTTP/1.1\r\nHost: beacon\r\nX-Big: "
        + b"a" * 300_000
        + b"\r\n\r\n"
    )
    answer = raw_request(beacon_server, request)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
    assert httpx.get(f"{beacon_server.url}/beacon/v1/main/peers", timeout=10).status_code == 200


async def test_one_ticket_announced_twenty_times_at_once_is_accepted_once(
    beacon_server: Server,
) -> None:
    name = f"dup-{uuid.uuid4().hex[:10]}"
    body = json.dumps(ticket(seeded_key(name), name, now_ms()))
    url = f"{beacon_server.url}/beacon/v1/{name}/announce"
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(
            *(
                client.post(url, content=body, headers={"X-Forwarded-For": f"10.251.0.{i + 1}"})
                for i in range(20)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    for response in responses:
        if response.status_code != 200:
            assert (response.status_code, response.json()["error"]["code"]) in {
                (422, "replay"),
                (429, "rate_limited"),
            }
    listed = httpx.get(f"{beacon_server.url}/beacon/v1/{name}/peers", timeout=10).json()
    assert [p["body"]["peer_id"] for p in listed["peers"]] == [json.loads(body)["body"]["peer_id"]]
