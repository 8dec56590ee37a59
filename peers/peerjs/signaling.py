"""The PeerJS signaling client as a sans-IO state machine.

Inputs are method calls carrying ``now`` (integer milliseconds, any monotonic origin):
``start``, ``id_fetched``, ``id_fetch_failed``, ``socket_opened``, ``frame_received``,
``socket_closed``, ``handle_timer``, ``send`` and ``destroy`` of :class:`SignalingCore`.
Outputs are *actions* for the IO adapter (fetch an id, open/close the WebSocket, send a frame),
*events* for the application, and ``get_timer()``, the next instant at which ``handle_timer``
must be called.

Behaviour follows the PeerJS 1.5.5 client (``lib/socket.ts``, ``lib/peer.ts``) where it has one:
the same URLs, a HEARTBEAT every ``ping_interval`` ms while the socket is open, messages queued
until the socket opens. Where PeerJS gives up (a lost server, a taken id) this client, meant to
stay up unattended, reconnects with capped exponential backoff and keeps its id; only an invalid
key or :meth:`destroy` end it.
"""

from __future__ import annotations

import enum
import random
import re
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from . import messages as m
from .errors import (
    BAD_SERVER_MESSAGE,
    ID_TAKEN,
    INVALID_ID,
    INVALID_KEY,
    NETWORK,
    PEER_UNAVAILABLE,
    SERVER_ERROR,
    PeerJSError,
)

PEERJS_VERSION = "1.5.5"
ID_RE = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")
# Server ERROR texts (peer 1.0 ``Errors``) after which retrying cannot help.
FATAL_SERVER_ERRORS = frozenset({"Invalid key provided"})


@dataclass(frozen=True)
class ServerAddress:
    """Where the PeerJS server is: PeerJS's ``host``/``port``/``path``/``key``/``secure``."""

    host: str
    port: int
    path: str = "/"
    key: str = "peerjs"
    secure: bool = False

    @property
    def normalized_path(self) -> str:
        path = self.path if self.path.startswith("/") else "/" + self.path
        return path if path.endswith("/") else path + "/"

    def id_url(self, now: int) -> str:
        """``GET <path><key>/id``, with PeerJS's cache-busting ``ts`` and ``version``."""
        scheme = "https" if self.secure else "http"
        query = urlencode({"ts": f"{now}{secrets.randbelow(10**9)}", "version": PEERJS_VERSION})
        return (
            f"{scheme}://{self.host}:{self.port}{self.normalized_path}{quote(self.key)}/id?{query}"
        )

    def socket_url(self, peer_id: str, token: str) -> str:
        scheme = "wss" if self.secure else "ws"
        query = urlencode(
            {"key": self.key, "id": peer_id, "token": token, "version": PEERJS_VERSION}
        )
        return f"{scheme}://{self.host}:{self.port}{self.normalized_path}peerjs?{query}"


# Actions for the IO adapter.
@dataclass(frozen=True)
class FetchId:
    url: str


@dataclass(frozen=True)
class OpenSocket:
    url: str


@dataclass(frozen=True)
class SendFrame:
    text: str


@dataclass(frozen=True)
class CloseSocket:
    pass


Action = FetchId | OpenSocket | SendFrame | CloseSocket


# Events for the application.
@dataclass(frozen=True)
class Opened:
    """The server accepted ``peer_id`` (an OPEN frame, or a silent re-attach, see docs)."""

    peer_id: str
    reattached: bool = False


@dataclass(frozen=True)
class SignalingError:
    """Something went wrong; ``fatal`` means the client is destroyed."""

    code: str
    message: str
    fatal: bool = False


@dataclass(frozen=True)
class Disconnected:
    reason: str


@dataclass(frozen=True)
class Reconnecting:
    attempt: int
    delay_ms: int


@dataclass(frozen=True)
class OfferReceived:
    src: str
    offer: m.Offer


@dataclass(frozen=True)
class AnswerReceived:
    src: str
    answer: m.Answer


