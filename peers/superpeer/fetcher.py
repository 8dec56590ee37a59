"""Fetch jobs: pins, replication and repair jobs turned into :class:`Download`s and chunk
writes.

One download per manifest at a time (a second job for the same manifest rides along). At
most ``max_jobs`` fetch at once (a job waiting for a source does not count); the others
wait in order; ``on_end`` hears of every job that ended. Sources are the peers that
advertised the manifest (``have``) and, for replication jobs, the sources the planner
named once they are connected; every connected peer is known to the scheduler, which asks
them for the manifest when no holder answers (docs/protocol.md "Fetching a file"). A source
that sends bad data is dropped from every download for ``PENALTY_MS`` and counted as a
violation on its connection. A pin waits for a source as long as it takes; a replication
or repair job gives up after ``NO_SOURCE_FAIL_MS`` of waiting (the planner, or the repair
core, retries it elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from peers.protocol.transfer import TransferOptions
from peers.protocol.wire import Chunk, ChunkMissing, ContentFrame, ManifestReq
from peers.protocol.wire import ChunkReq as ChunkReqFrame
from peers.protocol.wire import Manifest as ManifestFrame
from peers.superpeer.models import FetchJob

from .download import (
    TIMEOUT,
    AskChunk,
    AskManifest,
    Download,
    GaveUp,
    ManifestReady,
    SourceFailed,
    StoreChunk,
)
from .errors import SuperPeerError
from .holder import Holder

logger = logging.getLogger(__name__)

PENALTY_MS = 30 * 60_000
# A replication job with nobody to fetch from for this long fails (the planner retries it
# elsewhere); a pin waits for as long as it takes.
NO_SOURCE_FAIL_MS = 30_000
# A repair job: a copy this super-peer makes on its own when no backfill worker runs
# (docs/replication.md "Repair by peers"; peers/superpeer/repair.py). No database row: it
# must work with the database gone. It gives up without a source like a replication job.
REPAIR = "repair"

Penalize = Callable[[str, str, str], None]  # peer id, code, message


@dataclass
class Job:
    job_id: str
    kind: str
    manifest_id: str
    download: Download
    sources_hint: tuple[str, ...] = ()
    aliases: set[str] = field(default_factory=set)
    state: str = FetchJob.FETCHING
    reason: str = ""
    writes: int = 0  # chunks handed to the writer, not written yet
    finished_at: int | None = None  # ms, when it ended


class Fetcher:
    def __init__(
        self,
        holder: Holder,
        *,
        penalize: Penalize,
        clock: Callable[[], int],
        config: TransferOptions | None = None,
        max_jobs: int = 4,
    ) -> None:
        self.clock = clock
        self.holder = holder
        self.penalize = penalize
        self.config = config or TransferOptions()
        self.max_jobs = max_jobs
        self.jobs: dict[str, Job] = {}  # running, by manifest id
        self.waiting: deque[tuple[str, str, str, tuple[str, ...]]] = deque()
        self.finished: dict[str, Job] = {}  # job id -> job, until the service persisted it
        self.changed: set[str] = set()  # manifest ids of jobs whose progress changed
        self.penalty: dict[str, int] = {}  # peer id -> until
        self.pinned: set[str] = set()
        self._writes: asyncio.Queue[tuple[Job, StoreChunk]] = asyncio.Queue()
        self.on_end: Callable[[Job], None] | None = None  # a job ended (repair jobs)

    # --- jobs ---

    def job_ids(self) -> set[str]:
        ids = {i for job in self.jobs.values() for i in (job.job_id, *job.aliases)}
        return ids | {job_id for job_id, _, _, _ in self.waiting}

    def start(
        self, job_id: str, kind: str, manifest_id: str, sources: tuple[str, ...], now: int
    ) -> None:
        running = self.jobs.get(manifest_id)
        if running is not None:
            if job_id != running.job_id:
                running.aliases.add(job_id)
            return
        if job_id in self.job_ids():
            return
        if self.active() >= self.max_jobs:
            self.waiting.append((job_id, kind, manifest_id, sources))
            return
        give_up = NO_SOURCE_FAIL_MS if kind in (FetchJob.REPLICATION, REPAIR) else None
        download = Download(
            manifest_id,
            has_chunk=self.holder.index.has_chunk,
            manifest=self.holder.manifests.get(manifest_id),
            now=now,
            options=replace(self.config, give_up_after_ms=give_up),
        )
        job = Job(job_id, kind, manifest_id, download, sources_hint=sources)
        self.jobs[manifest_id] = job
        self.changed.add(manifest_id)
        for peer_id, chunks in self.holder.holders.get(manifest_id, {}).items():
            self._add_source(job, peer_id, chunks, now)
        for peer_id in sorted(set(self.holder.conns.values())):
            self.peer_connected(peer_id, now, only=job)
        self._process(job, now)

    def cancel(self, job_id: str, reason: str, now: int) -> None:
        self.waiting = deque(w for w in self.waiting if w[0] != job_id)
        for job in list(self.jobs.values()):
            if job.job_id == job_id or job_id in job.aliases:
                job.aliases.discard(job_id)
                if job.job_id == job_id:
                    if job.aliases:  # another job still wants this manifest
                        job.job_id = job.aliases.pop()
                    else:
                        self._finish(job, FetchJob.CANCELLED, reason, now)

    def _finish(self, job: Job, state: str, reason: str, now: int) -> None:
        job.state, job.reason, job.finished_at = state, reason, now
        self.jobs.pop(job.manifest_id, None)
        for job_id in (job.job_id, *job.aliases):
            self.finished[job_id] = job
        self.changed.add(job.manifest_id)
        if self.on_end is not None:
            self.on_end(job)
        self._fill_slots(now)

    def active(self) -> int:
        """Jobs that hold one of the ``max_jobs`` slots: every job but those waiting for a
        source. A pin whose holders all left waits as long as it takes, so it must not keep
        the queue behind it from running (found by bench/soak.py: four such pins stopped
        every later replication)."""
        return sum(1 for job in self.jobs.values() if job.state != FetchJob.WAITING)

    def _fill_slots(self, now: int) -> None:
        while self.waiting and self.active() < self.max_jobs:
            self.start(*self.waiting.popleft(), now)

    # --- peers and frames ---

    def _usable(self, peer_id: str, now: int) -> bool:
        return self.penalty.get(peer_id, 0) <= now

    def _add_source(self, job: Job, peer_id: str, chunks: int, now: int) -> None:
        if self._usable(peer_id, now):
            job.download.add_source(peer_id, chunks, now)

    def peer_connected(self, peer_id: str, now: int, *, only: Job | None = None) -> None:
        if not self._usable(peer_id, now) or peer_id not in self.holder.conns.values():
            return
        for job in [only] if only else list(self.jobs.values()):
            job.download.peer_opened(peer_id, now)
            if peer_id in job.sources_hint:
                self._add_source(job, peer_id, job.download.total or 1, now)
            if only is None:
                self._process(job, now)

    def peer_gone(self, peer_id: str, now: int) -> None:
        for job in list(self.jobs.values()):
            job.download.remove_source(peer_id, now)
            self._process(job, now)

    def on_have(self, peer_id: str, adverts: list[tuple[str, int]], now: int) -> None:
        for manifest_id, chunks in adverts:
            job = self.jobs.get(manifest_id)
            if job is not None:
                self._add_source(job, peer_id, chunks, now)
                self._process(job, now)

    def on_frame(self, peer_id: str, frame: ContentFrame, now: int) -> None:
        if isinstance(frame, ManifestFrame):
            job = self.jobs.get(frame.id)
            if job is None:
                return
            job.download.manifest_received(peer_id, frame.manifest, now)
        elif isinstance(frame, Chunk):
            job = self.jobs.get(frame.manifest)
            if job is None:
                return
            job.download.chunk_received(peer_id, frame.index, frame.chunk, frame.data, now)
        elif isinstance(frame, ChunkMissing):
            job = self.jobs.get(frame.manifest)
            if job is None:
                return
            job.download.chunk_missing(peer_id, frame.index, now)
        else:
            return
        self._process(job, now)

    def _bad_source(self, peer_id: str, code: str, message: str, now: int) -> None:
        self.penalty[peer_id] = now + PENALTY_MS
        self.penalize(peer_id, code, message)
        for job in self.jobs.values():
            job.download.remove_source(peer_id, now)

    # --- the download's decisions ---

    def _process(self, job: Job, now: int) -> None:
        for action in job.download.take_actions():
            if isinstance(action, AskManifest | AskChunk):
                conn_id = self.holder.conn_of(action.peer_id)
                if conn_id is None:
                    job.download.remove_source(action.peer_id, now)
                    continue
                if isinstance(action, AskManifest):
                    self.holder.send(conn_id, ManifestReq(id=action.manifest_id))
                else:
                    request = ChunkReqFrame(
                        manifest=action.manifest_id, index=action.index, chunk=action.chunk_id
                    )
                    self.holder.send(conn_id, request)
            elif isinstance(action, StoreChunk):
                job.writes += 1
                self._writes.put_nowait((job, action))
            elif isinstance(action, SourceFailed):
                if action.code != TIMEOUT:
                    self._bad_source(action.peer_id, action.code, action.message, now)
                logger.info("job %s: source %s failed: %s", job.job_id, action.peer_id, action.code)
            elif isinstance(action, ManifestReady):
                pinned = action.manifest.id in self.pinned
                self.holder.add_manifest(action.manifest, pinned=pinned, stored_at=now)
            elif isinstance(action, GaveUp) and self.jobs.get(job.manifest_id) is job:
                bad = any(code != TIMEOUT for code in job.download.failed.values())
                self._finish(job, FetchJob.FAILED, "verify_failed" if bad else "no_source", now)
        self.changed.add(job.manifest_id)
        self._check_done(job, now)

    def _check_done(self, job: Job, now: int) -> None:
        if self.jobs.get(job.manifest_id) is not job:
            return
        if job.download.complete and job.writes == 0:
            if self.holder.index.complete(job.manifest_id):
                self._finish(job, FetchJob.DONE, "", now)
                return
            # A chunk went missing meanwhile (evicted, removed): fetch it again.
            job.download.store_failed(self.holder.index.missing(job.manifest_id), now)
            if not job.download.complete:
                self._process(job, now)
            return
        waiting = job.download.waiting and job.writes == 0
        job.state = FetchJob.WAITING if waiting else FetchJob.FETCHING
        if waiting:
            self._fill_slots(now)

    def tick(self, now: int) -> None:
        for job in list(self.jobs.values()):
            job.download.tick(now)
            self._process(job, now)

    # --- writes ---

    async def run_writer(self) -> None:
        """Store handed-out chunks one at a time (each write is fsynced)."""
        while True:
            job, action = await self._writes.get()
            protect = set(self.jobs)
            try:
                await self.holder.write_chunk(action.chunk_id, action.data, protect=protect)
            except SuperPeerError as exc:
                now = self.clock()
                job.writes -= 1
                logger.warning("job %s: %s", job.job_id, exc)
                if self.jobs.get(job.manifest_id) is job:
                    self._finish(job, FetchJob.FAILED, exc.code, now)
                continue
            except OSError as exc:
                now = self.clock()
                job.writes -= 1
                logger.error("job %s: writing chunk %s failed: %r", job.job_id, action.index, exc)
                job.download.store_failed([action.index], now)
                self._process(job, now)
                continue
            job.writes -= 1
            self.changed.add(job.manifest_id)
            self._check_done(job, self.clock())
