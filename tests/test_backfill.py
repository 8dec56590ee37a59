"""The backfill run against the database with a fake clock: the planner fed from rows
(super-peers, their holdings, relayed adverts, job rows) and its plan carried out (job and
pin rows, cancellations, replica counts, alerts, the saved bookkeeping)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.test import Client, override_settings

from ops import metrics
from ops.models import Alert
from peers.protocol.encoding import b64url_encode, peer_id_for_key
from peers.replication.models import (
    Advert,
    BackfillRun,
    CommunityTarget,
    PlannerState,
    ReplicaStatus,
)
from peers.replication.selectors import last_backfill_at
from peers.replication.services import backfill_run
from peers.superpeer.models import FetchJob, FileManifest, Holding, Pin, SuperPeer

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000
S = 1000
CHUNKS = 10
FAST = {
    "SWARM_REPLICATION_TARGET": 3,
    "SWARM_REPLICATION_SUPERPEER_TTL_S": 10,
    "SWARM_REPLICATION_JOB_TIMEOUT_S": 30,
    "SWARM_REPLICATION_RETRY_BASE_S": 20,
    "SWARM_REPLICATION_ALERT_AFTER_S": 60,
    "SWARM_REPLICATION_LOST_GRACE_S": 5,
}


@pytest.fixture(autouse=True)
def _fast() -> Iterator[None]:
    with override_settings(**FAST):
        yield


def pid(name: str) -> str:
    return peer_id_for_key(hashlib.sha256(name.encode()).digest())


SP1, SP2, SP3, BROWSER, OTHER = (pid(n) for n in ("sp1", "sp2", "sp3", "browser", "other"))


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def manifest(name: str = "m") -> FileManifest:
    manifest_id = b64url_encode(hashlib.sha256(name.encode()).digest())
    return FileManifest.objects.create(
        manifest_id=manifest_id,
        envelope={},
        file_id="f" * 22,
        name=name,
        mime="application/octet-stream",
        size=CHUNKS * 65536 - 100,
        chunk_count=CHUNKS,
        author=BROWSER,
        created_at_ms=T0,
    )


def superpeer(peer_id: str, seen: int, *, running: bool = True) -> SuperPeer:
    row, _ = SuperPeer.objects.update_or_create(
        peer_id=peer_id,
        defaults={
            "community": "main",
            "state": SuperPeer.RUNNING if running else SuperPeer.STOPPED,
            "last_seen": at(seen),
            "storage_budget": 10 * 2**30,
            "storage_used": 0,
            "stats": {"max_jobs": 4},
        },
    )
    return row


def hold(peer_id: str, m: FileManifest, chunks: int = CHUNKS) -> None:
    Holding.objects.update_or_create(
        superpeer=SuperPeer.objects.get(peer_id=peer_id),
        manifest=m,
        defaults={"chunks_held": chunks, "complete": chunks == m.chunk_count},
    )


def advert(holder: str, m: FileManifest, reporter: str, chunks: int = CHUNKS) -> None:
    Advert.objects.update_or_create(
        holder=holder, manifest_id=m.manifest_id, reporter=reporter, defaults={"chunks": chunks}
    )


def status(m: FileManifest) -> ReplicaStatus:
    return ReplicaStatus.objects.get(manifest=m)


def jobs(m: FileManifest, *states: str) -> list[FetchJob]:
    rows = FetchJob.objects.filter(manifest_id=m.manifest_id, kind=FetchJob.REPLICATION)
    if states:
        rows = rows.filter(state__in=states)
    return list(rows.order_by("job_id"))


def finish(
    job: FetchJob, state: str = FetchJob.DONE, chunks: int = CHUNKS, **fields: object
) -> None:
    FetchJob.objects.filter(pk=job.pk).update(state=state, chunks_done=chunks, **fields)


def test_a_file_only_a_browser_holds_gets_a_job_on_each_super_peer() -> None:
    m = manifest()
    superpeer(SP1, T0)
    superpeer(SP2, T0)
    advert(BROWSER, m, reporter=SP1)

    result = backfill_run(now=T0, trigger="test")

    assert {(j.fetcher, j.sources) for j in result.plan.jobs} == {
        (SP1, (BROWSER,)),
        (SP2, (BROWSER,)),
    }
    rows = jobs(m)
    assert {(r.peer_id, r.state, r.chunks_total, tuple(r.sources)) for r in rows} == {
        (SP1, FetchJob.QUEUED, CHUNKS, (BROWSER,)),
        (SP2, FetchJob.QUEUED, CHUNKS, (BROWSER,)),
    }
    assert all(r.job_id.startswith(f"b{result.run.pk}-") for r in rows)
    assert set(Pin.objects.values_list("peer_id", "source")) == {
        (SP1, Pin.REPLICATION),
        (SP2, Pin.REPLICATION),
    }
    s = status(m)
    assert (s.replicas, s.effective_target, s.state) == (1, 3, ReplicaStatus.UNDER)
    assert s.holders == [{"peer": BROWSER, "kind": "replica"}]
    assert s.under_since == at(T0)
    assert (result.run.jobs_started, result.run.under_target) == (2, 1)


def test_a_second_run_with_nothing_new_hands_out_nothing_new() -> None:
    m = manifest()
    superpeer(SP1, T0)
    advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    again = backfill_run(now=T0 + S, trigger="test")
    assert (again.plan.jobs, again.plan.cancels) == ((), ())
    assert len(jobs(m)) == 1
    assert again.run.jobs_in_flight == 1


def test_a_browser_copy_advertised_as_not_kept_is_a_source_but_no_replica() -> None:
    from peers.replication.reports import adverts_save

    m = manifest()
    superpeer(SP1, T0)
    superpeer(SP2, T0)
    adverts_save(SP1, upsert=[(BROWSER, m.manifest_id, CHUNKS, False)], delete=[], reset=True)
    result = backfill_run(now=T0, trigger="test")
    s = status(m)
    assert (s.replicas, {"peer": BROWSER, "kind": "cached"} in s.holders) == (0, True)
    assert {j.sources for j in result.plan.jobs} == {(BROWSER,)}
    # The holder opts in: the same row, now kept, counts.
    adverts_save(SP1, upsert=[(BROWSER, m.manifest_id, CHUNKS, True)], delete=[])
    assert Advert.objects.get(holder=BROWSER).keep
    backfill_run(now=T0 + S, trigger="test")
    assert status(m).replicas == 1


def test_copies_count_only_once_every_chunk_is_verified() -> None:
    m = manifest()
    superpeer(SP1, T0)
    superpeer(SP2, T0)
    advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    first, second = jobs(m)
    # Halfway: partial copies are sources, not replicas; progress moves the deadline on.
    hold(SP1, m, 5)
    FetchJob.objects.filter(pk=first.pk).update(state=FetchJob.FETCHING, chunks_done=5)
    backfill_run(now=T0 + 2 * S, trigger="test")
    s = status(m)
    assert s.replicas == 1
    assert {"peer": SP1, "kind": "partial"} in s.holders
    # Both done with every chunk verified: three replicas, the jobs leave the planner.
    hold(SP1, m)
    hold(SP2, m)
    finish(first)
    finish(second)
    result = backfill_run(now=T0 + 4 * S, trigger="test")
    s = status(m)
    assert (s.replicas, s.state, s.under_since) == (3, ReplicaStatus.OK, None)
    assert result.run.jobs_in_flight == 0
    assert PlannerState.objects.get().snapshot["jobs"] == []
    # 5 chunks were reported by the first run's progress, the rest at the end.
    assert PlannerState.objects.get().bytes_fetched == 2 * (m.size + 16 * CHUNKS)


def test_a_killed_super_peer_stops_counting_and_a_third_one_restores_the_target() -> None:
    m = manifest()
    for peer in (SP1, SP2, SP3):
        superpeer(peer, T0)
    hold(SP1, m)
    hold(SP2, m)
    advert(BROWSER, m, reporter=SP1)
    advert(BROWSER, m, reporter=SP2)
    advert(SP1, m, reporter=SP2)  # SP2 heard SP1's have: it must not keep SP1 counting
    assert backfill_run(now=T0, trigger="test").plan.jobs == ()
    assert status(m).replicas == 3

    # SP1 is killed: its row stops moving. Within the TTL it still counts...
    superpeer(SP2, T0 + 9 * S)
    superpeer(SP3, T0 + 9 * S)
    assert backfill_run(now=T0 + 9 * S, trigger="test").plan.jobs == ()
    # ...past it, neither its own row nor SP2's relay of its advert counts.
    superpeer(SP2, T0 + 11 * S)
    superpeer(SP3, T0 + 11 * S)
    result = backfill_run(now=T0 + 11 * S, trigger="test")
    assert status(m).replicas == 2
    (job,) = result.plan.jobs
    assert job.fetcher == SP3
    assert set(job.sources) == {SP2, BROWSER}

    hold(SP3, m)
    finish(jobs(m)[0])
    superpeer(SP2, T0 + 13 * S)
    superpeer(SP3, T0 + 13 * S)
    backfill_run(now=T0 + 13 * S, trigger="test")
    s = status(m)
    assert (s.replicas, s.state) == (3, ReplicaStatus.OK)
    assert {h["peer"] for h in s.holders} == {SP2, SP3, BROWSER}


def test_adverts_relayed_by_a_dead_super_peer_do_not_count() -> None:
    m = manifest()
    superpeer(SP1, T0 - 20 * S)  # silent for twice the TTL
    superpeer(SP2, T0)
    advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    s = status(m)
    assert (s.replicas, s.state) == (0, ReplicaStatus.LOST)
    assert jobs(m) == []


def test_a_gossiped_advert_is_stored_apart_and_counts_until_the_holding_ttl() -> None:
    from peers.replication.reports import adverts_save, gossip_adverts_save

    m = manifest()
    superpeer(SP1, T0 - 20 * S, running=False)  # heard it, then stopped: no matter
    ttl = 120 * S
    superpeer(SP2, T0 + ttl - S)
    # SP1 heard the browser's have gossip at T0; its direct relays are a separate row set.
    gossip_adverts_save(SP1, upsert=[(BROWSER, m.manifest_id, CHUNKS, True, T0)], delete=[])
    adverts_save(SP1, upsert=[(OTHER, m.manifest_id, 3, True)], delete=[], reset=True)
    adverts_save(SP1, upsert=[], delete=[], reset=True)  # a restart resets only direct rows
    row = Advert.objects.get(holder=BROWSER)
    assert (row.via, row.heard_at, row.reporter, row.chunks) == (Advert.GOSSIP, at(T0), SP1, 10)
    assert not Advert.objects.filter(holder=OTHER).exists()

    with override_settings(SWARM_REPLICATION_HOLDING_TTL_S=ttl / S):
        result = backfill_run(now=T0 + ttl - S, trigger="test")
        s = status(m)
        assert (s.replicas, s.holders) == (1, [{"peer": BROWSER, "kind": "replica"}])
        assert {j.sources for j in result.plan.jobs} == {(BROWSER,)}, "a source for SP2"

        # Heard again (a refresh updates the same row): still counted past the first TTL.
        gossip_adverts_save(SP1, upsert=[(BROWSER, m.manifest_id, CHUNKS, True, T0 + S)], delete=[])
        assert Advert.objects.count() == 1
        backfill_run(now=T0 + ttl, trigger="test")
        assert status(m).replicas == 1

        # Not heard again within the TTL: stale, not counted, and the row is gone.
        backfill_run(now=T0 + S + ttl, trigger="test")
        assert status(m).replicas == 0
        assert not Advert.objects.filter(via=Advert.GOSSIP).exists()

    # A withdrawal deletes the reporter's gossip row at once.
    gossip_adverts_save(SP2, upsert=[(BROWSER, m.manifest_id, 4, False, T0)], delete=[])
    gossip_adverts_save(SP2, upsert=[], delete=[(BROWSER, m.manifest_id)])
    assert not Advert.objects.exists()


def test_a_stopped_super_peer_gets_no_job_and_its_jobs_are_cancelled() -> None:
    m = manifest()
    superpeer(SP1, T0)
    advert(BROWSER, m, reporter=SP1)
    superpeer(OTHER, T0)
    backfill_run(now=T0, trigger="test")
    assert {j.peer_id for j in jobs(m)} == {SP1, OTHER}
    superpeer(OTHER, T0 + S, running=False)
    superpeer(SP1, T0 + S)
    result = backfill_run(now=T0 + S, trigger="test")
    cancelled = jobs(m, FetchJob.CANCELLED)
    assert [(j.peer_id, j.reason) for j in cancelled] == [(OTHER, "fetcher_gone")]
    assert result.plan.jobs == ()
    assert not Pin.objects.filter(peer_id=OTHER).exists()


def test_a_failed_job_backs_off_then_is_retried_elsewhere_with_the_next_attempt() -> None:
    m = manifest()
    superpeer(SP1, T0)
    superpeer(SP2, T0)
    CommunityTarget.objects.create(community="main", target=2)
    advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    (job,) = jobs(m)
    hold(job.peer_id, m, 4)
    finish(job, FetchJob.FAILED, chunks=4, reason="no_source", failed_sources=[BROWSER])
    failed = backfill_run(now=T0 + S, trigger="test")
    assert failed.plan.jobs == ()
    assert [(i.holder, i.chunks) for i in failed.plan.incomplete] == [(job.peer_id, 4)]
    assert {"peer": job.peer_id, "kind": "incomplete"} in status(m).holders
    assert status(m).retry_at == at(T0 + S + 20 * S)
    # The browser is backing off as a source too (30 s): nobody else has it all.
    for peer in (SP1, SP2):
        superpeer(peer, T0 + 31 * S)
    retried = backfill_run(now=T0 + 31 * S, trigger="test")
    (again,) = retried.plan.jobs
    assert again.attempt == 2
    assert again.fetcher != job.peer_id  # a retry goes elsewhere
    assert set(again.sources) == {BROWSER, job.peer_id}


def test_a_job_without_progress_times_out_and_is_cancelled() -> None:
    m = manifest()
    superpeer(SP1, T0)
    CommunityTarget.objects.create(community="main", target=2)
    advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    (job,) = jobs(m)
    superpeer(SP1, T0 + 31 * S)
    result = backfill_run(now=T0 + 31 * S, trigger="test")
    assert [(c.job_id, c.reason.value) for c in result.plan.cancels] == [(job.job_id, "timeout")]
    assert FetchJob.objects.get(pk=job.pk).state == FetchJob.CANCELLED


def test_an_alert_is_raised_past_the_delay_once_and_resolved_at_target() -> None:
    m = manifest()
    superpeer(SP1, T0)
    advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    superpeer(SP1, T0 + 59 * S)
    backfill_run(now=T0 + 59 * S, trigger="test")
    assert not Alert.objects.exists()
    superpeer(SP1, T0 + 61 * S)
    backfill_run(now=T0 + 61 * S, trigger="test")
    backfill_run(now=T0 + 62 * S, trigger="test")
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.subject, alert.resolved_at) == (
        Alert.REPLICA_UNDER_TARGET,
        m.manifest_id,
        None,
    )
    assert "1/3 replicas" in alert.message
    ReplicaStatus.objects.filter(manifest=m).update(target=1)
    superpeer(SP1, T0 + 63 * S)
    backfill_run(now=T0 + 63 * S, trigger="test")
    alert.refresh_from_db()
    assert alert.resolved_at == T0 + 63 * S
    assert status(m).state == ReplicaStatus.OK


def test_targets_come_from_the_manifest_then_the_community_then_the_setting() -> None:
    a, b, c = manifest("a"), manifest("b"), manifest("c")
    superpeer(SP1, T0)
    for m in (a, b, c):
        advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    CommunityTarget.objects.create(community="main", target=1)
    ReplicaStatus.objects.filter(manifest=b).update(target=2)
    ReplicaStatus.objects.filter(manifest=c).update(target=0)
    superpeer(SP1, T0 + S)
    result = backfill_run(now=T0 + S, trigger="test")
    assert [(status(m).effective_target, status(m).state) for m in (a, b, c)] == [
        (1, ReplicaStatus.OK),
        (2, ReplicaStatus.UNDER),
        (0, ReplicaStatus.OFF),
    ]
    # a and c have enough now: their jobs are cancelled; b keeps one.
    assert {c.manifest_id for c in result.plan.cancels} == {a.manifest_id, c.manifest_id}
    assert [j.manifest_id for j in FetchJob.objects.filter(state=FetchJob.QUEUED)] == [
        b.manifest_id
    ]


def test_an_active_job_the_planner_does_not_know_is_cancelled() -> None:
    m = manifest()
    superpeer(SP1, T0)
    advert(BROWSER, m, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    (job,) = jobs(m)
    PlannerState.objects.update(snapshot={"v": 99, "garbage": True})  # bookkeeping lost
    superpeer(SP1, T0 + S)
    result = backfill_run(now=T0 + S, trigger="test")
    assert FetchJob.objects.get(pk=job.pk).state == FetchJob.CANCELLED
    (again,) = result.plan.jobs  # planned afresh
    assert again.job_id != job.job_id
    assert again.fetcher == SP1


def test_bad_rows_are_refused_and_counted_never_fatal() -> None:
    m = manifest()
    superpeer(SP1, T0)
    advert("not-a-peer-id", m, reporter=SP1)
    advert(BROWSER, m, reporter=SP1, chunks=CHUNKS + 50)  # more than the manifest has
    Advert.objects.create(holder=BROWSER, manifest_id="unknown" * 6, chunks=1, reporter=SP1)
    result = backfill_run(now=T0, trigger="test")
    assert status(m).replicas == 1  # capped at the chunk count: complete
    assert result.run.error == ""
    assert BackfillRun.objects.count() == 1


def test_history_keeps_the_newest_runs() -> None:
    superpeer(SP1, T0)
    with override_settings(SWARM_REPLICATION_HISTORY_RUNS=3):
        for i in range(5):
            backfill_run(now=T0 + i * S, trigger=f"t{i}")
    assert list(BackfillRun.objects.values_list("trigger", flat=True)) == ["t4", "t3", "t2"]


def test_the_admin_lists_replicas_against_target_and_filters_under_target(
    admin_client: Client,
) -> None:
    under, ok = manifest("under"), manifest("ok")
    for peer in (SP1, SP2):
        superpeer(peer, T0)
        hold(peer, ok)
    advert(BROWSER, ok, reporter=SP1)
    advert(BROWSER, under, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    page = admin_client.get("/admin/peers/filemanifest/").content.decode()
    assert '<strong class="replicas-under">1 / 3</strong> (under)' in page
    assert '<span class="replicas-ok">3 / 3</span>' in page
    filtered = admin_client.get("/admin/peers/filemanifest/", {"replicas": "under"})
    assert under.manifest_id in filtered.content.decode()
    assert ok.manifest_id not in filtered.content.decode()
    for path in (
        "/admin/replication/replicastatus/?replicas=under",
        "/admin/replication/backfilljob/",
        "/admin/replication/backfillrun/",
        f"/admin/peers/filemanifest/{under.pk}/change/",
    ):
        assert admin_client.get(path).status_code == 200, path


def test_metrics_show_manifests_under_target_lost_and_jobs_by_state() -> None:
    under, lost = manifest("under"), manifest("lost")
    superpeer(SP1, T0)
    advert(BROWSER, under, reporter=SP1)
    backfill_run(now=T0, trigger="test")
    text = metrics.render()
    assert "swarm_replication_manifests_under_target 2" in text
    assert "swarm_replication_manifests_lost 1" in text
    assert 'swarm_replication_jobs{state="queued"} 1' in text
    assert lost.manifest_id  # lost: nobody holds any chunk of it


def test_last_backfill_at_is_the_end_of_the_newest_run() -> None:
    assert last_backfill_at() == 0
    BackfillRun.objects.create(trigger="t1", started_at=at(T0), duration_ms=40)
    BackfillRun.objects.create(trigger="t2", started_at=at(T0 + 30 * S), duration_ms=25)
    BackfillRun.objects.create(trigger="t0", started_at=at(T0 - 30 * S), duration_ms=900)
    assert last_backfill_at() == T0 + 30 * S + 25
