"""Renewed tickets sent to neighbours (gossip topic ``ticket``, ttl 0; docs/protocol.md
"Renewed tickets"), in the Python node on the in-memory network with a fake clock:
a neighbour takes the new ticket into its book (neither delivered nor relayed), so its PEX
answers stay fresh with no beacon around; a ticket that is not its signer's own, an expired
one or garbage is dropped with its code. tests/js/ticket_renewal.test.js checks the browser's
node the same way."""

from __future__ import annotations

from typing import Any

from peers.protocol.node import TICKET_TOPIC, SwarmNode
from peers.protocol.ticket import Ticket, make_ticket, verify_ticket
from tests.support.swarm_network import Network, SimPeer, make_identity

TTL_MS = 180_000  # a page's ticket
RENEW_MS = 150_000  # and how often it renews it


def node(peer: SimPeer) -> SwarmNode:
    assert isinstance(peer.node, SwarmNode)
    return peer.node


def line(net: Network) -> tuple[SimPeer, SimPeer, SimPeer]:
    """a - s - b, a and b kept apart (each blocks the other)."""
    a = net.add_peer(identity=make_identity(net.community, net.now, TTL_MS))
    s = net.add_peer()
    b = net.add_peer(identity=make_identity(net.community, net.now, TTL_MS))
    assert s.identity is not None
    for end in (a, b):
        node(end).add_candidates([s.identity.ticket], "beacon", net.now)
    node(a).block(b.peer_id, net.now)
    node(b).block(a.peer_id, net.now)
    net.start()
    assert net.run_until(lambda: len(node(s).connected_peers(net.now)) == 2, 10)
    return a, s, b


def fresh_ticket(peer: SimPeer, now: int) -> Ticket:
    assert peer.identity is not None
    envelope = make_ticket(peer.identity.key, community="main", now=now, ttl_ms=TTL_MS)
    return verify_ticket(envelope, now=now, community="main")


def renew(net: Network, peer: SimPeer) -> tuple[str | None, Ticket]:
    ticket = fresh_ticket(peer, net.now)
    sent = node(peer).renew_ticket(ticket, net.now)
    net.collect(peer.peer_id)
    net.run_until(lambda: net.idle, 5)
    return sent, ticket


def test_a_neighbour_takes_a_renewed_ticket_and_passes_it_on_to_nobody() -> None:
    net = Network()
    a, s, b = line(net)
    net.advance(60_000)
    sent, ticket = renew(net, b)
    assert sent is not None
    entry = node(s).book.get(b.peer_id)
    assert entry is not None
    assert (entry.issued_at, entry.ticket) == (ticket.issued_at, ticket.envelope)
    assert node(s).stats.tickets_renewed == 1
    assert not [m for m in s.delivered.values() if m.topic == TICKET_TOPIC], "not delivered"
    assert not node(a).log.has(sent), "never relayed"
    assert not [code for code in node(s).stats.dropped if code.startswith("gossip")]


def test_renewed_tickets_keep_pex_answers_fresh_with_no_beacon() -> None:
    def run(renewing: bool) -> tuple[list[Any], int, str]:
        net = Network()
        _, s, b = line(net)
        end = net.now + 12 * 60_000  # four lifetimes of a hello ticket
        while net.now < end:
            net.advance(RENEW_MS)
            if renewing:
                renew(net, b)
        assert b.peer_id in {p.peer_id for p in node(s).connected_peers(net.now)}
        return node(s).book.sample_tickets(net.now, limit=50), net.now, b.peer_id

    fresh, now, b_id = run(renewing=True)
    assert len(fresh) == 1, "b's ticket, live, for anyone who asks s"
    assert verify_ticket(fresh[0], now=now, community="main").peer_id == b_id
    stale, _, _ = run(renewing=False)
    assert stale == [], "without renewals, b's hello ticket expired long ago"


def test_a_ticket_that_is_not_its_signers_own_expired_or_garbage_is_dropped() -> None:
    net = Network()
    _, s, b = line(net)
    other = make_identity(net.community, net.now, TTL_MS)
    assert b.identity is not None
    expired = make_ticket(
        b.identity.key, community="main", now=net.now - TTL_MS - 60_000, ttl_ms=TTL_MS
    )
    for data in (other.ticket.envelope, expired, {"body": "nonsense"}):
        node(b).publish(TICKET_TOPIC, data, net.now, ttl=0)
        net.collect(b.peer_id)
        net.run_until(lambda: net.idle, 5)
    dropped = node(s).stats.dropped
    assert dropped.get("gossip_ticket_peer_mismatch") == 1, dropped
    assert dropped.get("gossip_ticket_expired") == 1, dropped
    assert dropped.get("gossip_ticket_bad_envelope") == 1, dropped
    assert node(s).stats.tickets_renewed == 0
    assert node(s).book.get(other.peer_id) is None, "another peer's ticket is not taken"


def test_with_nobody_connected_a_renewal_sends_nothing() -> None:
    net = Network()
    lone = net.add_peer()
    ticket = fresh_ticket(lone, net.now + 1)
    assert node(lone).renew_ticket(ticket, net.now + 1) is None
    assert node(lone).mesh.ticket == ticket.envelope, "in its hellos all the same"
    assert node(lone).stats.gossip_published == 0
