"""The planner's bookkeeping as JSON, for adapters that rebuild a planner on every run.

A rebuilt planner learns holdings, statuses and targets again from their sources (the
database), but some of what the planner knows exists nowhere else: the jobs in flight
(with the progress deadline the planner keeps), since when a manifest is under target or
lost and whether that was alerted, the backoffs of manifests, sources and fetchers. This
module dumps exactly that and loads it into a fresh planner.

Order for an adapter (docs/replication.md "Celery backfill task"): register the
manifests and targets, :func:`load_state`, feed the super-peers' statuses, then
:func:`restore_jobs`, then the holdings and reports (sorted by time), then ``tick``.
The snapshot is the adapter's own data, but it is read back from storage: anything that
is not of the expected shape raises :class:`ReplicationError` (``bad_snapshot``) and the
caller starts afresh.
"""

from __future__ import annotations

import heapq
from typing import Any

from .model import (
    AlertKind,
    CancelJob,
    CancelReason,
    FetchJob,
    ReplicationError,
)
from .planner import ReplicationPlanner
from .state import Backoff, JobSlot

SNAPSHOT_VERSION = 1
BAD_SNAPSHOT = "bad_snapshot"


def _fail(message: str) -> ReplicationError:
    return ReplicationError(BAD_SNAPSHOT, message)


def _int(value: object, field: str) -> int:
    if type(value) is not int or value < 0:
        raise _fail(f"{field} must be a non-negative integer")
    return value


def _opt_int(value: object, field: str) -> int | None:
    return None if value is None else _int(value, field)


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"{field} must be a boolean")
    return value


def _list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"{field} must be a list")
    return value


def dump_state(planner: ReplicationPlanner) -> dict[str, Any]:
    """What a rebuilt planner cannot learn again from holdings, statuses and targets."""
    manifests = {}
    for manifest_id, m in planner._manifests.items():
        row = [m.under_since, m.under_alerted, m.lost_since, m.lost_alerted, m.failures, m.retry_at]
        if row != [None, False, None, False, 0, 0]:
            manifests[manifest_id] = row
    jobs = []
    for _, slot in sorted(planner.board.jobs.items()):
        job = slot.job
        jobs.append(
            {
                "job": [
                    job.job_id,
                    job.fetcher,
                    job.manifest_id,
                    job.community,
                    list(job.sources),
                    job.chunk_count,
                    job.size,
                    job.attempt,
                    job.issued_at,
                    job.deadline,
                ],
                "chunks": slot.chunks,
                "start": slot.start_chunks,
                "progress_at": slot.last_progress,
                "reserved": slot.reserved,
                "failed": sorted(slot.failed),
            }
        )
    board = planner.board
    return {
        "v": SNAPSHOT_VERSION,
        "manifests": manifests,
        "jobs": jobs,
        "source_backoff": {
            p: [b.failures, b.until] for p, b in sorted(board.source_backoff.items())
        },
        "fetch_failures": [[m, p, n] for (m, p), n in sorted(board.fetch_failures.items())],
        "full": sorted(p.peer_id for p in board.supers.values() if p.full),
    }


def _check_version(data: object) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
        raise _fail(f"a snapshot is a map with v={SNAPSHOT_VERSION}")
    return data


