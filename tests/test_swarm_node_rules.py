"""Rules of docs/protocol.md "Connection semantics" and "Gossip" beyond the browser's tests:
the frame-rate bucket, hello versions, second hellos, bye back-offs, relay limits, PEX
verification, leaving, deadlines and the transition table. Fake clock throughout.
"""

from __future__ import annotations

import pytest

from peers.protocol.errors import ProtocolError
from peers.protocol.gossip import make_gossip
from peers.protocol.mesh import DENY_MS, REFUSED_RETRY_MS, TRANSITIONS, MeshOptions
from peers.protocol.node import FRAME_BURST, FRAME_RATE_PER_S, SwarmNode
from peers.protocol.node_actions import Close, Closed, Deliver, Send
from peers.protocol.ticket import make_ticket, verify_ticket
from peers.protocol.wire import Bye, Hello, Pex, PexReq, Ping, encode_frame
from tests.support.swarm_network import Network, SimPeer, make_identity, pair


def connected_pair() -> tuple[Network, SimPeer, SimPeer, str]:
    net, a, b = pair()
    net.start()
    assert net.run_until(lambda: len(a.node.connected_peers(net.now)) == 1, 4)
    net.run_until(lambda: False, 2)  # hellos, pings and the opening PEX exchange
    a.node.take_actions()
    [conn_id] = a.node.mesh.conns
    return net, a, b, conn_id


def node_of(peer: SimPeer) -> SwarmNode:
    assert isinstance(peer.node, SwarmNode)
    return peer.node


def test_a_connection_may_send_a_burst_of_1000_frames_then_500_per_second() -> None:
    net, a, _b, conn_id = connected_pair()
    node = node_of(a)
    ping = encode_frame(Ping(n=1, ts=1))
    now = net.now + 10_000  # the bucket is full again
    for _ in range(FRAME_BURST):
        node.receive(conn_id, ping, now)
    assert "rate_limited" not in node.stats.dropped
    node.receive(conn_id, ping, now)
    assert node.stats.dropped["rate_limited"] == 1
    later = now + 1000  # one second refills FRAME_RATE_PER_S tokens
    for _ in range(FRAME_RATE_PER_S):
        node.receive(conn_id, ping, later)
    assert node.stats.dropped["rate_limited"] == 1
    for _ in range(10):
        node.receive(conn_id, ping, later)
    assert node.stats.dropped["rate_limited"] == 11
    assert node.mesh.conns == {}, "a flood is misbehaving: eleven violations within a minute"
    assert "misbehaving" in [x.reason for x in node.take_actions() if isinstance(x, Close)]


def test_a_hello_of_another_version_is_refused_with_unsupported_version() -> None:
    net = Network()
    a = net.add_peer()
    other = make_identity("main", net.now)
    node = node_of(a)
    node.opened("x", other.peer_id, False, net.now)
    node.take_actions()
    node.receive("x", encode_frame(Hello(ticket=other.ticket.envelope, v=2)), net.now)
    actions = node.take_actions()
    assert [(x.t, x.data) for x in actions if isinstance(x, Send)] == [
        ("bye", encode_frame(Bye(reason="unsupported_version")))
    ]
    assert [x.reason for x in actions if isinstance(x, Close)] == ["unsupported_version"]


@pytest.mark.parametrize("approval", ["auto", "manual"])
def test_a_second_hello_is_a_violation_in_every_state_after_the_first(approval: str) -> None:
    net, a, b = pair(b={"mesh": MeshOptions(approval=approval)})
    net.start()
    net.run_until(lambda: False, 3)
    node = node_of(b)
    [conn] = node.mesh.conns.values()
    assert conn.state == ("open" if approval == "auto" else "approval")
    assert a.identity is not None
    node.receive(conn.id, encode_frame(Hello(ticket=a.identity.ticket.envelope)), net.now)
    assert node.stats.dropped["unexpected_frame"] == 1
    assert conn.violations == [net.now]
    assert conn.state == ("open" if approval == "auto" else "approval")


@pytest.mark.parametrize(
    ("reason", "wait"),
    [
        ("blocked", DENY_MS),
        ("misbehaving", DENY_MS),
        ("mesh_full", REFUSED_RETRY_MS),
        ("paused", REFUSED_RETRY_MS),
        ("duplicate", 0),
    ],
)
def test_a_bye_tells_how_long_to_wait_before_dialing_the_peer_again(reason: str, wait: int) -> None:
    net, a, b, conn_id = connected_pair()
    node = node_of(a)
    node.receive(conn_id, encode_frame(Bye(reason=reason)), net.now)
    actions = node.take_actions()
    assert [x.reason for x in actions if isinstance(x, Close)] == [f"bye_{reason}"]
    assert [x.reason for x in actions if isinstance(x, Closed)] == [f"bye_{reason}"]
    assert not any(isinstance(x, Send) for x in actions), "no bye in answer to a bye"
    entry = node.book.get(b.peer_id)
    assert entry is not None
    assert entry.next_dial_at == (net.now + wait if wait else 0)


