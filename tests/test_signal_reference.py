"""Differential: scripted sessions get the same server messages from us as from the
reference PeerJS server (npm ``peer`` 1.0.2, started here on 127.0.0.1).

Each session is a script of steps; after each step every client's frames (and whether the
server closed it) are collected. Random ids are replaced by the clients' names before the
transcripts are compared. Our deliberate differences (docs/signaling.md) are not scripted
here; tests/test_signal_live.py covers them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.peerjs_server import start_reference_server
from tests.support.signal import Cluster, SignalClient, new_id, start_cluster

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

EXPIRE_MS = 500
ALIVE_MS = 1200
# The reference server checks queues every 1 s and sockets every 300 ms.
EXPIRE_WAIT_S = EXPIRE_MS / 1000 + 1.3
ALIVE_WAIT_S = ALIVE_MS / 1000 + 0.8


@dataclass
class Target:
    name: str
    ws: Callable[[int], str]
    http: str


@pytest.fixture(scope="module")
def reference(artifacts_dir: Path) -> Iterator[Target]:
    server = start_reference_server(
        artifacts_dir,
        *("--expire_timeout", str(EXPIRE_MS), "--alive_timeout", str(ALIVE_MS)),
        path="/signal/",
    )
    yield Target("reference", lambda n: server.ws_url, server.url)
    server.stop()


@pytest.fixture(scope="module", params=["embedded", "redis-2"])
def ours(
    request: pytest.FixtureRequest,
    live_db: None,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[Target]:
    redis = request.param == "redis-2"
    cluster: Cluster = start_cluster(
        f"diff-{request.param}",
        2 if redis else 1,
        tmp_path_factory.mktemp("signal-diff"),
        artifacts_dir,
        {
            "SWARM_SIGNAL_EXPIRE_TIMEOUT_MS": str(EXPIRE_MS),
            "SWARM_SIGNAL_ALIVE_TIMEOUT_MS": str(ALIVE_MS),
        },
        redis=redis,
    )
    yield Target(request.param, cluster.ws, cluster.http())
    cluster.stop()


@dataclass
class Session:
    target: Target
    clients: dict[str, SignalClient] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)
    transcript: list[Any] = field(default_factory=list)

    async def open(
        self,
        name: str,
        *,
        peer: str | None = None,
        token: str | None = "tok",
        key: str | None = "peerjs",
        heartbeat: bool = True,
    ) -> SignalClient:
        peer_id = peer if peer is not None else new_id(name.lower())
        if peer_id:
            self.names.setdefault(peer_id, name)
        label = name if name not in self.clients else f"{name}'"
        client = await SignalClient.connect(
            self.target.ws(len(self.clients)), peer_id or None, token, key=key, heartbeat=heartbeat
        )
        self.clients[label] = client
        return client

    def id(self, name: str) -> str:
        return next(peer for peer, known in self.names.items() if known == name)

    async def step(self, label: str, quiet: float = 0.25) -> None:
        live = {name: c for name, c in self.clients.items() if name not in self.closed}
        drained = await asyncio.gather(*(self._drain(c, quiet) for c in live.values()))
        seen: dict[str, Any] = {}
        for name, (frames, closed) in zip(live, drained, strict=True):
            if closed:
                self.closed.add(name)
            if frames or closed:
                seen[name] = {"frames": frames, "closed": closed}
        self.transcript.append([label, self._named(seen)])

    async def _drain(self, client: SignalClient, quiet: float) -> tuple[list[Any], bool]:
        frames: list[Any] = []
        while True:
            try:
                frame = await client.recv(timeout=quiet)
            except TimeoutError:
                return frames, False
            if frame is None:
                return frames, True
            frames.append(frame)

    def _named(self, value: Any) -> Any:
        text = json.dumps(value, sort_keys=True)
        for peer_id, name in self.names.items():
            text = text.replace(peer_id, f"<{name}>")
        return json.loads(text)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


Script = Callable[[Session], Awaitable[None]]


async def relay(s: Session) -> None:
    a, b = await s.open("A"), await s.open("B")
    await s.step("open")
    payload = {"sdp": {"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 300}, "connectionId": "dc_1"}
    await a.send({"type": "OFFER", "src": "forged", "dst": s.id("B"), "payload": payload, "x": 1})
    await s.step("offer")
    await b.send({"type": "ANSWER", "dst": s.id("A"), "payload": {"sdp": "answer"}})
    await a.send({"type": "CANDIDATE", "dst": s.id("B")})
    await a.send({"type": "CANDIDATE", "dst": s.id("B"), "payload": None})
    await a.send({"type": "HEARTBEAT"})
    await s.step("answer, candidates, heartbeat")
    await b.send({"type": "LEAVE", "dst": s.id("A"), "payload": {"connectionId": "dc_1"}})
    await a.send({"type": "EXPIRE", "dst": s.id("B")})
    await s.step("leave, expire")


async def unknown_types(s: Session) -> None:
    a, _b = await s.open("A"), await s.open("B")
    await s.step("open")
    for text in ["[]", '{"dst":"x"}', '{"type":"SHOUT","dst":"x"}', '{"type":7,"dst":"x"}']:
        await a.send(text.replace('"x"', json.dumps(s.id("B"))))
    await a.send({"type": "OFFER"})
    await a.send({"type": "OFFER", "dst": ""})
    await s.step("dropped")
    await a.send({"type": "OFFER", "dst": s.id("B"), "payload": "still works"})
    await s.step("alive")


async def invalid_json(s: Session) -> None:
    # The reference server stops reading a socket after a frame JSON.parse rejects (or a
    # bare number/null); only the silence right after it is comparable.
    for n, text in enumerate(["{nope", "5", "null"]):
        client = await s.open(f"C{n}")
        await s.step(f"open {n}", quiet=0.2)
        await client.send(text)
    await s.step("no answer, no close")


async def queue_then_open(s: Session) -> None:
    a = await s.open("A")
    await s.step("open")
    absent = new_id("c")
    s.names[absent] = "C"
    for n in range(2):
        await a.send({"type": "CANDIDATE", "dst": absent, "payload": {"n": n}})
    await a.send({"type": "LEAVE", "dst": absent})
    await a.send({"type": "EXPIRE", "dst": absent})
    await s.step("queued")
    await s.open("C", peer=absent)
    await s.step("C opens")
    await s.step("no expire", quiet=EXPIRE_WAIT_S)


async def expire(s: Session) -> None:
    a, b = await s.open("A"), await s.open("B")
    await s.step("open")
    absent = new_id("x")
    s.names[absent] = "X"
    await a.send({"type": "OFFER", "dst": absent})
    await a.send({"type": "CANDIDATE", "dst": absent})
    await b.send({"type": "OFFER", "dst": absent})
    await s.step("expired", quiet=EXPIRE_WAIT_S)


async def id_taken(s: Session) -> None:
    await s.open("A", token="first")
    await s.step("open")
    await s.open("A", peer=s.id("A"), token="second")
    await s.step("taken")


async def refusals(s: Session) -> None:
    await s.open("NoId", peer="")
    await s.open("NoToken", token=None)
    await s.open("NoKey", key=None)
    await s.open("EmptyToken", token="")
    await s.open("WrongKey", key="nope")
    await s.step("refused")


async def heartbeat_timeout(s: Session) -> None:
    await s.open("Quiet", heartbeat=False)
    await s.open("Lively")
    await s.step("open", quiet=0.2)
    await s.step("timeout", quiet=ALIVE_WAIT_S)
    await s.open("Quiet", peer=s.id("Quiet"), token="other")
    await s.step("id free again")


SESSIONS: dict[str, Script] = {
    "relay": relay,
    "unknown_types": unknown_types,
    "invalid_json": invalid_json,
    "queue_then_open": queue_then_open,
    "expire": expire,
    "id_taken": id_taken,
    "refusals": refusals,
    "heartbeat_timeout": heartbeat_timeout,
}
_reference_transcripts: dict[str, Any] = {}


async def transcript(script: Script, target: Target) -> Any:
    session = Session(target)
    try:
        await script(session)
    finally:
        await session.close()
    return session.transcript


@pytest.mark.parametrize("name", list(SESSIONS))
async def test_same_messages_as_the_reference_server(
    name: str, reference: Target, ours: Target
) -> None:
    if name not in _reference_transcripts:
        _reference_transcripts[name] = await transcript(SESSIONS[name], reference)
    expected = _reference_transcripts[name]
    assert await transcript(SESSIONS[name], ours) == expected
    # Guard against a vacuous pass: every session shows the server saying something.
    assert any(step[1] for step in expected)


async def test_http_routes_answer_like_the_reference(reference: Target, ours: Target) -> None:
    async with httpx.AsyncClient() as client:
        for path, status in [
            ("/signal/peerjs/id?ts=1&version=1.5.5", 200),
            ("/signal/anykey/id", 200),
            ("/signal/peerjs/peers", 401),
            ("/signal/", 200),
        ]:
            ref = await client.get(reference.http + path)
            got = await client.get(ours.http + path)
            assert (ref.status_code, got.status_code) == (status, status), path
        ref_id = (await client.get(reference.http + "/signal/peerjs/id")).text
        our_id = (await client.get(ours.http + "/signal/peerjs/id")).text
        assert len(ref_id) == len(our_id) == 36
        assert (await client.get(ours.http + "/signal/")).json() == (
            await client.get(reference.http + "/signal/")
        ).json()


def test_reference_server_is_the_pinned_version() -> None:
    package = json.loads(
        (Path(__file__).parent.parent / "node_modules/peer/package.json").read_text()
    )
    assert package["version"] == "1.0.2"
