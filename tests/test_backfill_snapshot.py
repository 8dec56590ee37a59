"""Pure parts of the backfill adapters, with explicit times: the planner's bookkeeping
carried across rebuilt planners (snapshot), the feed order, and the super-peer's relay of
other peers' adverts."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.protocol.replication.model import (
    AlertKind,
    CancelReason,
    HaveAdvert,
    JobReport,
    JobState,
    ManifestInfo,
    ReplicationError,
    SuperPeerStatus,
)
from peers.protocol.replication.planner import ReplicationPlanner
from peers.protocol.replication.snapshot import (
    BAD_SNAPSHOT,
    dump_state,
    load_state,
    restore_jobs,
)
from peers.protocol.replication.state import ReplicationConfig
from peers.replication.feed import Facts, HoldingFact, JobFact, ManifestFact, SuperPeerFact, feed
from peers.superpeer.relay import ASK_TIMEOUT_MS, AdvertRelay

T0 = 1_700_000_000_000
GIB = 2**30


def pid(name: str) -> str:
    return peer_id_for_key(hashlib.sha256(name.encode()).digest())


def mid(name: str) -> str:
    return b64url_encode(hashlib.sha256(name.encode()).digest())


SP1, SP2, BROWSER = pid("sp1"), pid("sp2"), pid("browser")
M = mid("m")
CONFIG = ReplicationConfig(alert_after_ms=60_000, retry_base_ms=20_000, job_timeout_ms=30_000)


def planner(prefix: str = "a") -> ReplicationPlanner:
    p = ReplicationPlanner(replace(CONFIG, job_id_prefix=prefix))
    p.handle(ManifestInfo(M, "main", 10, 10 * 65536), 0)
    return p


def statuses(p: ReplicationPlanner, now: int) -> None:
    for peer in (SP1, SP2):
        p.handle(SuperPeerStatus(peer, 10 * GIB, 0, 4), now)


def rebuilt(snapshot: dict[str, object], now: int) -> ReplicationPlanner:
    p = planner("b")
    load_state(p, snapshot)
    statuses(p, now)
    restore_jobs(p, snapshot)
    p.handle(HaveAdvert(BROWSER, M, 10), now)
    return p


def test_a_rebuilt_planner_keeps_jobs_in_flight_and_plans_nothing_twice() -> None:
    p = planner()
    statuses(p, T0)
    p.handle(HaveAdvert(BROWSER, M, 10), T0)
    first = p.tick(T0)
    assert len(first.jobs) == 2
    snapshot = dump_state(p)

    q = rebuilt(snapshot, T0 + 1000)
    plan = q.tick(T0 + 1000)
    assert (plan.jobs, plan.cancels) == ((), ())
    assert {j.job_id for j in q.active_jobs()} == {j.job_id for j in first.jobs}
    assert q.status(M).under_since == T0


def test_a_restored_job_still_times_out_at_its_original_deadline() -> None:
    p = planner()
    statuses(p, T0)
    p.handle(HaveAdvert(BROWSER, M, 10), T0)
    p.tick(T0)
    q = rebuilt(dump_state(p), T0 + 29_999)
    assert q.tick(T0 + 29_999).cancels == ()
    r = rebuilt(dump_state(q), T0 + 30_000)
    cancels = r.tick(T0 + 30_000).cancels
    assert {c.reason for c in cancels} == {CancelReason.TIMEOUT}
    assert len(cancels) == 2


def test_the_under_target_alert_survives_rebuilds_and_fires_once() -> None:
    p = planner()
    statuses(p, T0)
    p.handle(HaveAdvert(BROWSER, M, 10), T0)
    p.tick(T0)
    q = rebuilt(dump_state(p), T0 + 60_000)
    (alert,) = q.tick(T0 + 60_000).alerts
    assert (alert.kind, alert.since) == (AlertKind.UNDER_TARGET, T0)
    r = rebuilt(dump_state(q), T0 + 90_000)
    assert r.tick(T0 + 90_000).alerts == ()


def test_backoffs_survive_rebuilds() -> None:
    p = planner()
    statuses(p, T0)
    p.handle(HaveAdvert(BROWSER, M, 10), T0)
    jobs = p.tick(T0).jobs
    for job in jobs:
        report = JobReport(job.job_id, job.fetcher, M, JobState.FAILED, 0, (BROWSER,), "no_source")
        p.handle(report, T0 + 1)
    p.tick(T0 + 1)
    snapshot = dump_state(p)
    assert snapshot["source_backoff"] == {BROWSER: [2, T0 + 1 + 60_000]}
    q = rebuilt(snapshot, T0 + 40_000)
    assert q.tick(T0 + 40_000).jobs == ()  # the manifest backs off for 40 s, the source 60 s
    r = rebuilt(dump_state(q), T0 + 61_000)
    assert [j.attempt for j in r.tick(T0 + 61_000).jobs] == [3, 3]


def test_jobs_of_a_fetcher_without_status_come_back_as_cancels() -> None:
    p = planner()
    statuses(p, T0)
    p.handle(HaveAdvert(BROWSER, M, 10), T0)
    p.tick(T0)
    q = planner("b")
    load_state(q, dump_state(p))
    q.handle(SuperPeerStatus(SP1, 10 * GIB, 0, 4), T0)
    cancels = restore_jobs(q, dump_state(p))
    assert [(c.fetcher, c.reason) for c in cancels] == [(SP2, CancelReason.FETCHER_GONE)]


@pytest.mark.parametrize(
    "snapshot",
    [
        {"v": 2},
        [],
        {"v": 1, "manifests": {M: [None, "yes", None, False, 0, 0]}},
        {"v": 1, "manifests": {M: [1, False]}},
        {"v": 1, "jobs": [{"job": ["j1"]}]},
        {"v": 1, "source_backoff": {BROWSER: [-1, 0]}},
    ],
)
def test_a_bad_snapshot_is_refused_with_its_code(snapshot: object) -> None:
    def load_all() -> None:
        load_state(planner(), snapshot)
        restore_jobs(planner(), snapshot)

    with pytest.raises(ReplicationError) as err:
        load_all()
    assert err.value.code == BAD_SNAPSHOT


def test_a_job_entry_with_bad_values_is_refused_by_the_job_checks() -> None:
    snapshot = {
        "v": 1,
        "jobs": [
            {
                "job": ["j1", SP1, M, "main", [SP1], 10, 1, 1, T0, T0 + 1],
                "chunks": 0,
                "start": 0,
                "progress_at": T0,
                "reserved": 0,
            }
        ],
    }
    p = planner()
    statuses(p, T0)
    with pytest.raises(ReplicationError) as err:
        restore_jobs(p, snapshot)
    assert err.value.code == "bad_job"  # a fetcher among its own sources


def facts(*holdings: HoldingFact, seen: int = T0) -> Facts:
    return Facts(
        manifests=(ManifestFact(M, "main", 10, 10 * 65536),),
        community_targets={},
        super_peers=(
            SuperPeerFact(SP1, True, seen, 10 * GIB, 0, 4),
            SuperPeerFact(SP2, True, T0, 10 * GIB, 0, 4),
        ),
        holdings=holdings,
        jobs={},
    )


def test_feed_uses_the_most_chunks_any_live_reporter_knows() -> None:
    p = ReplicationPlanner(CONFIG)
    feed(
        p,
        facts(HoldingFact(BROWSER, M, 4, SP1), HoldingFact(BROWSER, M, 10, SP2)),
        {},
        T0,
    )
    assert p.status(M).complete == (BROWSER,)


def test_feed_drops_what_a_silent_reporter_relays() -> None:
    p = ReplicationPlanner(CONFIG)
    fed = feed(p, facts(HoldingFact(BROWSER, M, 10, SP1), seen=T0 - 90_000), {}, T0 + 1)
    assert fed.live == {SP2}
    assert p.status(M).complete == ()


def test_feed_counts_new_failed_sources_once() -> None:
    p = ReplicationPlanner(CONFIG)
    f = facts(HoldingFact(BROWSER, M, 10, SP1))
    feed(p, f, {}, T0)
    (job, _) = p.tick(T0).jobs
    row = JobFact(job.job_id, job.fetcher, M, "fetching", 3, (BROWSER,))
    snapshot = dump_state(p)
    for now in (T0 + 1000, T0 + 2000):
        q = ReplicationPlanner(replace(CONFIG, job_id_prefix="x"))
        with_job = Facts(f.manifests, {}, f.super_peers, f.holdings, {job.job_id: row})
        fed = feed(q, with_job, snapshot, now)
        q.tick(now)
        snapshot = dump_state(q)
        assert fed.bytes_fetched == (10 * 65536 * 3 // 10 if now == T0 + 1000 else 0)
    assert snapshot["source_backoff"] == {BROWSER: [1, T0 + 1000 + 30_000]}


def test_the_relay_writes_changes_only_and_forgets_departed_peers() -> None:
    relay = AdvertRelay()
    first = relay.changes({M: {BROWSER: 4, SP2: 10}})
    assert first.reset
    assert first.upsert == tuple(sorted([(BROWSER, M, 4, True), (SP2, M, 10, True)]))
    relay.written_ok(first)
    relay.backfill_wanted = False
    assert relay.changes({M: {BROWSER: 4, SP2: 10}}).upsert == ()
    grew = relay.changes({M: {BROWSER: 10, SP2: 10}})
    assert (grew.upsert, grew.delete, grew.reset) == (((BROWSER, M, 10, True),), (), False)
    relay.written_ok(grew)
    left = relay.changes({M: {SP2: 10}})
    assert (left.upsert, left.delete) == ((), ((BROWSER, M),))
    relay.written_ok(left)
    assert relay.backfill_wanted
    assert relay.written == {(SP2, M): (10, True)}


def test_the_relay_writes_whether_a_copy_is_kept_and_when_that_changes() -> None:
    relay = AdvertRelay()
    cached = relay.changes({M: {BROWSER: 10}}, {M: {BROWSER}})
    assert cached.upsert == ((BROWSER, M, 10, False),)
    relay.written_ok(cached)
    assert relay.changes({M: {BROWSER: 10}}, {M: {BROWSER}}).upsert == ()
    kept = relay.changes({M: {BROWSER: 10}}, {})
    assert (kept.upsert, kept.delete) == (((BROWSER, M, 10, True),), ())
    relay.written_ok(kept)
    assert relay.written == {(BROWSER, M): (10, True)}


def test_feed_counts_a_relayed_copy_only_when_its_holder_keeps_it() -> None:
    p = ReplicationPlanner(CONFIG)
    feed(p, facts(HoldingFact(BROWSER, M, 10, SP1, keep=False)), {}, T0)
    status = p.status(M)
    assert (status.replicas, status.complete, status.cached) == (0, (), (BROWSER,))
    # The freshest reporter decides: SP2 (seen at T0) hears it kept, SP1 (older) did not.
    q = ReplicationPlanner(CONFIG)
    both = (HoldingFact(BROWSER, M, 10, SP1, keep=False), HoldingFact(BROWSER, M, 10, SP2))
    feed(q, facts(*both, seen=T0 - 1000), {}, T0)
    assert q.status(M).complete == (BROWSER,)


def test_the_relay_asks_each_unknown_manifest_once_and_learns_only_what_verifies() -> None:
    relay = AdvertRelay()
    assert relay.to_learn(BROWSER, [(M, 3)], T0) == [M]
    assert relay.to_learn(SP2, [(M, 10)], T0 + 1) == []  # asked already
    assert relay.learned(SP2, M, {"v": 1}, T0 + 2) is None  # not asked of SP2
    assert relay.learned(BROWSER, M, {"not": "a manifest"}, T0 + 2) is None
    assert relay.to_learn(SP2, [(M, 10)], T0 + 3) == [M]  # the next advertiser is asked
    assert relay.to_learn(BROWSER, [(M, 10)], T0 + 3 + ASK_TIMEOUT_MS) == [M]  # unanswered
