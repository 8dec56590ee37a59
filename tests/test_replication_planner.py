"""The replication planner with a fake clock: every time is an explicit ``now`` in ms."""

from __future__ import annotations

import base64
import hashlib

from peers.protocol.replication.model import (
    CHUNK_SIZE,
    AlertKind,
    CancelReason,
    CommunityTarget,
    FetchJob,
    ForgetManifest,
    HaveAdvert,
    Health,
    JobReport,
    JobState,
    ManifestInfo,
    ManifestTarget,
    PeerGone,
    PeerHealth,
    Plan,
    SuperPeerStatus,
    peer_key,
)
from peers.protocol.replication.planner import ReplicationConfig, ReplicationPlanner

GiB = 2**30
COUNT = 8
SIZE = COUNT * CHUNK_SIZE


def pid(name: str) -> str:
    return "p" + base64.b32encode(hashlib.sha256(name.encode()).digest()[:20]).decode().lower()


B1, B2, B3, B4 = (pid(f"browser-{i}") for i in range(1, 5))
S1, S2, S3 = (pid(f"super-{i}") for i in range(1, 4))
SUPERS = (S1, S2, S3)

CONFIG = ReplicationConfig(
    holding_ttl_ms=60_000,
    super_peer_ttl_ms=30_000,
    job_timeout_ms=20_000,
    retry_base_ms=1_000,
    retry_max_ms=8_000,
    source_backoff_base_ms=5_000,
    source_backoff_max_ms=40_000,
    alert_after_ms=100_000,
    lost_grace_ms=0,
)


def manifest(n: int, *, count: int = COUNT, community: str = "main") -> ManifestInfo:
    return ManifestInfo(f"manifest-{n:04d}", community, count, count * CHUNK_SIZE)


M1 = manifest(1).manifest_id


def planner(
    *,
    supers: tuple[str, ...] = SUPERS,
    budget: int = GiB,
    max_jobs: int = 4,
    config: ReplicationConfig = CONFIG,
) -> ReplicationPlanner:
    p = ReplicationPlanner(config)
    for peer in supers:
        p.handle(SuperPeerStatus(peer, budget, 0, max_jobs), 0)
    return p


def have(
    p: ReplicationPlanner, holder: str, manifest_id: str, now: int, chunks: int = COUNT
) -> None:
    p.handle(HaveAdvert(holder, manifest_id, chunks), now)


def alive(p: ReplicationPlanner, now: int, supers: tuple[str, ...] = SUPERS) -> None:
    """Super-peers report status well within the super-peer TTL."""
    for peer in supers:
        p.handle(SuperPeerStatus(peer, GiB, 0, 4), now)


def done(p: ReplicationPlanner, job: FetchJob, now: int, chunks: int | None = None) -> None:
    count = job.chunk_count if chunks is None else chunks
    p.handle(JobReport(job.job_id, job.fetcher, job.manifest_id, JobState.DONE, count), now)


def one_manifest(holders: tuple[str, ...] = (B1,), **kwargs: object) -> ReplicationPlanner:
    p = planner(**kwargs)  # type: ignore[arg-type]
    p.handle(manifest(1), 0)
    for holder in holders:
        have(p, holder, M1, 0)
    return p


# --- counting ---------------------------------------------------------------------


def test_only_complete_adverts_count_as_replicas() -> None:
    p = planner(supers=())
    p.handle(manifest(1), 0)
    have(p, B1, M1, 0)
    have(p, B2, M1, 0, chunks=COUNT - 1)
    have(p, B3, M1, 0, chunks=1)
    status = p.status(M1)
    assert status.replicas == 1
    assert status.complete == (B1,)
    assert status.partial == tuple(sorted((B2, B3)))
    have(p, B2, M1, 1, chunks=COUNT)
    assert p.status(M1).replicas == 2


def test_advert_of_zero_chunks_withdraws_the_holding() -> None:
    p = one_manifest((B1, B2))
    have(p, B2, M1, 1, chunks=0)
    assert p.status(M1).complete == (B1,)


def test_complete_copy_not_kept_serves_chunks_but_is_not_a_replica() -> None:
    p = one_manifest((B1,), supers=(S1,))
    p.handle(HaveAdvert(B2, M1, COUNT, keep=False), 0)
    p.handle(PeerHealth(B2, Health.HEALTHY, 5, 10**8), 0)
    status = p.status(M1)
    assert status.replicas == 1
    assert status.cached == (B2,)
    (job,) = p.tick(0).jobs
    assert job.sources == (B2, B1)  # the fast cache first


