"""The Python PeerJS peer and the unmodified peerjs 1.5.5 client in Chromium, both directions.

Each test runs against the reference ``peer`` server and against our own signaling server
(daphne, ``/signal/``). Data goes both ways with each serialization, including multi-megabyte
BinaryPack messages that PeerJS chunks, on PeerJS's default unordered channel too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, Page

from peers.peerjs.dataconnection import DataConnection
from peers.peerjs.ice import IceConfig
from peers.peerjs.peer import Peer
from peers.peerjs.signaling import ServerAddress
from peers.peerjs.tokens import key_bound_id, key_bound_token
from tests.browser.conftest import new_context
from tests.support.aio_thread import LoopThread
from tests.support.live import start_daphne
from tests.support.peerjs_page import serve_page
from tests.support.peerjs_server import start_reference_server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

LOOPBACK = IceConfig(host_addresses=("127.0.0.1",))
BIG = 5 * 1024 * 1024


def pattern(length: int) -> bytes:
    return bytes((i * 7 + (i >> 8) + 3) & 0xFF for i in range(length))


def untag(value: Any) -> Any:
    """The page's descriptors as Python values ({"$pattern": n}, {"$bytes": hex})."""
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if "$pattern" in value:
            return pattern(value["$pattern"])
        if "$bytes" in value:
            return bytes.fromhex(value["$bytes"])
        return {k: untag(v) for k, v in value.items()}
    return value


def describe(value: Any) -> Any:
    """What the page's describe() reports for a value it received."""
    if isinstance(value, bytes):
        if len(value) <= 256:
            return {"$bytes": value.hex()}
        return {"$sha256": hashlib.sha256(value).hexdigest(), "length": len(value)}
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    return value


# Descriptors the page turns into JS values; untag() gives the same values in Python.
MESSAGES: dict[str, list[Any]] = {
    "raw": [{"$bytes": "00ff10"}, "text frame ✓", {"$pattern": 200_000}],
    "json": [{"a": 1, "list": [1, "x", None, True], "u": "héllo ✓", "f": 0.5}],
    "binary": [
        {"name": "f", "data": {"$pattern": 1000}, "n": -5, "f": 0.25, "nested": [[], {}]},
        {"$pattern": BIG},
    ],
}


class Signal:
    def __init__(self, name: str, address: ServerAddress, stop: Any) -> None:
        self.name = name
        self.address = address
        self.stop = stop

    def page_options(self) -> dict[str, Any]:
        a = self.address
        return {"host": a.host, "port": a.port, "path": a.path, "key": a.key, "debug": 0}


@pytest.fixture(scope="module", params=["reference", "ours"])
def signal(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts_dir: Path,
) -> Iterator[Signal]:
    if request.param == "reference":
        ref = start_reference_server(artifacts_dir)
        yield Signal("reference", ServerAddress("127.0.0.1", ref.port), ref.stop)
        ref.stop()
    else:
        request.getfixturevalue("live_db")
        web = start_daphne(tmp_path_factory.mktemp("interop-var"), artifacts_dir, name="interop")
        yield Signal("ours", ServerAddress("127.0.0.1", web.port, path="/signal/"), web.stop)
        web.stop()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with serve_page() as url:
        yield url


@pytest.fixture
def python_peer(loop: LoopThread, signal: Signal) -> Iterator[Peer]:
    async def make() -> Peer:
        peer = Peer(signal.address, peer_id="py" + secrets.token_hex(6), ice=LOOPBACK)
        await peer.start()
        return peer

    peer = loop.run(make())
    yield peer
    loop.run(peer.destroy())


@pytest.fixture
def page(browser: Browser, origin: str, signal: Signal) -> Iterator[Page]:
    context = new_context(browser, origin)
    tab = context.new_page()
    tab.goto(origin + "/")
    tab.evaluate(
        "([id, o]) => harness.start(id, o)", ["br" + secrets.token_hex(6), signal.page_options()]
    )
    yield tab
    context.close()


def exchange(
    loop: LoopThread, page: Page, conn: DataConnection, cid: str, messages: list[Any]
) -> None:
    for message in messages:
        value = untag(message)
        page.evaluate("([c, v]) => harness.send(c, v)", [cid, message])
        assert loop.run(conn.recv(), 60) == value
        loop.run(conn.send(value), 60)
        assert page.evaluate("([c]) => harness.take(c, 1, 60000)", [cid]) == [describe(value)]


@pytest.mark.parametrize("serialization", ["raw", "json", "binary"])
def test_browser_connects_to_the_python_peer(
    loop: LoopThread, python_peer: Peer, page: Page, serialization: str
) -> None:
    cid = page.evaluate(
        "([id, s]) => harness.connect(id, {serialization: s, reliable: true, metadata: {s}})",
        [python_peer.id, serialization],
    )
    conn = loop.run(python_peer.accept(), 15)
    loop.run(conn.wait_open(15))
    assert (conn.connection_id, conn.serialization, conn.reliable) == (cid, serialization, True)
    assert conn.metadata == {"s": serialization}
    exchange(loop, page, conn, cid, MESSAGES[serialization])


@pytest.mark.parametrize("serialization", ["raw", "json", "binary"])
def test_python_peer_connects_to_the_browser(
    loop: LoopThread, python_peer: Peer, page: Page, serialization: str
) -> None:
    browser_id = page.evaluate("() => harness.peer.id")

    async def connect() -> DataConnection:
        conn = python_peer.connect(
            browser_id, serialization=serialization, reliable=True, metadata={"from": "python"}
        )
        await conn.wait_open(15)
        return conn

    conn = loop.run(connect())
    cid = page.evaluate("() => harness.incoming.at(-1)")
    assert cid == conn.connection_id
    page.evaluate("([c]) => harness.waitOpen(c)", [cid])
    assert page.evaluate("([c]) => harness.describeConn(c)", [cid]) == {
        "peer": python_peer.id,
        "label": conn.label,
        "serialization": serialization,
        "reliable": True,
        "metadata": {"from": "python"},
        "open": True,
    }
    exchange(loop, page, conn, cid, MESSAGES[serialization])


def test_peerjs_defaults_unordered_binary_multi_megabyte_both_ways(
    loop: LoopThread, python_peer: Peer, page: Page
) -> None:
    # peer.connect(id) with no options: serialization "binary", reliable false (unordered).
    cid = page.evaluate("([id]) => harness.connect(id)", [python_peer.id])
    conn = loop.run(python_peer.accept(), 15)
    loop.run(conn.wait_open(15))
    assert (conn.serialization, conn.reliable) == ("binary", False)
    exchange(loop, page, conn, cid, [{"$pattern": BIG}, {"file": {"$pattern": 3 * BIG // 2}}])


@pytest.mark.parametrize("signal", ["ours"], indirect=True)  # key-bound ids are our rule
def test_key_bound_python_peer_is_reachable_with_its_proof(
    loop: LoopThread, signal: Signal, page: Page
) -> None:
    key = Ed25519PrivateKey.generate()

    async def make() -> Peer:
        peer = Peer(
            signal.address, peer_id=key_bound_id(key), token=key_bound_token(key), ice=LOOPBACK
        )
        await peer.start()
        return peer

    peer = loop.run(make())
    try:
        cid = page.evaluate("([id]) => harness.connect(id, {serialization: 'json'})", [peer.id])
        conn = loop.run(peer.accept(), 15)
        loop.run(conn.wait_open(15))
        exchange(loop, page, conn, cid, [{"hello": "key-bound"}])
    finally:
        loop.run(peer.destroy())
