"""The sans-IO signaling core (peers/signaling/hub.py + MemoryDirectory) on a fake clock.

``Net`` wires a hub to a memory directory the way the node does, synchronously, and
records what each connection was sent and whether it was closed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peers.protocol.signal_token import make_signal_token
from peers.signaling import directory as d
from peers.signaling import messages as m
from peers.signaling.config import SignalConfig
from peers.signaling.effects import Claim, Close, Effect, Release, Route, Send
from peers.signaling.hub import Hub
from shared.clientaddr import network_of
from tests.support.keys import peer_id, seeded_key

T0 = 1_800_000_000_000


class Net:
    def __init__(self, **config: Any) -> None:
        self.config = SignalConfig(**config)
        self.hub = Hub(self.config, "proc-a")
        self.directory = d.MemoryDirectory()
        self.frames: dict[int, list[str]] = defaultdict(list)
        self.closed: dict[int, int] = {}
        self.now = T0
        self._next = 0

    def run(self, effects: list[Effect]) -> None:
        queue = list(effects)
        while queue:
            effect = queue.pop(0)
            if isinstance(effect, Send):
                self.frames[effect.conn].append(effect.frame)
            elif isinstance(effect, Close):
                self.closed[effect.conn] = effect.code
            elif isinstance(effect, Claim):
                config = self.config
                quota = d.Quota(
                    effect.ip, effect.network, config.ids_per_ip, config.ids_per_network
                )
                result = self.directory.claim(
                    effect.peer_id, effect.holder, limit=config.concurrent_limit, quota=quota
                )
                queue += self.hub.claimed(effect.conn, effect.peer_id, result, self.now)
            elif isinstance(effect, Release):
                self.directory.release(effect.peer_id, "proc-a", effect.conn)
            elif isinstance(effect, Route):
                status = self.directory.route(
                    effect.dst,
                    effect.frame,
                    queueable=effect.queueable,
                    queue_limit=self.config.queue_limit,
                    deadline=effect.deadline,
                )
                if status == d.SENT:
                    queue += self.hub.deliver(effect.dst, effect.src, effect.frame, self.now)
                queue += self.hub.routed(effect, status, self.now)

    def connect(
        self, peer: str | None, token: str | None = "tok", ip: str = "10.0.0.1", **extra: str
    ) -> int:
        self._next += 1
        params = {"key": "peerjs", **extra}
        if peer is not None:
            params["id"] = peer
        if token is not None:
            params["token"] = token
        network = network_of(ip, v4_prefix=24, v6_prefix=64)
        self.run(self.hub.connect(self._next, params, ip=ip, network=network, now=self.now))
        return self._next

    def send(self, conn: int, message: Any) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.run(self.hub.receive(conn, text, self.now))

    def take(self, conn: int) -> list[dict[str, Any]]:
        out = [json.loads(frame) for frame in self.frames.pop(conn, [])]
        return out

    def advance(self, ms: int) -> None:
        self.now += ms
        self.run(self.hub.tick(self.now))
        self.run(self.hub.expired(self.directory.expire_due(self.now), self.now))

    def disconnect(self, conn: int) -> None:
        self.run(self.hub.disconnected(conn))


def opened(net: Net, peer: str, token: str = "tok") -> int:
    conn = net.connect(peer, token)
    assert net.take(conn) == [{"type": "OPEN"}]
    return conn


def error(msg: str, code: str | None = None) -> dict[str, Any]:
    payload = {"msg": msg} if code is None else {"msg": msg, "code": code}
    return {"type": "ERROR", "payload": payload}


# --- opening ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"id": "a"},
        {"token": "t"},
        {"id": "", "token": "t"},
        {"id": "a", "token": ""},
    ],
)
def test_missing_parameters_get_peerjs_error_and_close(params: dict[str, str]) -> None:
    net = Net()
    conn = net.connect(params.get("id"), params.get("token"))
    assert net.take(conn) == [error(m.INVALID_WS_PARAMETERS)]
    assert net.closed[conn] == 1000


def test_missing_key_is_a_missing_parameter() -> None:
    net = Net()
    net._next += 1
    net.run(net.hub.connect(1, {"id": "a", "token": "t"}, ip=None, now=net.now))
    assert net.take(1) == [error(m.INVALID_WS_PARAMETERS)]


def test_wrong_key_is_refused() -> None:
    net = Net()
    conn = net.connect("alice", key="other")
    assert net.take(conn) == [error(m.INVALID_KEY)]
    assert conn in net.closed


@pytest.mark.parametrize("bad", ["a b ", "-a", "a--b", "é", "a" * 65, "a\nb"])
def test_ids_outside_peerjs_rules_are_refused(bad: str) -> None:
    net = Net()
    conn = net.connect(bad)
    assert net.take(conn) == [error("Invalid id", "bad_id")]


def test_open_then_id_taken_for_another_token() -> None:
    net = Net()
    first = opened(net, "alice", "t1")
    second = net.connect("alice", "t2")
    assert net.take(second) == [{"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}]
    assert second in net.closed
    assert first not in net.closed


def test_same_token_reconnect_opens_and_closes_the_old_socket() -> None:
    net = Net()
    old = opened(net, "alice", "t1")
    new = net.connect("alice", "t1")
    assert net.take(new) == [{"type": "OPEN"}]
    assert net.take(old) == [
        {"type": "ID-TAKEN", "payload": {"msg": "ID is taken", "code": "replaced"}}
    ]
    assert old in net.closed
    # The old socket's close must not free the id its successor holds.
    net.disconnect(old)
    assert net.directory.holder("alice") is not None
    bob = opened(net, "bob")
    net.send(bob, {"type": "OFFER", "dst": "alice", "payload": 1})
    assert net.take(new)[0]["src"] == "bob"


def test_concurrent_limit() -> None:
    net = Net(concurrent_limit=2)
    opened(net, "a")
    opened(net, "b")
    third = net.connect("c")
    assert net.take(third) == [error(m.CONNECTION_LIMIT_EXCEED)]
    # A reconnect of a held id is not a new client.
    assert net.take(net.connect("a", "tok")) == [{"type": "OPEN"}]


# --- key-bound ids ---------------------------------------------------------------------


def test_key_bound_id_needs_a_valid_proof() -> None:
    net = Net()
    key = seeded_key("hub-key")
    pid = peer_id(key)
    refused = net.connect(pid, "random-peerjs-token")
    assert net.take(refused) == [error(m.INVALID_TOKEN, "bad_token")]
    stolen = net.connect(pid, make_signal_token(seeded_key("other"), now=net.now))
    assert net.take(stolen) == [error(m.INVALID_TOKEN, "peer_mismatch")]
    old = net.connect(pid, make_signal_token(key, now=net.now - 600_000))
    assert net.take(old) == [error(m.INVALID_TOKEN, "expired")]
    assert net.take(net.connect(pid, make_signal_token(key, now=net.now))) == [{"type": "OPEN"}]


def test_fresh_proof_reclaims_at_once_and_replays_do_not() -> None:
    net = Net()
    key = seeded_key("hub-reclaim")
    pid = peer_id(key)
    first_token = make_signal_token(key, now=net.now)
    stale = opened(net, pid, first_token)
    net.advance(1000)
    newer_token = make_signal_token(key, now=net.now)
    fresh = net.connect(pid, newer_token)
    assert net.take(fresh) == [{"type": "OPEN"}]
    assert stale in net.closed
    assert net.take(stale)[0]["payload"]["code"] == "replaced"
    # The older token (say, copied from a log) cannot take the id back.
    replay = net.connect(pid, first_token)
    assert net.take(replay)[0]["type"] == "ID-TAKEN"
    assert fresh not in net.closed


def test_plain_ids_can_be_switched_off() -> None:
    net = Net(plain_ids=False)
    conn = net.connect("alice")
    assert net.take(conn) == [
        error("Only key-bound ids are allowed on this server", "plain_ids_disabled")
    ]
    key = seeded_key("hub-plain-off")
    assert net.take(net.connect(peer_id(key), make_signal_token(key, now=net.now))) == [
        {"type": "OPEN"}
    ]


@dataclass
class FakeBlocks:
    peers: frozenset[str] = frozenset()
    ips: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()

    def blocks(
        self, *, public_key: str | None = None, peer_id: str | None = None, ip: str | None = None
    ) -> bool:
        return public_key in self.keys or peer_id in self.peers or ip in self.ips


def test_blocks_refuse_at_connect_and_close_open_sockets() -> None:
    net = Net()
    key = seeded_key("hub-blocked")
    token = make_signal_token(key, now=net.now)
    pk = token.split(".")[2]
    net.run(
        net.hub.connect(
            7,
            {"key": "peerjs", "id": peer_id(key), "token": token},
            ip="10.0.0.9",
            now=net.now,
            blocks=FakeBlocks(keys=frozenset({pk})),
        )
    )
    assert net.take(7) == [error("Blocked", "blocked")]
    assert 7 in net.closed
    alice = opened(net, "alice")
    bob = opened(net, "bob")
    net.run(net.hub.enforce(FakeBlocks(ips=frozenset({"10.0.0.1"}), peers=frozenset())))
    assert net.take(alice) == [error("Blocked", "blocked")]
    assert net.take(bob) == [error("Blocked", "blocked")]
    assert net.directory.count() == 0


# --- relaying --------------------------------------------------------------------------


def test_relay_rebuilds_the_message_with_the_servers_src() -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.send(
        alice, {"type": "OFFER", "src": "mallory", "dst": "bob", "payload": {"sdp": "x"}, "x": 1}
    )
    assert net.frames[bob] == ['{"type":"OFFER","src":"alice","dst":"bob","payload":{"sdp":"x"}}']
    net.frames.clear()
    for kind in ("ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"):
        net.send(bob, {"type": kind, "dst": "alice", "payload": None})
    assert [f["type"] for f in net.take(alice)] == ["ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"]
    net.send(bob, {"type": "CANDIDATE", "dst": "alice"})
    assert net.frames[alice] == ['{"type":"CANDIDATE","src":"bob","dst":"alice"}']


def test_non_ascii_and_lone_surrogates_survive() -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.send(alice, '{"type":"OFFER","dst":"bob","payload":"h\u00e9 \\ud800"}')
    frame = net.frames[bob][0]
    frame.encode("utf-8")  # never unencodable
    assert json.loads(frame)["payload"] == "h\u00e9 \ud800"


def test_relayed_frames_are_written_as_json_stringify_writes_them() -> None:
    # Non-ASCII unescaped, numbers in JavaScript's shortest form, nothing else escaped.
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.send(
        alice,
        '{"type":"OFFER","dst":"bob","payload":{"s":"h\u00e9 \\u00e9 <\\/>","n":[1e-7,2.5,-0]}}',
    )
    assert net.frames[bob] == [
        '{"type":"OFFER","src":"alice","dst":"bob",'
        '"payload":{"s":"h\u00e9 \u00e9 </>","n":[1e-7,2.5,0]}}'
    ]


# Any JSON value, strings with any code point (lone surrogates included, sent escaped).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    # st.text leaves out surrogates whatever the alphabet: join the characters instead.
    | st.lists(
        st.characters(exclude_categories=())
        | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
        max_size=20,
    ).map("".join),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def as_javascript_reads_it(value: Any) -> Any:
    """Integers beyond 64 bits arrive as doubles (as JSON.parse reads every number); an
    escaped surrogate pair is one character (Python strings may hold the two halves)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return json.loads(json.dumps(value))
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else float(value)
    if isinstance(value, list):
        return [as_javascript_reads_it(v) for v in value]
    if isinstance(value, dict):
        return {k: as_javascript_reads_it(v) for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(payload=json_values)
def test_any_json_payload_is_relayed_as_the_same_value(payload: Any) -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.send(alice, {"type": "OFFER", "dst": "bob", "payload": payload})
    (frame,) = net.frames[bob]
    frame.encode("utf-8")  # a text frame: always encodable
    assert json.loads(frame) == {
        "type": "OFFER",
        "src": "alice",
        "dst": "bob",
        "payload": as_javascript_reads_it(payload),
    }


@pytest.mark.parametrize("depth", [200, 300, 900])
def test_deeply_nested_payloads_are_relayed_intact(depth: int) -> None:
    # Deeper than orjson writes (255): the standard library's writer takes over.
    net = Net(max_frame_bytes=200_000)
    alice, bob = opened(net, "alice"), opened(net, "bob")
    payload = "[" * depth + "]" * depth
    net.send(alice, '{"type":"OFFER","dst":"bob","payload":' + payload + "}")
    assert net.frames[bob] == [
        '{"type":"OFFER","src":"alice","dst":"bob","payload":' + payload + "}"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1,2]",
        "5",
        '{"dst":"bob"}',
        '{"type":5,"dst":"bob"}',
        '{"type":"HELLO","dst":"bob"}',
        '{"type":"OFFER","dst":"bob","payload":NaN}',
        '{"type":"OFFER","dst":"bob","payload":1e999}',
        '{"type":"OFFER","dst":"bob","payload":1' + "0" * 400 + "}",  # an integer past a double
        '{"type":"OFFER","dst":"bob","payload":1' + "0" * 5000 + "}",  # past int() digit limit
        '{"type":"OFFER","dst":5}',
        '{"type":"OFFER"}',
        '{"type":"OFFER","dst":""}',
        "[" * 100_000,
    ],
)
def test_bad_frames_are_dropped_and_the_socket_lives_on(text: str) -> None:
    net = Net(max_frame_bytes=200_000)
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.send(alice, text)
    assert net.take(bob) == []
    assert net.take(alice) == []
    assert alice not in net.closed
    net.send(alice, {"type": "OFFER", "dst": "bob"})
    assert net.take(bob) == [{"type": "OFFER", "src": "alice", "dst": "bob"}]


