"""The super-peer's Python peer (peers.peerjs, with the ICE settings the super-peer builds),
run as its own process so that a test can start it inside a network namespace
(tests/browser/test_turn_nat.py). It signals through the given server, accepts one
connection, prints the types of the candidates it gathered, echoes every message until the
text ``bye``, then leaves. Lines on stdout: ``ready``, ``open <candidate types as JSON>``,
``done``. The TURN secret comes from ``SWARM_TURN_SECRET`` in the environment.

    python -m tests.support.netns_peer HOST PORT PEER_ID TURN_URL POLICY
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from peers.peerjs.ice import IceConfig
from peers.peerjs.peer import Peer
from peers.peerjs.signaling import ServerAddress


async def main(host: str, port: int, peer_id: str, turn_url: str, policy: str) -> None:
    ice = IceConfig.from_settings(
        [], [], [turn_url], os.environ["SWARM_TURN_SECRET"], 600, transport_policy=policy
    )
    peer = Peer(ServerAddress(host, port, path="/signal/"), peer_id=peer_id, ice=ice)
    await peer.start()
    try:
        print("ready", flush=True)
        conn = await asyncio.wait_for(peer.accept(), 120)
        await conn.wait_open(120)
        gathered = conn.peer_connection.sctp.transport.transport.iceGatherer.getLocalCandidates()
        print("open", json.dumps(sorted({c.type for c in gathered})), flush=True)
        while (message := await asyncio.wait_for(conn.recv(), 120)) != "bye":
            await conn.send(message)
        print("done", flush=True)
    finally:
        await peer.destroy()


if __name__ == "__main__":
    host, port, peer_id, turn_url, policy = sys.argv[1:6]
    asyncio.run(main(host, int(port), peer_id, turn_url, policy))
