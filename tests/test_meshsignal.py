"""Signaling through the mesh (docs/protocol.md "Signaling through the mesh"): swarm/meshsig/v1
messages and the MeshSignal relay against tests/vectors/meshsig.json (which
tests/js/meshsignal.test.js checks for the browser), and fake-clock unit tests of what the
scenarios do not cover."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.protocol.errors import ProtocolError
from peers.protocol.meshsignal import (
    MeshSignal,
    SignalAction,
    SignalDeliver,
    SignalDrop,
    SignalLimits,
    SignalSend,
)
from peers.protocol.meshsignal_messages import (
    DOMAIN_MESHSIG,
    MAX_AGE_MS,
    MAX_SIGNAL_BYTES,
    VIOLATIONS,
    make_signal,
    new_session_id,
    parse_signal,
    signal_id,
)
from peers.protocol.wire import (
    MAX_REACH_PEERS,
    MAX_SIGNAL_HOPS,
    Reach,
    Signal,
    decode_frame,
    encode_frame,
    parse_frame,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "meshsig.json").read_text())
NOW: int = VECTORS["now"]
KEYS: dict[str, Any] = VECTORS["keys"]
MESSAGES: dict[str, Any] = VECTORS["messages"]
SCENARIOS = {s["name"]: s for s in VECTORS["scenarios"]}


def ed(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(KEYS[label]["seed_hex"]))


def pid(label: str) -> str:
    peer_id: str = KEYS[label]["peer_id"]
    return peer_id


LABEL_OF = {pid(label): label for label in KEYS}


def code_of(call: Any) -> str:
    with pytest.raises(ProtocolError) as caught:
        call()
    return caught.value.code


def test_constants_are_the_specs() -> None:
    assert DOMAIN_MESHSIG == "swarm/meshsig/v1"
    assert (MAX_SIGNAL_BYTES, MAX_AGE_MS, MAX_SIGNAL_HOPS, MAX_REACH_PEERS) == (8192, 60_000, 6, 64)
    ids = {new_session_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 and i[-1] in "AQgw" for i in ids)


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_vectors_parse_and_are_made_again(case: dict[str, Any]) -> None:
    envelope = case["envelope"]
    message = parse_signal(envelope, now=NOW)
    body = envelope["body"]
    assert message.id == case["id"] == signal_id(body)
    assert (message.kind, message.from_peer, message.to) == (body["kind"], body["from"], body["to"])
    assert (message.sid, message.created_at, message.hops) == (
        body["sid"],
        body["created_at"],
        body["hops"],
    )
    assert message.payload == body["payload"]
    make = case["make"]
    again = make_signal(
        ed(make["signer"]),
        to=pid(make["to"]),
        sid=make["sid"],
        kind=make["kind"],
        payload=make["payload"],
        created_at=make["created_at"],
        hops=make["hops"],
    )
    assert again == envelope


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_vectors_fail_with_their_code(case: dict[str, Any]) -> None:
    assert code_of(lambda: parse_signal(case["envelope"], now=NOW)) == case["error"]


@pytest.mark.parametrize("case", VECTORS["make_invalid"], ids=lambda c: c["name"])
def test_making_what_receivers_refuse_fails(case: dict[str, Any]) -> None:
    make = case["make"]

    def call() -> None:
        make_signal(
            ed(make["signer"]),
            to=pid(make["to"]),
            sid=make["sid"],
            kind=make["kind"],
            payload=make["payload"],
            created_at=make["created_at"],
            hops=make["hops"],
        )

    assert code_of(call) == case["error"]


def test_a_payload_that_is_no_json_value_is_bad_signal() -> None:
    sid = new_session_id()
    for payload in (1.5, {"x": b"bytes"}, 2**60):
        call = lambda p=payload: make_signal(  # noqa: E731
            ed("alice"), to=pid("bob"), sid=sid, kind="offer", payload=p, created_at=NOW
        )
        assert code_of(call) == "bad_signal"


# --- scenarios ---


def message_id(label: str) -> str:
    return signal_id(MESSAGES[label]["body"])


def frame_of(value: dict[str, Any]) -> Signal | Reach:
    if value["t"] == "reach":
        frame = parse_frame({"t": "reach", "peers": [pid(p) for p in value["peers"]]})
    else:
        frame = parse_frame({"t": "signal", "hops": value["hops"], "msg": MESSAGES[value["msg"]]})
    # Through the codec, as frames arrive.
    decoded = decode_frame(encode_frame(frame))
    assert isinstance(decoded, (Signal, Reach))
    return decoded


def expected(entry: list[Any]) -> list[Any]:
    if entry[0] == "signal":
        return ["signal", entry[1], entry[2], message_id(entry[3])]
    if entry[0] == "deliver":
        return ["deliver", message_id(entry[1]), entry[2], entry[3]]
    if entry[0] == "reach":
        return ["reach", entry[1], entry[2]]
    if len(entry) == 5:  # a drop naming its message
        return [*entry[:4], message_id(entry[4])]
    return entry


def described(action: SignalAction) -> list[Any]:
    if isinstance(action, SignalSend):
        if isinstance(action.frame, Reach):
            return ["reach", action.conn_id, [LABEL_OF[p] for p in action.frame.peers]]
        return ["signal", action.conn_id, action.frame.hops, signal_id(action.frame.msg["body"])]
    if isinstance(action, SignalDeliver):
        return ["deliver", action.message.id, action.conn_id, action.traveled]
    return ["drop", action.code, action.violation, action.conn_id, action.id]


def run_scenario(scenario: dict[str, Any]) -> MeshSignal:
    node = MeshSignal(
        peer_id=pid("alice"),
        private_key=ed("alice"),
        limits=SignalLimits(**scenario["limits"]),
        now=NOW,
    )
    for index, step in enumerate(scenario["steps"]):
        at, op = step["at"], step["op"]
        if op == "connected":
            node.connected(step["conn"], pid(step["peer"]), step["caps"], at)
        elif op == "disconnected":
            node.disconnected(step["conn"], at)
        elif op == "receive":
            node.receive(step["conn"], frame_of(step["frame"]), at)
        elif op == "tick":
            node.tick(at)
        else:
            got = node.send(
                to=pid(step["to"]),
                sid=step["sid"],
                kind=step["kind"],
                payload=step["payload"],
                now=at,
                hops=step["hops"],
            )
            assert got == message_id(step["as"])
        want = [expected(e) for e in step["expect"]]
        actions = [described(a) for a in node.take_actions()]
        # Drops name their message only where the scenario says which it is.
        actions = [
            a[: len(w)] if a[0] == w[0] == "drop" else a
            for a, w in zip(actions, want, strict=False)
        ] + actions[len(want) :]
        assert actions == want, f"step {index} ({op})"
    return node


@pytest.mark.parametrize("scenario", VECTORS["scenarios"], ids=lambda s: s["name"])
def test_scenarios_give_exactly_the_expected_actions(scenario: dict[str, Any]) -> None:
    run_scenario(scenario)


def test_the_bad_input_scenario_names_every_code_with_its_blame() -> None:
    steps = SCENARIOS["bad_input"]["steps"]
    drops = {e[1]: e[2] for s in steps for e in s["expect"] if e[0] == "drop"}
    assert {c for c, v in drops.items() if v} == set(VIOLATIONS)
    assert {"expired", "not_yet_valid", "unknown_kind", "duplicate"} <= set(drops)


# --- fake-clock unit tests beyond the scenarios ---


def line(n: int) -> list[MeshSignal]:
    """alice - bob - carol - ...: each connected to the next, reach adverts exchanged."""
    labels = list(KEYS)[:n]
    nodes = [MeshSignal(peer_id=pid(label), private_key=ed(label), now=NOW) for label in labels]
    for i in range(n - 1):
        nodes[i].connected(f"{i}>{i + 1}", pid(labels[i + 1]), ["signal"], NOW)
        nodes[i + 1].connected(f"{i + 1}>{i}", pid(labels[i]), ["signal"], NOW)
    run(nodes, NOW)
    for node in nodes:
        node.tick(NOW + 5000)
    run(nodes, NOW + 5000)
    return nodes


def run(nodes: list[MeshSignal], now: int) -> list[tuple[int, SignalAction]]:
    """Carry frames along the line until nothing moves; returns what was not a send."""
    seen: list[tuple[int, SignalAction]] = []
    moved = True
    while moved:
        moved = False
        for i, node in enumerate(nodes):
            for action in node.take_actions():
                if isinstance(action, SignalSend):
                    j = int(action.conn_id.split(">")[1])
                    frame = decode_frame(encode_frame(action.frame))
                    assert isinstance(frame, (Signal, Reach))
                    nodes[j].receive(f"{j}>{i}", frame, now)
                    moved = True
                else:
                    seen.append((i, action))
    return seen


def test_a_session_across_four_hops_floods_once_then_goes_unicast() -> None:
    nodes = line(5)
    sid = new_session_id()
    alice, erin = nodes[0], nodes[4]
    alice.send(to=erin.peer_id, sid=sid, kind="offer", payload={"sdp": "o"}, now=NOW + 6000)
    alice.send(to=erin.peer_id, sid=sid, kind="candidate", payload={"c": 1}, now=NOW + 6000)
    out = run(nodes, NOW + 6000)
    assert [(i, a.message.kind, a.traveled) for i, a in out if isinstance(a, SignalDeliver)] == [
        (4, "offer", 4)
    ]
    assert [d.code for _, d in out if isinstance(d, SignalDrop)] == []
    assert len(alice.pending[erin.peer_id]) == 1  # the candidate waits for a route
    erin.send(to=alice.peer_id, sid=sid, kind="answer", payload={"sdp": "a"}, now=NOW + 6100)
    out = run(nodes, NOW + 6100)
    delivered = [(i, a.message.kind) for i, a in out if isinstance(a, SignalDeliver)]
    assert delivered == [(0, "answer"), (4, "candidate")]
    assert alice.pending == {}
    relayed = sum(n.stats.relayed for n in nodes)
    assert relayed == 3 * 3  # three messages, three relays each: no second flood
    assert sum(n.stats.flooded for n in nodes) == 2  # alice's offer, and bob's copy of it


def test_a_route_lives_route_ttl_after_its_last_message() -> None:
    nodes = line(5)
    alice, bob, erin = nodes[0], nodes[1], nodes[4]
    sid = new_session_id()
    erin.send(to=alice.peer_id, sid=sid, kind="offer", payload=1, now=NOW + 6000)
    run(nodes, NOW + 6000)
    assert (alice.routes[erin.peer_id].dist, bob.routes[erin.peer_id].dist) == (4, 3)
    ttl = bob.limits.route_ttl_ms
    alice.send(to=erin.peer_id, sid=sid, kind="candidate", payload=2, now=NOW + 6000 + ttl - 1)
    out = run(nodes, NOW + 6000 + ttl - 1)
    assert [a.message.payload for _, a in out if isinstance(a, SignalDeliver)] == [2]
    alice.send(to=erin.peer_id, sid=sid, kind="candidate", payload=3, now=NOW + 6000 + ttl)
    out = run(nodes, NOW + 6000 + ttl)
    # erin is four hops away, beyond anyone's reach adverts: only the learned route led there.
    drops = [(i, a.code, a.conn_id) for i, a in out if isinstance(a, SignalDrop)]
    assert drops == [(0, "no_route", None)]


def test_has_route_knows_neighbours_their_reach_and_learned_routes() -> None:
    nodes = line(5)
    alice, bob, carol, dave, erin = nodes
    now = NOW + 6000
    assert alice.has_route(bob.peer_id, now)  # a neighbour
    assert alice.has_route(carol.peer_id, now)  # in bob's reach
    # Three and four hops: beyond anyone's reach adverts, only a flood would find them.
    assert not alice.has_route(dave.peer_id, now)
    assert not alice.has_route(erin.peer_id, now)
    erin.send(to=alice.peer_id, sid=new_session_id(), kind="offer", payload=1, now=now)
    run(nodes, now)
    assert alice.has_route(erin.peer_id, now)  # learned from erin's offer
    assert not alice.has_route(erin.peer_id, now + alice.limits.route_ttl_ms)
    bob.disconnected("1>0", now)
    alice.disconnected("0>1", now)
    assert not alice.has_route(carol.peer_id, now)


def test_a_disconnect_drops_the_routes_through_it_and_updates_reach() -> None:
    nodes = line(3)
    alice, bob, carol = nodes
    alice.send(to=carol.peer_id, sid=new_session_id(), kind="bye", payload=None, now=NOW + 6000)
    run(nodes, NOW + 6000)
    assert carol.routes[alice.peer_id].conn_id == "2>1"
    carol.disconnected("2>1", NOW + 7000)
    assert alice.peer_id not in carol.routes
    bob.disconnected("1>2", NOW + 7000)
    bob.tick(NOW + 10_000)
    reach = [a for a in bob.take_actions() if isinstance(a, SignalSend)]
    assert [(a.conn_id, a.frame) for a in reach] == [("1>0", Reach(peers=()))]


def test_the_sender_is_held_to_its_own_rate_and_queue_limits() -> None:
    limits = SignalLimits(origin_burst=3, max_pending=1, max_pending_peers=1)
    alice = MeshSignal(peer_id=pid("alice"), private_key=ed("alice"), limits=limits, now=NOW)
    alice.connected("c", pid("bob"), ["signal"], NOW)
    alice.take_actions()
    sid = new_session_id()
    alice.send(to=pid("erin"), sid=sid, kind="offer", payload=1, now=NOW)
    alice.send(to=pid("erin"), sid=sid, kind="candidate", payload=2, now=NOW)
    alice.send(to=pid("erin"), sid=sid, kind="candidate", payload=3, now=NOW)
    alice.send(to=pid("erin"), sid=sid, kind="candidate", payload=4, now=NOW)
    codes = [a.code for a in alice.take_actions() if isinstance(a, SignalDrop)]
    assert codes == ["queue_full", "rate_limited"]
    alice.send(to=pid("frank"), sid=sid, kind="offer", payload=5, now=NOW + 1000)
    alice.send(to=pid("frank"), sid=sid, kind="candidate", payload=6, now=NOW + 1000)
    codes = [a.code for a in alice.take_actions() if isinstance(a, SignalDrop)]
    assert codes == ["queue_full"]  # one peer may wait at a time here
    assert alice.next_deadline(NOW + 1000) == NOW + alice.limits.discovery_ms


def test_an_offer_flooded_with_nothing_held_is_due_a_tick_when_its_discovery_ends() -> None:
    alice = MeshSignal(peer_id=pid("alice"), private_key=ed("alice"), now=NOW)
    alice.connected("c", pid("bob"), ["signal"], NOW)
    alice.take_actions()
    offer = alice.send(to=pid("erin"), sid=new_session_id(), kind="offer", payload=None, now=NOW)
    alice.take_actions()
    due = alice.next_deadline(NOW + 1)
    assert due == NOW + alice.limits.discovery_ms
    alice.tick(due)
    drops = [(a.code, a.id) for a in alice.take_actions() if isinstance(a, SignalDrop)]
    assert drops == [("no_route", offer)]


def test_reach_lists_at_most_64_peers_and_never_the_recipient() -> None:
    hub = MeshSignal(peer_id=pid("alice"), private_key=ed("alice"), now=NOW)
    others = [f"p{chr(97 + i % 26)}{chr(97 + i // 26)}" + "a" * 30 for i in range(70)]
    for i, peer in enumerate(others):
        hub.connected(f"c{i}", peer, ["signal"], NOW)
    sends = [a for a in hub.take_actions() if isinstance(a, SignalSend)]
    last = sends[-1].frame
    assert isinstance(last, Reach)
    assert len(last.peers) == MAX_REACH_PEERS
    assert others[-1] not in last.peers
    assert last.peers == tuple(others[:64])


def test_seen_ids_are_forgotten_once_the_message_could_not_be_taken_anyway() -> None:
    nodes = line(2)
    alice, bob = nodes
    alice.send(to=bob.peer_id, sid=new_session_id(), kind="bye", payload=None, now=NOW + 6000)
    run(nodes, NOW + 6000)
    assert len(bob.seen) == 1
    forget = NOW + 6000 + MAX_AGE_MS + 15_000
    bob.tick(forget - 1)
    bob.next_prune_at = forget - 1
    bob.tick(forget - 1)
    assert len(bob.seen) == 1
    bob.next_prune_at = forget
    bob.tick(forget)
    assert bob.seen == {}