def test_heartbeat_is_silent_and_keeps_the_socket_alive() -> None:
    net = Net(alive_timeout_ms=1000)
    alice = opened(net, "alice")
    for _ in range(3):
        net.advance(900)
        net.send(alice, {"type": "HEARTBEAT"})
    assert alice not in net.closed
    assert net.take(alice) == []
    net.advance(999)
    assert alice not in net.closed
    net.advance(1)
    assert alice in net.closed
    assert net.take(alice) == []  # closed without a message, like the reference server
    assert net.directory.holder("alice") is None
    assert net.take(net.connect("alice", "other-token")) == [{"type": "OPEN"}]


def test_queue_for_absent_peer_is_delivered_after_its_open() -> None:
    net = Net()
    alice = opened(net, "alice")
    for n in range(3):
        net.send(alice, {"type": "CANDIDATE", "dst": "carol", "payload": n})
    net.send(alice, {"type": "LEAVE", "dst": "carol"})  # not queued
    net.send(alice, {"type": "EXPIRE", "dst": "carol"})  # not queued
    carol = net.connect("carol")
    assert net.take(carol) == [
        {"type": "OPEN"},
        *({"type": "CANDIDATE", "src": "alice", "dst": "carol", "payload": n} for n in range(3)),
    ]
    net.advance(10_000)
    assert net.take(alice) == []  # nothing left to expire