def test_a_bye_leaving_makes_the_peers_ticket_stale_until_a_newer_one() -> None:
    net, a, b, conn_id = connected_pair()
    node = node_of(a)
    node.receive(conn_id, encode_frame(Bye(reason="leaving")), net.now)
    node.take_actions()
    entry = node.book.get(b.peer_id)
    assert entry is not None
    assert entry.next_dial_at == 0, "no back-off: a reloaded page may be dialed at once"
    assert node.book.is_gone(entry)
    assert b.peer_id not in [e.peer_id for e in node.book.dial_candidates(net.now + 1_000)]
    assert b.identity is not None
    newer = make_ticket(b.identity.key, community="main", now=net.now + 1)
    node.book.add_ticket(verify_ticket(newer, now=net.now + 1, community="main"), "pex", net.now)
    assert b.peer_id in [e.peer_id for e in node.book.dial_candidates(net.now + 1)]


def three_in_a_line() -> tuple[Network, SimPeer, SimPeer, SimPeer]:
    """a - b - c, where a and c never connect to each other."""
    net = Network()
    a, b, c = net.add_peer(), net.add_peer(), net.add_peer()
    assert b.identity is not None
    assert c.identity is not None
    node_of(a).add_candidates([b.identity.ticket], "beacon", net.now)
    node_of(b).add_candidates([c.identity.ticket], "beacon", net.now)
    node_of(a).block(c.peer_id, net.now)
    node_of(c).block(a.peer_id, net.now)
    net.start()
    assert net.run_until(lambda: len(node_of(b).connected_peers(net.now)) == 2, 5)
    return net, a, b, c


def test_gossip_is_relayed_with_one_hop_less_until_the_hops_are_spent() -> None:
    net, a, b, c = three_in_a_line()
    assert a.identity is not None
    [from_a] = [p.conn_id for p in node_of(b).connected_peers(net.now) if p.peer_id == a.peer_id]
    frame = make_gossip(
        a.identity.key, origin=a.peer_id, community="main", topic="t", now=net.now, ttl=1
    )
    node_of(b).receive(from_a, encode_frame(frame), net.now)
    node_of(b).receive(from_a, encode_frame(frame), net.now)  # again: a duplicate
    assert node_of(b).stats.gossip_duplicates == 1
    net.collect(b.peer_id)
    net.run_until(lambda: False, 2)
    assert c.delivered[frame.id.hex()].ttl == 0
    last = make_gossip(
        a.identity.key, origin=a.peer_id, community="main", topic="t", now=net.now, ttl=0
    )
    node_of(b).receive(from_a, encode_frame(last), net.now)
    assert [x.message.id for x in node_of(b).take_actions() if isinstance(x, Deliver)] == [
        last.id.hex()
    ]
    net.run_until(lambda: False, 2)
    assert last.id.hex() not in c.delivered, "ttl 0 is delivered, not relayed"
    assert node_of(b).stats.gossip_relayed == 1


def test_gossip_is_not_sent_to_peers_without_the_gossip_capability() -> None:
    net = Network()
    p, q, r = net.add_peer(), net.add_peer(), net.add_peer(caps=("pex",))
    assert q.identity is not None
    assert r.identity is not None
    node_of(p).add_candidates([q.identity.ticket, r.identity.ticket], "beacon", net.now)
    net.start()
    assert net.run_until(lambda: len(node_of(p).connected_peers(net.now)) == 2, 5)
    node_of(p).publish("t", 1, net.now)
    net.collect(p.peer_id)
    net.run_until(lambda: False, 2)
    assert len(q.delivered) == 1
    assert r.delivered == {}, "r's hello did not list gossip"
    assert node_of(p).stats.gossip_published == 1


