"""Signaling's recovery logic on a fake clock, no IO: what the hub does when Redis did
not take a batch of routes or lost this process's registrations, and the upkeep
decisions (peers/signaling/upkeep.py): which registry entries and sockets the reconciler
gives up on, and when a release that failed is tried again.
"""

from __future__ import annotations

import pytest

from peers.signaling import messages as m
from peers.signaling.effects import CLOSE_RESTART, Release, Route, Send
from peers.signaling.upkeep import Reconciler, Retries, Review
from tests.test_signal_hub import T0, Net, error, opened

RESTART = error("Server lost track of this connection, reconnect", "restart")

# --- the hub: routes Redis did not take ------------------------------------------------


def _route(src: str, dst: str, notify: bool = True) -> Route:
    frame = m.relay_frame(m.OFFER, src, dst, {"sdp": "x"}, True)
    assert frame is not None
    return Route(src, dst, frame, True, T0 + 5000, notify=notify)


def test_unrouted_frames_get_each_sender_one_expire_per_destination() -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    routes = [_route("alice", "carol"), _route("alice", "carol"), _route("alice", "dave")]
    routes.append(_route("bob", "carol"))
    net.run(net.hub.unrouted(routes, net.now))
    assert net.take(alice) == [
        {"type": "EXPIRE", "src": "carol", "dst": "alice"},
        {"type": "EXPIRE", "src": "dave", "dst": "alice"},
    ]
    assert net.take(bob) == [{"type": "EXPIRE", "src": "carol", "dst": "bob"}]
    assert net.hub.counters["unrouted", ""] == 3  # one per sender and destination


def test_unrouted_server_frames_get_nothing_and_senders_who_left_are_not_sent_to() -> None:
    net = Net()
    alice = opened(net, "alice")
    gone = opened(net, "gone")
    net.disconnect(gone)
    effects = net.hub.unrouted(
        [_route("alice", "bob", notify=False), _route("gone", "bob")], net.now
    )
    assert [e for e in effects if isinstance(e, Send)] == []
    net.run(effects)
    assert net.take(alice) == []
    assert net.take(gone) == []


# --- the hub: starting over --------------------------------------------------------------


def test_close_all_tells_every_client_to_reconnect_and_frees_its_id() -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    effects = net.hub.close_all()
    assert Release(alice, "alice") in effects
    assert Release(bob, "bob") in effects
    net.run(effects)
    for conn in (alice, bob):
        assert net.take(conn) == [RESTART]
        assert net.closed[conn] == CLOSE_RESTART
    assert net.directory.count() == 0
    assert net.hub.open_count() == 0
    assert net.hub.counters["refused", "restart"] == 2


def test_close_all_of_some_sockets_leaves_the_others_alone() -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.run(net.hub.close_all([bob, 999]))
    assert net.take(bob) == [RESTART]
    assert alice not in net.closed
    assert net.hub.holdings() == ({"alice": alice}, {})
    net.send(bob, {"type": "OFFER", "dst": "alice", "payload": 1})  # closed: ignored
    assert net.take(alice) == []


def test_a_socket_closed_for_a_restart_releases_nothing_when_it_disconnects() -> None:
    net = Net()
    alice = opened(net, "alice")
    net.run(net.hub.close_all())
    assert net.hub.disconnected(alice) == []


def test_holdings_name_open_and_claiming_sockets() -> None:
    net = Net()
    alice = opened(net, "alice")
    claim = net.hub.connect(7, {"key": "peerjs", "id": "bob", "token": "t"}, ip=None, now=T0)
    assert len(claim) == 1  # the Claim, not yet answered
    assert net.hub.holdings() == ({"alice": alice}, {"bob": 7})


# --- the reconciler ----------------------------------------------------------------------

GRACE = 4000


def test_an_orphan_entry_is_released_after_the_grace_and_not_before() -> None:
    rec = Reconciler("pa", GRACE)
    entries = {"alice": ("pa", 3)}
    assert rec.review(entries=entries, held={}, claiming={}, now=T0).release == ()
    assert rec.review(entries=entries, held={}, claiming={}, now=T0 + 3999).release == ()
    review = rec.review(entries=entries, held={}, claiming={}, now=T0 + 4000)
    assert review.release == (("alice", 3),)
    # released once; seen again it starts a new grace
    assert rec.review(entries=entries, held={}, claiming={}, now=T0 + 4001).release == ()


def test_one_review_never_releases_even_with_no_grace() -> None:
    rec = Reconciler("pa", 0)
    assert rec.review(entries={"a": ("pa", 1)}, held={}, claiming={}, now=T0).release == ()
    assert rec.review(entries={"a": ("pa", 1)}, held={}, claiming={}, now=T0 + 1).release == (
        ("a", 1),
    )


