"""Replica adverts by gossip (topic ``have``): the data check the Python node runs before
delivery and relay, the super-peer's record of gossiped holders (TTL, bounds, what it
writes) and how the backfill feed uses them (stale after the holding TTL, whatever became
of their reporter)."""

from __future__ import annotations

import hashlib

import pytest

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.errors import BAD_BODY, ProtocolError
from peers.protocol.have_gossip import HAVE_TOPIC, check_have_gossip, parse_have_gossip
from peers.protocol.replication.model import ManifestInfo
from peers.protocol.replication.planner import ReplicationPlanner
from peers.protocol.replication.state import ReplicationConfig
from peers.protocol.wire import MAX_HAVE_MANIFESTS, Holding
from peers.replication.feed import Facts, HoldingFact, ManifestFact, SuperPeerFact, feed
from peers.superpeer.relay import GossipAdverts
from tests.support.swarm_network import relay_through_check

T0 = 1_700_000_000_000
TTL = 600_000


def pid(name: str) -> str:
    return peer_id_for_key(hashlib.sha256(name.encode()).digest())


def mid(n: int) -> str:
    return b64url_encode(hashlib.sha256(str(n).encode()).digest())


SP1, BROWSER, OTHER = pid("sp1"), pid("browser"), pid("other")


def test_have_gossip_data_is_manifests_with_the_have_frames_entries_and_limits() -> None:
    data = {"manifests": [{"id": mid(1), "chunks": 3}, {"id": mid(2), "chunks": 0, "keep": False}]}
    assert parse_have_gossip(data) == (Holding(mid(1), 3), Holding(mid(2), 0, keep=False))
    full = {"manifests": [{"id": mid(n), "chunks": 1} for n in range(MAX_HAVE_MANIFESTS)]}
    assert len(parse_have_gossip(full)) == MAX_HAVE_MANIFESTS
    check_have_gossip(data, T0)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "have",
        {},
        {"manifests": [], "holder": BROWSER},
        {"manifests": "all"},
        {"manifests": [{"id": mid(n), "chunks": 1} for n in range(MAX_HAVE_MANIFESTS + 1)]},
        {"manifests": [{"id": "not-a-digest", "chunks": 1}]},
        {"manifests": [{"id": mid(1), "chunks": 4097}]},
        {"manifests": [{"id": mid(1), "chunks": -1}]},
        {"manifests": [{"id": mid(1), "chunks": True}]},
        {"manifests": [{"id": mid(1)}]},
        {"manifests": [{"id": mid(1), "chunks": 1, "keep": "no"}]},
        {"manifests": [{"id": mid(1), "chunks": 1, "holder": OTHER}]},
    ],
)
def test_a_bad_have_gossip_is_refused_as_bad_body(data: object) -> None:
    with pytest.raises(ProtocolError) as info:
        check_have_gossip(data, T0)
    assert info.value.code == BAD_BODY


def test_the_python_node_drops_a_bad_have_gossip_and_relays_a_good_one() -> None:
    good = {"manifests": [{"id": mid(1), "chunks": 1, "keep": False}]}
    bad = {"manifests": [{"id": mid(1), "chunks": 1}], "holder": OTHER}
    relay = relay_through_check(HAVE_TOPIC, check_have_gossip, [bad, good])
    assert [m.data for m in relay.delivered] == [good]
    [message] = relay.delivered
    assert message.origin == relay.origin, "the holder is the signing origin"
    assert relay.dropped == {"gossip_have_bad_body": 1}
    assert relay.forwarder_violations == [], "not held against the forwarder"
    assert relay.relayed == [message.id], "only the good one went on"


