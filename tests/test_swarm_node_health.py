"""Connection health, the peer book and the gossip log, with explicit clocks.

A port of tests/js/health_peerbook.test.js (same inputs, same expected outputs).
"""

from __future__ import annotations

import dataclasses

from peers.protocol.gossip import GossipLog
from peers.protocol.health import (
    DEGRADED_AFTER_MS,
    PING_INTERVAL_MS,
    PONG_TIMEOUT_MS,
    STALE_AFTER_MS,
    Health,
)
from peers.protocol.peerbook import PeerBook
from peers.protocol.ticket import make_ticket, verify_ticket
from peers.protocol.wire import Ping, Pong
from tests.support.swarm_network import T0, make_identity


def test_health_pings_every_15_s_smooths_rtt_and_counts_unanswered_pings_as_loss() -> None:
    h = Health(0)
    p1 = h.ping_due(0)
    assert p1 == Ping(n=1, ts=0)
    assert h.pong(Pong(n=1, ts=0), 40) == 40
    assert h.ping_due(PING_INTERVAL_MS - 1) is None
    assert h.rtt == 40
    assert h.pong(Pong(n=1, ts=0), 50) is None, "a pong answers a ping once"
    assert h.pong(Pong(n=9, ts=0), 50) is None, "unknown pongs are ignored"
    p2 = h.ping_due(PING_INTERVAL_MS)
    assert p2 is not None
    h.pong(Pong(n=p2.n, ts=p2.ts), PING_INTERVAL_MS + 80)
    assert h.rtt == 50, "EWMA 1/4: 40 + (80-40)/4"
    assert h.min_rtt == 40, "the smallest sample"
    h.ping_due(2 * PING_INTERVAL_MS)  # never answered
    h.ping_due(3 * PING_INTERVAL_MS)
    assert h.loss == 1 / 3, "the third ping expired after 10 s"
    assert h.pings_sent == 4


def test_health_is_degraded_after_90_s_without_any_frame_and_stale_after_180_s() -> None:
    h = Health(1000)
    assert h.state(1000 + DEGRADED_AFTER_MS - 1) == "ok"
    assert h.state(1000 + DEGRADED_AFTER_MS) == "degraded"
    assert h.state(1000 + STALE_AFTER_MS) == "stale"
    h.received(1000 + STALE_AFTER_MS)
    assert h.state(1000 + STALE_AFTER_MS) == "ok"


def test_health_next_deadline_names_the_next_ping_pong_timeout_or_threshold() -> None:
    h = Health(0)
    assert h.next_deadline(0) == 0, "the first ping is due at once"
    h.ping_due(0)
    assert h.next_deadline(0) == PONG_TIMEOUT_MS
    h.ping_due(PONG_TIMEOUT_MS)  # expires the first
    assert h.next_deadline(PONG_TIMEOUT_MS) == PING_INTERVAL_MS
    late = DEGRADED_AFTER_MS + 1
    assert h.next_deadline(late) >= min(late, PING_INTERVAL_MS)
    assert Health(0).next_deadline(STALE_AFTER_MS + 1) <= STALE_AFTER_MS + 1


def test_health_ping_numbers_wrap_at_2_32() -> None:
    h = Health(0)
    h.seq = 0xFFFFFFFF
    ping = h.ping_due(0)
    assert ping is not None
    assert ping.n == 0


def test_peer_book_keeps_the_newest_ticket_per_peer_and_recognizes_exact_duplicates() -> None:
    ident = make_identity("main", T0)
    newer = make_identity("main", T0 + 1000)
    book = PeerBook(self_id="pself")
    assert book.add_ticket(ident.ticket, "beacon", T0) == "added"
    assert book.has_ticket(ident.ticket.envelope)
    assert book.add_ticket(ident.ticket, "pex", T0) == "stale"
    later = verify_ticket(
        make_ticket(ident.key, community="main", now=T0 + 5000),
        now=T0 + 5000,
        community="main",
    )
    assert book.add_ticket(later, "pex", T0 + 5000) == "added"
    entry = book.get(ident.peer_id)
    assert entry is not None
    assert entry.issued_at == T0 + 5000
    assert book.add_ticket(ident.ticket, "capsule", T0 + 6000) == "stale", "never older"
    as_self = dataclasses.replace(newer.ticket, peer_id="pself")
    assert book.add_ticket(as_self, "pex", T0) == "self"
    assert not book.has_ticket({"body": "x"})
    assert not book.has_ticket("ticket")