@dataclass(frozen=True)
class CandidateReceived:
    src: str
    candidate: m.Candidate


@dataclass(frozen=True)
class PeerLeft:
    """LEAVE: the remote peer is gone; close its connections."""

    src: str


@dataclass(frozen=True)
class PeerUnavailable:
    """EXPIRE: messages to ``src`` were never picked up."""

    src: str


@dataclass(frozen=True)
class Destroyed:
    pass


Event = (
    Opened
    | SignalingError
    | Disconnected
    | Reconnecting
    | OfferReceived
    | AnswerReceived
    | CandidateReceived
    | PeerLeft
    | PeerUnavailable
    | Destroyed
)


class State(enum.Enum):
    NEW = "new"
    FETCHING_ID = "fetching_id"
    CONNECTING = "connecting"  # socket requested, not open yet
    AWAITING_OPEN = "awaiting_open"  # socket open, no OPEN frame yet
    OPEN = "open"
    BACKOFF = "backoff"
    DESTROYED = "destroyed"


TokenProvider = Callable[[str, int], str]


@dataclass(frozen=True)
class Timing:
    """Intervals in milliseconds. ``ping_interval`` is PeerJS's default ``pingInterval``."""

    ping_interval: int = 5000
    open_timeout: int = 10_000
    backoff_initial: int = 1000
    backoff_max: int = 30_000
    backoff_jitter: float = 0.2
    max_queued: int = 256


