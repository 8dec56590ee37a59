"""Connection-level limits of the web process, installed into daphne's Twisted server.

The web server is daphne, started as ``daphne -b HOST -p PORT swarmweb.asgi:application``
(DESIGN section 1), and daphne has no per-address connection limit, no deadline for a
request's headers or body, and buffers a whole request body before the ASGI application
sees its first byte (Twisted's ``Request.handleContentChunk`` writes every chunk to
``request.content``; daphne hands it over only after ``requestReceived``). So whatever the
application checks, one client could hold every connection with a byte every few seconds,
or make the process buffer gigabytes. These rules have to act below the application, in
the process daphne starts: daphne imports this project's ASGI module before it builds its
server, and ``swarmweb.asgi`` calls :func:`install`, which swaps in the factory daphne's
``Server.run`` builds (``daphne.server.HTTPFactory``) for :class:`LimitedHTTPFactory`.

What it does (docs/operations.md "Abuse limits", settings in docs/configuration.md):

- every TCP connection is wrapped in a :class:`GuardedConnection` (a Twisted
  ``ProtocolWrapper``: the HTTP channel writes through it, and daphne's WebSocket upgrade
  swaps the protocol it wraps, so it also sees the connection end after an upgrade);
- at most ``SWARM_HTTP_MAX_CONNECTIONS_PER_IP`` connections per peer address and process
  (a trusted proxy is exempt: its clients are counted by the application's limits);
  one more gets ``429 too_many_connections`` and is closed;
- a request's headers must be complete ``SWARM_HTTP_HEADER_TIMEOUT_S`` after the connection
  opened (or after the first byte of a further request on a kept-alive connection), and
  its body ``SWARM_HTTP_BODY_TIMEOUT_S`` after its headers, however slowly it trickles:
  ``408 header_timeout`` / ``408 body_timeout``;
- a body longer than its limit (``SWARM_ANNOUNCE_MAX_BYTES`` for the beacon's announce and
  withdraw, ``SWARM_HTTP_MAX_BODY_BYTES`` for every other path) is refused with ``413 too_large``:
  from its ``Content-Length`` before a byte of it is read, or as soon as a chunked body
  passes the limit; what was read is dropped, never handed to the application.

A refused connection gets its JSON answer, then a half-close; what the client still sends
is read and dropped for at most :data:`LINGER_S`, so the answer is not lost to a TCP reset,
and the connection is then aborted.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper

from ops import metrics
from shared.clientaddr import proxy_policy

log = logging.getLogger(__name__)

LINGER_S = 1.0  # a refused connection's answer gets this long to reach the client
# The beacon's ticket endpoints take at most SWARM_ANNOUNCE_MAX_BYTES (a ticket).
TICKET_PATH = re.compile(rb"^/beacon/v1/[^/?]+/(?:announce|withdraw)(?:\?|$)")
REFUSED_METRIC = "swarm_http_refused_total"
metrics.describe(REFUSED_METRIC, "Connections refused or cut by the web server, by reason.")

HEADERS, BODY, BUSY, IDLE, REFUSED = "headers", "body", "busy", "idle", "refused"


@dataclass(frozen=True, slots=True)
class Limits:
    """The connection rules of one web process (0 turns a limit off)."""

    per_ip: int
    header_timeout_s: float
    body_timeout_s: float
    max_body: int
    announce_max_body: int
    exempt: Callable[[str], bool]

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            per_ip=settings.SWARM_HTTP_MAX_CONNECTIONS_PER_IP,
            header_timeout_s=settings.SWARM_HTTP_HEADER_TIMEOUT_S,
            body_timeout_s=settings.SWARM_HTTP_BODY_TIMEOUT_S,
            max_body=settings.SWARM_HTTP_MAX_BODY_BYTES,
            announce_max_body=settings.SWARM_ANNOUNCE_MAX_BYTES,
            exempt=proxy_policy().is_proxy,
        )

    def body_limit(self, target: bytes) -> int:
        return self.announce_max_body if TICKET_PATH.match(target) else self.max_body


def error_response(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer with the project's JSON error body; the connection closes."""
    body = json.dumps({"ok": False, "error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Access-Control-Allow-Origin: *\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedConnection(ProtocolWrapper):  # type: ignore[misc]  # Twisted is Any here
    """One TCP connection: counts it for its address and keeps the request deadlines."""

    def __init__(self, factory: LimitedHTTPFactory, http: Any, ip: str | None) -> None:
        super().__init__(factory, http)  # registers with it as with a WrappingFactory
        self.limits = factory.limits
        self.ip = ip
        self.http = http  # the HTTP channel (after a WebSocket upgrade it wraps another)
        self.state = HEADERS
        self.body_limit = 0
        self.body_seen = 0
        self._timer: Any = None
        self._linger: Any = None
        self._call_later = factory.reactor.callLater

    def makeConnection(self, transport: Any) -> None:
        super().makeConnection(transport)
        self._arm(self.limits.header_timeout_s, "header_timeout", "request headers")

    # --- bytes in and out -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.state == REFUSED:
            return  # draining after a refusal
        if self.state == IDLE and self.wrappedProtocol is self.http:
            # A further request on a kept-alive connection: its headers' clock starts now.
            self.state = HEADERS
            self._arm(self.limits.header_timeout_s, "header_timeout", "request headers")
        self.wrappedProtocol.dataReceived(data)

    def write(self, data: bytes) -> None:
        if self.state != REFUSED:  # e.g. Twisted's "100 Continue" after a refused length
            super().write(data)

    def writeSequence(self, data: Any) -> None:
        if self.state != REFUSED:
            super().writeSequence(data)

    def connectionLost(self, reason: Any) -> None:
        self._cancel()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    # --- hooks from LimitedRequest --------------------------------------------------

    def headers_received(self, length: int | None, target: bytes) -> bool:
        """The request's headers are in; False if its declared length is refused."""
        limit = self.limits.body_limit(target)
        if limit and length is not None and length > limit:
            message = f"request body exceeds {limit} bytes"
            self.refuse(413, "Payload Too Large", "too_large", message)
            return False
        self.body_limit, self.body_seen = limit, 0
        self.state = BODY
        if length == 0:
            self._cancel()
        else:
            self._arm(self.limits.body_timeout_s, "body_timeout", "request body")
        return True

    def body_chunk(self, size: int) -> bool:
        """Body bytes arrived; False once the body is over its limit (they are dropped)."""
        if self.state == REFUSED:
            return False
        self.body_seen += size
        if self.body_limit and self.body_seen > self.body_limit:
            message = f"request body exceeds {self.body_limit} bytes"
            self.refuse(413, "Payload Too Large", "too_large", message)
            return False
        return True

    def body_done(self) -> bool:
        """The whole request is in; False if it was refused meanwhile."""
        if self.state == REFUSED:
            return False
        self._cancel()
        self.state = BUSY  # the application's turn: no deadline here
        return True

    def response_done(self) -> None:
        if self.state != REFUSED:
            self._cancel()
            self.state = IDLE

    # --- refusing -------------------------------------------------------------------

    def refuse(self, status: int, reason: str, code: str, message: str) -> None:
        """Answer with a JSON error, half-close, drop whatever else comes, then abort."""
        if self.state == REFUSED or self.transport is None:
            return
        self.state = REFUSED
        self._cancel()
        metrics.incr(REFUSED_METRIC, reason=code)
        log.debug("refused %s: %s (%s)", self.ip, code, message)
        self.transport.write(error_response(status, reason, code, message))
        self.transport.loseWriteConnection()
        self._linger = self._call_later(LINGER_S, self.transport.abortConnection)

    def _arm(self, seconds: float, code: str, what: str) -> None:
        self._cancel()
        if seconds > 0:
            message = f"{what} not complete within {seconds:g} s"
            self._timer = self._call_later(
                seconds, self.refuse, 408, "Request Timeout", code, message
            )

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _guard(request: Any) -> GuardedConnection | None:
    channel = request.channel
    transport = channel.transport if channel is not None else None
    return transport if isinstance(transport, GuardedConnection) else None


class LimitedRequest(WebRequest):  # type: ignore[misc]  # daphne is untyped
    """daphne's request, reporting its progress to the connection's guard."""

    def gotLength(self, length: int | None) -> None:
        guard = _guard(self)
        target: bytes = getattr(self.channel, "_path", b"")
        if guard is not None and not guard.headers_received(length, target):
            return  # refused: no content file, the body is dropped as it comes
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        guard = _guard(self)
        if guard is None or guard.body_chunk(len(data)):
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        guard = _guard(self)
        if guard is None or guard.body_done():
            super().requestReceived(command, path, version)

    def finish(self) -> None:
        guard = _guard(self)
        if guard is not None:
            guard.response_done()
        super().finish()


class _TooManyConnections(Protocol):  # type: ignore[misc]
    """What a connection over its address's limit gets instead of HTTP."""

    def __init__(self, reactor: Any, limit: int) -> None:
        self._call_later = reactor.callLater
        self._limit = limit

    def connectionMade(self) -> None:
        transport: Any = self.transport
        message = f"more than {self._limit} open connections from your address"
        transport.write(error_response(429, "Too Many Requests", "too_many_connections", message))
        transport.loseWriteConnection()
        self._linger = self._call_later(LINGER_S, transport.abortConnection)

    def connectionLost(self, reason: Any = None) -> None:
        if self._linger.active():
            self._linger.cancel()


class LimitedHTTPFactory(HTTPFactory):  # type: ignore[misc]  # daphne is untyped
    """daphne's HTTP factory with the limits of this module (see the module docstring)."""

    def __init__(self, server: Any, limits: Limits | None = None) -> None:
        super().__init__(server)
        self.limits = limits or Limits.from_settings()
        self.open_by_ip: Counter[str] = Counter()

    def buildProtocol(self, addr: Any) -> Any:
        ip: str | None = getattr(addr, "host", None)
        limit = self.limits.per_ip
        if ip is not None and limit and self.open_by_ip[ip] >= limit and not self.limits.exempt(ip):
            metrics.incr(REFUSED_METRIC, reason="too_many_connections")
            return _TooManyConnections(self.reactor, limit)
        http = super().buildProtocol(addr)
        if http is None:
            return None
        http.requestFactory = LimitedRequest
        return GuardedConnection(self, http, ip)

    # Called by each GuardedConnection as a WrappingFactory's protocols do.
    def registerProtocol(self, protocol: GuardedConnection) -> None:
        if protocol.ip is not None:
            self.open_by_ip[protocol.ip] += 1

    def unregisterProtocol(self, protocol: GuardedConnection) -> None:
        ip = protocol.ip
        if ip is not None:
            self.open_by_ip[ip] -= 1
            if self.open_by_ip[ip] <= 0:
                del self.open_by_ip[ip]


def install() -> None:
    """Make daphne's server build :class:`LimitedHTTPFactory` (before it starts)."""
    import daphne.server

    daphne.server.HTTPFactory = LimitedHTTPFactory
