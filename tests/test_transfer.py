"""The download scheduler (peers/protocol/transfer.py) with a fake clock: properties over
random churn (windows, pacing under the receivers' frame limit, nothing asked of a bad or
absent peer, held counts), and that it always finishes once a good holder stays."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from peers.protocol.transfer import (
    AskChunk,
    AskManifest,
    Complete,
    Failed,
    Penalize,
    Transfer,
    TransferOptions,
)

PEERS = ("pa", "pb", "pc", "pd")
CHUNK = 65_552
RECEIVER_RATE, RECEIVER_BURST = 500, 1000  # what a peer accepts per connection


@dataclass
class World:
    """The transfer plus what the peers were asked, checked after every step."""

    t: Transfer
    now: int = 0
    asked: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # peer -> (index, at)
    buckets: dict[str, tuple[float, int]] = field(default_factory=dict)  # receiver tokens
    bad: set[str] = field(default_factory=set)
    completes: int = 0

    def collect(self) -> None:
        for action in self.t.take_actions():
            if isinstance(action, AskChunk):
                assert action.peer_id in self.t.sources, "asked a peer that is not a source"
                assert action.peer_id not in self.bad
                assert self.t.state[action.index] != 2, "asked for a chunk already held"
                self.asked.setdefault(action.peer_id, []).append((action.index, self.now))
                self.spend(action.peer_id)
            elif isinstance(action, AskManifest):
                assert action.peer_id not in self.bad
                self.spend(action.peer_id)
            elif isinstance(action, Penalize):
                self.bad.add(action.peer_id)
            elif isinstance(action, Complete):
                assert self.t.held_count == self.t.count
                self.completes += 1
            elif isinstance(action, Failed):
                raise AssertionError("no give-up timeout: it must never fail")
        self.check()

    def spend(self, peer: str) -> None:
        level, at = self.buckets.get(peer, (RECEIVER_BURST, self.now))
        level = min(RECEIVER_BURST, level + (self.now - at) * RECEIVER_RATE / 1000) - 1
        assert level >= 0, f"{peer} would refuse frames: over its rate limit"
        self.buckets[peer] = (level, self.now)

    def check(self) -> None:
        t, o = self.t, self.t.options
        assert all(len(s.in_flight) <= o.per_source for s in t.sources.values())
        assert t.in_flight() <= o.window
        if t.phase in ("chunks", "complete"):
            assert t.held_count == sum(1 for x in t.state if x == 2)
        if t.waiting is not None:
            assert t.in_flight() == 0
        deadline = t.next_deadline(self.now)
        assert deadline is None or deadline > self.now

    def answer(self, peer: str, verdict: str) -> None:
        pending = [i for i, _ in self.asked.get(peer, []) if self.t.expects(peer, i)]
        if not pending:
            return
        index = pending[0]
        self.asked[peer] = [(i, at) for i, at in self.asked[peer] if i != index]
        if verdict == "ok":
            self.t.chunk_accepted(peer, index, CHUNK, self.now)
        elif verdict == "missing":
            self.t.chunk_missing(peer, index, self.now)
        else:
            self.t.chunk_rejected(peer, index, "chunk_mismatch", "hash differs", self.now)


peer = st.sampled_from(PEERS)
op = st.one_of(
    st.tuples(st.just("have"), peer, st.integers(0, 40)),
    st.tuples(st.just("open"), peer),
    st.tuples(st.just("close"), peer),
    st.tuples(st.just("answer"), peer, st.sampled_from(["ok", "ok", "ok", "missing", "bad"])),
    st.tuples(st.just("tick"), st.integers(1, 12_000)),
    st.tuples(st.just("lost"), st.integers(0, 39)),
)


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(1, 40),
    held=st.lists(st.integers(0, 39), max_size=10),
    manifest_known=st.booleans(),
    per_source=st.integers(1, 8),
    window=st.integers(1, 12),
    ops=st.lists(op, max_size=60),
)
def test_under_churn_the_limits_hold_and_a_good_holder_always_finishes_it(
    count: int,
    held: list[int],
    manifest_known: bool,
    per_source: int,
    window: int,
    ops: list[tuple[object, ...]],
) -> None:
    options = TransferOptions(per_source=per_source, window=window, burst=20, rate=50)
    chunks = count if manifest_known else None
    w = World(Transfer("m", now=0, chunk_count=chunks, held=held, options=options))
    w.collect()
    for name, *args in ops:
        if name == "tick":
            w.now += int(args[0])  # type: ignore[call-overload]
            w.t.tick(w.now)
        elif name == "have":
            w.t.have(str(args[0]), int(args[1]), w.now)  # type: ignore[call-overload]
        elif name == "open":
            w.t.peer_opened(str(args[0]), w.now)
        elif name == "close":
            w.t.peer_closed(str(args[0]), w.now)
        elif name == "answer":
            w.answer(str(args[0]), str(args[1]))
        elif name == "lost":
            w.t.chunk_lost(int(args[0]), w.now)  # type: ignore[call-overload]
        w.collect()
    # A good holder arrives and stays; it answers everything asked of it, time goes on.
    good = "pz"
    w.t.peer_opened(good, w.now)
    w.t.have(good, count, w.now)
    w.collect()
    for _ in range(20_000):
        if w.t.phase == "complete":
            break
        manifest_from = w.t.manifest_ask[0] if w.t.manifest_ask else None
        if manifest_from is not None:
            w.t.manifest_ready(manifest_from, count, [], w.now)
        elif any(w.t.expects(good, i) for i, _ in w.asked.get(good, [])):
            w.answer(good, "ok")
        else:
            w.now += 100
            w.t.tick(w.now)
        w.collect()
    assert w.t.phase == "complete"
    assert w.completes >= 1
    assert w.t.held_count == count


def test_a_transfer_without_sources_waits_for_ever_and_says_why() -> None:
    t = Transfer("m", now=0, chunk_count=4)
    assert t.waiting == ("no_holder", 0)
    t.have("pa", 4, 10)
    assert t.waiting is None
    t.peer_closed("pa", 20)
    assert t.waiting == ("holders_gone", 20)
    for now in range(1_000, 24 * 3_600_000, 3_600_000):
        t.tick(now)
    assert t.phase == "chunks"
    assert t.take_actions() == [AskChunk("pa", i) for i in range(4)]


def test_a_chunk_lost_before_the_end_is_asked_again_with_the_rest() -> None:
    t = Transfer("m", now=0, chunk_count=3)
    t.have("pa", 3, 0)
    t.take_actions()
    assert t.chunk_accepted("pa", 0, CHUNK, 1)
    t.chunk_lost(0, 2)  # the store write of chunk 0 failed
    assert t.held_count == 0
    assert t.take_actions() == [AskChunk("pa", 0)]
    assert t.chunk_accepted("pa", 0, CHUNK, 3)
    assert t.chunk_accepted("pa", 1, CHUNK, 4)
    assert t.chunk_accepted("pa", 2, CHUNK, 5)
    assert t.take_actions()[-1] == Complete()