def test_browsers_count_toward_the_target_but_never_get_jobs() -> None:
    p = one_manifest((B1, B2), supers=())
    p.handle(PeerHealth(B3, Health.HEALTHY, 20, 10**7), 0)
    plan = p.tick(0)
    assert plan.jobs == ()
    assert p.status(M1).replicas == 2
    have(p, B3, M1, 1)
    p.tick(1)
    assert p.status(M1).under_since is None
    assert p.summary().at_target == 1


def test_missing_replicas_get_one_job_each_on_distinct_super_peers() -> None:
    p = one_manifest((B1,))
    plan = p.tick(0)
    assert len(plan.jobs) == 2
    assert len({job.fetcher for job in plan.jobs}) == 2
    assert all(job.sources == (B1,) and job.manifest_id == M1 for job in plan.jobs)
    # In-flight jobs are not replicas, but they keep the next tick from planning more.
    assert p.status(M1).replicas == 1
    assert p.tick(1).jobs == ()


def test_job_turns_its_fetcher_into_a_replica_only_when_every_chunk_is_verified() -> None:
    p = one_manifest((B1, B2))
    (job,) = p.tick(0).jobs
    report = JobReport(job.job_id, job.fetcher, M1, JobState.PROGRESS, COUNT - 1)
    p.handle(report, 1_000)
    assert p.status(M1).replicas == 2
    assert job.fetcher in p.status(M1).partial
    done(p, job, 2_000)
    assert p.status(M1).replicas == 3
    assert job.fetcher in p.status(M1).complete
    assert p.tick(2_000).jobs == ()
    assert p.summary().under_target == 0


def test_done_report_short_of_every_chunk_is_an_incomplete_replica_and_is_retried() -> None:
    p = one_manifest((B1, B2))
    (job,) = p.tick(0).jobs
    done(p, job, 1_000, chunks=COUNT - 2)
    plan = p.tick(1_000)
    assert p.status(M1).replicas == 2
    assert [(i.holder, i.chunks, i.chunk_count) for i in plan.incomplete] == [
        (job.fetcher, COUNT - 2, COUNT)
    ]
    assert plan.jobs == ()  # backing off
    (retry,) = p.tick(1_000 + CONFIG.retry_base_ms).jobs
    assert retry.attempt == 2


def test_complete_advert_from_a_fetcher_finishes_its_job() -> None:
    p = one_manifest((B1, B2))
    (job,) = p.tick(0).jobs
    have(p, job.fetcher, M1, 500)
    assert p.active_jobs() == ()
    assert p.status(M1).replicas == 3


# --- holders leave, adverts expire ------------------------------------------------


def test_holder_leaving_triggers_a_repair_job() -> None:
    p = one_manifest((B1, B2, B3))
    assert p.tick(0).jobs == ()
    p.handle(PeerGone(B3), 5_000)
    (job,) = p.tick(5_000).jobs
    assert set(job.sources) == {B1, B2}
    assert B3 not in job.sources


def test_stale_advert_expires_and_the_manifest_is_repaired() -> None:
    p = one_manifest((B1, B2, B3))
    assert p.tick(0).jobs == ()
    have(p, B1, M1, 30_000)
    have(p, B2, M1, 30_000)
    alive(p, 50_000)
    plan = p.tick(59_999)
    assert plan.expired == ()
    assert plan.jobs == ()
    plan = p.tick(60_000)
    assert [(e.holder, e.manifest_id, e.last_seen) for e in plan.expired] == [(B3, M1, 0)]
    (job,) = plan.jobs
    assert set(job.sources) == {B1, B2}


def test_nothing_is_kept_about_a_silent_peer_once_its_last_advert_expired() -> None:
    p = one_manifest((B1, B2), supers=())
    p.handle(PeerHealth(B2, Health.HEALTHY, 10, 10**6), 0)
    have(p, B1, M1, 30_000)
    p.tick(60_000)
    assert p.holdings.get(B2, M1) is None
    assert B2 not in p.board.health
    assert B1 in {h.holder for h in p.holdings}