def test_expire_once_per_sender_at_the_deadline_of_the_first_message() -> None:
    net = Net(expire_timeout_ms=5000)
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.send(alice, {"type": "OFFER", "dst": "carol"})
    net.advance(3000)
    net.send(alice, {"type": "CANDIDATE", "dst": "carol"})
    net.send(bob, {"type": "OFFER", "dst": "carol"})
    net.advance(1999)
    assert net.take(alice) == []
    assert net.take(bob) == []
    net.advance(1)
    assert net.take(alice) == [{"type": "EXPIRE", "src": "carol", "dst": "alice"}]
    assert net.take(bob) == [{"type": "EXPIRE", "src": "carol", "dst": "bob"}]
    assert net.take(net.connect("carol")) == [{"type": "OPEN"}]


def test_gone_answers_an_offer_with_expire_at_once_and_drops_the_rest_of_the_dial() -> None:
    """The node asks ``gone`` instead of routing, for a peer that left a while ago
    (peers/signaling/node.py ``_gone``): the OFFER's sender gets EXPIRE now, once; the
    CANDIDATEs and ANSWERs of that dial are dropped and counted, never queued."""
    net = Net(expire_timeout_ms=5000)
    alice = opened(net, "alice")

    def route(message: dict[str, Any]) -> Route:
        effects = net.hub.receive(alice, json.dumps(message), net.now)
        assert len(effects) == 1
        assert isinstance(effects[0], Route)
        return effects[0]

    net.run(net.hub.gone(route({"type": "OFFER", "dst": "carol", "payload": 1}), net.now))
    assert net.take(alice) == [{"type": "EXPIRE", "src": "carol", "dst": "alice"}]
    for kind in ("CANDIDATE", "ANSWER"):
        net.run(net.hub.gone(route({"type": kind, "dst": "carol"}), net.now))
    net.advance(10_000)
    assert net.take(alice) == []  # nothing was queued, so nothing expires later
    assert net.hub.counters["gone", ""] == 1
    assert net.hub.counters["dropped", "gone"] == 2
    assert net.hub.counters["expired", ""] == 0


