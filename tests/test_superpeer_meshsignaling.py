"""The super-peer's mesh signaling (peers/superpeer/meshsignaling.py) with fakes and a fake
clock: a line of peers alice (the super-peer) - bob - carol whose frames are carried in
memory; PeerJS is replaced by fakes that record what the sessions carry."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import pytest

from peers.peerjs import messages as m
from peers.peerjs.carrier import BYE, SignalCarrier
from peers.peerjs.errors import BAD_PAYLOAD, PeerJSError
from peers.protocol.meshsignal import MeshSignal, SignalDeliver, SignalSend
from peers.protocol.meshsignal_messages import make_signal, new_session_id
from peers.protocol.wire import Reach, Signal
from peers.superpeer.meshsignaling import RETRY_HOPS, MeshSignaling
from tests.support.keys import peer_id, seeded_key

NOW = 1_700_000_000_000
ALICE, BOB, CAROL, ERIN = (peer_id(seeded_key(n)) for n in ("alice", "bob", "carol", "erin"))
OFFER = {
    "sdp": {"sdp": "v=0\r\n", "type": "offer"},
    "type": "data",
    "connectionId": "dc_abc",
    "label": "dc_abc",
    "reliable": True,
    "serialization": "raw",
}
ANSWER = {"sdp": {"sdp": "v=0\r\n", "type": "answer"}, "type": "data", "connectionId": "dc_abc"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class FakeConn:
    def __init__(self, peer: str, carrier: SignalCarrier) -> None:
        self.peer = peer
        self.carrier = carrier
        self.got: list[tuple[str, Mapping[str, Any]]] = []
        carrier.on_message = lambda kind, payload: self.got.append((kind, payload))


class Line:
    """alice (MeshSignaling) - bob (MeshSignal) [- carol (MeshSignal)], frames carried
    until quiet. ``delivered[name]`` keeps what reached bob and carol."""

    def __init__(self, *, with_carol: bool = True) -> None:
        self.clock = Clock()
        self.violations: list[tuple[str, str]] = []
        self.queue: deque[tuple[str, str, Signal | Reach]] = deque()  # (to, conn, frame)
        self.alice = MeshSignaling(
            ALICE,
            seeded_key("alice"),
            send_frame=lambda conn, frame: self._post("alice", conn, frame),
            violation=lambda conn, code, reason: self.violations.append((conn, code)),
            clock=self.clock,
            blocked=lambda peer: peer == ERIN,
        )
        self.conns: list[FakeConn] = []
        self.offers: list[tuple[str, Mapping[str, Any], SignalCarrier]] = []
        self.alice.connect = self._connect
        self.alice.take_offer = self._take_offer
        self.bob = MeshSignal(peer_id=BOB, private_key=seeded_key("bob"), now=NOW)
        self.carol = MeshSignal(peer_id=CAROL, private_key=seeded_key("carol"), now=NOW)
        self.nodes = {"bob": self.bob, "carol": self.carol}
        self.delivered: dict[str, list[SignalDeliver]] = {"bob": [], "carol": []}
        # conn ids: "ab" alice<->bob, "bc" bob<->carol
        self.peer_of = {("alice", "ab"): "bob", ("bob", "ab"): "alice"}
        self.bob.connected("ab", ALICE, ["signal"], NOW)
        if with_carol:
            self.peer_of.update({("bob", "bc"): "carol", ("carol", "bc"): "bob"})
            self.bob.connected("bc", CAROL, ["signal"], NOW)
            self.carol.connected("bc", BOB, ["signal"], NOW)
        self.alice.opened("ab", BOB, ("gossip", "signal"))
        self.run()

    def _connect(self, peer: str, carrier: SignalCarrier, metadata: Any = None) -> Any:
        conn = FakeConn(peer, carrier)
        self.conns.append(conn)
        return conn

    def _take_offer(self, src: str, payload: Mapping[str, Any], carrier: SignalCarrier) -> Any:
        self.offers.append((src, payload, carrier))
        if payload.get("type") == "media":
            return None
        if "sdp" not in payload:
            raise PeerJSError(BAD_PAYLOAD, "no sdp")
        return FakeConn(src, carrier)

    def _post(self, sender: str, conn: str, frame: Signal | Reach) -> bool:
        self.queue.append((self.peer_of[(sender, conn)], conn, frame))
        return True

    def run(self) -> None:
        for _ in range(1000):
            for name, node in self.nodes.items():
                for action in node.take_actions():
                    if isinstance(action, SignalSend):
                        self._post(name, action.conn_id, action.frame)
                    elif isinstance(action, SignalDeliver):
                        self.delivered[name].append(action)
            if not self.queue:
                return
            to, conn, frame = self.queue.popleft()
            if to == "alice":
                self.alice.received(conn, frame)
            else:
                self.nodes[to].receive(conn, frame, self.clock.now)
        raise AssertionError("the line did not settle")

    def tick(self, at: int) -> None:
        self.clock.now = at
        self.alice.tick()
        for node in self.nodes.values():
            node.tick(at)
        self.run()

    def signal_frames_from_alice(self) -> list[Signal]:
        return [f for _, _, f in self.queue if isinstance(f, Signal)]


def test_a_dial_goes_as_a_peerjs_offer_and_the_answer_comes_back_to_its_connection() -> None:
    line = Line()
    conn = line.alice.dial(CAROL)
    assert isinstance(conn, FakeConn)
    assert line.alice.stats.dials == 1
    conn.carrier.send(m.OFFER, OFFER)
    line.run()
    [offer] = line.delivered["carol"]
    assert offer.message.kind == "offer"
    assert offer.message.payload == OFFER
    assert offer.traveled == 2, "alice knew from bob's reach that bob reaches carol"
    assert line.carol.stats.delivered == 1
    assert line.bob.stats.flooded == 0
    line.carol.send(
        to=ALICE, sid=offer.message.sid, kind="answer", payload=ANSWER, now=line.clock.now
    )
    line.run()
    assert conn.got == [(m.ANSWER, ANSWER)]
    # The connection is gone: its session too, and a late message finds none.
    conn.carrier.close()
    assert line.alice.sessions == {}
    line.carol.send(to=ALICE, sid=offer.message.sid, kind="bye", payload={}, now=line.clock.now)
    line.run()
    assert conn.got == [(m.ANSWER, ANSWER)]
    assert line.alice.stats.refused == {"unknown_session": 1}


def test_an_unanswered_offer_is_sent_once_more_with_budget_5_then_given_up() -> None:
    line = Line(with_carol=False)
    conn = line.alice.dial(CAROL)
    conn.carrier.send(m.OFFER, OFFER)
    frames = line.signal_frames_from_alice()
    assert [(f.hops, f.msg["body"]["hops"]) for f in frames] == [(3, 4)], "flooded, budget 4"
    line.run()
    assert line.alice.core.next_deadline(line.clock.now) == NOW + 10_000
    line.clock.now = NOW + 10_000
    line.alice.tick()
    frames = line.signal_frames_from_alice()
    assert [(f.hops, f.msg["body"]["hops"]) for f in frames] == [(RETRY_HOPS - 1, RETRY_HOPS)]
    assert frames[0].msg["body"]["payload"] == OFFER
    assert frames[0].msg["body"]["sid"] == next(iter(line.alice.sessions))[1], "same session"
    assert line.alice.stats.retries == 1
    line.run()
    line.tick(NOW + 20_000)
    assert line.alice.stats.retries == 1, "once"
    assert line.alice.stats.unanswered == 1
    assert line.signal_frames_from_alice() == []


def test_an_answered_offer_is_not_sent_again() -> None:
    line = Line(with_carol=False)
    conn = line.alice.dial(CAROL)
    conn.carrier.send(m.OFFER, OFFER)
    line.run()
    sid = next(iter(line.alice.sessions))[1]
    # carol's answer arrives through bob on a route bob learnt meanwhile.
    answer = make_signal(
        seeded_key("carol"), to=ALICE, sid=sid, kind="answer", payload=ANSWER, created_at=NOW
    )
    line.alice.received("ab", Signal(hops=4, msg=answer))
    line.tick(NOW + 10_000)
    assert conn.got == [(m.ANSWER, ANSWER)]
    assert line.alice.stats.retries == 0


def test_an_offer_for_the_super_peer_is_taken_and_answered_through_the_mesh() -> None:
    line = Line()
    sid = new_session_id()
    line.carol.send(to=ALICE, sid=sid, kind="offer", payload=OFFER, now=NOW)
    line.run()
    [(src, payload, carrier)] = line.offers
    assert (src, payload) == (CAROL, OFFER)
    assert line.alice.stats.offers == 1
    carrier.send(m.ANSWER, ANSWER)
    line.run()
    [answer] = line.delivered["carol"]
    assert (answer.message.kind, answer.message.sid) == ("answer", sid)
    assert answer.message.payload == ANSWER
    # The same offer again (a retry with budget 5): the session has it, no second connection.
    line.carol.send(to=ALICE, sid=sid, kind="offer", payload=OFFER, now=NOW + 1, hops=5)
    line.run()
    assert len(line.offers) == 1
    # A bye for a connection given up goes as the mesh kind bye.
    carrier.send(BYE, {"connectionId": "dc_abc"})
    line.run()
    assert [d.message.kind for d in line.delivered["carol"]] == ["answer", "bye"]


@pytest.mark.parametrize(
    ("sender", "payload", "code", "asked"),
    [
        ("erin", OFFER, "blocked", False),
        ("carol", {"type": "media", "connectionId": "mc_1", "sdp": {}}, "unsupported", True),
        ("carol", {"type": "data"}, BAD_PAYLOAD, True),
        ("carol", "not a payload", "bad_payload", False),
    ],
    ids=["blocked", "media", "no-offer", "not-an-object"],
)
def test_offers_the_super_peer_does_not_take(
    sender: str, payload: Any, code: str, asked: bool
) -> None:
    line = Line()
    sid = new_session_id()
    msg = make_signal(
        seeded_key(sender), to=ALICE, sid=sid, kind="offer", payload=payload, created_at=NOW
    )
    line.alice.received("ab", Signal(hops=2, msg=msg))
    assert line.alice.stats.refused == {code: 1}
    assert bool(line.offers) == asked
    assert line.alice.sessions == {}
    assert line.violations == [], "a signed message it cannot use is no violation"


def test_a_neighbours_bad_frame_is_a_violation_of_its_connection() -> None:
    line = Line()
    msg = make_signal(
        seeded_key("carol"),
        to=ALICE,
        sid=new_session_id(),
        kind="offer",
        payload=OFFER,
        created_at=NOW,
    )
    forged = {**msg, "sig": msg["sig"][:-4] + ("AAAA" if msg["sig"][-4:] != "AAAA" else "BBBB")}
    line.alice.received("ab", Signal(hops=2, msg=forged))
    line.alice.received("ab", Signal(hops=5, msg=msg))  # more hops left than granted
    assert line.violations == [("ab", "bad_signature"), ("ab", "bad_hops")]
    assert line.offers == []


def test_it_relays_for_others_and_tells_its_neighbours_whom_it_reaches() -> None:
    line = Line(with_carol=False)
    assert line.alice.reachable()
    line.peer_of[("alice", "ac")] = "carol"  # frames for it stay in the queue
    line.alice.opened("ac", CAROL, ("gossip", "signal"))
    reach = [(c, f) for _, c, f in line.queue if isinstance(f, Reach)]
    assert ("ac", Reach(peers=(BOB,))) in reach
    line.queue.clear()
    msg = make_signal(
        seeded_key("bob"), to=CAROL, sid=new_session_id(), kind="offer", payload=1, created_at=NOW
    )
    line.alice.received("ab", Signal(hops=3, msg=msg))
    assert [(c, f) for _, c, f in line.queue] == [("ac", Signal(hops=2, msg=msg))]
    assert line.alice.core.stats.relayed == 1
    line.alice.closed("ab")
    line.alice.closed("ac")
    assert not line.alice.reachable()
