"""Odd frames on the signaling WebSocket of a real daphne process (shared Redis directory):
each is dropped, relayed as the reference server would, or refused, and the socket that
sent it keeps working. (tests/test_signal_live.py holds the protocol itself.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.signal import Cluster, SignalClient, new_id, start_cluster

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def cluster(
    live_db: None, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Cluster]:
    started = start_cluster(
        "untrusted",
        1,
        tmp_path_factory.mktemp("signal-untrusted"),
        artifacts_dir,
        {"SWARM_SIGNAL_MAX_FRAME_BYTES": "65536"},
        redis=True,
    )
    yield started
    started.stop()


async def pair(cluster: Cluster) -> tuple[SignalClient, SignalClient]:
    a = await (await SignalClient.connect(cluster.ws(), new_id("a"))).opened()
    b = await (await SignalClient.connect(cluster.ws(), new_id("b"))).opened()
    return a, b


async def still_relays(a: SignalClient, b: SignalClient) -> None:
    await a.send({"type": "CANDIDATE", "dst": b.peer_id, "payload": {"ok": 1}})
    assert await b.recv() == {
        "type": "CANDIDATE",
        "src": a.peer_id,
        "dst": b.peer_id,
        "payload": {"ok": 1},
    }


async def test_frames_that_cannot_be_relayed_are_dropped_and_the_socket_goes_on(
    cluster: Cluster,
) -> None:
    a, b = await pair(cluster)
    dst = json.dumps(b.peer_id)
    for bad in [
        b"\xff\xfe\x00 not UTF-8",  # a binary frame that is not text
        b"",
        "",
        "null",
        '{"type":1}',
        '{"type":"OFFER","dst":["' + b.peer_id + '"]}',  # dst must be a string
        '{"type":"OFFER","dst":{"id":1}}',
        '{"type":"OFFER","dst":7}',
        '{"type":"OFFER","dst":' + dst + ',"payload":1e999}',  # no JSON for infinity
        '{"type":"OFFER","dst":' + dst + ',"payload":NaN}',
        '{"type":"OFFER","dst":' + dst + ',"payload":' + "[" * 5000 + "]" * 5000 + "}",
        '{"type":"OPEN","dst":' + dst + "}",  # server messages are not the client's to send
        '{"type":"ERROR","dst":' + dst + ',"payload":{"msg":"forged"}}',
        '{"type":"ID-TAKEN","dst":' + dst + "}",
    ]:
        await a.send(bad)
    assert await b.silent(0.3)
    await still_relays(a, b)
    assert await a.silent(0.2)
    await a.close()
    await b.close()


async def test_a_lone_surrogate_is_relayed_escaped_as_json_allows(cluster: Cluster) -> None:
    a, b = await pair(cluster)
    await a.send('{"type":"OFFER","dst":"' + b.peer_id + '","payload":"\\ud800"}')
    got = await b.recv()
    assert got == {"type": "OFFER", "src": a.peer_id, "dst": b.peer_id, "payload": "\ud800"}
    await a.close()
    await b.close()


async def test_a_frame_to_oneself_comes_back_as_from_the_reference_server(
    cluster: Cluster,
) -> None:
    a = await (await SignalClient.connect(cluster.ws(), new_id("self"))).opened()
    await a.send({"type": "OFFER", "dst": a.peer_id, "src": "someone-else", "payload": 1})
    assert await a.recv() == {"type": "OFFER", "src": a.peer_id, "dst": a.peer_id, "payload": 1}
    await a.close()


async def test_repeated_query_parameters_take_the_last_value(cluster: Cluster) -> None:
    first, last = new_id("first"), new_id("last")
    client = await SignalClient.connect(cluster.ws(), f"{first}&id={last}")
    assert await client.recv() == {"type": "OPEN"}
    listed = httpx.get(f"{cluster.http()}/signal/peerjs/peers", timeout=5)
    assert listed.status_code == 401  # discovery off: nobody lists who is connected
    other = await (await SignalClient.connect(cluster.ws(), new_id("o"))).opened()
    await other.send({"type": "CANDIDATE", "dst": last, "payload": 2})
    got = await client.recv()
    assert got is not None
    assert got["src"] == other.peer_id
    await client.close()
    await other.close()


@pytest.mark.parametrize(
    "path",
    [
        "/signal/peerjs/id/..%2F..%2Fadmin",
        "/signal/%2e%2e/id",
        "/signal/peerjs/peers/extra",
        "/signal/" + "k" * 5000 + "/id",
    ],
)
def test_odd_signal_http_paths_are_not_found_or_answered_never_500(
    cluster: Cluster, path: str
) -> None:
    response = httpx.get(cluster.http() + path, timeout=5)
    assert response.status_code in (200, 404)
    assert "Traceback" not in response.text
