"""A browser SwarmNode in a Node.js process, as a Python node look-alike.

The node is static/swarm/protocol/node.js.

tests/js/support/swarm_driver.mjs runs the node; this proxy speaks its JSON-lines protocol
and turns its actions into the Python action classes, so the in-memory network
(tests/support/swarm_network.py) can carry frames between Python and browser nodes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from peers.protocol.gossip import GossipMessage
from peers.protocol.node_actions import (
    Action,
    Close,
    Closed,
    ContentReceived,
    Deliver,
    Dial,
    Event,
    Opened,
    Send,
)
from peers.protocol.wire import CONTENT_FRAMES, decode_frame

ROOT = Path(__file__).resolve().parent.parent.parent
DRIVER = ROOT / "tests" / "js" / "support" / "swarm_driver.mjs"


class JsNodeError(RuntimeError):
    pass


class JsNode:
    """One browser node; every call is one request/answer round trip to the driver."""

    def __init__(self, *, community: str, now: int, seed: int = 1, **options: Any) -> None:
        self.process = subprocess.Popen(
            ["node", str(DRIVER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        answer = self.call("init", community=community, now=now, seed=seed, options=options)
        self.peer_id: str = answer["peerId"]
        self.ticket: dict[str, Any] = answer["ticket"]

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        if self.process.stdin is None or self.process.stdout is None:
            raise JsNodeError("driver pipes are closed")
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise JsNodeError(f"driver exited (code {self.process.poll()}) during {op}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise JsNodeError(answer["error"])
        return answer

    def close(self) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    # --- the inputs of a node (NodeLike) ---

    def opened(self, conn_id: str, remote_peer_id: str, outbound: bool, now: int) -> None:
        self.call("opened", conn=conn_id, peer=remote_peer_id, outbound=outbound, now=now)

    def receive(self, conn_id: str, data: bytes | str, now: int) -> None:
        if isinstance(data, str):
            self.call("receive", conn=conn_id, text=data, now=now)
        else:
            self.call("receive", conn=conn_id, hex=data.hex(), now=now)

    def closed(self, conn_id: str, now: int) -> None:
        self.call("closed", conn=conn_id, now=now)

    def dial_failed(self, peer_id: str, now: int, reason: str = "unreachable") -> None:
        self.call("dial_failed", peer=peer_id, now=now, reason=reason)

    def tick(self, now: int) -> None:
        self.call("tick", now=now)

    def block(self, peer_id: str, now: int) -> None:
        self.call("block", peer=peer_id, now=now)

    def add_candidates(self, tickets: list[dict[str, Any]], now: int) -> None:
        self.call("add_candidates", tickets=tickets, now=now)

    def publish(self, topic: str, data: Any, now: int) -> str:
        answer: str = self.call("publish", topic=topic, data=data, now=now)["id"]
        return answer

    def state(self, now: int) -> dict[str, Any]:
        return self.call("state", now=now)

    def decode(self, frames: list[bytes]) -> list[dict[str, str]]:
        results: list[dict[str, str]] = self.call("decode", hexes=[f.hex() for f in frames])[
            "results"
        ]
        return results

    def take_actions(self) -> list[Action]:
        return [_action(a) for a in self.call("take")["actions"]]


def _action(a: dict[str, Any]) -> Action:
    kind = a["type"]
    if kind == "send":
        return Send(conn_id=a["connId"], data=bytes.fromhex(a["hex"]), t=a["t"])
    if kind == "close":
        return Close(conn_id=a["connId"], reason=a["reason"])
    if kind == "dial":
        return Dial(peer_id=a["peerId"], ticket=None)
    if kind == "opened":
        return Opened(a["connId"], a["peerId"], a["outbound"], a["at"], caps=(), agent=None)
    if kind == "closed":
        return Closed(conn_id=a["connId"], peer_id=a["peerId"], reason=a["reason"])
    if kind == "deliver":
        m = a["message"]
        message = GossipMessage(
            id=m["id"],
            origin=m["origin"],
            topic=m["topic"],
            issued_at=m["issuedAt"],
            data=m["data"],
            ttl=m["ttl"],
            payload=m["payload"],
        )
        return Deliver(message=message, sender=a["from"])
    if kind == "frame":
        frame = decode_frame(bytes.fromhex(a["hex"]))
        if not isinstance(frame, CONTENT_FRAMES):
            raise JsNodeError(f"a frame action carried {frame.t}")
        return ContentReceived(a["connId"], a["peerId"], frame)  # type: ignore[arg-type]
    if kind == "event":
        return Event(a["level"], a["source"], a["code"], a["message"], a.get("peerId"))
    raise JsNodeError(f"unknown action {kind}")
