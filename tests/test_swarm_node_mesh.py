"""The mesh state machine through SwarmNode on an in-memory network, with a fake clock.

A port of tests/js/mesh.test.js: same inputs, same expected outputs, except where the
browser and docs/protocol.md disagree (the doc wins; each such place says so).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import msgpack
import pytest

from peers.protocol.errand import DHT_ERRAND, Errand, content_errand
from peers.protocol.mesh import PEER_UNAVAILABLE, MeshOptions
from peers.protocol.node_actions import Action, Close, ContentReceived, Send
from peers.protocol.ticket import make_ticket, verify_ticket
from peers.protocol.wire import (
    DhtFindNode,
    ManifestReq,
    Pex,
    PexReq,
    Ping,
    WireError,
    encode_frame,
)
from tests.support.swarm_network import Network, SimPeer, make_identity, pair


def open_peers(peer: SimPeer) -> list[str]:
    return [p.peer_id for p in peer.node.connected_peers(0)]


def connected(x: SimPeer, y: SimPeer) -> bool:
    return y.peer_id in open_peers(x) and x.peer_id in open_peers(y)


def close_reasons(peer: SimPeer) -> list[str]:
    return [a.reason for a in peer.node.take_actions() if isinstance(a, Close)]


def test_two_peers_dial_exchange_hellos_with_verified_tickets_and_become_open() -> None:
    net, a, b = pair()
    net.start()
    assert net.run_until(lambda: connected(a, b), 5)
    assert net.rounds == 2, "dial+open in one hop, hellos in the next"
    assert a.node.stats.dial_successes == 1
    assert b.node.stats.inbound == 1
    assert a.node.stats.first_peer_at == net.now
    entry = b.node.book.get(a.peer_id)
    assert entry is not None
    assert entry.ticket is not None
    status = a.node.status(net.now)
    assert (status.state, status.reason, status.peers) == ("online", None, 1)


def test_a_hello_ticket_not_for_the_peerjs_id_is_dropped_with_peer_mismatch() -> None:
    net = Network()
    a = net.add_peer()
    b = net.add_peer()
    other = make_identity("main", net.now)
    b.node.set_ticket(other.ticket)  # b presents someone else's (valid) ticket
    assert b.identity is not None
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    net.start()
    net.run_until(lambda: False, 4)
    assert open_peers(a) == []
    assert "peer_mismatch" in a.closes
    assert a.node.stats.dropped["peer_mismatch"] == 1


def test_a_hello_for_another_community_is_refused_with_wrong_community() -> None:
    net = Network()
    a = net.add_peer()
    b = net.add_peer()
    foreign = make_identity("elsewhere", net.now)
    bb = net.add_peer(identity=foreign)
    assert b.identity is not None
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    a.node.add_seeds([bb.peer_id], net.now)
    net.start()
    net.run_until(lambda: False, 4)
    assert open_peers(a) == [b.peer_id]
    assert "wrong_community" in a.closes


def test_any_frame_before_the_hello_closes_the_connection_with_unexpected_frame() -> None:
    net = Network()
    a = net.add_peer()
    a.node.opened("x1", "p" + "a" * 32, False, net.now)
    a.node.take_actions()
    a.node.receive("x1", encode_frame(Ping(n=1, ts=1)), net.now)
    assert close_reasons(a) == ["unexpected_frame"]
    assert a.node.mesh.conns == {}


def test_no_hello_within_10_s_is_hello_timeout() -> None:
    net = Network()
    a = net.add_peer()
    a.node.opened("x1", "p" + "b" * 32, True, net.now)
    a.node.tick(net.now + 9_999)
    assert len(a.node.mesh.conns) == 1
    a.node.tick(net.now + 10_000)
    assert a.node.mesh.conns == {}
    assert "hello_timeout" in close_reasons(a)


def test_manual_approval_queues_the_peer_until_approved_and_always_is_remembered() -> None:
    net, a, b = pair(b={"mesh": MeshOptions(approval="manual")})
    net.start()
    net.run_until(lambda: False, 3)
    assert open_peers(b) == []
    assert [c.peer_id for c in b.node.mesh.queue()] == [a.peer_id]
    # a considers itself connected, but b ignores its gossip until approved
    a.node.publish("chat", "before approval", net.now)
    net.run_until(lambda: False, 2)
    assert b.delivered == {}
    assert b.node.stats.dropped["awaiting_approval"] >= 1
    b.node.approve(a.peer_id, net.now, always=True)
    assert open_peers(b) == [a.peer_id]
    assert a.peer_id in b.node.mesh.allowed
    a.node.publish("chat", "after approval", net.now)
    net.run_until(lambda: bool(b.delivered), 3)
    assert next(iter(b.delivered.values())).data == "after approval"


def test_denied_peers_are_disconnected_and_refused_for_a_while() -> None:
    net, a, b = pair(b={"mesh": MeshOptions(approval="manual")})
    net.start()
    net.run_until(lambda: len(b.node.mesh.queue()) == 1, 4)
    b.node.deny(a.peer_id, net.now)
    net.run_until(lambda: False, 2)
    assert open_peers(a) == []
    assert "denied" in b.closes
    # a tries again right away (it would after its backoff): refused
    b.node.opened("again", a.peer_id, False, net.now)
    assert "denied" in close_reasons(b)


def test_approval_times_out_after_120_s() -> None:
    net, _a, b = pair(b={"mesh": MeshOptions(approval="manual")})
    net.start()
    net.run_until(lambda: len(b.node.mesh.queue()) == 1, 4)
    net.advance(121_000)
    assert b.node.mesh.queue() == []
    assert "approval_timeout" in b.closes


def test_blocking_a_peer_drops_it_at_once_forgets_it_and_refuses_it_later() -> None:
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    a.node.block(b.peer_id, net.now)
    net.run_until(lambda: False, 2)
    assert open_peers(a) == []
    assert open_peers(b) == []
    assert not a.node.book.has(b.peer_id)
    a.node.opened("z", b.peer_id, False, net.now)
    assert "blocked" in close_reasons(a)
    # a blocked peer's tickets are not taken from rendezvous either
    assert b.identity is not None
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    assert not a.node.book.has(b.peer_id)
    a.node.unblock(b.peer_id)
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    assert a.node.book.has(b.peer_id)


def test_pause_closes_every_connection_and_refuses_all_until_resumed() -> None:
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    a.node.set_paused(True, net.now)
    net.run_until(lambda: False, 2)
    assert open_peers(a) == []
    assert a.node.status(net.now).state == "offline"
    sent = len(a.sent)
    net.advance(120_000)
    # A paused node sends nothing at all, its refusals included (as node.js).
    assert a.sent[sent:] == [], "a paused node sends no frame"
    assert open_peers(b) == []
    a.node.set_paused(False, net.now)
    net.advance(70_000)
    assert net.run_until(lambda: connected(a, b), 10)


def test_isolation_keeps_only_always_approved_peers() -> None:
    net = Network()
    a = net.add_peer()
    b = net.add_peer()
    c = net.add_peer()
    assert b.identity is not None
    assert c.identity is not None
    assert a.identity is not None
    a.node.add_candidates([b.identity.ticket, c.identity.ticket], "beacon", net.now)
    net.start()
    net.run_until(lambda: connected(a, b) and connected(a, c), 5)
    a.node.approve(c.peer_id, net.now, always=True)
    a.node.set_isolated(True, net.now)
    net.run_until(lambda: False, 2)
    assert open_peers(a) == [c.peer_id]
    assert a.node.status(net.now).state == "degraded"
    b.node.add_candidates([a.identity.ticket], "beacon", net.now)
    net.advance(70_000)
    assert open_peers(a) == [c.peer_id], "b is refused while a is isolated"


def test_inbound_connections_beyond_the_maximum_get_bye_mesh_full() -> None:
    net = Network()
    hub = net.add_peer(mesh=MeshOptions(max_conns=2, target=2))
    others = []
    assert hub.identity is not None
    for _ in range(4):
        p = net.add_peer()
        p.node.add_candidates([hub.identity.ticket], "beacon", net.now)
        others.append(p)
    net.start()
    net.run_until(lambda: False, 4)
    assert len(open_peers(hub)) == 2
    assert sum(1 for p in others if "bye_mesh_full" in p.closes) == 2


def test_a_peer_always_allowed_is_let_in_beyond_the_maximum() -> None:
    net = Network()
    hub = net.add_peer(mesh=MeshOptions(max_conns=1, target=1))
    others = []
    assert hub.identity is not None
    for _ in range(3):
        p = net.add_peer()
        p.node.add_candidates([hub.identity.ticket], "beacon", net.now)
        others.append(p)
    hub.node.mesh.allowed.add(others[2].peer_id)
    net.start()
    net.run_until(lambda: False, 4)
    assert others[2].peer_id in open_peers(hub), "the allowed peer is connected"
    assert len(open_peers(hub)) == 2
    assert sum(1 for p in others if "bye_mesh_full" in p.closes) == 1


MANIFEST = "M" * 42 + "A"


def full_hub(
    n: int,
    errand: Errand | None,
    admits: Callable[[Errand], bool] = lambda errand: True,
    **options: int,
) -> tuple[Network, SimPeer, SimPeer, list[SimPeer]]:
    """A hub at its maximum (1) with one member, and ``n`` more peers that each dial it
    once for ``errand`` (a hint's errand goes with the mesh's own dial of it)."""
    net = Network()
    hub = net.add_peer(mesh=MeshOptions(max_conns=1, target=1, **options))
    hub.node.mesh.admits = admits
    member = net.add_peer()
    assert hub.identity is not None
    member.node.add_candidates([hub.identity.ticket], "beacon", net.now)
    net.start()
    assert net.run_until(lambda: connected(hub, member), 5)
    others = []
    for _ in range(n):
        p = net.add_peer(mesh=MeshOptions(target=1))
        p.node.add_hints([hub.peer_id], net.now, errand)
        others.append(p)
    net.run_until(lambda: False, 4)
    return net, hub, member, others


def test_a_full_node_takes_errands_it_admits_up_to_its_spare() -> None:
    _, hub, member, others = full_hub(4, DHT_ERRAND, spare=2)
    assert member.peer_id in open_peers(hub)
    assert len(open_peers(hub)) == 3, "the member and two errands"
    assert hub.node.mesh.errands() == 2
    assert sum(1 for p in others if "bye_mesh_full" in p.closes) == 2
    assert sum(1 for e in hub.events if e.code == "errand_taken") == 2


def test_a_full_node_refuses_an_errand_it_does_not_admit_and_a_dial_naming_none() -> None:
    wanted: list[Errand] = []

    def refuse(errand: Errand) -> bool:
        wanted.append(errand)
        return False

    _, hub, _, others = full_hub(2, content_errand(MANIFEST), refuse)
    assert wanted == [content_errand(MANIFEST)] * 2
    assert len(open_peers(hub)) == 1
    assert sum(1 for p in others if "bye_mesh_full" in p.closes) == 2
    _, plain_hub, _, plain = full_hub(2, None)
    assert len(open_peers(plain_hub)) == 1
    assert sum(1 for p in plain if "bye_mesh_full" in p.closes) == 2


def test_an_idle_errand_connection_is_closed_beyond_the_maximum_and_use_keeps_it() -> None:
    net, hub, _, others = full_hub(2, DHT_ERRAND, errand_idle_ms=30_000)
    busy, idle = others
    assert hub.node.mesh.errands() == 2
    kept = hub.node.mesh.conns_of(busy.peer_id)[0]
    assert busy.identity is not None
    for t in range(4):
        # Nobody answers (the hub runs no DHT); the request counts as use all the same.
        frame = DhtFindNode(id=t + 1, ticket=busy.identity.ticket.envelope, target=bytes(32))
        assert busy.node.send_to(hub.peer_id, frame)
        net.collect(busy.peer_id)
        net.advance(10_000)
    assert kept.id in hub.node.mesh.conns, "in use: kept"
    assert "bye_idle" in idle.closes, "idle for 30 s: closed"
    assert idle.peer_id not in open_peers(hub)
    net.advance(40_000)
    assert "bye_idle" in busy.closes, "and once its use stops, the busy one too"
    assert hub.node.mesh.errands() == 0


def test_an_errand_connection_becomes_a_member_once_the_node_is_within_its_maximum() -> None:
    net, hub, member, others = full_hub(1, DHT_ERRAND)
    (guest,) = others
    net.disconnect(member.peer_id)
    net.advance(31_000)
    assert guest.peer_id in open_peers(hub), "kept: the node is within its maximum"
    assert hub.node.mesh.errands() == 0, "no longer an errand: a member like any other"
    assert "bye_idle" not in guest.closes


def test_a_peer_signaling_calls_absent_on_another_parts_dial_is_not_dialed_for_that_ticket() -> (
    None
):
    net, a, b = pair()
    assert b.identity is not None
    # The DHT (not the mesh) dialed b and signaling answered peer_unavailable.
    a.node.dial_failed(b.peer_id, net.now, PEER_UNAVAILABLE)
    assert a.node.book.stale_since(b.peer_id, b.identity.ticket.issued_at)
    net.start()
    net.run_until(lambda: False, 4)
    assert not a.node.mesh.conns, "b's ticket is known stale: not dialed"
    assert not a.node.mesh.dialing
    # A newer ticket of b (its page reopened) is dialed.
    envelope = make_ticket(b.identity.key, community="main", now=net.now + 1, ttl_ms=180_000)
    newer = verify_ticket(envelope, now=net.now + 1, community="main")
    b.node.set_ticket(newer)
    a.node.book.add_ticket(newer, "beacon", net.now + 1)
    assert not a.node.book.stale_since(b.peer_id, newer.issued_at)
    assert net.run_until(lambda: connected(a, b), 4)


def test_simultaneous_dials_leave_one_connection_the_same_on_both_sides() -> None:
    net, a, b = pair()
    assert a.identity is not None
    b.node.add_candidates([a.identity.ticket], "beacon", net.now)
    net.start()  # both dial at once
    net.run_until(lambda: False, 4)
    assert len(a.node.mesh.conns) == 1
    assert len(b.node.mesh.conns) == 1
    assert connected(a, b)
    kept = next(iter(a.node.mesh.conns.values()))
    dialer = a.peer_id if kept.outbound else b.peer_id
    assert dialer == min(a.peer_id, b.peer_id), "the smaller id's dial stays"


def test_a_peer_that_comes_back_with_a_new_ticket_replaces_its_old_connection() -> None:
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    # b restarts: new session and ticket, same key; a has not noticed the old link died
    assert b.identity is not None
    assert a.identity is not None
    envelope = make_ticket(b.identity.key, community="main", now=net.now + 1, ttl_ms=180_000)
    b.node.set_ticket(verify_ticket(envelope, now=net.now + 1, community="main"))
    b.node.mesh.conns.clear()  # b forgot the old connection (restart)
    b.node.book.add_ticket(a.identity.ticket, "cache", net.now)
    b.node.book.record_success(a.peer_id, net.now)
    net.run_until(lambda: False, 4)
    assert len(a.node.mesh.conns) == 1
    kept = next(iter(a.node.mesh.conns.values()))
    assert kept.ticket is not None
    assert kept.ticket.nonce == envelope["body"]["nonce"]
    assert "duplicate" in a.closes


def test_a_connection_silent_for_90_s_is_degraded_and_for_180_s_stale_closed_redialed() -> None:
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    net.peer(b.peer_id).online = False  # b freezes: no frames, no close
    net.advance(95_000)
    assert a.node.connected_peers(net.now)[0].health == "degraded"
    status = a.node.status(net.now)
    assert status.state == "degraded"
    assert status.reason is not None
    assert re.search("not responding", status.reason)
    net.advance(90_000)
    assert "stale" in a.closes
    net.peer(b.peer_id).online = True
    b.node.mesh.conns.clear()
    assert net.run_until(lambda: b.peer_id in open_peers(a), 100), "a redials b"


def test_ping_pong_measures_round_trip_time_on_the_pingers_clock() -> None:
    net, a, b = pair(net={"round_ms": 40})
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    net.advance(30_000, 40)
    view = a.node.connected_peers(net.now)[0]
    assert view.rtt == 80, "one round each way"
    assert view.loss == 0


def test_garbage_is_dropped_and_counted_and_too_much_of_it_disconnects_the_peer() -> None:
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    conn = next(iter(a.node.mesh.conns.values()))
    for _ in range(10):
        a.node.receive(conn.id, bytes([0xC1]), net.now)
    assert a.node.stats.dropped["bad_msgpack"] == 10
    assert len(a.node.mesh.conns) == 1, "ten bad frames are tolerated"
    a.node.receive(conn.id, bytes([0x92, 1, 2]), net.now)
    assert a.node.stats.dropped["bad_frame"] == 1
    assert a.node.mesh.conns == {}, "the eleventh within a minute disconnects"
    assert "misbehaving" in close_reasons(a)
    entry = a.node.book.get(b.peer_id)
    assert entry is not None
    assert entry.next_dial_at >= net.now + 30 * 60_000


def test_a_second_pex_req_within_a_minute_is_rate_limited_and_unsolicited_pex_a_violation() -> None:
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    net.run_until(lambda: False, 2)  # the automatic pex exchange
    conn = next(iter(a.node.mesh.conns.values()))
    a.node.take_actions()
    a.node.receive(conn.id, encode_frame(PexReq(max=5)), net.now)
    assert a.node.stats.dropped["rate_limited"] == 1
    a.node.receive(conn.id, encode_frame(Pex(peers=())), net.now)
    assert a.node.stats.dropped["unexpected_frame"] == 1
    # after a minute, a new request is answered
    a.node.receive(conn.id, encode_frame(PexReq(max=5)), net.now + 60_000)
    assert any(isinstance(x, Send) and x.t == "pex" for x in a.node.take_actions())


def test_reserved_frame_types_are_dropped_as_unsupported_frame_and_not_held_against_anyone() -> (
    None
):
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    conn = next(iter(a.node.mesh.conns.values()))
    reserved = msgpack.packb({"t": "dht_later", "target": 1})
    a.node.receive(conn.id, reserved, net.now)
    assert a.node.stats.dropped["unsupported_frame"] == 1
    # docs/protocol.md: "dropped and counted, not held against the sender" (node.js counts
    # it as a violation; the doc wins here).
    for _ in range(20):
        a.node.receive(conn.id, reserved, net.now)
    assert a.node.stats.dropped["unsupported_frame"] == 21
    assert conn.violations == []
    assert connected(a, b)


def test_content_frames_pass_through_to_the_content_layer_in_both_directions() -> None:
    net, a, b = pair()
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    frame = ManifestReq(id="A" * 43)
    assert a.node.send_to(b.peer_id, frame)
    assert not a.node.send_to("p" + "z" * 32, frame)
    with pytest.raises(WireError) as excinfo:
        ManifestReq(id="short")
    assert excinfo.value.code == "bad_frame"
    net.collect(a.peer_id)
    got: list[ContentReceived] = []
    take = b.node.take_actions

    def spy() -> list[Action]:
        out = take()
        got.extend(x for x in out if isinstance(x, ContentReceived))
        return out

    b.node.take_actions = spy
    net.round()
    assert [(x.peer_id, x.frame) for x in got] == [(a.peer_id, frame)]


def test_without_signaling_the_mesh_keeps_pinging_its_peers_but_dials_nobody() -> None:
    net = Network()
    a = net.add_peer()
    b = net.add_peer()
    c = net.add_peer()
    assert b.identity is not None
    assert c.identity is not None
    a.node.add_candidates([b.identity.ticket], "beacon", net.now)
    net.start()
    net.run_until(lambda: connected(a, b), 4)
    a.node.mesh.can_dial = False
    a.node.add_candidates([c.identity.ticket], "beacon", net.now)
    dials = a.node.stats.dials
    net.advance(200_000)
    assert connected(a, b), "still connected after 200 s: pings flowed"
    assert a.node.stats.dials == dials, "no dial while signaling is down"
    entry = a.node.book.get(c.peer_id)
    assert entry is not None
    assert entry.failures == 0, "c was not penalized"
    a.node.mesh.can_dial = True
    assert net.run_until(lambda: connected(a, c), 4)


def test_inbound_connections_count_dials_in_flight_against_the_maximum() -> None:
    net = Network()
    a = net.add_peer(mesh=MeshOptions(max_conns=2, target=2))
    b = net.add_peer()
    a.node.mesh.dialing["p" + "d" * 32] = net.now + 15_000
    a.node.opened("in1", b.peer_id, False, net.now)
    assert close_reasons(a) == []
    a.node.opened("in2", "p" + "e" * 32, False, net.now)
    assert close_reasons(a) == ["mesh_full"]
