"""The sans-IO PeerJS signaling core, replayed against recorded real frames with a fake clock.

tests/fixtures/peerjs_frames.json holds what the peerjs 1.5.5 client (Chromium) and the
reference ``peer`` server really exchanged (scripts/record_peerjs_frames.py). Times are
explicit integers (ms); no test sleeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from peers.peerjs import messages as m
from peers.peerjs.errors import PeerJSError
from peers.peerjs.signaling import (
    CandidateReceived,
    CloseSocket,
    Destroyed,
    Disconnected,
    FetchId,
    OfferReceived,
    Opened,
    OpenSocket,
    PeerLeft,
    PeerUnavailable,
    Reconnecting,
    SendFrame,
    ServerAddress,
    SignalingCore,
    SignalingError,
    State,
    Timing,
)

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "peerjs_frames.json").read_text(encoding="utf-8")
)
SESSIONS: dict[str, list[dict[str, Any]]] = FIXTURE["sessions"]
SERVER = ServerAddress("127.0.0.1", 9000)


def frames(session: str, client: str, direction: str) -> list[str]:
    return [f["text"] for f in SESSIONS[session] if f["client"] == client and f["dir"] == direction]


def frames_of_type(session: str, client: str, direction: str, kind: str) -> list[str]:
    return [t for t in frames(session, client, direction) if json.loads(t)["type"] == kind]


def core(peer_id: str | None = "bob", **timing: Any) -> SignalingCore:
    return SignalingCore(
        SERVER,
        peer_id=peer_id,
        token="tok123",
        timing=Timing(backoff_jitter=0.0, **timing),
        rng=lambda: 0.5,
    )


def opened(client: SignalingCore, now: int = 0) -> SignalingCore:
    client.start(now)
    client.socket_opened(now)
    client.frame_received('{"type":"OPEN"}', now)
    client.actions()
    client.events()
    return client


def test_socket_url_is_the_one_the_browser_client_uses() -> None:
    client = core("alice")
    client.start(0)
    (action,) = client.actions()
    assert isinstance(action, OpenSocket)
    recorded = SESSIONS["browser_pair"][0]
    assert recorded["dir"] == "connect"
    url = urlsplit(action.url)
    assert (url.scheme, url.netloc) == ("ws", "127.0.0.1:9000")
    assert url.path + "?" + url.query.replace("token=tok123", "token=<token>") == recorded["text"]
    assert parse_qs(url.query)["token"] == ["tok123"]


def test_path_and_key_are_normalised_like_peerjs() -> None:
    server = ServerAddress("example.test", 443, path="signal", key="k", secure=True)
    assert server.socket_url("p1", "t").startswith("wss://example.test:443/signal/peerjs?key=k&")
    assert server.id_url(0).startswith("https://example.test:443/signal/k/id?ts=0")


def test_replayed_session_opens_and_reports_offers_and_candidates() -> None:
    client = core("bob")
    client.start(0)
    client.socket_opened(10)
    for text in frames("browser_pair", "bob", "server_to_client"):
        client.frame_received(text, 20)
    events = client.events()
    assert events[0] == Opened("bob")
    offers = [e for e in events if isinstance(e, OfferReceived)]
    assert [o.offer.serialization for o in offers] == ["binary", "json", "raw"]
    for offer in offers:
        assert offer.src == "alice"
        assert offer.offer.reliable is True
        assert offer.offer.label == offer.offer.connection_id
        assert offer.offer.metadata == {"kind": offer.offer.serialization}
        assert offer.offer.sdp.sdp.startswith("v=0")
    candidates = [e for e in events if isinstance(e, CandidateReceived)]
    assert len(candidates) == len(
        frames_of_type("browser_pair", "bob", "server_to_client", "CANDIDATE")
    )
    first = candidates[0].candidate
    assert first.connection_id == offers[0].offer.connection_id
    assert first.candidate.sdp_mid == "0"
    assert first.candidate.sdp_mline_index == 0
    assert not [e for e in events if isinstance(e, SignalingError)]
    assert client.is_open


@pytest.mark.parametrize("kind", ["OFFER", "ANSWER", "CANDIDATE"])
def test_messages_we_write_are_byte_identical_to_the_browser_client(kind: str) -> None:
    """Parse what the browser sent, write it back with our serialiser: same text."""
    who = "bob" if kind == "ANSWER" else "alice"
    parser = {"OFFER": m.Offer, "ANSWER": m.Answer, "CANDIDATE": m.Candidate}[kind]
    texts = frames_of_type("browser_pair", who, "client_to_server", kind)
    assert texts
    for text in texts:
        data = json.loads(text)
        payload = parser.parse(data["payload"]).to_json()  # type: ignore[attr-defined]
        assert m.serialize_client_message(kind, payload, data["dst"]) == text


def test_heartbeat_every_ping_interval_matches_the_recorded_frame() -> None:
    (recorded,) = frames_of_type("browser_pair", "alice", "client_to_server", "HEARTBEAT")
    client = core()
    client.start(1000)
    client.actions()
    assert client.get_timer() == 1000 + 10_000  # only the open timeout before the socket opens
    client.socket_opened(1100)
    client.frame_received('{"type":"OPEN"}', 1105)
    assert client.get_timer() == 1100 + 5000
    client.handle_timer(6099)
    assert client.actions() == []
    client.handle_timer(6100)
    assert client.actions() == [SendFrame(recorded)]
    assert client.get_timer() == 11_100


def test_messages_sent_before_the_socket_opens_are_queued_then_flushed_in_order() -> None:
    client = core(max_queued=2)
    client.start(0)
    client.actions()
    for n in range(3):
        client.send(m.LEAVE, {"n": n}, "x")
    assert client.actions() == []
    client.socket_opened(5)
    sent = [
        json.loads(a.text)["payload"]["n"] for a in client.actions() if isinstance(a, SendFrame)
    ]
    assert sent == [1, 2]  # the oldest was dropped at the bound
    client.send(m.LEAVE, {"n": 3}, "x")
    assert client.actions() == [SendFrame('{"type":"LEAVE","payload":{"n":3},"dst":"x"}')]


def test_id_taken_from_the_recorded_server_backs_off_then_retries() -> None:
    (taken,) = frames("id_taken", "alice", "server_to_client")
    client = core("alice")
    client.start(0)
    client.socket_opened(5)
    client.actions()
    client.frame_received(taken, 10)
    events = client.events()
    assert [type(e) for e in events] == [SignalingError, Reconnecting]
    assert events[0].code == "unavailable_id"  # type: ignore[union-attr]
    assert events[1] == Reconnecting(attempt=1, delay_ms=1000)
    assert client.actions() == [CloseSocket()]
    assert client.state is State.BACKOFF
    client.handle_timer(1009)
    assert client.actions() == []
    client.handle_timer(1010)
    (again,) = client.actions()
    assert isinstance(again, OpenSocket)
    assert "id=alice" in again.url


def test_invalid_key_error_is_fatal() -> None:
    (error,) = frames("invalid_key", "mallory", "server_to_client")
    client = core("mallory")
    client.start(0)
    client.socket_opened(1)
    client.actions()
    client.frame_received(error, 2)
    events = client.events()
    assert events[0] == SignalingError("invalid_key", "Invalid key provided", fatal=True)
    assert events[-1] == Destroyed()
    assert client.actions() == [CloseSocket()]
    assert client.state is State.DESTROYED
    assert client.get_timer() is None


def test_other_server_errors_are_retried() -> None:
    client = opened(core())
    client.frame_received(
        '{"type":"ERROR","payload":{"msg":"Server has reached its concurrent user limit"}}', 50
    )
    assert client.state is State.BACKOFF
    assert client.events()[0].code == "server_error"  # type: ignore[union-attr]


def test_recorded_expire_reports_the_unreachable_peer() -> None:
    (expire,) = frames("expire", "alice", "server_to_client")
    client = opened(core("alice"))
    client.frame_received(expire, 100)
    events = client.events()
    assert events[0] == PeerUnavailable("nobody")
    assert events[1].code == "peer_unavailable"  # type: ignore[union-attr]
    assert client.is_open


def test_leave_in_the_servers_shape_reports_the_peer_gone() -> None:
    # peer 1.0's transmission handler: {type: LEAVE, src: <gone peer>, dst: <us>}.
    client = opened(core())
    client.frame_received('{"type":"LEAVE","src":"alice","dst":"bob"}', 5)
    assert client.events() == [PeerLeft("alice")]


def test_backoff_doubles_up_to_the_cap_and_resets_after_open() -> None:
    client = core(backoff_initial=1000, backoff_max=8000)
    client.start(0)
    now, delays = 0, []
    for _ in range(6):
        client.socket_closed(now, "refused")
        events = client.events()
        delay = next(e.delay_ms for e in events if isinstance(e, Reconnecting))
        delays.append(delay)
        now += delay
        client.handle_timer(now)
        assert any(isinstance(a, OpenSocket) for a in client.actions())
    assert delays == [1000, 2000, 4000, 8000, 8000, 8000]
    client.socket_opened(now)
    client.frame_received('{"type":"OPEN"}', now)
    assert client.attempt == 0
    client.socket_closed(now + 1, "dropped")
    events = client.events()
    assert Disconnected("dropped") in events
    assert Reconnecting(1, 1000) in events


def test_jitter_shortens_delays_by_at_most_its_fraction() -> None:
    client = SignalingCore(
        SERVER, peer_id="bob", timing=Timing(backoff_jitter=0.2), rng=lambda: 1.0
    )
    client.start(0)
    client.socket_closed(0)
    assert Reconnecting(1, 800) in client.events()


def test_no_open_in_time_fails_the_attempt() -> None:
    client = core(open_timeout=3000)
    client.start(0)
    client.socket_opened(10)
    client.actions()
    client.handle_timer(3000)
    assert client.state is State.BACKOFF
    assert client.actions() == [CloseSocket()]


def test_silent_reattach_after_a_previous_open_counts_as_open() -> None:
    # peer 1.0 re-attaches a known id with the same token without sending OPEN again.
    client = opened(core(open_timeout=3000))
    client.socket_closed(100)
    client.handle_timer(1100)
    client.socket_opened(1150)
    client.events()
    client.handle_timer(4100)
    assert client.events() == [Opened("bob", reattached=True)]
    assert client.is_open


def test_fetches_an_id_when_none_is_given() -> None:
    client = core(peer_id=None)
    client.start(42)
    (fetch,) = client.actions()
    assert isinstance(fetch, FetchId)
    assert fetch.url.startswith("http://127.0.0.1:9000/peerjs/id?ts=42")
    client.id_fetched("6b7d0c8e-5bc1-4a7e-9f6c-2e2c3a1d9e11\n", 50)
    (socket,) = client.actions()
    assert isinstance(socket, OpenSocket)
    assert "id=6b7d0c8e-5bc1-4a7e-9f6c-2e2c3a1d9e11" in socket.url


def test_a_bad_fetched_id_or_a_failed_fetch_backs_off() -> None:
    client = core(peer_id=None)
    client.start(0)
    client.id_fetched("<html>nope</html>", 5)
    assert client.state is State.BACKOFF
    client.handle_timer(1005)
    assert isinstance(client.actions()[-1], FetchId)
    client.id_fetch_failed("connection refused", 1010)
    assert client.state is State.BACKOFF


def test_id_taken_on_a_server_given_id_asks_for_a_new_one() -> None:
    client = core(peer_id=None)
    client.start(0)
    client.id_fetched("abc", 1)
    client.socket_opened(2)
    client.frame_received('{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}', 3)
    client.actions()
    client.handle_timer(1003)
    assert isinstance(client.actions()[-1], FetchId)


def test_token_provider_is_asked_on_every_attempt() -> None:
    calls: list[tuple[str, int]] = []

    def provider(peer_id: str, now: int) -> str:
        calls.append((peer_id, now))
        return f"t{now}"

    client = SignalingCore(SERVER, peer_id="pabc", token=provider, timing=Timing(backoff_jitter=0))
    client.start(7)
    client.socket_closed(8)
    client.handle_timer(1008)
    urls = [a.url for a in client.actions() if isinstance(a, OpenSocket)]
    assert calls == [("pabc", 7), ("pabc", 1008)]
    assert ["token=t7" in urls[0], "token=t1008" in urls[1]] == [True, True]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_server_message"),
        ("[1,2]", "bad_server_message"),
        ('{"payload":{}}', "bad_server_message"),
        ('{"type":"OFFER","payload":"x","src":"a"}', "bad_server_message"),
        ('{"type":"OFFER","payload":{},"src":5}', "bad_server_message"),
        ('{"type":"NEW-THING"}', "bad_server_message"),
        ('{"type":"OFFER","payload":{"type":"data"}}', "bad_server_message"),
        ('{"type":"OFFER","src":"a","payload":{"type":"data","connectionId":"c"}}', "bad_payload"),
        (
            '{"type":"OFFER","src":"a","payload":{"type":"fax","connectionId":"c",'
            '"sdp":{"type":"offer","sdp":"v=0"}}}',
            "bad_payload",
        ),
        (
            '{"type":"ANSWER","src":"a","payload":{"connectionId":"c","sdp":{"type":"offer","sdp":"v"}}}',
            "bad_payload",
        ),
        (
            '{"type":"CANDIDATE","src":"a","payload":{"connectionId":"c","candidate":7}}',
            "bad_payload",
        ),
        (
            '{"type":"CANDIDATE","src":"a","payload":{"connectionId":"c",'
            '"candidate":{"candidate":"x","sdpMLineIndex":true}}}',
            "bad_payload",
        ),
        ("x" * (m.MAX_FRAME_CHARS + 1), "bad_server_message"),
    ],
)
def test_malformed_frames_are_reported_and_change_nothing(text: str, code: str) -> None:
    client = opened(core())
    client.frame_received(text, 5)
    (event,) = client.events()
    assert isinstance(event, SignalingError)
    assert event.code == code
    assert not event.fatal
    assert client.is_open
    assert client.actions() == []


def test_destroy_closes_and_ignores_later_input() -> None:
    client = opened(core())
    client.destroy(10)
    assert client.actions() == [CloseSocket()]
    assert client.events() == [Destroyed()]
    client.frame_received('{"type":"OPEN"}', 11)
    client.socket_closed(12)
    client.send(m.OFFER, {}, "x")
    client.handle_timer(100_000)
    assert client.actions() == []
    assert client.events() == []
    assert client.get_timer() is None


def test_an_invalid_own_id_is_refused_up_front() -> None:
    with pytest.raises(PeerJSError) as info:
        SignalingCore(SERVER, peer_id="bad id!")
    assert info.value.code == "invalid_id"
