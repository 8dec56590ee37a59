"""The super-peer as an asyncio service: a PeerJS peer driving a :class:`SwarmNode`.

Connections (dialed with ``raw`` serialization; accepted with ``raw``, ``binary`` or
``json``, see :mod:`peers.superpeer.transport`) feed the node; the node's actions go back
out: frames to send, dials, closes, and content frames for the :class:`Holder` (serving)
and the :class:`Fetcher` (jobs). Around it run the loops of
:mod:`peers.superpeer.supervision`: announcing to beacons, syncing pins, jobs and blocks
from the database, writing status, and listening on the channel layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peers.peerjs.dataconnection import DataConnection
from peers.peerjs.errors import PEER_UNAVAILABLE, PeerJSError
from peers.peerjs.peer import Peer
from peers.peerjs.tokens import key_bound_token
from peers.protocol.dialpath import MAX_DIAL_MS, MESH, SERVER, DialPaths
from peers.protocol.errand import DHT_ERRAND, ERRAND_DHT, Errand, content_errand, errand_of
from peers.protocol.errors import ProtocolError
from peers.protocol.have_gossip import HAVE_TOPIC, check_have_gossip, parse_have_gossip
from peers.protocol.mesh import LEAVING, MeshOptions
from peers.protocol.node import SwarmNode
from peers.protocol.node_actions import (
    Close,
    Closed,
    ContentReceived,
    Deliver,
    Dial,
    Event,
    Opened,
    Send,
)
from peers.protocol.posts import verify_post
from peers.protocol.repair import REPAIR_TOPIC, check_repair_gossip
from peers.protocol.shard import KIND_RECOVER_REQ, parse_message
from peers.protocol.supernode import TOPIC_SUPERNODE, LocalState
from peers.protocol.ticket import make_ticket, verify_ticket
from peers.protocol.wire import (
    DHT_FRAMES,
    MAX_FRAME_BYTES,
    ChunkReq,
    ContentFrame,
    DhtFrame,
    Have,
    ManifestReq,
    Reach,
    ShardMsg,
    Signal,
)
from peers.protocol.wire import Mail as MailFrame
from peers.protocol.wire import Manifest as ManifestFrame
from shared import identity
from shared.clock import now_ms
from shared.db import db_sync_to_async

from . import db
from .config import AGENT, SUPERPEER_CAPS, SuperPeerConfig
from .dht import SuperPeerDht
from .door import Door
from .fetcher import Fetcher, Job
from .guardian import REQUEST_TOPIC, SuperPeerGuardian
from .holder import Holder
from .holdings import HoldingsIndex
from .keydir import (
    XKEY_REQ_TOPIC,
    XKEY_TOPIC,
    KeyDirectory,
    check_key_announcement,
    check_key_request,
)
from .mailbox import Mailbox
from .meshsignaling import MeshSignaling
from .relay import AdvertRelay, GossipAdverts
from .repair import SuperPeerRepair
from .store import ChunkStore
from .supernodes import SuperPeerSupernodes
from .supervision import Supervisor
from .transport import FramedChannel, FrameTransport

logger = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 20.0
DRAIN_ON_CLOSE_S = 2.0
POST_TOPIC = "post"
MAX_OUTBOX = 2048  # frames waiting for one connection
# A binary (BinaryPack) connection carries each wire frame as one binary value: nothing
# larger is ever needed, so nothing larger is reassembled from a peer's chunks.
SUPERPEER_MAX_MESSAGE_BYTES = MAX_FRAME_BYTES + 64
# Gossiped posts waiting for their database write: a flood (valid posts under throwaway
# keys cost the sender little) would otherwise queue tasks without end; more are dropped
# and counted. Pages still hold and gossip them; the super-peer's copy is a convenience.
MAX_PENDING_POSTS = 256
MAX_GOSSIP_HINTS = 4  # gossiped holders of a file dialed first when a fetch job starts


def _check_post(data: Any, now: int) -> None:
    verify_post(data, now=now)


def _check_recover_request(data: Any, now: int) -> None:
    parse_message(data, now=now, kind=KIND_RECOVER_REQ)


@dataclass(frozen=True, slots=True)
class _DialTiming:
    """How a dial of ours went out, for the figures of :class:`DialPaths`."""

    path: str
    started: int  # ms
    counts_failure: bool  # both paths were possible: a failure counts against this one


class Outbox:
    """Frames for one connection, sent in order (a close goes after what came before).

    A peer that asks and never reads would make it grow without end: past ``MAX_OUTBOX``
    waiting frames the connection is closed."""

    def __init__(self, channel: FramedChannel, conn: DataConnection) -> None:
        self.channel = channel
        self.conn = conn
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())
        self.closing = False

    def put(self, data: bytes) -> None:
        if self.closing:
            return
        if self.queue.qsize() >= MAX_OUTBOX:
            logger.warning("closing %s: it does not read what it asks for", self.conn.peer)
            self.close()
            return
        self.queue.put_nowait(data)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.queue.put_nowait(None)

    async def _run(self) -> None:
        try:
            while (data := await self.queue.get()) is not None:
                await self.channel.send(data)
            # Let the last frames (a bye) leave before the channel closes.
            deadline = time.monotonic() + DRAIN_ON_CLOSE_S
            while self.conn.buffered_amount > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        except PeerJSError:
            pass
        await self.conn.close()


class SuperPeerService:
    def __init__(self, config: SuperPeerConfig, *, key: Ed25519PrivateKey | None = None) -> None:
        self.config = config
        self.key = key or identity.load_or_create(config.key_path)[0]
        self.peer_id = identity.peer_id_of(self.key)
        self.store = ChunkStore(config.store_dir)
        self.index = HoldingsIndex(quota=config.storage_bytes)
        self.holder = Holder(
            self.store, self.index, self._send_content, low_water=config.send_buffer
        )
        self.fetcher = Fetcher(
            self.holder,
            penalize=self._penalize,
            clock=now_ms,
            config=config.download,
            max_jobs=config.max_jobs,
        )
        self.fetcher.on_end = self._job_ended
        self.node: SwarmNode | None = None
        self.peer: Peer | None = None
        # the DHT (docs/superpeer.md "DHT"): made with the node, which has the first ticket
        self.dht: SuperPeerDht | None = None
        self.conns: dict[str, FramedChannel] = {}
        self.outboxes: dict[str, Outbox] = {}
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()
        self.blocked: set[str] = set()
        self.started_at = now_ms()
        self.posts_stored = 0
        self.posts_pending = 0
        self.posts_dropped = 0
        self.relay = AdvertRelay()  # other peers' adverts, reported to the replication planner
        # adverts heard by gossip (topic have), reported too until they expire
        self.gossip_adverts = GossipAdverts(ttl_ms=config.gossip_holding_ttl_ms)
        self._pump_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # shard messages and mail held for peers who are away (docs/superpeer.md "Mailboxes")
        self.mailbox = Mailbox(
            self.peer_id,
            config.mailbox,
            send=self._send_content,
            violation=self._conn_violation,
            spawn=self.spawn,
            clock=now_ms,
            local=self._for_guardian if config.guardian else None,
        )
        # X25519 keys of peers who are away, for pages that seal mail to them
        self.keys = KeyDirectory(
            self.peer_id,
            publish=self._publish,
            spawn=self.spawn,
            connected=self._is_connected,
            clock=now_ms,
            ttl_ms=config.mailbox.keys_ttl_ms,
        )
        # signaling through the mesh: relaying for others, and connections of its own when
        # the signaling server is out of reach (docs/superpeer.md "Signaling through the mesh")
        # which way each dial goes while the server is up (peers/protocol/dialpath.py)
        self.dial_paths = DialPaths()
        self.meshsig = MeshSignaling(
            self.peer_id,
            self.key,
            send_frame=self._send_signal,
            violation=self._signal_violation,
            clock=now_ms,
            blocked=lambda peer_id: peer_id in self.blocked,
        )
        # the door: pages that cannot reach the signaling server signal through a WebSocket
        # of ours (docs/superpeer.md "The door")
        self.door: Door | None = None
        if config.door is not None:
            self.door = Door(
                *config.door,
                meshsig=self.meshsig,
                ticket=lambda: self.new_ticket(now_ms()),
                blocked=lambda peer_id: peer_id in self.blocked,
            )
        # the election of supernodes: a super-peer is always a candidate
        self.supernodes = SuperPeerSupernodes(
            self.peer_id,
            self.key,
            config.community,
            publish=self._publish,
            local=self._supernode_numbers,
            clock=now_ms,
        )
        self.started_at = now_ms()
        # repair by peers while no backfill worker runs (docs/replication.md)
        self.repair: SuperPeerRepair | None = None
        if config.repair.enabled:
            self.repair = SuperPeerRepair(
                self.peer_id,
                config.repair,
                holder=self.holder,
                quota=config.storage_bytes,
                clock=now_ms,
                start_job=self.start_job,
                cancel_job=self.fetcher.cancel,
                publish=self._publish,
                holding_ttl_ms=config.gossip_holding_ttl_ms,
            )
        # shares of other identities, if the operator allows it
        self.guardian: SuperPeerGuardian | None = None
        if config.guardian:
            self.guardian = SuperPeerGuardian(
                self.key,
                post=self.mailbox.post,
                publish=self._publish,
                spawn=self.spawn,
                clock=now_ms,
            )

    # --- lifecycle ---

    async def run(self) -> None:
        """Start, serve until :meth:`stop`, then shut down gracefully."""
        await self.start()
        await self.stopping.wait()
        await self.shutdown()

    def stop(self) -> None:
        self.stopping.set()

    async def start(self) -> None:
        scan = await asyncio.to_thread(self.store.scan)
        if scan.corrupt or scan.temp_removed:
            logger.warning(
                "store scan: removed %d corrupt chunk(s) %s and %d temp file(s)",
                len(scan.corrupt),
                scan.corrupt[:10],
                scan.temp_removed,
            )
        self.index.load(scan.chunks)
        if self.guardian is not None:
            await self.guardian.load()
        self.scan_report = scan.as_json()
        for held in await db_sync_to_async(db.load_holdings)(self.peer_id):
            self.holder.add_manifest(held.manifest, pinned=held.pinned, stored_at=held.stored_at_ms)
        await db_sync_to_async(db.register)(
            self.peer_id, self.config.community, AGENT, self.config.storage_bytes, self.scan_report
        )
        logger.info(
            "super-peer %s: %d chunks (%d bytes) in %s, %d manifests",
            self.peer_id,
            len(scan.chunks),
            scan.bytes,
            self.store.root,
            len(self.holder.manifests),
        )
        self.node = self.make_node(now_ms())
        self.dht = self.make_dht(self.node)
        self.peer = Peer(
            self.config.signal,
            peer_id=self.peer_id,
            token=key_bound_token(self.key),
            ice=self.config.ice,
            on_connection=self._incoming,
            max_message_size=SUPERPEER_MAX_MESSAGE_BYTES,
        )
        self._attach_meshsig(self.peer)
        if self.door is not None:
            try:
                await self.door.start()
            except OSError as exc:  # the port is taken: the super-peer serves on without it
                logger.error("door not opened on %s:%d: %s", self.door.host, self.door.port, exc)
                self.door = None
        try:
            await self.peer.start(timeout=OPEN_TIMEOUT_S)
        except PeerJSError as exc:  # the signaling client keeps retrying on its own
            logger.warning("signaling not open yet: %s", exc)
        self.supervisor = Supervisor(self)
        self.spawn(self.holder.uploader.run(), "uploader")
        self.spawn(self.fetcher.run_writer(), "writer")
        self.spawn(self.supernodes.run(self.stopping), "supernodes")
        self.spawn(self.dht.run(self.stopping), "dht")
        if self.repair is not None:
            self.spawn(self.repair.run(self.stopping), "repair")
        self.supervisor.start()
        self.started.set()

    async def shutdown(self) -> None:
        """Say bye to every peer, close, persist the last status; stored content stays."""
        logger.info("super-peer %s: shutting down", self.peer_id)
        if self.node is not None:
            self.node.leave(now_ms())
            self.pump()
        if self.door is not None:
            await self.door.stop()
        self.meshsig.stop()
        outboxes = list(self.outboxes.values())
        for outbox in outboxes:
            outbox.close()
        if outboxes:
            await asyncio.wait([o.task for o in outboxes], timeout=DRAIN_ON_CLOSE_S + 1)
        if self.peer is not None:
            with contextlib.suppress(Exception):
                await self.peer.destroy()
        await self.supervisor.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.supervisor.persist(final=True)
        await db_sync_to_async(db.mark_stopped)(self.peer_id)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("super-peer task %s failed", name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def make_node(self, now: int) -> SwarmNode:
        """The protocol node: seeded from the configuration, with the gossip checks."""
        node = SwarmNode(
            peer_id=self.peer_id,
            community=self.config.community,
            private_key=self.key,
            ticket=self.new_ticket(now),
            mesh=MeshOptions(target=self.config.mesh_target, max_conns=self.config.max_connections),
            caps=SUPERPEER_CAPS,
            agent=AGENT,
            now=now,
        )
        node.add_seeds([s for s in self.config.seeds if s != self.peer_id], now)
        # A post that does not verify is neither kept nor passed on.
        node.gossip_checks[POST_TOPIC] = _check_post
        # Nor is a replica advert of the wrong shape (docs/protocol.md "Gossip topics"),
        # nor a recovery request that does not verify.
        node.gossip_checks[HAVE_TOPIC] = check_have_gossip
        node.gossip_checks[REQUEST_TOPIC] = _check_recover_request
        # Key announcements are kept for peers who are away (docs/superpeer.md "Key directory").
        node.gossip_checks[XKEY_TOPIC] = check_key_announcement
        node.gossip_checks[XKEY_REQ_TOPIC] = check_key_request
        node.gossip_checks[TOPIC_SUPERNODE] = self.supernodes.check
        # Volunteers for repair by peers (docs/replication.md "Repair by peers").
        node.gossip_checks[REPAIR_TOPIC] = check_repair_gossip
        # At its maximum it still takes a download of what it holds and a DHT request
        # (within the mesh's spare; docs/protocol.md "Errands").
        node.mesh.admits = self._admits
        return node

    def _admits(self, errand: Errand) -> bool:
        if errand.kind == ERRAND_DHT:
            return self.dht is not None
        return errand.manifest is not None and self.index.held(errand.manifest) > 0

    def make_dht(self, node: SwarmNode) -> SuperPeerDht:
        """The DHT over this super-peer's connections; it dials through :meth:`dial`."""
        assert node.mesh.ticket is not None
        return SuperPeerDht(
            self.peer_id,
            self.key,
            self.config.community,
            node.mesh.ticket,
            send_to=self._send_to_peer,
            connected=self._is_connected,
            dial=lambda peer_id: self.dial(peer_id, DHT_ERRAND),
            violation=self._peer_violation,
            held=self._held_chunks,
            clock=now_ms,
            known_gone=node.book.stale_since,
        )

    def new_ticket(self, now: int) -> dict[str, Any]:
        ticket = make_ticket(
            self.key,
            community=self.config.community,
            now=now,
            ttl_ms=self.config.ticket_ttl_ms,
            signal=[self.config.signal_url],
            caps=list(SUPERPEER_CAPS),
        )
        verify_ticket(ticket, now=now, community=self.config.community)
        return ticket

    def start_job(
        self, job_id: str, kind: str, manifest_id: str, sources: tuple[str, ...], now: int
    ) -> None:
        """Start (or queue) a fetch job; the sources a planner named, then the peers that
        gossiped holding the file (the most complete first), are dialed first (as hints: a
        source that signaling says is gone is not redialed until a newer ticket)."""
        gossiped = self.gossip_adverts.holders(manifest_id, now)
        heard = sorted(gossiped, key=lambda peer: -gossiped[peer])[:MAX_GOSSIP_HINTS]
        hints = [s for s in dict.fromkeys((*sources, *heard)) if s != self.peer_id]
        if hints and self.node is not None:
            # Dialed for this manifest: a full holder still takes the download.
            self.node.add_hints(hints, now, content_errand(manifest_id))
        self.fetcher.start(job_id, kind, manifest_id, sources, now)
        self.pump()

    # --- connections ---

    def _incoming(self, conn: DataConnection) -> None:
        self.spawn(self._run_connection(conn, outbound=False), f"in-{conn.connection_id}")

    def _attach_meshsig(self, peer: Peer) -> None:
        """Connections signaled through the mesh are made by ``peer`` like the others:
        ours are dialed ``raw`` and reliable; offers for us are announced to
        ``_incoming`` as if they came from the server."""

        def connect(peer_id: str, carrier: Any, metadata: Any = None) -> DataConnection:
            return peer.connect(
                peer_id, serialization="raw", reliable=True, carrier=carrier, metadata=metadata
            )

        self.meshsig.connect = connect
        self.meshsig.take_offer = peer.take_offer

    def dial(self, peer_id: str, errand: Errand | None = None) -> None:
        """Dial through the signaling server, or through the mesh while the server's
        socket is not open and a neighbour takes signal frames. ``errand``: what the dial
        is for, told to the peer (PeerJS metadata): a full peer still takes it."""
        if self.peer is None or self.stopping.is_set():
            return
        # While the server is up, the mesh too when a route to the peer is known and the
        # mesh has been faster (peers/protocol/dialpath.py).
        now = now_ms()
        routed = self.peer.open and self.meshsig.core.has_route(peer_id, now)
        path = self.dial_paths.choose(server_up=self.peer.open, route_known=routed)
        metadata = errand.metadata() if errand is not None else None
        if path == MESH and self.meshsig.reachable():
            self.dial_through_mesh(peer_id, timed=routed, metadata=metadata)
            return
        try:
            conn = self.peer.connect(peer_id, serialization="raw", reliable=True, metadata=metadata)
        except PeerJSError as exc:
            self._dial_failed(peer_id, exc.code)
            return
        timing = _DialTiming(SERVER, now, counts_failure=routed)
        self.spawn(
            self._run_connection(conn, outbound=True, timing=timing), f"out-{conn.connection_id}"
        )

    def _dial_failed(self, peer_id: str, code: str) -> None:
        """A dial of ours failed: the node and the DHT hear why (``peer_unavailable``: the
        peer is gone for that ticket)."""
        assert self.node is not None
        self.node.dial_failed(peer_id, now_ms(), code)
        if self.dht is not None:
            self.dht.dial_failed(peer_id, code)

    def dial_through_mesh(
        self, peer_id: str, *, timed: bool = False, metadata: Any = None
    ) -> DataConnection | None:
        """Offer a connection to ``peer_id`` through the mesh, whatever the server's state;
        it runs like any dialed connection once open. None when this peer cannot.
        ``timed``: a failure counts against the mesh's figures (a dial the mesh was chosen
        for while the server was up); its time to open counts in any case."""
        if self.peer is None or self.stopping.is_set():
            return None
        started = now_ms()
        try:
            conn = self.meshsig.dial(peer_id, metadata)
        except PeerJSError as exc:
            self._dial_failed(peer_id, exc.code)
            return None
        timing = _DialTiming(MESH, started, counts_failure=timed)
        self.spawn(
            self._run_connection(conn, outbound=True, timing=timing), f"mesh-{conn.connection_id}"
        )
        return conn

    async def _run_connection(
        self, conn: DataConnection, *, outbound: bool, timing: _DialTiming | None = None
    ) -> None:
        node = self.node
        assert node is not None
        try:
            await conn.wait_open(OPEN_TIMEOUT_S)
        except PeerJSError as exc:
            # A peer the server says is not there is the peer's doing, not the path's.
            if timing is not None and timing.counts_failure and exc.code != PEER_UNAVAILABLE:
                self.dial_paths.record(timing.path, None)
            if outbound:
                self._dial_failed(conn.peer, exc.code)
                self.pump()
            await conn.close()
            return
        if timing is not None:
            self.dial_paths.record(timing.path, min(now_ms() - timing.started, MAX_DIAL_MS))
        transport = FrameTransport(conn.serialization)
        conn_id = conn.connection_id
        channel = FramedChannel(conn, transport)
        self.conns[conn_id] = channel
        self.outboxes[conn_id] = Outbox(channel, conn)
        node.opened(
            conn_id, conn.peer, outbound, now_ms(), None if outbound else errand_of(conn.metadata)
        )
        self.pump()
        try:
            async for data in conn:
                frames = transport.incoming(data)
                for frame in frames:
                    node.receive(conn_id, frame, now_ms())
                if frames:
                    self.pump()
        except PeerJSError:
            pass
        finally:
            node.closed(conn_id, now_ms())
            self.pump()
            self.conns.pop(conn_id, None)
            outbox = self.outboxes.pop(conn_id, None)
            if outbox is not None:
                outbox.task.cancel()
            gone = self.holder.closed(conn_id)
            self.mailbox.peer_closed(conn_id)
            if gone is not None:
                self._peer_gone(gone, now_ms())
                self.pump()
            await conn.close()

    # --- the node's decisions ---

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def pump(self) -> None:
        """Carry out everything the node decided."""
        self._pump_scheduled = False
        node = self.node
        if node is None:
            return
        while actions := node.take_actions():
            for action in actions:
                self._act(node, action)

    def _act(self, node: SwarmNode, action: Any) -> None:
        now = now_ms()
        if isinstance(action, Send):
            outbox = self.outboxes.get(action.conn_id)
            if outbox is not None:
                outbox.put(action.data)
        elif isinstance(action, Close):
            outbox = self.outboxes.get(action.conn_id)
            if outbox is not None:
                outbox.close()
        elif isinstance(action, Dial):
            if action.peer_id not in self.blocked:
                self.dial(action.peer_id, action.errand)
        elif isinstance(action, Opened):
            conn = self.conns.get(action.conn_id)
            if conn is not None:
                self.holder.opened(action.conn_id, action.peer_id, conn)
                self.fetcher.peer_connected(action.peer_id, now)
            self.mailbox.peer_opened(action.conn_id, action.peer_id, action.caps)
            self.meshsig.opened(action.conn_id, action.peer_id, action.caps)
            if self.dht is not None:
                mesh_conn = node.mesh.conns.get(action.conn_id)
                peer_ticket = None if mesh_conn is None else mesh_conn.ticket
                envelope = None if peer_ticket is None else peer_ticket.envelope
                self.dht.opened(action.peer_id, action.caps, envelope)
            self.supernodes.peer_opened()
            if self.repair is not None:
                self.repair.peer_opened(action.peer_id, action.caps)
            if self.guardian is not None and "shard" in action.caps:
                self.spawn(self.guardian.owner_connected(action.peer_id), "guardian-receipts")
                self.guardian.announce(now, new_peer=True)
        elif isinstance(action, Closed):
            self.mailbox.peer_closed(action.conn_id)
            self.meshsig.closed(action.conn_id)
            gone = self.holder.closed(action.conn_id)
            if gone is not None:
                self._peer_gone(gone, now)
            if self.dht is not None and action.reason == f"bye_{LEAVING}":
                self.dht.peer_left(action.peer_id)
        elif isinstance(action, ContentReceived):
            self._content(action.conn_id, action.peer_id, action.frame, now)
        elif isinstance(action, Deliver):
            if action.message.topic == POST_TOPIC:
                self._post_delivered(action.message.data, now)
            elif action.message.topic == HAVE_TOPIC:
                self._have_gossip(action.message.origin, action.message, now)
            elif action.message.topic == REQUEST_TOPIC and isinstance(action.message.data, dict):
                self._for_guardian(action.message.data, now)
            elif action.message.topic == XKEY_TOPIC:
                self.keys.heard(action.message.data, now)
            elif action.message.topic == XKEY_REQ_TOPIC:
                self.keys.asked(action.message.data, now)
            elif action.message.topic == REPAIR_TOPIC and self.repair is not None:
                message = action.message
                self.repair.announcement(message.origin, message.data, message.issued_at, now)
        elif isinstance(action, Event):
            level = logging.WARNING if action.level in ("warn", "error") else logging.DEBUG
            logger.log(
                level,
                "node %s %s (%s): %s",
                action.source,
                action.code,
                action.peer_id,
                action.message,
            )

    def _content(self, conn_id: str, peer_id: str, frame: ContentFrame, now: int) -> None:
        if isinstance(frame, Have):
            recorded = self.holder.on_have(peer_id, frame)
            self.fetcher.on_have(peer_id, recorded, now)
            if self.repair is not None:
                self.repair.have(peer_id, recorded, now)
            unknown = [a for a in recorded if a[0] not in self.holder.manifests]
            for manifest_id in self.relay.to_learn(peer_id, unknown, now):
                self._send_content(conn_id, ManifestReq(id=manifest_id))
        elif isinstance(frame, ManifestFrame) and (peer_id, frame.id) in self.relay.asked:
            # A manifest someone advertised: the replication planner needs to know it.
            manifest = self.relay.learned(peer_id, frame.id, frame.manifest, now)
            if manifest is not None:
                self.spawn(db_sync_to_async(db.save_manifest)(manifest), "learn-manifest")
                if self.repair is not None:
                    self.repair.learned(manifest)
            self.fetcher.on_frame(peer_id, frame, now)
        elif isinstance(frame, ManifestReq):
            self.holder.on_manifest_req(conn_id, frame)
        elif isinstance(frame, ChunkReq):
            self.holder.on_chunk_req(conn_id, frame.manifest, frame.index, frame.chunk)
        elif isinstance(frame, ShardMsg):
            self.mailbox.received(conn_id, peer_id, frame, now)
        elif isinstance(frame, MailFrame):
            self.mailbox.received_mail(conn_id, peer_id, frame, now)
        elif isinstance(frame, Signal | Reach):
            self.meshsig.received(conn_id, frame)
        elif isinstance(frame, DHT_FRAMES):
            if self.dht is not None:
                self.dht.received(peer_id, cast(DhtFrame, frame))
        else:
            self.fetcher.on_frame(peer_id, frame, now)

    def _have_gossip(self, origin: str, message: Any, now: int) -> None:
        """A replica advert by gossip: recorded (the holder is the signing origin) and
        written as holdings reported via gossip at the next status write."""
        if origin == self.peer_id:
            return
        try:
            holdings = parse_have_gossip(message.data)
        except ProtocolError as exc:  # checked before delivery: not expected here
            logger.info("dropped a have gossip from %s: %s", origin, exc.code)
            return
        self.gossip_adverts.on_gossip(origin, holdings, message.issued_at, now)
        if self.repair is not None:
            self.repair.have_gossip(origin, holdings, self.gossip_adverts, now)

    def _peer_gone(self, peer_id: str, now: int) -> None:
        """The peer's last connection closed."""
        self.fetcher.peer_gone(peer_id, now)
        if self.repair is not None:
            self.repair.peer_gone(peer_id)

    def _job_ended(self, job: Job) -> None:
        if self.repair is not None:
            self.repair.job_ended(job)

    def _send_content(self, conn_id: str, frame: ContentFrame) -> bool:
        if self.node is None:
            return False
        sent = self.node.send_content(conn_id, frame)
        self._schedule_pump()
        return sent

    def _send_signal(self, conn_id: str, frame: Signal | Reach) -> bool:
        if self.door is not None and Door.owns(conn_id):
            return self.door.send(conn_id, frame)
        return self._send_content(conn_id, frame)

    def _signal_violation(self, conn_id: str, code: str, message: str) -> None:
        if self.door is not None and Door.owns(conn_id):
            self.door.violation(conn_id, code, message)
        else:
            self._conn_violation(conn_id, code, message)

    def _send_to_peer(self, peer_id: str, frame: ContentFrame) -> bool:
        """``frame`` on the open connection to ``peer_id``; False when there is none."""
        node = self.node
        if node is None:
            return False
        for conn in node.mesh.conns.values():
            if conn.peer_id == peer_id and conn.state == "open":
                return self._send_content(conn.id, frame)
        return False

    def _peer_violation(self, peer_id: str, code: str, message: str) -> None:
        node = self.node
        if node is None:
            return
        for conn in list(node.mesh.conns.values()):
            if conn.peer_id == peer_id:
                node.content_violation(conn.id, code, message, now_ms())
        self._schedule_pump()

    def _held_chunks(self) -> dict[str, int]:
        """Manifest id -> chunks held, for the provider records."""
        present = self.index.present
        manifests = self.holder.manifests
        return {mid: sum(1 for c in m.chunks if c in present) for mid, m in manifests.items()}

    def _is_connected(self, peer_id: str) -> bool:
        node = self.node
        return node is not None and any(
            c.peer_id == peer_id and c.state == "open" for c in node.mesh.conns.values()
        )

    def _for_guardian(self, envelope: dict[str, Any], now: int) -> None:
        if self.guardian is not None:
            self.guardian.take(envelope, now)

    def _supernode_numbers(self, now: int) -> LocalState:
        """Uptime, healthy connections and the live peers known (the swarm's size seen here)."""
        node = self.node
        conns = 0 if node is None else len(node.mesh.open())
        swarm = 1 if node is None else node.book.live_count(now) + 1
        uptime = max(0, (now - self.started_at) // 1000)
        return LocalState(uptime=uptime, up_kbps=0, conns=conns, swarm=swarm, superpeer=True)

    def _publish(self, topic: str, data: object) -> None:
        if self.node is not None:
            self.node.publish(topic, data, now_ms())
            self._schedule_pump()

    def _conn_violation(self, conn_id: str, code: str, message: str) -> None:
        if self.node is not None:
            self.node.content_violation(conn_id, code, message, now_ms())
            self._schedule_pump()

    def _penalize(self, peer_id: str, code: str, message: str) -> None:
        if self.node is None:
            return
        for conn_id, holder_peer in list(self.holder.conns.items()):
            if holder_peer == peer_id:
                self.node.content_violation(conn_id, code, message, now_ms())
        self._schedule_pump()

    def _post_delivered(self, envelope: object, now: int) -> None:
        if self.posts_pending >= MAX_PENDING_POSTS:
            self.posts_dropped += 1
            return
        self.posts_pending += 1
        self.spawn(self._keep_post(envelope, now), "post")

    async def _keep_post(self, envelope: object, now: int) -> None:
        try:
            await self._store_post(envelope, now)
        finally:
            self.posts_pending -= 1

    async def _store_post(self, envelope: object, now: int) -> None:
        try:
            entry = verify_post(envelope, now=now)
        except ProtocolError as exc:
            logger.info("dropped a post from gossip: %s", exc.code)
            return
        result = await db_sync_to_async(db.store_post)(entry)
        if result == "stored":
            self.posts_stored += 1
        elif result == "fork":
            logger.warning("post fork: %s seq %d", entry.author, entry.seq)