def test_peer_book_backs_off_failures_exponentially_and_dial_candidates_skip_them() -> None:
    a = make_identity("main", T0)
    b = make_identity("main", T0)
    book = PeerBook(self_id="pself", random=lambda: 0)
    book.add_ticket(a.ticket, "beacon", T0)
    book.add_ticket(b.ticket, "beacon", T0)
    book.record_success(a.peer_id, T0)
    candidates = [e.peer_id for e in book.dial_candidates(T0)]
    assert candidates == [a.peer_id, b.peer_id], "proven peers first"
    book.record_failure(a.peer_id, T0)
    assert [e.peer_id for e in book.dial_candidates(T0 + 4_999)] == [b.peer_id]
    book.record_failure(a.peer_id, T0 + 5_000)
    entry = book.get(a.peer_id)
    assert entry is not None
    assert entry.next_dial_at == T0 + 15_000, "second failure: 10 s"
    assert book.dial_candidates(T0, exclude={b.peer_id}) == []


def test_peer_book_skips_a_peer_signaling_called_gone_until_a_newer_ticket_arrives() -> None:
    a = make_identity("main", T0)
    b = make_identity("main", T0)
    book = PeerBook(self_id="pself", random=lambda: 0)
    book.add_ticket(a.ticket, "beacon", T0)
    book.add_ticket(b.ticket, "beacon", T0)
    book.record_failure(a.peer_id, T0)
    book.record_gone(a.peer_id, T0)
    later = T0 + 60_000  # long past the failure's back-off, the ticket still live
    assert [e.peer_id for e in book.dial_candidates(later)] == [b.peer_id]
    assert [t["body"]["peer_id"] for t in book.sample_tickets(later)] == [b.peer_id], (
        "a ticket known stale is not passed on"
    )
    assert book.add_ticket(a.ticket, "pex", later) == "stale", "the same ticket changes nothing"
    assert [e.peer_id for e in book.dial_candidates(later)] == [b.peer_id]
    fresh = verify_ticket(
        make_ticket(a.key, community="main", now=later), now=later, community="main"
    )
    assert book.add_ticket(fresh, "beacon", later) == "added"
    assert a.peer_id in [e.peer_id for e in book.dial_candidates(later)], "back with a newer ticket"
    book.record_gone(a.peer_id, later)
    book.record_success(a.peer_id, later)  # it reached us itself: not gone
    assert a.peer_id in [e.peer_id for e in book.dial_candidates(later)]


def test_peer_book_drops_expired_tickets_unless_the_peer_answered_and_cache_round_trips() -> None:
    a = make_identity("main", T0, 180_000)
    b = make_identity("main", T0, 180_000)
    book = PeerBook(self_id="pself")
    book.add_ticket(a.ticket, "beacon", T0)
    book.add_ticket(b.ticket, "beacon", T0)
    book.record_success(a.peer_id, T0)
    later = T0 + 200_000
    assert book.live_count(later) == 0
    book.prune(later)
    assert list(book.entries) == [a.peer_id]
    assert [e.peer_id for e in book.dial_candidates(later)] == [a.peer_id], "it may be back"
    restored = PeerBook(self_id="pself")
    restored.load_records(book.to_records(), later)
    entry = restored.get(a.peer_id)
    assert entry is not None
    assert entry.successes == 1
    assert entry.source == "cache"
    assert entry.ticket == a.ticket.envelope
    # records from an untrusted or older cache: malformed fields fall back to defaults
    restored.load_records([{"peer_id": 7}, {"peer_id": "pq", "successes": "many"}], later)
    odd = restored.get("pq")
    assert odd is not None
    assert odd.successes == 0


def test_peer_book_capacity_evicts_the_lowest_scores_never_seeds() -> None:
    book = PeerBook(self_id="pself", capacity=3)
    seed = "p" + "s" * 32
    book.add_seed(seed, T0)
    for _ in range(4):
        book.add_ticket(make_identity("main", T0).ticket, "beacon", T0)
    assert book.size == 3
    assert book.has(seed)


def test_gossip_log_forgets_ids_once_their_messages_are_too_old_to_accept_anyway() -> None:
    log = GossipLog(max_age_ms=1000, skew_ms=100)
    log.add("aa", 5000)
    log.prune(6099)
    assert log.has("aa")
    log.prune(6100)
    assert not log.has("aa")
    small = GossipLog(max_seen=2)
    for id_hex in ("a", "b", "c"):
        small.add(id_hex, 0)
    assert list(small.seen) == ["b", "c"]


def test_peer_book_dials_a_hinted_holder_first_even_without_a_ticket_unless_gone() -> None:
    a = make_identity("main", T0)
    book = PeerBook(self_id="pself", random=lambda: 0)
    book.add_ticket(a.ticket, "beacon", T0)
    book.record_success(a.peer_id, T0)
    book.add_hint("pholder", T0)
    assert [e.peer_id for e in book.dial_candidates(T0)] == ["pholder", a.peer_id]
    book.record_gone("pholder", T0)
    assert [e.peer_id for e in book.dial_candidates(T0 + 3_600_000)] == [a.peer_id]
    assert "pholder" not in {r["peer_id"] for r in book.to_records()}
