"""300 Python nodes running the real mesh/PEX/gossip code over the in-memory network.

The fast variant of tests/js/simulation.test.js (1,000 browser nodes): each node starts
knowing 3 random others (what a sparse rendezvous gives); peer exchange must spread
knowledge so everyone knows 8+ live peers within bounded rounds, one gossip message must
reach 99% of the nodes, and again after a tenth of them leave at once.
SWARM_SIM_PEERS=1000 runs the browser's size.
"""

from __future__ import annotations

import os
import time

from peers.protocol.ticket import Ticket
from tests.support.swarm_network import T0, Network, SimPeer, make_identity

PEERS = int(os.environ.get("SWARM_SIM_PEERS", "300"))
BOOTSTRAP = 3
MAX_MESH_ROUNDS = 40
MAX_GOSSIP_ROUNDS = 30


def ticket_of(peer: SimPeer) -> Ticket:
    assert peer.identity is not None
    return peer.identity.ticket


def test_simulated_nodes_all_know_8_others_and_gossip_reaches_99_percent() -> None:
    started = time.perf_counter()
    net = Network(seed=42, round_ms=100)
    peers = [net.add_peer(identity=make_identity("main", T0)) for _ in range(PEERS)]
    for peer in peers:
        known: set[str] = set()
        while len(known) < BOOTSTRAP:
            other = peers[int(net.random() * PEERS)]
            if other is not peer:
                known.add(other.peer_id)
        tickets = [ticket_of(net.peer(p)) for p in known]
        peer.node.add_candidates(tickets, "beacon", net.now)

    net.start()

    def knows_enough() -> bool:
        return all(p.node.book.live_count(net.now) >= 8 and p.node.mesh.open() for p in peers)

    meshed = net.run_until(knows_enough, MAX_MESH_ROUNDS)
    mesh_rounds = net.rounds
    known_counts = [p.node.book.live_count(net.now) for p in peers]
    degree = [len(p.node.mesh.open()) for p in peers]
    assert meshed, f"after {MAX_MESH_ROUNDS} rounds a node knows {min(known_counts)} (< 8)"
    net.run_until(lambda: False, 10)  # let dialing settle, then measure one message

    frames_before = net.sent_by_type.get("gossip", 0)
    origin = peers[0]
    message_id = origin.node.publish("chat", {"text": f"hello, {PEERS} peers"}, net.now)
    net.collect(origin.peer_id)
    gossip_start = net.rounds
    net.run_until(
        lambda: all(message_id in p.delivered for p in peers[1:]) or net.idle,
        MAX_GOSSIP_ROUNDS,
    )
    reached = 1 + sum(1 for p in peers[1:] if message_id in p.delivered)
    gossip_frames = net.sent_by_type.get("gossip", 0) - frames_before
    print(
        f"\npeers={PEERS} mesh: {mesh_rounds} rounds until every node knew >=8 live peers "
        f"(min {min(known_counts)}, mean {sum(known_counts) / PEERS:.1f}); degree min "
        f"{min(degree)} mean {sum(degree) / PEERS:.2f} max {max(degree)}; gossip reached "
        f"{reached}/{PEERS} in {net.rounds - gossip_start} rounds, "
        f"{gossip_frames / PEERS:.2f} frames per node"
    )
    assert reached >= 0.99 * PEERS, f"gossip reached only {reached} of {PEERS}"
    assert gossip_frames / PEERS < 12, "flooding should cost about one frame per mesh edge"

    # Churn: a tenth leave at once; the rest repair the mesh and still hear everything.
    leaving = [p for p in peers if net.random() < 0.1]
    for p in leaving:
        net.disconnect(p.peer_id)
    staying = [p for p in peers if p.online]
    net.run_until(lambda: False, 20)
    sender = staying[-1]
    second_id = sender.node.publish("chat", {"text": "still here?"}, net.now)
    net.collect(sender.peer_id)
    net.run_until(
        lambda: all(second_id in p.delivered for p in staying if p is not sender) or net.idle,
        MAX_GOSSIP_ROUNDS,
    )
    reached_after = 1 + sum(1 for p in staying if p is not sender and second_id in p.delivered)
    print(
        f"churn: {len(leaving)} left; gossip reached {reached_after}/{len(staying)}; "
        f"{time.perf_counter() - started:.1f} s in all"
    )
    assert reached_after >= 0.99 * len(staying)
