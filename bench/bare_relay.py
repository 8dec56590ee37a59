"""The least a relay on daphne can do: a floor for the signaling benchmark.

An ASGI app that accepts every WebSocket at any path, sends ``OPEN``, and relays each frame
``{type, dst, payload}`` to the socket registered under ``dst`` as ``{type, src, dst,
payload}`` (orjson both ways), with no checks, limits, heartbeats, tokens, queues or
metrics. It is what daphne itself (Twisted + autobahn) costs per relayed message, measured
by ``bench/signaling.py`` next to our server and the reference PeerJS server:

    .venv/bin/daphne -b 127.0.0.1 -p PORT bench.bare_relay:application

Never part of the product; any HTTP request gets 200 ``ok`` (readiness probe).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

_sockets: dict[str, Send] = {}


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] != "websocket":
        return
    query = parse_qs(scope["query_string"].decode())
    peer = query.get("id", [""])[0]
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": '{"type":"OPEN"}'})
            _sockets[peer] = send
        elif kind == "websocket.receive":
            message = orjson.loads(event.get("text") or event.get("bytes") or b"null")
            target = _sockets.get(message.get("dst", ""))
            if target is not None:
                frame = {"type": message["type"], "src": peer, "dst": message["dst"]}
                if "payload" in message:
                    frame["payload"] = message["payload"]
                await target({"type": "websocket.send", "text": orjson.dumps(frame).decode()})
        elif kind == "websocket.disconnect":
            if _sockets.get(peer) is send:
                del _sockets[peer]
            return