def test_expire_for_a_sender_that_left_is_dropped() -> None:
    net = Net(expire_timeout_ms=5000)
    alice = opened(net, "alice")
    net.send(alice, {"type": "OFFER", "dst": "carol"})
    net.disconnect(alice)
    net.advance(5000)
    assert net.frames == {}


def test_leave_without_dst_gives_up_the_id() -> None:
    net = Net()
    alice = opened(net, "alice")
    net.send(alice, {"type": "LEAVE"})
    assert alice in net.closed
    assert net.directory.holder("alice") is None


def test_failed_send_closes_the_destination_and_tells_the_sender() -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.run(net.hub.send_failed(bob, "alice", net.now))
    assert bob in net.closed
    assert net.take(alice) == [{"type": "LEAVE", "src": "bob", "dst": "alice"}]
    assert net.directory.holder("bob") is None


def test_delivery_for_an_id_no_longer_here_gets_the_sender_a_leave() -> None:
    net = Net()
    alice = opened(net, "alice")
    net.run(net.hub.deliver("ghost", "alice", '{"type":"OFFER"}', net.now))
    assert net.take(alice) == [{"type": "LEAVE", "src": "ghost", "dst": "alice"}]


def test_delivery_during_claim_waits_for_the_open() -> None:
    config = SignalConfig()
    hub = Hub(config, "proc-a")
    effects = hub.connect(1, {"key": "peerjs", "id": "carol", "token": "t"}, ip=None, now=T0)
    assert [type(e) for e in effects] == [Claim]
    assert hub.deliver("carol", "alice", "F1", T0) == []
    result = d.ClaimResult(d.OPENED, None, ("Q1",))
    sent = [e.frame for e in hub.claimed(1, "carol", result, T0) if isinstance(e, Send)]
    assert sent == [m.OPEN_FRAME, "Q1", "F1"]


