"""Reads for the backfill run, the admin and /metrics."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, F, QuerySet

from peers.superpeer.models import FetchJob, FileManifest, Holding, SuperPeer

from .feed import Facts, HoldingFact, JobFact, ManifestFact, SuperPeerFact
from .models import Advert, BackfillRun, CommunityTarget, ReplicaStatus


def _ms(value: object) -> int:
    return 0 if value is None else int(value.timestamp() * 1000)  # type: ignore[attr-defined]


def load_facts(*, job_ids: Iterable[str] = ()) -> Facts:
    """Everything a backfill run plans from, read in a handful of queries."""
    supers = list(SuperPeer.objects.all())
    community_of_peer = {sp.peer_id: sp.community for sp in supers}
    own = list(
        Holding.objects.filter(chunks_held__gt=0).values_list(
            "superpeer__peer_id",
            "manifest__manifest_id",
            "chunks_held",
            "complete",
            "manifest__chunk_count",
        )
    )
    adverts = list(
        Advert.objects.values_list(
            "holder", "manifest_id", "chunks", "reporter", "keep", "via", "heard_at"
        )
    )
    statuses = dict(
        ReplicaStatus.objects.values_list("manifest__manifest_id", "community").iterator()
    )
    own_targets = dict(
        ReplicaStatus.objects.filter(target__isnull=False)
        .values_list("manifest__manifest_id", "target")
        .iterator()
    )
    # A manifest's community: the one its status row names, else the community of a
    # super-peer that holds or saw it, else the server's default.
    seen_in: dict[str, str] = {}
    for peer_id, manifest_id, *_ in own:
        seen_in.setdefault(manifest_id, community_of_peer.get(peer_id, ""))
    for _, manifest_id, _, reporter, *_ in adverts:
        seen_in.setdefault(manifest_id, community_of_peer.get(reporter, ""))
    manifests = []
    for manifest_id, size, chunks in FileManifest.objects.values_list(
        "manifest_id", "size", "chunk_count"
    ).iterator():
        community = statuses.get(manifest_id) or seen_in.get(manifest_id) or ""
        manifests.append(
            ManifestFact(
                manifest_id,
                community or settings.SWARM_COMMUNITY,
                chunks,
                size + 16 * chunks,
                own_targets.get(manifest_id),
            )
        )
    # A copy counts only once the super-peer verified every chunk (``complete``).
    holdings = [
        HoldingFact(peer_id, manifest_id, chunks if complete else min(chunks, count - 1), peer_id)
        for peer_id, manifest_id, chunks, complete, count in own
    ]
    holdings += [
        HoldingFact(
            holder, manifest_id, chunks, reporter, keep, via == Advert.GOSSIP, _ms(heard_at)
        )
        for holder, manifest_id, chunks, reporter, keep, via, heard_at in adverts
    ]
    super_peers = tuple(
        SuperPeerFact(
            sp.peer_id,
            sp.state == SuperPeer.RUNNING,
            _ms(sp.last_seen),
            sp.storage_budget,
            sp.storage_used,
            int((sp.stats or {}).get("max_jobs", settings.SWARM_SUPERPEER_MAX_JOBS)),
        )
        for sp in supers
    )
    ids = set(job_ids)
    rows = FetchJob.objects.filter(kind=FetchJob.REPLICATION).filter(
        job_id__in=ids
    ) | FetchJob.objects.filter(kind=FetchJob.REPLICATION, state__in=FetchJob.ACTIVE)
    jobs = {
        r.job_id: JobFact(
            r.job_id,
            r.peer_id,
            r.manifest_id,
            r.state,
            r.chunks_done,
            tuple(s for s in r.failed_sources if isinstance(s, str))
            if isinstance(r.failed_sources, list)
            else (),
            r.reason[:32],
        )
        for r in rows.distinct()
    }
    return Facts(
        manifests=tuple(manifests),
        community_targets=dict(CommunityTarget.objects.values_list("community", "target")),
        super_peers=super_peers,
        holdings=tuple(holdings),
        jobs=jobs,
    )


def under_target() -> QuerySet[ReplicaStatus]:
    return ReplicaStatus.objects.filter(replicas__lt=F("effective_target"))


def status_counts() -> dict[str, int]:
    return dict(
        ReplicaStatus.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n")
    )


def job_counts() -> dict[str, int]:
    rows = (
        FetchJob.objects.filter(kind=FetchJob.REPLICATION)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return dict(rows)


def last_backfill_at() -> int:
    """When the newest backfill run ended (ms), 0 without one: the evidence a super-peer
    announces as ``backfill_at`` (docs/replication.md "Repair by peers")."""
    run = (
        BackfillRun.objects.order_by("-started_at").values_list("started_at", "duration_ms").first()
    )
    return 0 if run is None else _ms(run[0]) + run[1]