def test_an_entry_that_resolves_itself_is_forgotten() -> None:
    rec = Reconciler("pa", GRACE)
    entries = {"alice": ("pa", 3)}
    rec.review(entries=entries, held={}, claiming={}, now=T0)
    # the claim in flight landed: the socket holds the id now
    assert rec.review(entries=entries, held={"alice": 3}, claiming={}, now=T0 + 5000).release == ()
    # later suspicion starts a new grace rather than counting from the first
    assert rec.review(entries=entries, held={}, claiming={}, now=T0 + 6000).release == ()
    assert rec.review(entries=entries, held={}, claiming={}, now=T0 + 10_000).release == (
        ("alice", 3),
    )


def test_entries_of_claiming_sockets_and_of_other_processes_are_never_orphans() -> None:
    rec = Reconciler("pa", GRACE)
    entries = {"alice": ("pa", 3), "bob": ("pb", 3)}
    for now in (T0, T0 + 10_000):
        review = rec.review(entries=entries, held={}, claiming={"alice": 3}, now=now)
        assert review.release == ()
    # an id of ours held by another connection number: the older one's entry is gone
    review = rec.review(entries={"alice": ("pa", 4)}, held={"alice": 3}, claiming={}, now=T0)
    assert review.release == ()


def test_a_ghost_socket_is_closed_after_the_grace() -> None:
    rec = Reconciler("pa", GRACE)
    # alice's entry was lost (Redis restarted); bob's id went to another process and
    # the kick never came
    entries = {"alice": None, "bob": ("pb", 9)}
    held = {"alice": 3, "bob": 4}
    for now in (T0, T0 + 2000):
        assert rec.review(entries=entries, held=held, claiming={}, now=now).close == ()
    assert rec.review(entries=entries, held=held, claiming={}, now=T0 + GRACE).close == (3, 4)


def test_a_socket_whose_entry_appears_is_not_a_ghost() -> None:
    rec = Reconciler("pa", GRACE)
    held = {"alice": 3}
    rec.review(entries={"alice": None}, held=held, claiming={}, now=T0)
    assert rec.review(entries={"alice": ("pa", 3)}, held=held, claiming={}, now=T0 + 5000) == (
        Review()
    )
    # a new suspicion starts a new grace
    assert rec.review(entries={"alice": None}, held=held, claiming={}, now=T0 + 6000).close == ()


def test_ids_in_our_set_that_are_not_ours_are_forgotten_at_once() -> None:
    rec = Reconciler("pa", GRACE)
    review = rec.review(entries={"gone": None, "moved": ("pb", 1)}, held={}, claiming={}, now=T0)
    assert review.forget == ("gone", "moved")


# --- retries -----------------------------------------------------------------------------


def test_a_retry_is_due_at_once_then_after_doubling_delays_up_to_the_cap() -> None:
    retries: Retries[str] = Retries(base_ms=200, cap_ms=1000)
    assert retries.add("alice", T0)
    assert retries.due(T0) == ["alice"]
    delays = []
    now = T0
    for _ in range(5):
        retries.failed("alice", now)
        due = retries.next_due()
        assert due is not None
        delays.append(due - now)
        assert retries.due(due - 1) == []
        assert retries.due(due) == ["alice"]
        now = due
    assert delays == [200, 400, 800, 1000, 1000]
    retries.succeeded("alice")
    assert len(retries) == 0
    assert retries.next_due() is None


def test_adding_a_pending_retry_again_makes_it_due_now() -> None:
    retries: Retries[str] = Retries(base_ms=200, cap_ms=1000)
    retries.add("alice", T0)
    retries.failed("alice", T0)
    retries.failed("alice", T0 + 200)
    assert retries.add("alice", T0 + 300)
    assert retries.due(T0 + 300) == ["alice"]
    assert len(retries) == 1


def test_a_full_queue_refuses_new_retries() -> None:
    retries: Retries[str] = Retries(base_ms=200, cap_ms=1000, limit=2)
    assert retries.add("a", T0)
    assert retries.add("b", T0)
    assert not retries.add("c", T0)
    assert "c" not in retries
    assert retries.add("a", T0)  # already kept


def test_success_or_failure_of_an_unknown_retry_is_ignored() -> None:
    retries: Retries[str] = Retries(base_ms=200, cap_ms=1000)
    retries.failed("nobody", T0)
    retries.succeeded("nobody")
    assert len(retries) == 0


@pytest.mark.parametrize("frame_type", [m.OFFER, m.CANDIDATE])
def test_a_sender_told_expire_can_go_on_sending(frame_type: str) -> None:
    net = Net()
    alice, bob = opened(net, "alice"), opened(net, "bob")
    net.run(net.hub.unrouted([_route("alice", "bob")], net.now))
    assert net.take(alice) == [{"type": "EXPIRE", "src": "bob", "dst": "alice"}]
    net.send(alice, {"type": frame_type, "dst": "bob", "payload": {"n": 1}})
    assert [f["type"] for f in net.take(bob)] == [frame_type]