# --- limits ----------------------------------------------------------------------------


def test_oversized_frame_gets_error_and_close() -> None:
    net = Net(max_frame_bytes=100)
    alice = opened(net, "alice")
    net.send(alice, {"type": "OFFER", "dst": "bob", "payload": "x" * 50})
    net.send(
        alice, {"type": "OFFER", "dst": "bob", "payload": "\u00e9" * 45}
    )  # 90 chars, 135 bytes
    assert net.take(alice) == [error("Message too large", "too_large")]
    assert net.closed[alice] == 4009
    assert net.directory.holder("alice") is None


def test_rate_limit_is_a_token_bucket() -> None:
    net = Net(rate_per_s=10, rate_burst=5)
    alice, bob = opened(net, "alice"), opened(net, "bob")
    for _ in range(5):
        net.send(alice, {"type": "HEARTBEAT"})
    net.advance(100)  # one token back
    net.send(alice, {"type": "OFFER", "dst": "bob"})
    assert alice not in net.closed
    net.send(alice, {"type": "OFFER", "dst": "bob"})
    assert net.take(alice) == [error("Too many messages", "rate_limited")]
    assert net.closed[alice] == 4008
    assert len(net.take(bob)) == 1


def test_queue_limit_per_destination() -> None:
    net = Net(queue_limit=2)
    alice = opened(net, "alice")
    for _ in range(3):
        net.send(alice, {"type": "CANDIDATE", "dst": "carol"})
    assert net.take(alice) == [error("Too many messages waiting for this peer", "queue_full")]
    assert alice not in net.closed
    assert net.directory.queued_for("carol") == 2


def test_counters() -> None:
    net = Net(expire_timeout_ms=10)
    alice = opened(net, "alice")
    opened(net, "bob")
    net.send(alice, {"type": "OFFER", "dst": "bob"})
    net.send(alice, {"type": "OFFER", "dst": "carol"})
    net.send(alice, "garbage")
    net.connect("bob", "x")
    net.advance(10)
    counts = net.hub.counters
    assert counts["relayed", "OFFER"] == 1
    assert counts["queued", "OFFER"] == 1
    assert counts["expired", ""] == 1
    assert counts["dropped", "bad_json"] == 1
    assert counts["refused", "id_taken"] == 1
    assert counts["opened", "open"] == 2
