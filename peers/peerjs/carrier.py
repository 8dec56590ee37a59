"""Signal carriers: another way than the PeerJS server for one connection's signaling.

A :class:`SignalCarrier` carries the signaling messages of one DataConnection to one
remote peer and back (for the swarm: signed messages relayed through the mesh,
docs/protocol.md "Signaling through the mesh"). The messages are PeerJS's own: ``kind`` is
the server message type (``OFFER``, ``ANSWER``, ``CANDIDATE``) and ``payload`` the payload
the PeerJS server would relay, so the same negotiation serves both paths; ``BYE`` (no
PeerJS type) says the remote gave the connection up before it opened.

:meth:`peers.peerjs.peer.Peer.connect` with ``carrier=`` offers through it,
:meth:`peers.peerjs.peer.Peer.take_offer` answers an offer that came through one. The
:class:`Peer` sets ``on_message`` for what comes back and calls ``close`` once the
connection is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from . import messages as m

BYE = "BYE"
CARRIED_KINDS = frozenset({m.OFFER, m.ANSWER, m.CANDIDATE, BYE})

OnMessage = Callable[[str, Mapping[str, Any]], None]


class SignalCarrier(Protocol):
    """One connection's signaling with one remote peer, by some other way than the server."""

    on_message: OnMessage | None

    def send(self, kind: str, payload: dict[str, Any]) -> None:
        """Carry one message (``OFFER``, ``ANSWER``, ``CANDIDATE`` or ``BYE``) to the peer."""
        ...

    def close(self) -> None:
        """The connection is gone: nothing more will be sent or taken."""
        ...


class Carried:
    """A minimal carrier: ``send`` calls ``deliver(kind, payload)``; what comes back is
    handed to it with :meth:`received`. Adapters (the mesh, tests) build on it."""

    def __init__(self, deliver: Callable[[str, dict[str, Any]], None]) -> None:
        self.on_message: OnMessage | None = None
        self.closed = False
        self._deliver = deliver

    def send(self, kind: str, payload: dict[str, Any]) -> None:
        if not self.closed:
            self._deliver(kind, payload)

    def received(self, kind: str, payload: Mapping[str, Any]) -> None:
        if not self.closed and self.on_message is not None:
            self.on_message(kind, payload)

    def close(self) -> None:
        self.closed = True