def test_super_peer_leaving_cancels_its_jobs_and_hands_them_to_another() -> None:
    p = one_manifest((B1, B2))
    (job,) = p.tick(0).jobs
    p.handle(PeerGone(job.fetcher), 1_000)
    plan = p.tick(1_000)
    assert [(c.job_id, c.reason) for c in plan.cancels] == [(job.job_id, CancelReason.FETCHER_GONE)]
    (again,) = plan.jobs
    assert again.fetcher != job.fetcher
    assert again.attempt == 1  # not the manifest's fault: no backoff


def test_super_peer_that_stops_reporting_status_gets_no_more_jobs() -> None:
    p = one_manifest((B1,), supers=(S1, S2))
    jobs = p.tick(0).jobs
    assert {j.fetcher for j in jobs} == {S1, S2}
    for job in jobs:
        p.handle(JobReport(job.job_id, job.fetcher, M1, JobState.PROGRESS, 1), 15_000)
    alive(p, 15_000, (S1,))
    assert p.tick(29_999).cancels == ()
    plan = p.tick(30_000)
    assert [(c.fetcher, c.reason) for c in plan.cancels] == [(S2, CancelReason.FETCHER_GONE)]
    assert plan.jobs == ()  # S1 is busy with the manifest already, S2 is offline
    assert p.summary().super_peers_online == 1


def test_job_whose_sources_all_left_is_cancelled_and_replanned_with_new_sources() -> None:
    p = one_manifest((B1,), supers=(S1,))
    assert len(p.tick(0).jobs) == 1
    have(p, B2, M1, 1_000)
    p.handle(PeerGone(B1), 1_000)
    plan = p.tick(1_000)
    assert [c.reason for c in plan.cancels] == [CancelReason.NO_SOURCE]
    (again,) = plan.jobs
    assert again.fetcher == S1
    assert again.sources == (B2,)


def test_manifest_without_any_live_holder_is_lost_and_never_planned() -> None:
    p = one_manifest((B1,), config=ReplicationConfig(lost_grace_ms=10_000))
    p.tick(0)
    p.handle(PeerGone(B1), 1_000)
    plan = p.tick(1_000)
    assert plan.alerts == ()  # grace: a reloading browser is not a loss
    assert [c.reason for c in plan.cancels] == [CancelReason.NO_SOURCE] * 2
    plan = p.tick(11_000)
    assert [(a.kind, a.manifest_id, a.since) for a in plan.alerts] == [(AlertKind.LOST, M1, 1_000)]
    assert plan.jobs == ()
    assert p.status(M1).lost
    have(p, B1, M1, 12_000)
    plan = p.tick(12_000)
    assert [(r.kind, r.manifest_id) for r in plan.resolved] == [(AlertKind.LOST, M1)]
    assert len(plan.jobs) == 2


# --- targets ----------------------------------------------------------------------


def test_raising_the_target_plans_more_jobs_and_lowering_it_cancels_them() -> None:
    p = one_manifest((B1, B2, B3))
    assert p.tick(0).jobs == ()
    p.handle(ManifestTarget(M1, 5), 1_000)
    jobs = p.tick(1_000).jobs
    assert len(jobs) == 2
    p.handle(ManifestTarget(M1, 2), 2_000)
    plan = p.tick(2_000)
    assert sorted(c.job_id for c in plan.cancels) == sorted(j.job_id for j in jobs)
    assert {c.reason for c in plan.cancels} == {CancelReason.TARGET_MET}
    assert p.status(M1).under_since is None


def test_lowered_target_keeps_the_job_furthest_along() -> None:
    p = one_manifest((B1,))
    first, second = p.tick(0).jobs
    p.handle(JobReport(second.job_id, second.fetcher, M1, JobState.PROGRESS, 5), 500)
    p.handle(ManifestTarget(M1, 2), 1_000)
    plan = p.tick(1_000)
    assert [c.job_id for c in plan.cancels] == [first.job_id]
    assert [(i.holder, i.chunks) for i in plan.incomplete] == []  # first had fetched nothing
    assert p.status(M1).jobs == (second.job_id,)


def test_community_target_applies_unless_the_manifest_has_its_own() -> None:
    p = planner(supers=())
    p.handle(manifest(1), 0)
    p.handle(manifest(2), 0)
    p.handle(manifest(3, community="other"), 0)
    p.handle(ManifestTarget(manifest(2).manifest_id, 1), 0)
    p.handle(CommunityTarget("main", 5), 0)
    assert [p.target(manifest(n).manifest_id) for n in (1, 2, 3)] == [5, 1, 3]
    p.handle(ManifestTarget(manifest(2).manifest_id, None), 0)
    assert p.target(manifest(2).manifest_id) == 5