class SignalingCore:
    """Sans-IO PeerJS signaling client (see the module docstring for inputs and outputs)."""

    def __init__(
        self,
        server: ServerAddress,
        *,
        peer_id: str | None = None,
        token: str | TokenProvider | None = None,
        timing: Timing | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if peer_id is not None and not ID_RE.fullmatch(peer_id):
            raise PeerJSError(INVALID_ID, f"ID {peer_id!r} is invalid")
        self.server = server
        self.timing = timing or Timing()
        self.peer_id = peer_id
        self.id_from_server = peer_id is None
        fixed = token or secrets.token_hex(8)
        self._token: TokenProvider = (lambda _id, _now: fixed) if isinstance(fixed, str) else fixed
        self._rng = rng
        self.state = State.NEW
        self.attempt = 0
        self._ever_opened = False
        self._heartbeat_at: int | None = None
        self._reconnect_at: int | None = None
        self._open_deadline: int | None = None
        self._queue: deque[str] = deque()
        self._actions: list[Action] = []
        self._events: list[Event] = []

    # Outputs.
    def actions(self) -> list[Action]:
        """Actions to perform, oldest first; each is returned once."""
        out, self._actions = self._actions, []
        return out

    def events(self) -> list[Event]:
        """Events for the application, oldest first; each is returned once."""
        out, self._events = self._events, []
        return out

    def actions_pending(self) -> bool:
        return bool(self._actions)

    def get_timer(self) -> int | None:
        deadlines = [
            t
            for t in (self._heartbeat_at, self._reconnect_at, self._open_deadline)
            if t is not None
        ]
        return min(deadlines) if deadlines else None

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    # Inputs.
    def start(self, now: int) -> None:
        if self.state is not State.NEW:
            return
        self._connect(now)

    def id_fetched(self, peer_id: str, now: int) -> None:
        if self.state is not State.FETCHING_ID:
            return
        peer_id = peer_id.strip()
        if not ID_RE.fullmatch(peer_id):
            self._fail_attempt(now, SERVER_ERROR, f"server gave an invalid id {peer_id[:64]!r}")
            return
        self.peer_id = peer_id
        self._open_socket(now)

    def id_fetch_failed(self, reason: str, now: int) -> None:
        if self.state is State.FETCHING_ID:
            self._fail_attempt(now, SERVER_ERROR, f"could not get an id from the server: {reason}")

    def socket_opened(self, now: int) -> None:
        if self.state is not State.CONNECTING:
            return
        self.state = State.AWAITING_OPEN
        self._heartbeat_at = now + self.timing.ping_interval
        # PeerJS sends what was queued as soon as the socket opens.
        while self._queue:
            self._actions.append(SendFrame(self._queue.popleft()))

    def socket_closed(self, now: int, reason: str = "") -> None:
        if self.state in (State.CONNECTING, State.AWAITING_OPEN, State.OPEN):
            was_open = self.state is State.OPEN
            self._heartbeat_at = self._open_deadline = None
            if was_open:
                self._events.append(Disconnected(reason or "socket closed"))
            self._fail_attempt(now, NETWORK, f"lost connection to server: {reason or 'closed'}")

    def frame_received(self, text: str | bytes, now: int) -> None:
        if self.state not in (State.AWAITING_OPEN, State.OPEN):
            return
        try:
            message = m.parse_server_message(text)
        except PeerJSError as exc:
            self._events.append(SignalingError(exc.code, exc.message))
            return
        handler = _HANDLERS.get(message.type)
        if handler is None:
            self._events.append(
                SignalingError(BAD_SERVER_MESSAGE, f"unknown message type {message.type[:32]!r}")
            )
            return
        try:
            handler(self, message, now)
        except PeerJSError as exc:
            self._events.append(SignalingError(exc.code, f"from {message.src}: {exc.message}"))

    def handle_timer(self, now: int) -> None:
        if self._reconnect_at is not None and now >= self._reconnect_at:
            self._reconnect_at = None
            self._connect(now)
        if self._open_deadline is not None and now >= self._open_deadline:
            self._open_deadline = None
            self._open_timed_out(now)
        if self._heartbeat_at is not None and now >= self._heartbeat_at:
            self._actions.append(SendFrame(m.serialize_client_message(m.HEARTBEAT)))
            self._heartbeat_at = now + self.timing.ping_interval

    def send(self, kind: str, payload: Mapping[str, Any], dst: str) -> None:
        """Send OFFER/ANSWER/CANDIDATE/LEAVE to ``dst``; queued while the socket is not open."""
        if self.state is State.DESTROYED:
            return
        text = m.serialize_client_message(kind, payload, dst)
        if self.state in (State.AWAITING_OPEN, State.OPEN):
            self._actions.append(SendFrame(text))
            return
        if len(self._queue) >= self.timing.max_queued:
            self._queue.popleft()
        self._queue.append(text)

    def destroy(self, now: int) -> None:
        if self.state is State.DESTROYED:
            return
        if self.state in (State.CONNECTING, State.AWAITING_OPEN, State.OPEN):
            self._actions.append(CloseSocket())
        self.state = State.DESTROYED
        self._heartbeat_at = self._reconnect_at = self._open_deadline = None
        self._queue.clear()
        self._events.append(Destroyed())

    # Transitions.
    def _connect(self, now: int) -> None:
        if self.peer_id is None:
            self.state = State.FETCHING_ID
            self._actions.append(FetchId(self.server.id_url(now)))
        else:
            self._open_socket(now)

    def _open_socket(self, now: int) -> None:
        assert self.peer_id is not None  # set by _connect or id_fetched
        self.state = State.CONNECTING
        self._open_deadline = now + self.timing.open_timeout
        token = self._token(self.peer_id, now)
        self._actions.append(OpenSocket(self.server.socket_url(self.peer_id, token)))

    def _fail_attempt(self, now: int, code: str, message: str) -> None:
        """An attempt ended badly: report it and come back after the backoff."""
        if self.state in (State.CONNECTING, State.AWAITING_OPEN, State.OPEN):
            self._actions.append(CloseSocket())
        self._heartbeat_at = self._open_deadline = None
        self._events.append(SignalingError(code, message))
        base = min(self.timing.backoff_max, self.timing.backoff_initial * 2**self.attempt)
        delay = int(base * (1 - self.timing.backoff_jitter * self._rng()))
        self.attempt += 1
        self.state = State.BACKOFF
        self._reconnect_at = now + delay
        self._events.append(Reconnecting(self.attempt, delay))

    def _fatal(self, code: str, message: str, now: int) -> None:
        self._events.append(SignalingError(code, message, fatal=True))
        self.destroy(now)

    def _open_timed_out(self, now: int) -> None:
        if self.state is State.AWAITING_OPEN and self._ever_opened:
            # The reference server re-attaches a known id+token without an OPEN frame.
            self._mark_open(reattached=True)
        elif self.state in (State.CONNECTING, State.AWAITING_OPEN):
            self._fail_attempt(now, NETWORK, "no OPEN from the server in time")

    def _mark_open(self, *, reattached: bool = False) -> None:
        assert self.peer_id is not None  # a socket was opened for it
        self.state = State.OPEN
        self.attempt = 0
        self._ever_opened = True
        self._open_deadline = None
        self._events.append(Opened(self.peer_id, reattached))

    # Server frames.
    def _on_open(self, message: m.ServerMessage, now: int) -> None:
        if self.state is State.AWAITING_OPEN:
            self._mark_open()

    def _on_error(self, message: m.ServerMessage, now: int) -> None:
        text = str((message.payload or {}).get("msg", ""))[:200] or "server error"
        if text in FATAL_SERVER_ERRORS:
            self._fatal(INVALID_KEY, text, now)
        else:
            self._fail_attempt(now, SERVER_ERROR, text)

    def _on_id_taken(self, message: m.ServerMessage, now: int) -> None:
        taken = self.peer_id
        if self.id_from_server:
            self.peer_id = None  # ask the server for another one next time
        self._fail_attempt(now, ID_TAKEN, f"ID {taken!r} is taken")

    def _on_invalid_key(self, message: m.ServerMessage, now: int) -> None:
        self._fatal(INVALID_KEY, f"API key {self.server.key!r} is invalid", now)

    def _on_heartbeat(self, message: m.ServerMessage, now: int) -> None:
        """Servers do not send HEARTBEAT; one that does is ignored."""

    def _relayed_src(self, message: m.ServerMessage) -> str:
        if not message.src:
            raise PeerJSError(BAD_SERVER_MESSAGE, f"{message.type} has no src")
        return message.src

    def _on_offer(self, message: m.ServerMessage, now: int) -> None:
        src = self._relayed_src(message)
        self._events.append(OfferReceived(src, m.Offer.parse(message.payload)))

    def _on_answer(self, message: m.ServerMessage, now: int) -> None:
        src = self._relayed_src(message)
        self._events.append(AnswerReceived(src, m.Answer.parse(message.payload)))

    def _on_candidate(self, message: m.ServerMessage, now: int) -> None:
        src = self._relayed_src(message)
        self._events.append(CandidateReceived(src, m.Candidate.parse(message.payload)))

    def _on_leave(self, message: m.ServerMessage, now: int) -> None:
        self._events.append(PeerLeft(self._relayed_src(message)))

    def _on_expire(self, message: m.ServerMessage, now: int) -> None:
        src = self._relayed_src(message)
        self._events.append(PeerUnavailable(src))
        self._events.append(SignalingError(PEER_UNAVAILABLE, f"could not connect to peer {src}"))


_HANDLERS: dict[str, Callable[[SignalingCore, m.ServerMessage, int], None]] = {
    m.OPEN: SignalingCore._on_open,
    m.ERROR: SignalingCore._on_error,
    m.ID_TAKEN: SignalingCore._on_id_taken,
    m.INVALID_KEY: SignalingCore._on_invalid_key,
    m.HEARTBEAT: SignalingCore._on_heartbeat,
    m.OFFER: SignalingCore._on_offer,
    m.ANSWER: SignalingCore._on_answer,
    m.CANDIDATE: SignalingCore._on_candidate,
    m.LEAVE: SignalingCore._on_leave,
    m.EXPIRE: SignalingCore._on_expire,
}
