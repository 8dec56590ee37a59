"""Values the replication planner consumes and emits (DESIGN section 8).

Inputs are facts an adapter learned (a holder's advert, a super-peer's status, a job
report, a peer that left); outputs are decisions (fetch jobs, cancellations) and reports
(expired holdings, incomplete replicas, alerts). Every value is a frozen dataclass checked
at construction: a bad one raises :class:`ReplicationError` with a stable code, so the
planner itself never sees an invalid fact.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from ..encoding import PEER_ID_RE
from ..errors import ProtocolError
from ..ticket import COMMUNITY_RE

CHUNK_SIZE = 64 * 1024
DEFAULT_TARGET = 3
MAX_TARGET = 32
# 2**24 chunks of 64 KiB is 1 TiB: far beyond any file a browser shares.
MAX_CHUNKS = 1 << 24
MAX_BYTES = 2**53 - 1
MAX_SOURCES = 16
MANIFEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
REASON_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

# Stable error codes (adapters map them to their own answers; tests assert on them).
BAD_CONFIG = "bad_config"
BAD_PEER = "bad_peer"
BAD_MANIFEST = "bad_manifest_info"
MANIFEST_CONFLICT = "manifest_conflict"
UNKNOWN_MANIFEST = "unknown_manifest"
BAD_TARGET = "bad_target"
BAD_ADVERT = "bad_advert"
BAD_HEALTH = "bad_health"
BAD_STATUS = "bad_status"
BAD_REPORT = "bad_report"
BAD_JOB = "bad_job"


class ReplicationError(ProtocolError):
    """A replication input failed validation; ``code`` is stable."""


def _fail(code: str, message: str) -> ReplicationError:
    return ReplicationError(code, message)


def _is_int(value: object) -> bool:
    # bool is an int subclass; True must never pass for a chunk count.
    return type(value) is int


def check_peer_id(value: object, *, code: str, field: str = "peer_id") -> str:
    if not isinstance(value, str) or not PEER_ID_RE.fullmatch(value):
        raise _fail(code, f"{field} is not a key-bound peer id")
    return value


def check_manifest_id(value: object, *, code: str) -> str:
    if not isinstance(value, str) or not MANIFEST_ID_RE.fullmatch(value):
        raise _fail(code, "manifest_id must be 8-128 base64url characters")
    return value


def check_int(value: object, *, code: str, field: str, low: int, high: int) -> int:
    if not _is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise _fail(code, f"{field} must be an integer in [{low}, {high}]")
    return value  # type: ignore[return-value]


def check_target(value: object) -> int:
    return check_int(value, code=BAD_TARGET, field="target", low=0, high=MAX_TARGET)


def peer_key(peer_id: str) -> int:
    """The 160-bit id behind a key-bound peer id, for XOR distances."""
    return int.from_bytes(base64.b32decode(peer_id[1:].upper()), "big")


def manifest_key(manifest_id: str) -> int:
    """A 160-bit key for a manifest id of any spelling, in the same space as peer keys."""
    return int.from_bytes(hashlib.sha256(manifest_id.encode("ascii")).digest()[:20], "big")


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """A verified manifest to keep replicated: ``size`` is the bytes one full copy stores."""

    manifest_id: str
    community: str
    chunk_count: int
    size: int
    target: int | None = None

    def __post_init__(self) -> None:
        check_manifest_id(self.manifest_id, code=BAD_MANIFEST)
        if not isinstance(self.community, str) or not COMMUNITY_RE.fullmatch(self.community):
            raise _fail(BAD_MANIFEST, "community name is invalid")
        check_int(self.chunk_count, code=BAD_MANIFEST, field="chunk_count", low=1, high=MAX_CHUNKS)
        check_int(self.size, code=BAD_MANIFEST, field="size", low=0, high=MAX_BYTES)
        if self.target is not None:
            check_target(self.target)


@dataclass(frozen=True, slots=True)
class ForgetManifest:
    """Stop tracking a manifest (deleted or taken down): its jobs are cancelled."""

    manifest_id: str

    def __post_init__(self) -> None:
        check_manifest_id(self.manifest_id, code=BAD_MANIFEST)


@dataclass(frozen=True, slots=True)
class CommunityTarget:
    """The redundancy target of every manifest of a community without its own target."""

    community: str
    target: int

    def __post_init__(self) -> None:
        if not isinstance(self.community, str) or not COMMUNITY_RE.fullmatch(self.community):
            raise _fail(BAD_TARGET, "community name is invalid")
        check_target(self.target)


@dataclass(frozen=True, slots=True)
class ManifestTarget:
    """One manifest's own target; ``None`` falls back to its community's."""

    manifest_id: str
    target: int | None

    def __post_init__(self) -> None:
        check_manifest_id(self.manifest_id, code=BAD_TARGET)
        if self.target is not None:
            check_target(self.target)


@dataclass(frozen=True, slots=True)
class HaveAdvert:
    """``holder`` holds ``chunks`` verified chunks of a manifest; 0 withdraws the holding.

    ``keep``: the holder chose to keep its copy (a browser that opted in, a super-peer);
    a complete copy that is not kept (a browser's cache) serves chunks but never counts.
    The holder is the authenticated sender (the peer at the other end of the
    connection), never a field the sender chose.
    """

    holder: str
    manifest_id: str
    chunks: int
    keep: bool = True

    def __post_init__(self) -> None:
        check_peer_id(self.holder, code=BAD_ADVERT, field="holder")
        check_manifest_id(self.manifest_id, code=BAD_ADVERT)
        check_int(self.chunks, code=BAD_ADVERT, field="chunks", low=0, high=MAX_CHUNKS)
        if not isinstance(self.keep, bool):
            raise _fail(BAD_ADVERT, "keep must be a boolean")


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class PeerHealth:
    """Connection health of a peer as measured by ping/pong and transfers."""

    peer_id: str
    health: Health
    rtt_ms: int | None = None
    bytes_per_s: int | None = None

    def __post_init__(self) -> None:
        check_peer_id(self.peer_id, code=BAD_HEALTH)
        if not isinstance(self.health, Health):
            raise _fail(BAD_HEALTH, "health must be healthy or degraded")
        if self.rtt_ms is not None:
            check_int(self.rtt_ms, code=BAD_HEALTH, field="rtt_ms", low=0, high=600_000)
        if self.bytes_per_s is not None:
            check_int(self.bytes_per_s, code=BAD_HEALTH, field="bytes_per_s", low=0, high=MAX_BYTES)


@dataclass(frozen=True, slots=True)
class PeerGone:
    """A peer left (signaling LEAVE/EXPIRE, stale connection): its holdings stop counting."""

    peer_id: str

    def __post_init__(self) -> None:
        check_peer_id(self.peer_id, code=BAD_PEER)


@dataclass(frozen=True, slots=True)
class SuperPeerStatus:
    """A super-peer offering to take jobs; only peers that send this are ever assigned one."""

    peer_id: str
    storage_budget: int
    storage_used: int
    max_jobs: int

    def __post_init__(self) -> None:
        check_peer_id(self.peer_id, code=BAD_STATUS)
        check_int(
            self.storage_budget, code=BAD_STATUS, field="storage_budget", low=0, high=MAX_BYTES
        )
        check_int(self.storage_used, code=BAD_STATUS, field="storage_used", low=0, high=MAX_BYTES)
        check_int(self.max_jobs, code=BAD_STATUS, field="max_jobs", low=0, high=1024)


class JobState(StrEnum):
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobReport:
    """A super-peer's word on a job: ``chunks`` verified so far, sources that failed it."""

    job_id: str
    fetcher: str
    manifest_id: str
    state: JobState
    chunks: int
    failed_sources: tuple[str, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not 1 <= len(self.job_id) <= 64:
            raise _fail(BAD_REPORT, "job_id must be a string of 1-64 characters")
        check_peer_id(self.fetcher, code=BAD_REPORT, field="fetcher")
        check_manifest_id(self.manifest_id, code=BAD_REPORT)
        if not isinstance(self.state, JobState):
            raise _fail(BAD_REPORT, "state must be progress, done or failed")
        check_int(self.chunks, code=BAD_REPORT, field="chunks", low=0, high=MAX_CHUNKS)
        if not isinstance(self.failed_sources, tuple) or len(self.failed_sources) > MAX_SOURCES:
            raise _fail(BAD_REPORT, f"failed_sources must list at most {MAX_SOURCES} peers")
        for source in self.failed_sources:
            check_peer_id(source, code=BAD_REPORT, field="failed_sources")
        if self.reason and (
            not isinstance(self.reason, str) or not REASON_RE.fullmatch(self.reason)
        ):
            raise _fail(BAD_REPORT, "reason must be a short lowercase word")


# --- outputs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchJob:
    """Fetch every chunk of a manifest into ``fetcher``; ``sources`` are best first.

    The fetcher reports progress before ``deadline`` (each report moves it on by the
    job timeout) or the job expires.
    """

    job_id: str
    fetcher: str
    manifest_id: str
    community: str
    sources: tuple[str, ...]
    chunk_count: int
    size: int
    attempt: int
    issued_at: int
    deadline: int

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not 1 <= len(self.job_id) <= 64:
            raise _fail(BAD_JOB, "job_id must be a string of 1-64 characters")
        check_peer_id(self.fetcher, code=BAD_JOB, field="fetcher")
        check_manifest_id(self.manifest_id, code=BAD_JOB)
        if not isinstance(self.community, str) or not COMMUNITY_RE.fullmatch(self.community):
            raise _fail(BAD_JOB, "community name is invalid")
        if not isinstance(self.sources, tuple) or not 1 <= len(self.sources) <= MAX_SOURCES:
            raise _fail(BAD_JOB, f"sources must list 1-{MAX_SOURCES} peers")
        for source in self.sources:
            check_peer_id(source, code=BAD_JOB, field="sources")
        if self.fetcher in self.sources:
            raise _fail(BAD_JOB, "a fetcher is never its own source")
        check_int(self.chunk_count, code=BAD_JOB, field="chunk_count", low=1, high=MAX_CHUNKS)
        check_int(self.size, code=BAD_JOB, field="size", low=0, high=MAX_BYTES)
        check_int(self.attempt, code=BAD_JOB, field="attempt", low=1, high=1_000_000)
        check_int(self.issued_at, code=BAD_JOB, field="issued_at", low=0, high=MAX_BYTES)
        check_int(self.deadline, code=BAD_JOB, field="deadline", low=self.issued_at, high=MAX_BYTES)


class CancelReason(StrEnum):
    TARGET_MET = "target_met"
    TIMEOUT = "timeout"
    NO_SOURCE = "no_source"
    FETCHER_GONE = "fetcher_gone"
    FORGOTTEN = "forgotten"


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Stop a job: the fetcher keeps or drops what it fetched (its own business)."""

    job_id: str
    fetcher: str
    manifest_id: str
    reason: CancelReason


@dataclass(frozen=True, slots=True)
class HoldingExpired:
    """A holder's advert went stale: it no longer counts and is no longer a source."""

    holder: str
    manifest_id: str
    last_seen: int


@dataclass(frozen=True, slots=True)
class IncompleteReplica:
    """A job ended with only part of a manifest at its fetcher: not counted as a replica."""

    holder: str
    manifest_id: str
    chunks: int
    chunk_count: int


class AlertKind(StrEnum):
    UNDER_TARGET = "under_target"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Alert:
    """``under_target``: below target for longer than the alert delay.
    ``lost``: no live holder has any chunk, so nothing can repair it."""

    kind: AlertKind
    manifest_id: str
    community: str
    replicas: int
    target: int
    since: int


@dataclass(frozen=True, slots=True)
class AlertResolved:
    kind: AlertKind
    manifest_id: str
    replicas: int
    target: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What one ``tick`` decided, everything in a stable order."""

    jobs: tuple[FetchJob, ...] = ()
    cancels: tuple[CancelJob, ...] = ()
    expired: tuple[HoldingExpired, ...] = ()
    incomplete: tuple[IncompleteReplica, ...] = ()
    alerts: tuple[Alert, ...] = ()
    resolved: tuple[AlertResolved, ...] = ()


Event = (
    ManifestInfo
    | ForgetManifest
    | CommunityTarget
    | ManifestTarget
    | HaveAdvert
    | PeerHealth
    | PeerGone
    | SuperPeerStatus
    | JobReport
)