def load_state(planner: ReplicationPlanner, data: object) -> None:
    """Put back manifest episodes, alert flags and backoffs (manifests not registered any
    more are skipped). Call after registering manifests, before feeding holdings."""
    snapshot = _check_version(data)
    manifests = snapshot.get("manifests", {})
    if not isinstance(manifests, dict):
        raise _fail("manifests must be a map")
    targets = planner.targets
    cfg = planner.config
    for manifest_id, row in manifests.items():
        m = planner._manifests.get(manifest_id)
        fields = _list(row, "manifest state")
        if len(fields) != 6:
            raise _fail("a manifest state has 6 fields")
        under_since = _opt_int(fields[0], "under_since")
        under_alerted = _bool(fields[1], "under_alerted")
        lost_since = _opt_int(fields[2], "lost_since")
        lost_alerted = _bool(fields[3], "lost_alerted")
        failures = _int(fields[4], "failures")
        retry_at = _int(fields[5], "retry_at")
        if m is None:
            continue
        m.failures, m.retry_at = failures, retry_at
        if under_since is not None:
            m.under_since, m.under_alerted = under_since, under_alerted
            targets.under[manifest_id] = m
            if not under_alerted:
                due = under_since + cfg.alert_after_ms
                heapq.heappush(targets._due, (due, manifest_id, AlertKind.UNDER_TARGET))
        if lost_since is not None:
            m.lost_since, m.lost_alerted = lost_since, lost_alerted
            targets.lost[manifest_id] = m
            if not lost_alerted:
                due = lost_since + cfg.lost_grace_ms
                heapq.heappush(targets._due, (due, manifest_id, AlertKind.LOST))
        planner._dirty.add(manifest_id)
    board = planner.board
    backoffs = snapshot.get("source_backoff", {})
    if not isinstance(backoffs, dict):
        raise _fail("source_backoff must be a map")
    for peer_id, pair in backoffs.items():
        fields = _list(pair, "source backoff")
        if len(fields) != 2 or not isinstance(peer_id, str):
            raise _fail("a source backoff is [failures, until]")
        board.source_backoff[peer_id] = Backoff(
            _int(fields[0], "failures"), _int(fields[1], "until")
        )
    for entry in _list(snapshot.get("fetch_failures", []), "fetch_failures"):
        fields = _list(entry, "fetch failure")
        if len(fields) != 3 or not all(isinstance(f, str) for f in fields[:2]):
            raise _fail("a fetch failure is [manifest, fetcher, count]")
        if fields[0] in planner._manifests:
            board.fetch_failures[(fields[0], fields[1])] = _int(fields[2], "count")


def restore_jobs(planner: ReplicationPlanner, data: object) -> list[CancelJob]:
    """Put back the jobs in flight. Call after feeding the super-peers' statuses: a job
    whose fetcher sent none, or whose manifest is no longer registered, is not restored
    and comes back as a :class:`CancelJob` (``fetcher_gone`` / ``forgotten``) for the
    adapter to carry out. Super-peers marked full stay full."""
    snapshot = _check_version(data)
    board = planner.board
    for peer_id in _list(snapshot.get("full", []), "full"):
        peer = board.supers.get(peer_id) if isinstance(peer_id, str) else None
        if peer is not None:
            peer.full = True
    cancels: list[CancelJob] = []
    for entry in _list(snapshot.get("jobs", []), "jobs"):
        if not isinstance(entry, dict):
            raise _fail("a job is a map")
        fields = _list(entry.get("job"), "job")
        if len(fields) != 10:
            raise _fail("a job has 10 fields")
        sources = tuple(_list(fields[4], "sources"))
        job = FetchJob(fields[0], fields[1], fields[2], fields[3], sources, *fields[5:])
        failed = _list(entry.get("failed", []), "failed")
        slot = JobSlot(
            job,
            chunks=_int(entry.get("chunks"), "chunks"),
            start_chunks=_int(entry.get("start"), "start"),
            last_progress=_int(entry.get("progress_at"), "progress_at"),
            reserved=_int(entry.get("reserved"), "reserved"),
            failed={s for s in failed if isinstance(s, str)},
        )
        m = planner._manifests.get(job.manifest_id)
        peer = board.supers.get(job.fetcher)
        if m is None:
            cancels.append(
                CancelJob(job.job_id, job.fetcher, job.manifest_id, CancelReason.FORGOTTEN)
            )
            continue
        if peer is None:
            cancels.append(
                CancelJob(job.job_id, job.fetcher, job.manifest_id, CancelReason.FETCHER_GONE)
            )
            continue
        board.jobs[job.job_id] = slot
        m.jobs.add(job.job_id)
        peer.jobs.add(job.job_id)
        first = job.sources[0]
        board._source_load[first] = board._source_load.get(first, 0) + 1
        board.changes += 1
        planner._dirty.add(job.manifest_id)
    return cancels


def job_slot(planner: ReplicationPlanner, job_id: str) -> JobSlot | None:
    """The planner's record of a job in flight (for adapters that show progress)."""
    return planner.board.jobs.get(job_id)