def test_target_met_by_a_browser_cancels_the_job_in_flight() -> None:
    p = one_manifest((B1, B2))
    (job,) = p.tick(0).jobs
    have(p, B3, M1, 1_000)
    plan = p.tick(1_000)
    assert [(c.job_id, c.reason) for c in plan.cancels] == [(job.job_id, CancelReason.TARGET_MET)]


def test_target_zero_is_never_planned_nor_alerted() -> None:
    p = one_manifest(())
    p.handle(ManifestTarget(M1, 0), 0)
    plan = p.tick(10**6)
    assert plan == Plan()
    assert p.summary().at_target == 1


# --- failures and backoff ---------------------------------------------------------


def test_failed_jobs_back_off_exponentially_up_to_the_cap() -> None:
    p = one_manifest((B1, B2), supers=(S1,))
    now, attempts, delays = 0, [], []
    (job,) = p.tick(now).jobs
    for _ in range(6):
        alive(p, now, (S1,))
        attempts.append(job.attempt)
        p.handle(JobReport(job.job_id, S1, M1, JobState.FAILED, 0, (), "error"), now)
        retry_at = p.status(M1).retry_at
        delays.append(retry_at - now)
        assert p.tick(retry_at - 1).jobs == ()
        now = retry_at
        (job,) = p.tick(now).jobs
    assert attempts == [1, 2, 3, 4, 5, 6]
    assert delays == [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]
    done(p, job, now)
    assert p.status(M1).retry_at == 0


def test_failed_source_is_avoided_until_its_backoff_ends() -> None:
    p = one_manifest((B1, B2), supers=(S1,))
    p.handle(PeerHealth(B1, Health.HEALTHY, 10, 10**8), 0)
    (job,) = p.tick(0).jobs
    assert job.sources == (B1, B2)
    p.handle(JobReport(job.job_id, S1, M1, JobState.FAILED, 0, (B1,), "no_source"), 0)
    (retry,) = p.tick(1_000).jobs
    assert retry.sources == (B2,)
    p.handle(JobReport(retry.job_id, S1, M1, JobState.FAILED, 0, (), "error"), 1_000)
    (third,) = p.tick(5_000).jobs  # manifest backoff 2 s, B1's source backoff 5 s
    assert third.sources == (B1, B2)


def test_source_failed_early_in_a_job_stays_backed_off_when_the_job_succeeds() -> None:
    p = one_manifest((B1, B2), supers=(S1,))
    p.handle(ManifestTarget(M1, 4), 0)
    (job,) = p.tick(0).jobs
    assert set(job.sources) == {B1, B2}
    p.handle(JobReport(job.job_id, S1, M1, JobState.PROGRESS, 3, (B1,)), 100)
    done(p, job, 200)
    p.handle(SuperPeerStatus(S2, GiB, 0, 4), 200)
    (second,) = p.tick(200).jobs
    assert second.fetcher == S2
    assert B1 not in second.sources


def test_progress_report_naming_a_failed_source_backs_it_off_for_other_jobs() -> None:
    p = planner(supers=(S1, S2))
    for n in (1, 2):
        p.handle(manifest(n), 0)
        have(p, B1, manifest(n).manifest_id, 0)
        have(p, B2, manifest(n).manifest_id, 0)
    jobs = p.tick(0).jobs
    job = jobs[0]
    p.handle(JobReport(job.job_id, job.fetcher, job.manifest_id, JobState.PROGRESS, 1, (B1,)), 10)
    p.handle(PeerGone(S2), 10)
    plan = p.tick(10)
    assert plan.jobs
    assert all(B1 not in j.sources for j in plan.jobs)


def test_job_without_progress_times_out_and_is_retried_on_another_super_peer() -> None:
    p = one_manifest((B1, B2), supers=(S1, S2))
    (job,) = p.tick(0).jobs
    p.handle(JobReport(job.job_id, job.fetcher, M1, JobState.PROGRESS, 2), 15_000)
    alive(p, 30_000)
    assert p.tick(34_999).cancels == ()
    plan = p.tick(35_000)
    assert [(c.job_id, c.reason) for c in plan.cancels] == [(job.job_id, CancelReason.TIMEOUT)]
    assert [(i.holder, i.chunks) for i in plan.incomplete] == [(job.fetcher, 2)]
    (retry,) = p.tick(36_000).jobs
    assert retry.fetcher != job.fetcher
    assert retry.attempt == 2


