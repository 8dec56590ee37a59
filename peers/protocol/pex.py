"""Peer exchange (docs/protocol.md "Connection semantics"), mirror of static/swarm/protocol/pex.js.

Ask a connected peer for the tickets it knows (at most one request per minute per
connection, at most 50 tickets per answer), verify each ticket, merge the good ones.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .envelope import JsonObject
from .errors import RATE_LIMITED, UNEXPECTED_FRAME, ProtocolError
from .peerbook import PeerBook
from .ticket import Ticket, verify_ticket
from .wire import MAX_PEX_PEERS, Pex, PexReq

PEX_INTERVAL_MS = 60_000
PEX_DEFAULT_MAX = 16
# Below this many live tickets a node asks its peers; above it, it saves the bandwidth.
PEX_WANT_KNOWN = 32


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str
    message: str


class PexChannel:
    """Per-connection PEX state: who asked when, and whether we await an answer."""

    def __init__(self) -> None:
        self.last_asked_at: int | None = None  # we sent pex_req
        self.last_answered_at: int | None = None  # we answered their pex_req
        self.awaiting = False

    def asked_within(self, now: int) -> bool:
        return self.last_asked_at is not None and now - self.last_asked_at < PEX_INTERVAL_MS

    def should_ask(self, now: int, live_known: int) -> bool:
        """Ask when we know few live peers (tickets expire, so this recurs), once a minute."""
        return live_known < PEX_WANT_KNOWN and not self.asked_within(now)

    def request(self, now: int, max_peers: int = PEX_DEFAULT_MAX) -> PexReq:
        self.last_asked_at = now
        self.awaiting = True
        return PexReq(max=min(max_peers, MAX_PEX_PEERS))

    def answer(self, frame: PexReq, now: int, book: PeerBook, *, exclude: Collection[str]) -> Pex:
        """Their pex_req: raises ``rate_limited`` when they ask again within a minute."""
        if self.last_answered_at is not None and now - self.last_answered_at < PEX_INTERVAL_MS:
            raise ProtocolError(RATE_LIMITED, "pex_req more than once per minute")
        self.last_answered_at = now
        return Pex(peers=tuple(book.sample_tickets(now, exclude=exclude, limit=frame.max)))

    def accept(self) -> None:
        """Their pex: only as the answer to our request."""
        if not self.awaiting:
            raise ProtocolError(UNEXPECTED_FRAME, "pex without a pex_req")
        self.awaiting = False


def verify_pex_tickets(
    tickets: Sequence[JsonObject], *, now: int, community: str, book: PeerBook
) -> tuple[list[Ticket], list[Rejected]]:
    """Verify the tickets of a pex answer one by one; tickets already known byte for byte
    are not verified again. Returns (accepted, rejected)."""
    accepted: list[Ticket] = []
    rejected: list[Rejected] = []
    for envelope in tickets:
        if book.has_ticket(envelope):
            continue
        try:
            accepted.append(verify_ticket(envelope, now=now, community=community))
        except ProtocolError as error:
            rejected.append(Rejected(error.code, error.message))
    return accepted, rejected
