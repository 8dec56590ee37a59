"""The super-peer's periodic work: ticks, adverts, presence, syncing with the database,
status and job progress, and the channel-layer control messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from peers.protocol.replication.messages import report_message, status_message
from peers.protocol.replication.model import FetchJob as PlannedJob
from peers.protocol.replication.model import JobReport, JobState, SuperPeerStatus
from peers.replication import reports
from peers.replication.services import request_backfill
from peers.superpeer.models import FetchJob
from shared.clock import now_ms
from shared.db import db_sync_to_async

from . import db
from .control import ALL_GROUP, REPLICATION_GROUP, Sync, group_for, parse_control
from .errors import SuperPeerError
from .rendezvous import Announcer

if TYPE_CHECKING:
    from peers.protocol.dialpath import DialPaths
    from peers.protocol.node import SwarmNode

    from .config import SuperPeerConfig
    from .dht import SuperPeerDht
    from .door import Door
    from .fetcher import Fetcher, Job
    from .guardian import SuperPeerGuardian
    from .holder import Holder
    from .holdings import HoldingsIndex
    from .keydir import KeyDirectory
    from .mailbox import Mailbox
    from .meshsignaling import MeshSignaling
    from .relay import AdvertRelay, GossipAdverts
    from .repair import SuperPeerRepair


class Supervised(Protocol):
    """What the supervisor works with: the running super-peer (service.py), seen through
    this interface only, so the dependency goes one way (the service owns a supervisor)."""

    config: SuperPeerConfig
    peer_id: str
    node: SwarmNode | None
    holder: Holder
    fetcher: Fetcher
    index: HoldingsIndex
    relay: AdvertRelay
    gossip_adverts: GossipAdverts
    mailbox: Mailbox
    keys: KeyDirectory
    meshsig: MeshSignaling
    dial_paths: DialPaths
    door: Door | None
    dht: SuperPeerDht | None
    guardian: SuperPeerGuardian | None
    repair: SuperPeerRepair | None
    blocked: set[str]
    started_at: int  # ms
    posts_stored: int
    posts_dropped: int

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]: ...

    def pump(self) -> None: ...

    def new_ticket(self, now: int) -> dict[str, Any]: ...

    def start_job(
        self, job_id: str, kind: str, manifest_id: str, sources: tuple[str, ...], now: int
    ) -> None: ...


logger = logging.getLogger(__name__)

ADVERT_EVERY_S = 1.0
CONTROL_RETRY_S = 5.0
STATUS_TO_PLANNER_EVERY_S = 30.0


def pin_job_id(manifest_id: str, peer_id: str) -> str:
    return f"pin-{manifest_id}-{peer_id[1:9]}"


class Supervisor:
    def __init__(self, service: Supervised) -> None:
        self.service = service
        self.config = service.config
        self.announcer = Announcer(self.config.beacon_urls, self.config.community)
        self.sync_now = asyncio.Event()
        self.layer: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._last_planner_status = 0.0

    def start(self) -> None:
        spawn = self.service.spawn
        self._tasks = [
            spawn(self._every(self.config.tick_s, self.tick), "tick"),
            spawn(self._every(ADVERT_EVERY_S, self.advertise), "adverts"),
            spawn(self._every(self.config.announce_s, self.announce), "announce"),
            spawn(self._sync_loop(), "sync"),
            spawn(self._every(self.config.status_s, self.persist), "status"),
            spawn(self._every(self.config.mailbox.upkeep_s, self.mailbox_upkeep), "mailbox"),
        ]
        if self.config.use_channel_layer:
            self._tasks.append(spawn(self._control_loop(), "control"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.announcer.close()

    async def _every(self, seconds: float, work: Any) -> None:
        """Run ``work`` every ``seconds``; a failure is logged and the next round still runs."""
        while True:
            try:
                result = work()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                logger.exception("periodic %s failed", getattr(work, "__name__", work))
            await asyncio.sleep(seconds)

    # --- the node and the content layer ---

    def tick(self) -> None:
        service = self.service
        now = now_ms()
        if service.node is not None:
            service.node.tick(now)
        service.fetcher.tick(now)
        service.pump()

    async def mailbox_upkeep(self) -> None:
        service = self.service
        await service.mailbox.upkeep()
        await service.keys.upkeep()
        if service.guardian is not None:
            await service.guardian.upkeep()
            if service.mailbox.peers:  # someone hears it (gossip is not stored)
                service.guardian.announce(now_ms())

    def advertise(self) -> None:
        self.service.holder.advertise_changes()
        self.service.pump()

    # --- presence ---

    async def announce(self) -> None:
        """A fresh ticket for hello and for the beacons; their tickets go to the peer book."""
        service = self.service
        now = now_ms()
        ticket = service.new_ticket(now)
        if service.node is None:
            return
        # in hellos, and to the neighbours: fresh for their PEX answers (docs/protocol.md
        # "Renewed tickets")
        service.node.renew_ticket(ticket, now)
        if service.dht is not None:  # the peer record's republish
            service.dht.set_ticket(ticket)
        tickets = await self.announcer.announce(ticket, now)
        service.node.add_candidates(
            [t for t in tickets if t.peer_id not in service.blocked], "beacon", now_ms()
        )
        service.pump()

    # --- pins, jobs and blocks from the database ---

    async def _sync_loop(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:
                logger.exception("sync with the database failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sync_now.wait(), self.config.sync_s)
            self.sync_now.clear()

    async def sync(self) -> None:
        service = self.service
        me = service.peer_id
        holder, fetcher = service.holder, service.fetcher
        pins = await db_sync_to_async(db.pinned_manifests)(me)
        fetcher.pinned = pins
        for manifest_id, held in holder.index.manifests.items():
            pinned = manifest_id in pins
            if held.pinned != pinned:
                holder.index.set_pinned(manifest_id, pinned)
                holder.changed.add(manifest_id)
        now = now_ms()
        tracked = fetcher.job_ids()
        for manifest_id in sorted(pins):
            if holder.index.complete(manifest_id) or manifest_id in fetcher.jobs:
                continue
            job_id = pin_job_id(manifest_id, me)
            if job_id in tracked:
                continue
            await db_sync_to_async(db.ensure_pin_job)(me, manifest_id, job_id)
            fetcher.start(job_id, FetchJob.PIN, manifest_id, (), now)
        for job in list(fetcher.jobs.values()):
            if job.kind == FetchJob.PIN and job.manifest_id not in pins:
                fetcher.cancel(job.job_id, "unpinned", now)
        active = await db_sync_to_async(db.active_jobs)(me)
        active_ids = {row.job_id for row in active}
        for row in active:
            if row.kind == FetchJob.REPLICATION and row.job_id not in tracked:
                service.start_job(row.job_id, row.kind, row.manifest_id, row.sources, now)
        for job in list(fetcher.jobs.values()):
            for job_id in (job.job_id, *job.aliases):
                if job_id not in active_ids and job.kind == FetchJob.REPLICATION:
                    state = await db_sync_to_async(db.job_state)(job_id)
                    if state == FetchJob.CANCELLED:
                        fetcher.cancel(job_id, "cancelled", now)
        blocked = await db_sync_to_async(db.blocked_peers)()
        node = service.node
        if node is not None:
            for peer_id in blocked - service.blocked:
                node.block(peer_id, now)
            for peer_id in service.blocked - blocked:
                node.unblock(peer_id)
        service.blocked = blocked
        if service.guardian is not None:  # approvals and refusals made in the admin
            await service.guardian.apply_decisions()
        service.pump()

    # --- control messages ---

    async def _control_loop(self) -> None:
        """Listen on the channel layer; after a failure (Redis away) listen again."""
        while True:
            try:
                await self._listen()
            except Exception:
                logger.warning(
                    "channel layer: listening failed, again in %ss", CONTROL_RETRY_S, exc_info=True
                )
            await asyncio.sleep(CONTROL_RETRY_S)
            self.sync_now.set()  # what was missed meanwhile is in the database

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        self.layer = layer = get_channel_layer()
        if layer is None:
            await asyncio.Event().wait()
        me = self.service.peer_id
        channel = await layer.new_channel()
        await layer.group_add(ALL_GROUP, channel)
        await layer.group_add(group_for(me), channel)
        try:
            while True:
                message = await layer.receive(channel)
                try:
                    control = parse_control(message, me=me)
                except SuperPeerError as exc:
                    logger.warning("refused a control message: %s", exc)
                    continue
                now = now_ms()
                if isinstance(control, Sync):
                    self.sync_now.set()
                elif isinstance(control, PlannedJob):
                    if self.service.repair is not None:  # the worker planned it just now
                        self.service.repair.worker_job(now)
                    self.service.start_job(
                        control.job_id,
                        FetchJob.REPLICATION,
                        control.manifest_id,
                        control.sources,
                        now,
                    )
                else:
                    self.service.fetcher.cancel(control.job_id, control.reason.value, now)
        finally:
            with contextlib.suppress(Exception):
                await layer.group_discard(ALL_GROUP, channel)
                await layer.group_discard(group_for(me), channel)

    # --- what the admin and the planner see ---

    async def persist(self, *, final: bool = False) -> None:
        service = self.service
        if service.repair is not None and not final:
            # Repair by peers: is a backfill worker running? (never raises)
            await service.repair.read_database()
        holder, fetcher, index = service.holder, service.fetcher, service.index
        manifests = [holder.manifests[m] for m in holder.changed if m in holder.manifests]
        holdings = [
            (
                m,
                index.held(m),
                holder.bytes_held(m),
                index.complete(m),
                bool(index.manifests.get(m) and index.manifests[m].pinned),
            )
            for m in sorted(holder.changed)
        ]
        now = now_ms()
        status = self._status(now)
        changed_holdings = set(holder.changed)
        holder.changed.clear()
        jobs: list[tuple[str, Job]] = []
        for manifest_id in sorted(fetcher.changed):
            job = fetcher.jobs.get(manifest_id)
            if job is not None:
                jobs += [(job_id, job) for job_id in (job.job_id, *job.aliases)]
        jobs += list(fetcher.finished.items())
        changed_jobs, finished = set(fetcher.changed), dict(fetcher.finished)
        fetcher.changed.clear()
        fetcher.finished.clear()
        relay = service.relay
        adverts = relay.changes(holder.holders, holder.cached)
        gossiped = service.gossip_adverts
        gossiped.expire(now)
        heard = gossiped.changes()
        news, gossiped.news = gossiped.news, False

        def write() -> bool:
            recreated = db.write_status(service.peer_id, self.config.community, **status)
            for manifest in manifests:
                db.save_manifest(manifest)
            if holdings:
                db.save_holdings(service.peer_id, holdings)
            for job_id, job in jobs:
                db.update_job(job_id, **_job_fields(job, final=final))
            if adverts.upsert or adverts.delete or adverts.reset:
                reports.adverts_save(
                    service.peer_id,
                    upsert=adverts.upsert,
                    delete=adverts.delete,
                    reset=adverts.reset,
                )
            if heard.upsert or heard.delete:
                reports.gossip_adverts_save(
                    service.peer_id, upsert=heard.upsert, delete=heard.delete
                )
            return recreated

        try:
            if await db_sync_to_async(write)():
                holder.changed |= set(holder.manifests)
        except Exception:
            # Written next time: nothing is lost while the database is away.
            holder.changed |= changed_holdings
            fetcher.changed |= changed_jobs
            fetcher.finished.update(finished)
            gossiped.news |= news
            raise
        relay.written_ok(adverts)
        gossiped.written_ok(heard)
        if news:
            relay.backfill_wanted = True
        copies = any(complete or chunks == 0 for _, chunks, _, complete, _ in holdings)
        if (relay.backfill_wanted or finished or copies) and not final:
            # Holders came or went, a copy grew or a job ended: the planner looks now.
            relay.backfill_wanted = False
            await asyncio.to_thread(_request_backfill)
        await self._tell_planner(jobs, now)

    def _status(self, now: int) -> dict[str, Any]:
        service = self.service
        node, holder, index = service.node, service.holder, service.index
        connections = []
        for view in node.connected_peers(now) if node is not None else []:
            connections.append(
                {
                    "peer_id": view.peer_id,
                    "outbound": view.outbound,
                    "since": view.since,
                    "rtt_ms": None if view.rtt is None else round(view.rtt, 1),
                    "loss": round(view.loss, 3),
                    "health": view.health,
                    "bytes_in": view.bytes_in,
                    "bytes_out": view.bytes_out + holder.stats.served_to.get(view.peer_id, 0),
                    "agent": view.agent,
                }
            )
        stats = dict(vars(holder.stats))
        stats.pop("served_to")
        if node is not None:
            stats["node"] = {k: v for k, v in asdict(node.stats).items() if k != "dropped"}
            stats["dropped"] = dict(node.stats.dropped)
        stats["announce"] = {
            "attempts": self.announcer.attempts,
            "successes": self.announcer.successes,
            "errors": dict(self.announcer.last_error),
        }
        stats["posts_stored"] = service.posts_stored
        stats["posts_dropped"] = service.posts_dropped
        stats["mailbox"] = service.mailbox.stats.as_json()
        stats["keys"] = service.keys.stats.as_json()
        stats["meshsignal"] = service.meshsig.stats.as_json(service.meshsig.core)
        stats["dial_paths"] = service.dial_paths.data()
        if service.door is not None:
            stats["door"] = service.door.stats.as_json(len(service.door.sockets))
        if service.dht is not None:
            stats["dht"] = service.dht.stats.as_json(service.dht.core)
        if service.guardian is not None:
            stats["guardian"] = service.guardian.stats.as_json()
        if service.repair is not None:
            stats["repair"] = service.repair.stats_json(now)
        stats["max_jobs"] = self.config.max_jobs  # for the replication planner
        stats["uptime_s"] = (now - service.started_at) // 1000
        return {
            "state": "running",
            "storage_used": index.used,
            "pinned_bytes": index.pinned_bytes(),
            "chunk_count": len(index.present),
            "connections": connections,
            "stats": stats,
        }

    async def _tell_planner(self, jobs: list[tuple[str, Job]], now: int) -> None:
        layer = self.layer
        if layer is None:
            return
        me = self.service.peer_id
        messages = []
        for job_id, job in jobs:
            if job.kind != FetchJob.REPLICATION:
                continue
            state = {FetchJob.DONE: JobState.DONE, FetchJob.FAILED: JobState.FAILED}.get(
                job.state, JobState.PROGRESS
            )
            reason = job.reason if state == JobState.FAILED else ""
            report = JobReport(
                job_id=job_id,
                fetcher=me,
                manifest_id=job.manifest_id,
                state=state,
                chunks=self.service.index.held(job.manifest_id),
                failed_sources=tuple(job.download.failed_sources()[:16]),
                reason=reason if reason in _FAIL_REASONS else ("error" if reason else ""),
            )
            messages.append(report_message(report))
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._last_planner_status >= STATUS_TO_PLANNER_EVERY_S:
            self._last_planner_status = loop_now
            status = SuperPeerStatus(
                peer_id=me,
                storage_budget=self.config.storage_bytes,
                storage_used=self.service.index.used,
                max_jobs=self.config.max_jobs,
            )
            messages.append(status_message(status))
        for message in messages:
            try:
                await layer.group_send(REPLICATION_GROUP, message)
            except Exception:
                logger.info("could not publish %s", message["type"], exc_info=True)


_FAIL_REASONS = {"no_source", "storage_full", "verify_failed", "error"}


def _job_fields(job: Job, *, final: bool) -> dict[str, Any]:
    state = job.state
    if final and state in (FetchJob.FETCHING, FetchJob.WAITING):
        state = FetchJob.QUEUED  # resumes on the next start
    fields: dict[str, Any] = {
        "state": state,
        "chunks_total": job.download.total,
        "chunks_done": job.download.done,
        "failed_sources": job.download.failed_sources(),
        "reason": job.reason,
    }
    if job.finished_at is not None:
        fields["finished_at"] = datetime.fromtimestamp(job.finished_at / 1000, tz=UTC)
    return fields


def _request_backfill() -> None:
    try:
        request_backfill("superpeer")
    except Exception:  # the periodic run catches up
        logger.warning("could not request a backfill run", exc_info=True)