def test_pex_answers_are_verified_ticket_by_ticket_and_blocked_peers_are_not_merged() -> None:
    net, a, _b, conn_id = connected_pair()
    node = node_of(a)
    good, blocked = make_identity("main", net.now), make_identity("main", net.now)
    expired = make_ticket(
        make_identity("main", net.now).key, community="main", now=net.now - 200_000
    )
    foreign = make_identity("other", net.now).ticket.envelope
    tampered = dict(make_identity("main", net.now).ticket.envelope, sig=good.ticket.envelope["sig"])
    node.block(blocked.peer_id, net.now)
    node.mesh.conns[conn_id].pex.awaiting = True  # as if we had asked
    peers = (good.ticket.envelope, blocked.ticket.envelope, expired, foreign, tampered)
    node.receive(conn_id, encode_frame(Pex(peers=peers)), net.now)
    assert node.book.has(good.peer_id)
    assert not node.book.has(blocked.peer_id)
    assert {k: v for k, v in node.stats.dropped.items() if k.startswith("pex_")} == {
        "pex_expired": 1,
        "pex_wrong_community": 1,
        "pex_bad_signature": 1,
    }
    assert node.mesh.conns[conn_id].violations == [], "bad tickets are not the sender's fault"


def test_an_isolated_node_answers_no_pex_request() -> None:
    net, a, b, conn_id = connected_pair()
    node = node_of(a)
    node.approve(b.peer_id, net.now, always=True)
    node.set_isolated(True, net.now)
    node.receive(conn_id, encode_frame(PexReq(max=5)), net.now + 120_000)
    assert not any(isinstance(x, Send) and x.t == "pex" for x in node.take_actions())
    assert node.stats.dropped == {}


def test_leaving_says_bye_to_every_peer_before_closing() -> None:
    net, a, _b, conn_id = connected_pair()
    node = node_of(a)
    node.leave(net.now)
    actions = node.take_actions()
    assert [type(x).__name__ for x in actions[:2]] == ["Send", "Close"]
    assert actions[0] == Send(conn_id, encode_frame(Bye(reason="leaving")), "bye")
    assert node.mesh.conns == {}
    assert node.mesh.dialing == {}


def test_next_deadline_is_the_earliest_hello_ping_or_prune_time() -> None:
    net = Network()
    a = net.add_peer()
    node = node_of(a)
    assert node.next_deadline(net.now) == net.now + 30_000, "nothing but the prune timer"
    node.opened("x", "p" + "q" * 32, False, net.now + 5)
    assert node.next_deadline(net.now + 5) == net.now + 5 + 10_000, "the hello deadline"


def test_the_connection_states_move_only_along_the_transition_table() -> None:
    assert TRANSITIONS == {
        ("hello", "hello_verified"): "open",
        ("hello", "needs_approval"): "approval",
        ("approval", "approved"): "open",
    }
    _net, a, _b, conn_id = connected_pair()
    conn = node_of(a).mesh.conns[conn_id]
    with pytest.raises(RuntimeError, match="no transition from open on needs_approval"):
        conn.move("needs_approval")


def test_a_refreshed_ticket_goes_into_the_next_hello() -> None:
    net = Network()
    a = net.add_peer()
    assert a.identity is not None
    fresh = make_ticket(a.identity.key, community="main", now=net.now + 1000)
    node_of(a).set_ticket(verify_ticket(fresh, now=net.now + 1000, community="main"))
    node_of(a).opened("x", "p" + "r" * 32, True, net.now + 1000)
    [hello] = [x for x in node_of(a).take_actions() if isinstance(x, Send)]
    assert hello.data == encode_frame(
        Hello(ticket=fresh, caps=("gossip", "pex"), agent="swarm-py/1")
    )


def test_gossip_failing_its_topic_check_is_neither_delivered_nor_relayed_nor_held_against() -> None:
    net, a, b, c = three_in_a_line()
    assert a.identity is not None
    middle = node_of(b)

    def check_post(data: object, now: int) -> None:
        if data == "forged":
            raise ProtocolError("bad_post", "the post's signature does not verify")

    middle.gossip_checks["post"] = check_post
    [from_a] = [p.conn_id for p in middle.connected_peers(net.now) if p.peer_id == a.peer_id]
    forged = make_gossip(
        a.identity.key, origin=a.peer_id, community="main", topic="post", now=net.now, data="forged"
    )
    fine = make_gossip(
        a.identity.key, origin=a.peer_id, community="main", topic="post", now=net.now, data="ok"
    )
    for frame in (forged, forged, fine):
        middle.receive(from_a, encode_frame(frame), net.now)
    net.collect(b.peer_id)
    assert set(b.delivered) == {fine.id.hex()}
    assert middle.stats.dropped == {"gossip_post_bad_post": 1}
    assert middle.stats.gossip_duplicates == 1, "a second copy is not checked again"
    assert middle.mesh.conns[from_a].violations == []
    net.run_until(lambda: False, 2)
    assert set(c.delivered) == {fine.id.hex()}, "only the good one went on"
