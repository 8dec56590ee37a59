"""JSON-shaped messages between the backfill task and super-peers (channel layer).

``type`` names the Channels handler (``replication.fetch`` -> ``replication_fetch``). Each
``*_message`` builds a plain dict; each ``parse_*`` takes untrusted data and returns the
frozen value or raises :class:`ReplicationError` with a stable code: exact key sets, exact
types (no bools for integers, lists for lists), values checked by the dataclasses.
"""

from __future__ import annotations

from typing import Any, TypeVar

from .model import (
    BAD_JOB,
    BAD_REPORT,
    BAD_STATUS,
    CancelJob,
    CancelReason,
    FetchJob,
    JobReport,
    JobState,
    ReplicationError,
    SuperPeerStatus,
)

FETCH = "replication.fetch"
CANCEL = "replication.cancel"
REPORT = "replication.report"
STATUS = "replication.status"

FETCH_KEYS = frozenset(
    {
        "type",
        "job",
        "fetcher",
        "manifest",
        "community",
        "sources",
        "chunks",
        "size",
        "attempt",
        "issued_at",
        "deadline",
    }
)
CANCEL_KEYS = frozenset({"type", "job", "fetcher", "manifest", "reason"})
REPORT_KEYS = frozenset(
    {"type", "job", "fetcher", "manifest", "state", "chunks", "failed_sources", "reason"}
)
STATUS_KEYS = frozenset({"type", "peer", "storage_budget", "storage_used", "max_jobs"})
MAX_LIST = 16

E = TypeVar("E", CancelReason, JobState)


def fetch_message(job: FetchJob) -> dict[str, Any]:
    return {
        "type": FETCH,
        "job": job.job_id,
        "fetcher": job.fetcher,
        "manifest": job.manifest_id,
        "community": job.community,
        "sources": list(job.sources),
        "chunks": job.chunk_count,
        "size": job.size,
        "attempt": job.attempt,
        "issued_at": job.issued_at,
        "deadline": job.deadline,
    }


def parse_fetch(data: object) -> FetchJob:
    fields = _fields(data, FETCH, FETCH_KEYS, BAD_JOB)
    return FetchJob(
        job_id=fields["job"],
        fetcher=fields["fetcher"],
        manifest_id=fields["manifest"],
        community=fields["community"],
        sources=_strings(fields["sources"], BAD_JOB, "sources"),
        chunk_count=fields["chunks"],
        size=fields["size"],
        attempt=fields["attempt"],
        issued_at=fields["issued_at"],
        deadline=fields["deadline"],
    )


def cancel_message(cancel: CancelJob) -> dict[str, Any]:
    return {
        "type": CANCEL,
        "job": cancel.job_id,
        "fetcher": cancel.fetcher,
        "manifest": cancel.manifest_id,
        "reason": cancel.reason.value,
    }


def parse_cancel(data: object) -> CancelJob:
    fields = _fields(data, CANCEL, CANCEL_KEYS, BAD_JOB)
    for name in ("job", "fetcher", "manifest"):
        if not isinstance(fields[name], str):
            raise ReplicationError(BAD_JOB, f"{name} must be a string")
    return CancelJob(
        fields["job"],
        fields["fetcher"],
        fields["manifest"],
        _enum(CancelReason, fields["reason"], BAD_JOB, "reason"),
    )


def report_message(report: JobReport) -> dict[str, Any]:
    return {
        "type": REPORT,
        "job": report.job_id,
        "fetcher": report.fetcher,
        "manifest": report.manifest_id,
        "state": report.state.value,
        "chunks": report.chunks,
        "failed_sources": list(report.failed_sources),
        "reason": report.reason,
    }


def parse_report(data: object) -> JobReport:
    fields = _fields(data, REPORT, REPORT_KEYS, BAD_REPORT)
    return JobReport(
        job_id=fields["job"],
        fetcher=fields["fetcher"],
        manifest_id=fields["manifest"],
        state=_enum(JobState, fields["state"], BAD_REPORT, "state"),
        chunks=fields["chunks"],
        failed_sources=_strings(fields["failed_sources"], BAD_REPORT, "failed_sources"),
        reason=_string(fields["reason"], BAD_REPORT, "reason"),
    )


def status_message(status: SuperPeerStatus) -> dict[str, Any]:
    return {
        "type": STATUS,
        "peer": status.peer_id,
        "storage_budget": status.storage_budget,
        "storage_used": status.storage_used,
        "max_jobs": status.max_jobs,
    }


def parse_status(data: object) -> SuperPeerStatus:
    fields = _fields(data, STATUS, STATUS_KEYS, BAD_STATUS)
    return SuperPeerStatus(
        peer_id=fields["peer"],
        storage_budget=fields["storage_budget"],
        storage_used=fields["storage_used"],
        max_jobs=fields["max_jobs"],
    )


def _fields(data: object, kind: str, keys: frozenset[str], code: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ReplicationError(code, f"{kind} must be an object")
    if data.get("type") != kind:
        raise ReplicationError(code, f"type must be {kind}")
    present = set(data)
    if present != keys:
        missing, unknown = sorted(keys - present), sorted(map(str, present - keys))
        raise ReplicationError(code, f"{kind} fields: missing {missing}, unknown {unknown}")
    return data


def _strings(value: object, code: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise ReplicationError(code, f"{name} must be a list of at most {MAX_LIST} peer ids")
    return tuple(_string(item, code, name) for item in value)


def _string(value: object, code: str, name: str) -> str:
    if not isinstance(value, str):
        raise ReplicationError(code, f"{name} must be a string")
    return value


def _enum(kind: type[E], value: object, code: str, name: str) -> E:
    try:
        if not isinstance(value, str):
            raise TypeError(name)
        return kind(value)
    except (ValueError, TypeError) as exc:
        choices = ", ".join(member.value for member in kind)
        raise ReplicationError(code, f"{name} must be one of {choices}") from exc