def test_partial_super_peer_is_preferred_to_resume_the_copy() -> None:
    p = one_manifest((B1, B2))
    have(p, S3, M1, 0, chunks=5)
    (job,) = p.tick(0).jobs
    assert job.fetcher == S3


def test_late_report_after_expiry_still_counts_a_complete_copy() -> None:
    p = one_manifest((B1, B2), supers=(S1,))
    (job,) = p.tick(0).jobs
    p.tick(20_000)  # timed out
    done(p, job, 21_000)
    p.tick(21_000)
    assert p.status(M1).replicas == 3
    assert p.summary().under_target == 0


# --- capacity ---------------------------------------------------------------------


def many(p: ReplicationPlanner, n: int, holders: tuple[str, ...] = (B1,)) -> list[str]:
    ids = []
    for i in range(n):
        info = manifest(i)
        p.handle(info, 0)
        for holder in holders:
            have(p, holder, info.manifest_id, 0)
        ids.append(info.manifest_id)
    return ids


def test_concurrent_jobs_per_super_peer_stay_within_the_bound() -> None:
    p = planner(max_jobs=2)
    many(p, 40, holders=(B1, B2))
    now = 0
    for _ in range(30):
        plan = p.tick(now)
        active = p.active_jobs()
        per_peer = {peer: sum(1 for j in active if j.fetcher == peer) for peer in SUPERS}
        assert max(per_peer.values()) <= 2, per_peer
        for job in plan.jobs[:3]:
            done(p, job, now + 10)
        now += 100
    assert sum(1 for _ in p.active_jobs()) <= 6


def test_planner_never_exceeds_its_own_cap_even_when_a_super_peer_offers_more() -> None:
    p = planner(max_jobs=50, config=ReplicationConfig(max_jobs_per_super_peer=3))
    many(p, 20)
    p.tick(0)
    assert len(p.active_jobs()) == 9


def test_load_is_spread_evenly_across_super_peers() -> None:
    p = planner(max_jobs=10, config=ReplicationConfig(max_jobs_per_super_peer=10))
    many(p, 15, holders=(B1, B2))
    jobs = p.tick(0).jobs
    assert len(jobs) == 15
    counts = sorted(sum(1 for j in jobs if j.fetcher == peer) for peer in SUPERS)
    assert counts == [5, 5, 5]


def test_full_super_peer_gets_no_job() -> None:
    p = planner(supers=())
    p.handle(SuperPeerStatus(S1, 10 * SIZE, 10 * SIZE, 4), 0)
    p.handle(SuperPeerStatus(S2, 10 * SIZE, 9 * SIZE, 4), 0)
    many(p, 3)
    jobs = p.tick(0).jobs
    assert [j.fetcher for j in jobs] == [S2]  # room for exactly one more manifest
    assert p.tick(1).jobs == ()
    assert p.tick(2).jobs == ()
    p.handle(SuperPeerStatus(S1, 11 * SIZE, 10 * SIZE, 4), 3)  # S1 got more room
    assert [j.fetcher for j in p.tick(3).jobs] == [S1]


