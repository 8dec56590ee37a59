"""What the lean ASGI paths in front of Django share.

The beacon's announce and peers (``beacon.asgi``) and the signaling's HTTP routes and
socket (``peers.signaling.asgi``) are served without Django's request handling, which
costs more than their work (docs/benchmarks.md). Both need the ASGI callable types, the
CORS answer for any origin, preflight headers, a whole response written in two messages,
and one client, pool or node per event loop; this module is that and nothing more, so a
response costs no more than building its header list.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Pages on any origin (static mirrors, other deployments) may call these paths.
ALLOW_ANY_ORIGIN = (b"access-control-allow-origin", b"*")
PREFLIGHT_MAX_AGE = (b"access-control-max-age", b"86400")

T = TypeVar("T")


def preflight_headers(methods: str, *, request_headers: str = "") -> Headers:
    """The answer to a CORS preflight: the ``methods`` allowed, the ``request_headers`` a
    page may send (none beyond the simple ones when empty), cached for a day."""
    headers = [(b"access-control-allow-methods", methods.encode())]
    if request_headers:
        headers.append((b"access-control-allow-headers", request_headers.encode()))
    headers.append(PREFLIGHT_MAX_AGE)
    return headers


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    head: bool = False,
) -> None:
    """Send a whole response: its type and length, ``no-store``, any origin, then
    ``headers``. For a HEAD request (``head``) the body is left out, its length kept."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                ALLOW_ANY_ORIGIN,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


class PerLoop(Generic[T]):
    """One ``T`` per running event loop, made on first use by ``make``.

    Async clients, pools and the tasks of a signaling node belong to the loop that made
    them. A server runs one loop; a test run makes many, so with ``keep`` set the
    instances are forgotten once more than ``keep`` loops have asked (those of finished
    tests, most likely; one still running just gets a new instance).
    """

    def __init__(self, make: Callable[[], T], *, keep: int | None = 16) -> None:
        self._make = make
        self._keep = keep
        self._items: dict[int, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        """This loop's instance, made now if it has none."""
        loop_id = id(asyncio.get_running_loop())
        item = self._items.get(loop_id)
        if item is None:
            with self._lock:
                item = self._items.get(loop_id)
                if item is None:
                    if self._keep is not None and len(self._items) > self._keep:
                        self._items.clear()
                    item = self._items[loop_id] = self._make()
        return item

    def current(self) -> T | None:
        """This loop's instance if it has one (none is made)."""
        return self._items.get(id(asyncio.get_running_loop()))

    def pop(self) -> T | None:
        """Forget this loop's instance and return it (to close it)."""
        with self._lock:
            return self._items.pop(id(asyncio.get_running_loop()), None)