def test_gossiped_adverts_are_recorded_until_the_ttl_and_written_as_they_change() -> None:
    g = GossipAdverts(ttl_ms=TTL)
    assert g.on_gossip(BROWSER, [Holding(mid(1), 4), Holding(mid(2), 2, keep=False)], T0, T0) == 2
    changes = g.changes()
    assert changes.upsert == tuple(
        sorted([(BROWSER, mid(1), 4, True, T0), (BROWSER, mid(2), 2, False, T0)])
    )
    assert changes.delete == ()
    assert g.news
    g.written_ok(changes)
    assert g.changes().upsert == ()

    # A refresh with the same content is written again (its time), but is no news.
    g.news = False
    g.on_gossip(BROWSER, [Holding(mid(1), 4)], T0 + 240_000, T0 + 240_100)
    assert g.changes().upsert == ((BROWSER, mid(1), 4, True, T0 + 240_000),)
    assert not g.news
    g.written_ok(g.changes())
    # Issued "in the future": counted from its arrival. An older advert arriving late: ignored.
    g.on_gossip(BROWSER, [Holding(mid(3), 1)], T0 + 999_000, T0 + 250_000)
    assert g.heard[(BROWSER, mid(3))][2] == T0 + 250_000
    g.on_gossip(BROWSER, [Holding(mid(1), 0)], T0 + 100_000, T0 + 260_000)
    assert (BROWSER, mid(1)) in g.heard
    assert g.holders(mid(1), T0 + 260_000) == {BROWSER: 4}

    # Not heard again: expired at heard + TTL, and the rows go.
    g.written_ok(g.changes())
    assert g.expire(T0 + TTL - 1) == []
    assert g.expire(T0 + TTL) == [(BROWSER, mid(2))]
    assert g.holders(mid(1), T0 + TTL) == {BROWSER: 4}, "refreshed at +240 s"
    assert g.changes().delete == ((BROWSER, mid(2)),)
    g.written_ok(g.changes())
    # A withdrawal removes at once.
    g.on_gossip(BROWSER, [Holding(mid(1), 0)], T0 + TTL, T0 + TTL)
    assert g.changes().delete == ((BROWSER, mid(1)),)
    assert g.holders(mid(1), T0 + TTL) == {}


def test_a_failed_write_is_written_again_and_the_bounds_hold() -> None:
    g = GossipAdverts(ttl_ms=TTL, max_total=5, max_per_holder=3)
    g.on_gossip(BROWSER, [Holding(mid(n), 1) for n in range(5)], T0, T0)
    assert g.per_holder == {BROWSER: 3}
    assert g.dropped == 2
    g.on_gossip(OTHER, [Holding(mid(n), 1) for n in range(5)], T0, T0)
    assert len(g.heard) == 5
    assert g.dropped == 5
    first = g.changes()
    assert len(first.upsert) == 5
    # The write failed (not written_ok): the same rows come again, newer where they changed.
    g.on_gossip(BROWSER, [Holding(mid(0), 7)], T0 + 1, T0 + 1)
    again = g.changes()
    assert len(again.upsert) == 5
    assert (BROWSER, mid(0), 7, True, T0 + 1) in again.upsert
    g.written_ok(first)  # an older write finishing late does not hide the newer state
    assert g.changes().upsert == ((BROWSER, mid(0), 7, True, T0 + 1),)


CONFIG = ReplicationConfig(holding_ttl_ms=TTL, super_peer_ttl_ms=90_000)
M = mid(100)


def facts(*holdings: HoldingFact, reporter_seen: int, running: bool = True) -> Facts:
    return Facts(
        manifests=(ManifestFact(M, "main", 10, 10 * 65536),),
        community_targets={},
        super_peers=(SuperPeerFact(SP1, running, reporter_seen, 10 * 2**30, 0, 4),),
        holdings=holdings,
        jobs={},
    )


def holders_after_feed(f: Facts, now: int) -> dict[str, int]:
    p = ReplicationPlanner(CONFIG)
    p.handle(ManifestInfo(M, "main", 10, 10 * 65536), 0)
    feed(p, f, {}, now)
    return {h: x.chunks for h, x in p.holdings.holders(M).items()}


def test_the_feed_uses_a_gossiped_advert_until_the_holding_ttl_whatever_its_reporter() -> None:
    gossiped = HoldingFact(BROWSER, M, 10, SP1, True, gossip=True, heard_at=T0)
    # Fresh: counted, even though its reporter is long gone (a relayed one would not be).
    relayed = HoldingFact(OTHER, M, 10, SP1)
    dead = facts(gossiped, relayed, reporter_seen=T0 - 10 * 60_000, running=False)
    assert holders_after_feed(dead, T0 + TTL - 1) == {BROWSER: 10}
    # Stale once the holding TTL has passed since it was issued, even with a live reporter.
    live = facts(gossiped, relayed, reporter_seen=T0 + TTL, running=True)
    assert holders_after_feed(live, T0 + TTL) == {OTHER: 10}
    # A direct report and a gossip of the same holder: the most chunks, kept as the freshest.
    cached = HoldingFact(BROWSER, M, 6, SP1, False, gossip=True, heard_at=T0 + 5_000)
    direct = HoldingFact(BROWSER, M, 4, SP1, True)
    p = ReplicationPlanner(CONFIG)
    p.handle(ManifestInfo(M, "main", 10, 10 * 65536), 0)
    feed(p, facts(cached, direct, reporter_seen=T0 + 1_000), {}, T0 + 6_000)
    held = p.holdings.get(BROWSER, M)
    assert held is not None
    assert (held.chunks, held.kept) == (6, False)