def test_storage_reservation_counts_jobs_in_flight() -> None:
    p = planner(supers=(S1,), budget=3 * SIZE + SIZE // 2, max_jobs=10)
    many(p, 5)
    assert len(p.tick(0).jobs) == 3


def test_storage_full_report_stops_jobs_until_the_next_status() -> None:
    p = planner(supers=(S1,))
    ids = many(p, 5)
    jobs = p.tick(0).jobs
    assert len(jobs) == 4
    job = jobs[0]
    p.handle(JobReport(job.job_id, S1, job.manifest_id, JobState.FAILED, 0, (), "storage_full"), 1)
    assert p.tick(2).jobs == ()  # a slot is free, but the super-peer said it is full
    p.handle(SuperPeerStatus(S1, GiB, 0, 4), 3)
    (new,) = p.tick(3).jobs
    assert new.manifest_id == ids[4]


def test_urgent_manifests_come_first_when_slots_are_scarce() -> None:
    p = planner(supers=(S1,), max_jobs=1)
    safe, urgent = manifest(1), manifest(2)
    for info in (safe, urgent):
        p.handle(info, 0)
    have(p, B1, safe.manifest_id, 0)
    have(p, B2, safe.manifest_id, 0)
    have(p, B3, urgent.manifest_id, 0, chunks=1)  # no complete copy anywhere
    (job,) = p.tick(0).jobs
    assert job.manifest_id == urgent.manifest_id


# --- source choice ----------------------------------------------------------------


def test_sources_are_ranked_healthy_complete_unloaded_fast_then_close() -> None:
    p = one_manifest((B1, B2, B3), supers=(S1,))
    have(p, B4, M1, 0, chunks=4)
    p.handle(ManifestTarget(M1, 4), 0)
    p.handle(PeerHealth(B1, Health.DEGRADED, 10, 10**8), 0)
    p.handle(PeerHealth(B2, Health.HEALTHY, 80, 10**5), 0)
    p.handle(PeerHealth(B3, Health.HEALTHY, 80, 10**7), 0)
    p.handle(PeerHealth(B4, Health.HEALTHY, 10, 10**8), 0)
    (job,) = p.tick(0).jobs
    assert job.sources == (B3, B2, B4, B1)


def test_among_equal_sources_the_xor_closest_to_the_fetcher_comes_first() -> None:
    holders = tuple(pid(f"equal-{i}") for i in range(6))
    p = one_manifest(holders, supers=(S1,), config=ReplicationConfig(max_sources_per_job=6))
    p.handle(ManifestTarget(M1, 7), 0)
    (job,) = p.tick(0).jobs
    assert list(job.sources) == sorted(holders, key=lambda h: peer_key(h) ^ peer_key(S1))


# --- alerts -----------------------------------------------------------------------


def test_manifest_under_target_too_long_raises_one_alert_until_repaired() -> None:
    p = one_manifest((B1,), supers=())
    assert p.tick(0).alerts == ()
    have(p, B1, M1, 50_000)
    assert p.tick(99_999).alerts == ()
    plan = p.tick(100_000)
    assert [(a.kind, a.replicas, a.target, a.since) for a in plan.alerts] == [
        (AlertKind.UNDER_TARGET, 1, 3, 0)
    ]
    have(p, B1, M1, 100_000)
    have(p, B1, M1, 150_000)
    assert p.tick(200_000).alerts == ()
    have(p, B2, M1, 200_001)
    have(p, B3, M1, 200_001)
    plan = p.tick(200_001)
    assert [(r.kind, r.replicas) for r in plan.resolved] == [(AlertKind.UNDER_TARGET, 3)]


def test_next_deadline_names_the_earliest_timer() -> None:
    p = one_manifest((B1,), supers=())
    p.tick(0)
    assert p.next_deadline() == 60_000  # B1's advert expires before the alert is due
    have(p, B1, M1, 50_000)
    assert p.next_deadline() == 100_000


def test_forgetting_a_manifest_cancels_its_jobs() -> None:
    p = one_manifest((B1,))
    jobs = p.tick(0).jobs
    p.handle(ForgetManifest(M1), 1)
    plan = p.tick(1)
    assert sorted(c.job_id for c in plan.cancels) == sorted(j.job_id for j in jobs)
    assert {c.reason for c in plan.cancels} == {CancelReason.FORGOTTEN}
    assert p.summary().manifests == 0


def test_time_never_runs_backwards() -> None:
    p = one_manifest((B1,))
    p.tick(10_000)
    have(p, B2, M1, 5_000)  # a slower clock elsewhere
    assert p.holdings.get(B2, M1) is not None
    assert p.holdings.get(B2, M1).last_seen == 10_000  # type: ignore[union-attr]


def test_flood_of_adverts_for_one_manifest_keeps_bounded_holders_and_super_peer_copies() -> None:
    p = one_manifest((S1,), config=ReplicationConfig(max_holders_per_manifest=32))
    for i in range(500):
        have(p, pid(f"flood-{i}"), M1, i, chunks=1)
    status = p.status(M1)
    assert len(status.complete) + len(status.partial) == 32
    assert status.complete == (S1,)


def test_partial_flood_never_displaces_a_complete_holder() -> None:
    p = one_manifest((B1,), config=ReplicationConfig(max_holders_per_manifest=32))
    for i in range(31):
        have(p, pid(f"full-{i}"), M1, 1)
    for i in range(40):
        have(p, pid(f"part-{i}"), M1, 2, chunks=1)
    assert p.status(M1).replicas == 32
