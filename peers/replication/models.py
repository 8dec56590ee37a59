"""What the replication orchestrator stores (docs/replication.md "Celery backfill task").

The facts it plans from are written by the super-peers: their status and own holdings
(``peers.superpeer.models``), the fetch jobs' progress (``FetchJob``) and the adverts they receive
from the peers connected to them (:class:`Advert`). The backfill run writes the rest:
each manifest's replica count and state (:class:`ReplicaStatus`), the planner's
bookkeeping between runs (:class:`PlannerState`) and a history of runs
(:class:`BackfillRun`). Targets are set in the admin (:class:`CommunityTarget`,
``ReplicaStatus.target``).
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models

from peers.protocol.replication.model import MAX_TARGET
from peers.protocol.ticket import COMMUNITY_RE
from peers.superpeer.models import FetchJob, FileManifest


class CommunityTarget(models.Model):
    """The redundancy target of a community's manifests that have none of their own."""

    community = models.CharField(
        max_length=63, unique=True, validators=[RegexValidator(COMMUNITY_RE)]
    )
    target = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(MAX_TARGET)], help_text="0 = do not replicate"
    )

    class Meta:
        ordering = ["community"]
        verbose_name = "community target"

    def __str__(self) -> str:
        return f"{self.community}: {self.target}"


class ReplicaStatus(models.Model):
    """One manifest as the last backfill run saw it, and its own target."""

    OK = "ok"
    UNDER = "under"
    LOST = "lost"
    OFF = "off"
    STATES = [(OK, "at target"), (UNDER, "under target"), (LOST, "lost"), (OFF, "target 0")]

    manifest = models.OneToOneField(
        FileManifest, on_delete=models.CASCADE, related_name="replica_status"
    )
    community = models.CharField(max_length=63)
    target = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_TARGET)],
        help_text="this manifest's own target; empty = its community's (or the default)",
    )
    effective_target = models.PositiveSmallIntegerField(default=0)
    replicas = models.PositiveSmallIntegerField(default=0, help_text="complete verified copies")
    state = models.CharField(max_length=8, choices=STATES, default=UNDER)
    holders = models.JSONField(default=list, blank=True)
    jobs = models.JSONField(default=list, blank=True)
    under_since = models.DateTimeField(null=True, blank=True)
    lost_since = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["manifest_id"]
        verbose_name = "replica status"
        verbose_name_plural = "replica status"
        indexes = [models.Index(fields=["state"], name="replica_state")]

    def __str__(self) -> str:
        return f"{self.manifest}: {self.replicas}/{self.effective_target}"


class Advert(models.Model):
    """A ``have`` a super-peer (``reporter``) received.

    ``via`` direct: from a peer it is connected to; the row lives while that connection
    does (the super-peer deletes it when the peer's last connection closes) and is as fresh
    as its reporter's ``SuperPeer.last_seen``. ``via`` gossip: a ``have`` gossip of the
    holder (its signing origin) the reporter heard, issued at ``heard_at``; it is stale once
    ``SWARM_REPLICATION_HOLDING_TTL_S`` has passed since then, whatever became of the
    reporter. ``keep`` is False for a copy its holder does not keep (a browser's cache): a
    source for jobs, never counted as a replica."""

    DIRECT, GOSSIP = "direct", "gossip"
    VIA = [(DIRECT, "direct"), (GOSSIP, "gossip")]

    holder = models.CharField(max_length=33)
    manifest_id = models.CharField(max_length=43, db_index=True)
    chunks = models.IntegerField()
    keep = models.BooleanField(default=True)
    reporter = models.CharField(max_length=33, db_index=True)
    via = models.CharField(max_length=8, choices=VIA, default=DIRECT)
    heard_at = models.DateTimeField(null=True, blank=True, help_text="gossip: when issued")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["manifest_id", "holder"]
        constraints = [
            models.UniqueConstraint(
                fields=["holder", "manifest_id", "reporter", "via"],
                name="one_advert_per_reporter_via",
            )
        ]

    def __str__(self) -> str:
        return f"{self.holder} has {self.chunks} of {self.manifest_id[:10]}"


class PlannerState(models.Model):
    """The single row every backfill run locks: the planner's bookkeeping between runs."""

    snapshot = models.JSONField(default=dict, blank=True)
    bytes_fetched = models.BigIntegerField(default=0)
    next_run_ms = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "planner state"

    def __str__(self) -> str:
        return "planner state"


class BackfillRun(models.Model):
    """One backfill run: what it saw and what it decided (the history in the admin)."""

    trigger = models.CharField(max_length=32)
    started_at = models.DateTimeField()
    duration_ms = models.IntegerField(default=0)
    manifests = models.IntegerField(default=0)
    under_target = models.IntegerField(default=0)
    lost = models.IntegerField(default=0)
    super_peers = models.IntegerField(default=0)
    jobs_in_flight = models.IntegerField(default=0)
    jobs_started = models.IntegerField(default=0)
    jobs_cancelled = models.IntegerField(default=0)
    alerts = models.IntegerField(default=0)
    bytes_fetched = models.BigIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "backfill run"

    def __str__(self) -> str:
        return f"run {self.pk} ({self.trigger})"


class BackfillJob(FetchJob):
    """Replication fetch jobs (the backfill queue), shown apart from pin jobs."""

    class Meta:
        proxy = True
        verbose_name = "backfill job"
