"""Costs of the Python swarm node (peers/protocol/wire.py, gossip.py, node.py).

What the super-peer pays per frame: decoding and encoding each frame type, checking one
gossip message (JCS + Ed25519), a node receiving and relaying gossip to 8 peers, answering a
ping, and a PEX answer of 16 tickets verified. Then a simulated swarm of N Python nodes.
Usage: python bench/swarm_node.py [--peers 300]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from peers.protocol.encoding import b64url_encode
from peers.protocol.gossip import check_gossip, make_gossip
from peers.protocol.peerbook import PeerBook
from peers.protocol.pex import verify_pex_tickets
from peers.protocol.wire import Chunk, Have, Holding, Pex, Ping, decode_frame, encode_frame
from tests.support.swarm_network import T0, Network, make_identity


def rate(label: str, fn: Callable[[], object], *, seconds: float = 1.0, unit: str = "op") -> float:
    fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn()
        n += 50
    per_s = n / elapsed
    print(f"  {label:<46} {per_s:>10,.0f} {unit}/s  ({1e6 / per_s:,.1f} µs)")
    return per_s


def codec() -> None:
    print("wire codec (decode = size check + msgpack + every field check):")
    alice = make_identity("main", T0)
    digest = b64url_encode(bytes(32))
    frames = {
        "ping": Ping(n=1, ts=T0),
        "gossip (signed payload)": make_gossip(
            alice.key,
            origin=alice.peer_id,
            community="main",
            topic="chat",
            now=T0,
            data={"text": "hi"},
        ),
        "have (256 holdings)": Have(manifests=tuple(Holding(digest, i) for i in range(256))),
        "pex (50 tickets)": Pex(
            peers=tuple(make_identity("main", T0).ticket.envelope for _ in range(50))
        ),
        "chunk (64 KiB + tag)": Chunk(manifest=digest, index=7, chunk=digest, data=bytes(65552)),
    }
    for name, frame in frames.items():
        data = encode_frame(frame)
        per_s = rate(f"decode {name}, {len(data):,} B", lambda data=data: decode_frame(data))
        if name.startswith("chunk"):
            print(f"  {'':<46} {per_s * len(data) / 2**20:>10,.0f} MiB/s decoded")
        rate(f"encode {name}", lambda frame=frame: encode_frame(frame))


def semantics() -> None:
    print("semantics:")
    alice = make_identity("main", T0)
    frame = make_gossip(
        alice.key, origin=alice.peer_id, community="main", topic="chat", now=T0, data={"text": "hi"}
    )
    rate(
        "check_gossip (JCS id + Ed25519 verify)",
        lambda: check_gossip(frame, now=T0, community="main"),
    )
    tickets = [make_identity("main", T0).ticket.envelope for _ in range(16)]
    rate(
        "verify a pex answer of 16 tickets",
        lambda: verify_pex_tickets(tickets, now=T0, community="main", book=PeerBook(self_id="p")),
        unit="answer",
    )


def node_paths() -> None:
    print("node (receive -> actions), one hub with 8 open peers:")
    net = Network()
    hub = net.add_peer()
    spokes = [net.add_peer() for _ in range(8)]
    hub.node.add_candidates([s.identity.ticket for s in spokes], "beacon", net.now)  # type: ignore[union-attr]
    hub.node.mesh.options.target = 8
    net.start()
    net.run_until(lambda: len(hub.node.connected_peers(net.now)) == 8, 10)
    conn = next(iter(hub.node.mesh.conns))
    ping = encode_frame(Ping(n=1, ts=1))
    now = [net.now]

    def receive_ping() -> None:
        now[0] += 2  # stay under the frame-rate bucket
        hub.node.receive(conn, ping, now[0])
        hub.node.take_actions()

    rate("ping in, pong out", receive_ping, unit="frame")
    origin = spokes[0]
    counter = [0]

    def receive_gossip() -> None:
        counter[0] += 1
        now[0] += 2
        frame = make_gossip(
            origin.identity.key,
            origin=origin.peer_id,
            community="main",
            topic="t",
            now=now[0],
            data=counter[0],
        )  # type: ignore[union-attr]
        hub.node.receive(conn, encode_frame(frame), now[0])
        hub.node.take_actions()

    rate("new gossip in: check, deliver, relay to 7 (incl. signing it)", receive_gossip, unit="msg")


def swarm(peers: int) -> None:
    print(
        f"simulated swarm of {peers} Python nodes (tests/test_swarm_node_simulation.py's set-up):"
    )
    tracemalloc.start()
    started = time.perf_counter()
    net = Network(seed=42)
    nodes = [net.add_peer() for _ in range(peers)]
    for node in nodes:
        known: set[str] = set()
        while len(known) < 3:  # three distinct others, as in the test
            other = nodes[int(net.random() * peers)]
            if other is not node:
                known.add(other.peer_id)
        node.node.add_candidates([net.peer(o).identity.ticket for o in known], "beacon", net.now)  # type: ignore[union-attr]
    net.start()
    net.run_until(
        lambda: all(n.node.book.live_count(net.now) >= 8 and n.node.mesh.open() for n in nodes), 40
    )
    meshed = time.perf_counter() - started
    mesh_rounds = net.rounds
    net.run_until(lambda: False, 10)
    message = nodes[0].node.publish("chat", "hi", net.now)
    net.collect(nodes[0].peer_id)
    t, before = time.perf_counter(), net.rounds
    net.run_until(lambda: all(message in n.delivered for n in nodes[1:]), 30)
    gossip_rounds = net.rounds - before
    gossip_s = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    print(
        f"  mesh formed in {mesh_rounds} rounds, {meshed:.1f} s CPU; one message to all in "
        f"{gossip_rounds} rounds, {gossip_s * 1000:.0f} ms CPU; {net.frames_sent:,} frames; "
        f"peak {peak / 2**20:.0f} MiB "
        f"({peak / peers / 1024:.0f} KiB per node)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", type=int, default=300)
    args = parser.parse_args()
    print(machine())
    codec()
    semantics()
    node_paths()
    swarm(args.peers)


if __name__ == "__main__":
    main()
