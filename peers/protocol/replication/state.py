"""The planner's configuration, its mutable bookkeeping and its read-only reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import (
    BAD_CONFIG,
    DEFAULT_TARGET,
    MAX_SOURCES,
    MAX_TARGET,
    Alert,
    AlertResolved,
    CancelJob,
    FetchJob,
    HoldingExpired,
    IncompleteReplica,
    ManifestInfo,
    Plan,
    ReplicationError,
    SuperPeerStatus,
)


@dataclass(frozen=True, slots=True)
class ReplicationConfig:
    """Every knob of the planner; times in milliseconds."""

    default_target: int = DEFAULT_TARGET
    holding_ttl_ms: int = 600_000
    super_peer_ttl_ms: int = 90_000
    job_timeout_ms: int = 120_000
    retry_base_ms: int = 10_000
    retry_max_ms: int = 600_000
    source_backoff_base_ms: int = 30_000
    source_backoff_max_ms: int = 1_800_000
    alert_after_ms: int = 900_000
    lost_grace_ms: int = 60_000
    max_jobs_per_super_peer: int = 4
    max_sources_per_job: int = 4
    max_holders_per_manifest: int = 64
    job_id_prefix: str = "j"

    def __post_init__(self) -> None:
        if not 0 <= self.default_target <= MAX_TARGET:
            raise ReplicationError(BAD_CONFIG, f"default_target must be in [0, {MAX_TARGET}]")
        positive = (
            "holding_ttl_ms",
            "super_peer_ttl_ms",
            "job_timeout_ms",
            "retry_base_ms",
            "source_backoff_base_ms",
            "max_jobs_per_super_peer",
            "max_holders_per_manifest",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ReplicationError(BAD_CONFIG, f"{name} must be positive")
        if self.retry_max_ms < self.retry_base_ms:
            raise ReplicationError(BAD_CONFIG, "retry_max_ms must be >= retry_base_ms")
        if self.source_backoff_max_ms < self.source_backoff_base_ms:
            raise ReplicationError(BAD_CONFIG, "source_backoff_max_ms must be >= its base")
        if self.alert_after_ms < 0 or self.lost_grace_ms < 0:
            raise ReplicationError(BAD_CONFIG, "alert delays must be >= 0")
        if not 1 <= self.max_sources_per_job <= MAX_SOURCES:
            raise ReplicationError(BAD_CONFIG, f"max_sources_per_job must be in [1, {MAX_SOURCES}]")
        if self.max_holders_per_manifest < MAX_TARGET:
            raise ReplicationError(BAD_CONFIG, "max_holders_per_manifest must be >= MAX_TARGET")
        if not 1 <= len(self.job_id_prefix) <= 16:
            raise ReplicationError(BAD_CONFIG, "job_id_prefix must be 1-16 characters")


def backoff_delay(failures: int, base_ms: int, max_ms: int) -> int:
    """``base * 2**(failures-1)``, capped; the exponent is capped first so it stays cheap."""
    return min(max_ms, base_ms << min(max(failures - 1, 0), 40))


@dataclass(slots=True)
class ManifestState:
    info: ManifestInfo
    key: int
    target: int | None
    under_since: int | None = None
    under_alerted: bool = False
    lost_since: int | None = None
    lost_alerted: bool = False
    failures: int = 0
    retry_at: int = 0
    jobs: set[str] = field(default_factory=set)


@dataclass(slots=True)
class SuperPeer:
    peer_id: str
    key: int
    status: SuperPeerStatus
    seen_at: int
    # The last reported usage plus what finished jobs added since.
    used: int = 0
    # A job failed for lack of space: nothing more until the next status report.
    full: bool = False
    online: bool = True
    jobs: set[str] = field(default_factory=set)


@dataclass(slots=True)
class JobSlot:
    job: FetchJob
    chunks: int
    start_chunks: int
    last_progress: int
    # Bytes held back from the fetcher's free space while the job runs.
    reserved: int
    # Sources the fetcher reported as failed during this job.
    failed: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Backoff:
    failures: int = 0
    until: int = 0


@dataclass(slots=True)
class Outbox:
    jobs: list[FetchJob] = field(default_factory=list)
    cancels: list[CancelJob] = field(default_factory=list)
    expired: list[HoldingExpired] = field(default_factory=list)
    incomplete: list[IncompleteReplica] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    resolved: list[AlertResolved] = field(default_factory=list)

    def flush(self) -> Plan:
        plan = Plan(
            jobs=tuple(self.jobs),
            cancels=tuple(self.cancels),
            expired=tuple(self.expired),
            incomplete=tuple(self.incomplete),
            alerts=tuple(self.alerts),
            resolved=tuple(self.resolved),
        )
        for pending in (
            self.jobs,
            self.cancels,
            self.expired,
            self.incomplete,
            self.alerts,
            self.resolved,
        ):
            pending.clear()
        return plan


@dataclass(frozen=True, slots=True)
class ManifestStatus:
    """One manifest as the planner sees it now."""

    manifest_id: str
    community: str
    target: int
    replicas: int
    complete: tuple[str, ...]  # the replicas: complete copies their holders keep
    cached: tuple[str, ...]  # complete copies not kept: sources only
    partial: tuple[str, ...]
    jobs: tuple[str, ...]
    under_since: int | None
    lost: bool
    retry_at: int


@dataclass(frozen=True, slots=True)
class Summary:
    manifests: int
    at_target: int
    under_target: int
    lost: int
    jobs: int
    super_peers_online: int
