// The running browser peer: binds the sans-IO SwarmNode to PeerJS DataConnections, timers,
// IndexedDB and the rendezvous HTTP calls. window.swarm is an instance of this class.
import { BlockList, parseBlocksFile, Pause } from "../protocol/controls.js";
import { Diagnostics } from "./diagnostics.js";
import { DOOR_CONN, Door } from "./door.js";
import { loadOrCreateIdentity } from "./identity.js";
import { DialPaths, MAX_DIAL_MS, MESH, SERVER } from "../protocol/dialpath.js";
import { MeshConnection } from "./meshconn.js";
import { Metrics } from "./metrics.js";
import { ERRAND_CONTENT, ERRAND_DHT, errandOf } from "../protocol/errand.js";
import { PEER_UNAVAILABLE } from "../protocol/mesh.js";
import { MeshSignal, newSessionId } from "../protocol/meshsignal.js";
import { SwarmNode } from "../protocol/node.js";
import { knownPeerRows } from "./knownpeers.js";
import { BEACON_SLOW_MS, pageStatus } from "./reasons.js";
import { RendezvousSchedule, runRound } from "./rendezvous.js";
import { EarlyConnections } from "./early.js";
import { Signaling } from "./signaling.js";
import { selectedCandidateType, TurnRefresher, watchIceErrors } from "./turn.js";
import { makeTicket, makeWithdrawal, verifyTicket } from "../protocol/ticket.js";
import { encodeFrame } from "../protocol/wire.js";
import { PEER_ID_RE } from "../protocol/encoding.js";

const TICK_MAX_MS = 1_000; // run the node at least this often (cheap; keeps the UI fresh)
const SAMPLE_MS = 5_000;
const PERSIST_MS = 15_000;
const TICKET_REFRESH_MS = 60_000;
const TICKET_GOSSIP_MS = 60_000; // a renewed ticket goes to the neighbours at most this often
const CLOSE_DELAY_MS = 250; // let a bye reach the peer before the channel closes
// sync: answers sync_summary (post sync); shard: takes shard_msg frames (guardians, recovery);
// mail: takes mail frames; signal: relays and takes signaling through the mesh (signal, reach);
// dht: takes dht_* frames (adapters/dht.js)
const CAPS = ["gossip", "pex", "sync", "shard", "mail", "signal", "dht"];
// Drops of mesh signaling worth a line in diagnostics (the others are counted in its stats).
const MESH_DROPS_SHOWN = new Set(["no_route", "queue_full", "rate_limited"]);
const REPLAY_RETRY_MS = 1_500;
// A share link's page dials the link's holders first and starts its rendezvous round (beacons,
// capsules, and the dials they bring: each a WebRTC handshake on the same CPU) this much
// later (docs/browser.md "Bootstrap and rendezvous").
export const LINK_RENDEZVOUS_DELAY_MS = 1_000;
// A super-peer's door is tried when an attempt of signaling failed, or it has been down this
// long, with no connection to signal through; again this long after a door closed without a
// connection.
const DOOR_AFTER_MS = 3_000;
const DOOR_RETRY_MS = 15_000;
// A timed pause or block lifted itself: the settings store must forget it too.
const CONTROL_EXPIRIES = new Set(["pause_ended", "block_expired"]);

export class SwarmPeer extends EventTarget {
  /** @param {{ config: any, store: any, clock?: () => number, fetchImpl?: typeof fetch }} args */
  constructor({ config, store, clock = Date.now, fetchImpl = (input, init) => fetch(input, init) }) {
    super();
    this.config = config;
    this.store = store;
    this.clock = clock;
    this.fetchImpl = fetchImpl;
    this.community = config.community;
    this.diagnostics = new Diagnostics({ clock });
    this.metrics = new Metrics({ now: clock() });
    this.startedAt = performance.now();
    this.timeToFirstPeerMs = null;
    this.ticketSentAt = Number.NEGATIVE_INFINITY; // when a renewed ticket last went to the neighbours
    this.conns = new Map(); // conn id -> DataConnection
    this.serial = 0;
    this.received = []; // delivered gossip, newest last (capped)
    this.rendezvousRunning = false;
    this.lastRound = null;
    this.rendezvousFailStreak = 0; // rounds in a row where every beacon and capsule failed
    this.timers = [];
    this.destroyed = false;
    /** @type {((peer: SwarmPeer) => Promise<void>) | null} set by main.js: content layers attach here */
    this.beforeConnect = null;
    /** @type {Map<string, object> | null} beacon URL -> signed withdrawal of the ticket it stored */
    this.withdrawals = null;
    // The RTCConfiguration of every new connection (PeerJS's and the mesh's): one object, whose
    // iceServers the TURN refresher replaces with fresh credentials.
    this.rtc = { iceServers: [...(config.iceServers ?? [])], iceTransportPolicy: config.iceTransportPolicy ?? "all" };
    /** @type {TurnRefresher | null} */
    this.turn = null;
    /** @type {import("./dht.js").PageDht | null} set by main.js: the DHT ("Connect by id" falls back to it) */
    this.dht = null;
    /** @type {import("../content/files.js").FileService | null} set by main.js: the page's files (a full page still serves them) */
    this.files = null;
  }

  log(level, source, code, message, peerId = null) {
    this.diagnostics.add({ level, source, code, message, peerId });
  }

  // --- start-up: identity, settings, cache, seeds, signaling, rendezvous ---

  async start() {
    const now = this.clock();
    const identity = await loadOrCreateIdentity(this.store, now);
    this.identity = identity;
    this.peerId = identity.peerId;
    this.log("info", "identity", identity.created ? "identity_created" : "identity_loaded", `peer id ${this.peerId}`);
    const settings = await this.store.getSettings();
    const ticket = await this.#newTicket(now);
    this.node = new SwarmNode({
      peerId: this.peerId,
      community: this.community,
      signer: identity.signer,
      ticket,
      options: { mesh: { ...this.config.mesh, approval: settings.approval ?? this.config.mesh.approval } },
      now,
    });
    this.node.mesh.caps = CAPS;
    // At its maximum the page still takes a download of what it holds and a DHT request (within
    // the mesh's spare; docs/protocol.md "Errands").
    this.node.mesh.admits = (errand) =>
      errand.errand === ERRAND_DHT ? Boolean(this.dht?.joined) : errand.errand === ERRAND_CONTENT && Boolean(this.files?.holds(errand.manifest));
    // Signaling through the mesh: relays for others, and dials through it when signaling is down.
    this.meshSignal = new MeshSignal({ peerId: this.peerId, signer: identity.signer, now });
    // Which way dials go while the server is up, and what each way has cost (protocol/dialpath.js).
    this.dialPaths = new DialPaths();
    this.dialTimes = new Map(); // peer id -> { path, at, countsFailure } of the dial in flight
    this.meshSessions = new Map(); // session id -> MeshConnection
    this.meshOffers = new Map(); // id of an offer this page sent -> session id
    this.meshQueue = Promise.resolve();
    // Blocks and the pause hold deadlines, not durations: one that passed while the page was
    // closed is over now (controls.js).
    this.node.mesh.blocked = BlockList.fromSettings(settings, now);
    for (const id of settings.allowed ?? []) this.node.mesh.allowed.add(id);
    const { pause, expired } = Pause.fromSettings(settings, now);
    this.node.mesh.pause = pause;
    if (expired) this.log("info", "mesh", "pause_ended", `pause (${expired.direction}) ended at ${new Date(expired.until).toISOString()}: resumed`);
    this.node.mesh.isolated = Boolean(settings.isolated);
    this.schedule = new RendezvousSchedule(this.config.rendezvous, now);
    this.schedule.suspended = this.node.mesh.paused || this.node.mesh.isolated;
    this.metrics.load(await this.store.loadMetrics(), now);
    // Bootstrap order (DESIGN section 4): cached peers, then seeds, then beacons and capsules.
    const cached = await this.store.loadPeers(this.community);
    this.node.book.loadRecords(cached, now);
    this.node.addSeeds(this.config.seeds, now);
    // A share link's holders are dialed for its manifest: full, they still take the download.
    const linkErrand = this.config.hintManifest ? { errand: ERRAND_CONTENT, manifest: this.config.hintManifest } : null;
    if (this.config.hints?.length) {
      this.node.addHints(this.config.hints, now, linkErrand);
      if (linkErrand) {
        this.schedule.nextRoundAt = now + LINK_RENDEZVOUS_DELAY_MS;
      }
    }
    this.log("info", "rendezvous", "cache_loaded", `${cached.length} cached peer(s), ${this.config.seeds.length} seed(s)`);
    this.signaling = new Signaling({
      endpoints: this.config.signaling,
      peerId: this.peerId,
      signer: identity.signer,
      rtc: this.rtc,
      clock: this.clock,
      log: (level, code, message) => this.log(level, "signal", code, message),
    });
    if (this.config.turn) {
      this.turn = new TurnRefresher({
        turn: this.config.turn,
        rtc: this.rtc,
        peerId: this.peerId,
        fetchImpl: this.fetchImpl,
        clock: this.clock,
        log: (level, code, message) => this.log(level, "ice", code, message),
      }).start();
    }
    // Signaling opens while the content layers attach (its handshake overlaps theirs); until
    // they have, nothing is dialed and a connection offered waits with its data (early.js).
    const early = new EarlyConnections();
    this.signaling.addEventListener("connection", (e) => early.offer(/** @type {CustomEvent} */ (e).detail, (conn) => this.#adopt(conn, false)));
    this.signaling.addEventListener("unavailable", (e) => this.#dialFailed(/** @type {CustomEvent} */ (e).detail, PEER_UNAVAILABLE));
    this.signaling.addEventListener("state", () => {
      if (!early.ready) return; // the node wakes below, once the content layers are in
      if (this.signaling.state === "open") this.door?.close("door_signaling_back");
      // Open connections live on without signaling; only new dials need it.
      this.node.mesh.canDial = this.#canDial();
      this.#wake();
      this.#changed();
    });
    this.signaling.start();
    // Content layers (files, feed) attach here, before any connection can open.
    if (this.beforeConnect) await this.beforeConnect(this);
    early.release((conn) => this.#adopt(conn, false));
    this.#sample();
    this.timers.push(setInterval(() => this.#sample(), SAMPLE_MS));
    this.timers.push(setInterval(() => this.persist(), PERSIST_MS));
    addEventListener("pagehide", () => this.leave());
    addEventListener("online", () => this.#networkBack());
    addEventListener("offline", () => this.#networkLost());
    this.#wake();
    this.#changed();
    return this;
  }

  async #newTicket(now) {
    const envelope = await makeTicket(this.identity.signer, {
      peerId: this.peerId,
      community: this.community,
      now,
      ttlMs: this.config.rendezvous.ticketTtlMs,
      caps: CAPS,
    });
    this.ticketAt = now;
    return verifyTicket(envelope, { now, community: this.community });
  }

  // --- the node's clock: one timer at its next deadline ---

  #wake() {
    if (this.destroyed || !this.node) return;
    clearTimeout(this.tickTimer);
    const now = this.clock();
    this.node.mesh.canDial = this.#canDial();
    this.node.tick(now);
    this.meshSignal.tick(now);
    this.#flush();
    if (this.signaling?.state === "open" && this.node.mesh.canDial) this.#maybeRendezvous(now);
    this.#maybeDoor(now);
    if (now - this.ticketAt > TICKET_REFRESH_MS && !this.refreshing) this.#refreshTicket(now);
    const next = Math.min(this.node.nextDeadline(now), this.schedule.nextRoundAt, now + TICK_MAX_MS);
    this.tickTimer = setTimeout(() => this.#wake(), Math.max(10, next - now));
  }

  async #refreshTicket(now) {
    this.refreshing = true;
    try {
      this.#useTicket(await this.#newTicket(now));
    } finally {
      this.refreshing = false;
    }
  }

  // A new ticket of this page: in its hellos from now on, to its neighbours (at most once a
  // minute: what they hold of it stays fresh for their PEX answers, docs/protocol.md "Renewed
  // tickets") and its DHT peer record ("ticket" event).
  #useTicket(ticket) {
    const now = this.clock();
    if (now - this.ticketSentAt >= TICKET_GOSSIP_MS) {
      this.ticketSentAt = now;
      this.node.renewTicket(ticket, now).then(
        () => this.#flush(),
        (error) => this.log("error", "mesh", "internal_error", String(error?.stack ?? error)),
      );
    } else {
      this.node.setTicket(ticket);
    }
    this.dispatchEvent(new CustomEvent("ticket", { detail: ticket.envelope }));
  }

  // --- node outputs ---

  #flush() {
    for (const action of this.node.takeActions()) {
      if (action.type === "send") this.#send(action);
      else if (action.type === "close") this.#close(action.connId);
      else if (action.type === "dial") this.#dial(action.peerId, action.errand ?? null);
      else if (action.type === "deliver") this.#deliver(action);
      else if (action.type === "event") {
        this.log(action.level, action.source, action.code, action.message, action.peerId);
        if (CONTROL_EXPIRIES.has(action.code)) this.#controlsExpired();
      } else if (action.type === "opened") this.#opened(action);
      else if (action.type === "closed") {
        this.meshSignal.disconnected(action.connId, this.clock());
        // reason: why it closed ("bye_leaving": the peer went away for good).
        this.dispatchEvent(new CustomEvent("peer-close", { detail: { peerId: action.peerId, reason: action.reason ?? null } }));
        this.#changed();
      } else if (action.type === "frame") {
        if (action.frame.t === "signal" || action.frame.t === "reach") this.#meshFrame(action.connId, action.frame);
        else this.dispatchEvent(new CustomEvent("frame", { detail: action }));
      }
    }
    this.#meshFlush();
  }

  // --- signaling through the mesh (docs/protocol.md "Signaling through the mesh") ---

  // Frames of one connection in order (the signature check is async).
  #meshFrame(connId, frame) {
    this.meshQueue = this.meshQueue
      .then(() => this.meshSignal.receive(connId, frame, this.clock()))
      .then(() => this.#meshFlush())
      .catch((error) => this.log("error", "meshsig", "internal_error", String(error?.stack ?? error)));
  }

  #meshFlush() {
    for (const action of this.meshSignal.takeActions()) {
      if (action.type === "send" && action.connId === DOOR_CONN) this.door?.send(encodeFrame(action.frame));
      else if (action.type === "send") this.#send({ connId: action.connId, bytes: encodeFrame(action.frame) });
      else if (action.type === "deliver") this.#meshDeliver(action.message);
      else if (action.type === "drop") this.#meshDrop(action);
    }
  }

  #meshDrop({ code, violation, connId, reason, id }) {
    const sid = id === null ? undefined : this.meshOffers.get(id);
    if (sid !== undefined) {
      // Our own offer found no way: the dial fails now rather than at its open timeout.
      this.meshOffers.delete(id);
      this.meshSessions.get(sid)?.close({ quiet: true });
    }
    if (violation && connId) {
      const peerId = this.node.mesh.conns.get(connId)?.peerId;
      if (peerId) this.node.contentViolation(peerId, code, reason, this.clock());
    }
    if (violation || MESH_DROPS_SHOWN.has(code)) this.log(violation ? "warn" : "info", "meshsig", code, reason);
  }

  // A message of a session for this page: an offer opens an inbound connection.
  #meshDeliver({ kind, from, sid, payload }) {
    const session = this.meshSessions.get(sid);
    if (session) {
      if (session.peer === from) session.receive(kind, payload);
      return;
    }
    if (kind !== "offer" || this.node.mesh.blocked.blocks(from, "inbound", this.clock()) || this.node.mesh.open().some((c) => c.peerId === from)) return;
    const conn = this.#meshSession(from, sid, null);
    this.log("info", "meshsig", "mesh_offer", `${from} dials through the mesh`, from);
    this.#adopt(conn, false);
    conn.accept(payload).catch((error) => {
      this.log("info", "meshsig", "mesh_negotiation", String(error?.message ?? error), from);
      conn.close();
    });
  }

  #meshSession(peerId, sid, metadata) {
    const conn = new MeshConnection({
      peer: peerId,
      sid,
      rtc: this.rtc,
      metadata,
      signal: (kind, payload) => {
        this.meshSignal
          .send({ to: peerId, sid, kind, payload, now: this.clock() })
          .then((id) => {
            if (kind === "offer") this.meshOffers.set(id, sid);
            this.#meshFlush();
          })
          .catch((error) => this.log("warn", "meshsig", error?.code ?? "error", String(error?.message ?? error), peerId));
      },
    });
    this.meshSessions.set(sid, conn);
    conn.on("close", () => {
      this.meshSessions.delete(sid);
      for (const [id, s] of this.meshOffers) if (s === sid) this.meshOffers.delete(id);
    });
    return conn;
  }

  // Dial through the mesh: when signaling is down and a neighbour relays signaling.
  #meshDial(peerId, metadata = null) {
    if (!this.#meshRelays()) return false;
    const conn = this.#meshSession(peerId, newSessionId(), metadata);
    this.log("info", "meshsig", "mesh_dial", `dialing ${peerId} through the mesh`, peerId);
    this.#adopt(conn, true);
    conn.dial().catch((error) => {
      this.log("info", "meshsig", "mesh_negotiation", String(error?.message ?? error), peerId);
      conn.close();
    });
    return true;
  }

  // --- a super-peer's door (adapters/door.js, docs/browser.md "With the server gone") ---

  // With signaling down for DOOR_AFTER_MS and no connection to signal through, the page
  // enters a super-peer's door (the config's doors in turn) and dials the super-peer through it.
  #maybeDoor(now) {
    const doors = this.config.doors ?? [];
    if (doors.length === 0 || this.door || this.leaving || this.destroyed) return;
    if (this.signaling?.state === "open") {
      this.signalingDownSince = null;
      return;
    }
    this.signalingDownSince ??= now;
    // An attempt that failed says enough; a server that neither answers nor refuses gets 3 s.
    const failed = this.signaling?.retrying || this.signaling?.state === "failed";
    if ((!failed && now - this.signalingDownSince < DOOR_AFTER_MS) || now < (this.doorRetryAt ?? 0)) return;
    if (this.node.mesh.open().length > 0 || this.#meshRelays()) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) return;
    this.doorTurn = (this.doorTurn ?? -1) + 1;
    const door = new Door({
      url: doors[this.doorTurn % doors.length],
      peerId: this.peerId,
      signer: this.identity.signer,
      community: this.community,
      clock: this.clock,
      log: (level, code, message) => this.log(level, "door", code, message),
      onEnter: (superPeerId) => {
        const at = this.clock();
        this.meshSignal.connected(DOOR_CONN, superPeerId, ["signal"], at);
        this.#meshFlush();
        this.node.book.addHint(superPeerId, at);
        this.node.mesh.canDial = this.#canDial();
        if (!this.node.mesh.open().some((c) => c.peerId === superPeerId) && !this.node.mesh.dialing.has(superPeerId)) {
          this.node.mesh.dialNow(superPeerId, at);
        }
        this.#flush();
        this.#changed();
      },
      onFrame: (frame) => this.#meshFrame(DOOR_CONN, frame),
      onLeave: (reason) => {
        const at = this.clock();
        if (door.superPeerId !== null) this.meshSignal.disconnected(DOOR_CONN, at);
        if (this.door === door) this.door = null;
        if (reason !== "door_done" && reason !== "door_signaling_back") this.doorRetryAt = at + DOOR_RETRY_MS;
        this.log("info", "door", reason, `left the door at ${door.url}`);
        this.#meshFlush();
        this.#changed();
      },
    });
    this.door = door;
    this.log("info", "door", "door_try", `signaling is down: entering the door at ${door.url}`);
    door.open().catch((error) => {
      this.log("warn", "door", "door_failed", String(error?.message ?? error));
      door.close("door_failed");
    });
  }

  /** The door this page is in ({url, superPeerId}), or null. */
  doorState() {
    return this.door ? { url: this.door.url, superPeerId: this.door.superPeerId } : null;
  }

  #meshRelays() {
    return [...this.meshSignal.neighbours.values()].some((n) => n.signal);
  }

  #send({ connId, bytes }) {
    const conn = this.conns.get(connId);
    if (conn?.open) conn.send(bytes);
  }

  #close(connId) {
    const conn = this.conns.get(connId);
    this.conns.delete(connId);
    if (!conn) return;
    // While leaving there is no later: close now (the bye is already queued on the channel).
    if (this.leaving) conn.close();
    else setTimeout(() => conn.close(), CLOSE_DELAY_MS);
  }

  // Through the server; through the mesh while it is down, or while it is up when a route to the
  // peer is known and the mesh has been faster (protocol/dialpath.js).
  // `errand`: what the dial is for (mesh.js errandOf), told to the peer in the connection's metadata.
  #dial(peerId, errand = null) {
    const now = this.clock();
    const serverUp = this.signaling.state === "open";
    const routeKnown = serverUp && this.meshSignal.hasRoute(peerId, now);
    const path = this.dialPaths.choose({ serverUp, routeKnown });
    if (path === MESH && this.#meshDial(peerId, errand)) {
      this.dialTimes.set(peerId, { path: MESH, at: now, countsFailure: routeKnown });
      return;
    }
    const conn = this.signaling.connect(peerId, errand ?? undefined);
    if (!conn) {
      this.node.dialFailed(peerId, this.clock(), "signaling down");
      this.dispatchEvent(new CustomEvent("dial-failed", { detail: { peerId, reason: "signaling down" } }));
      return;
    }
    this.dialTimes.set(peerId, { path: SERVER, at: now, countsFailure: routeKnown });
    this.#adopt(conn, true);
  }

  // The figures of the path a dial took: its time to open, or a failure where both paths were
  // possible (a peer the server says is not there is the peer's doing, not the path's).
  #dialTimed(peerId, opened, reason) {
    const timing = this.dialTimes.get(peerId);
    if (!timing) return;
    this.dialTimes.delete(peerId);
    if (opened) this.dialPaths.record(timing.path, Math.min(MAX_DIAL_MS, Math.max(0, this.clock() - timing.at)));
    else if (timing.countsFailure && reason !== PEER_UNAVAILABLE) this.dialPaths.record(timing.path, null);
  }

  #dialFailed(peerId, reason) {
    this.#dialTimed(peerId, false, reason);
    this.node.dialFailed(peerId, this.clock(), reason);
    this.dispatchEvent(new CustomEvent("dial-failed", { detail: { peerId, reason } }));
    this.#flush();
  }

  // Wire a PeerJS DataConnection to the node: open -> opened, data -> receive, close -> closed.
  #adopt(conn, outbound) {
    const connId = `c${++this.serial}`;
    let opened = false;
    // Why a STUN/TURN server failed this connection's gathering (refused TURN credentials: turn_auth_failed).
    watchIceErrors(conn.peerConnection, (level, code, message) => this.log(level, "ice", code, message, conn.peer));
    const onOpen = () => {
      if (opened) return;
      opened = true;
      if (outbound) this.#dialTimed(conn.peer, true);
      this.conns.set(connId, conn);
      this.node.opened(connId, conn.peer, outbound, this.clock(), outbound ? null : errandOf(conn.metadata));
      this.#learnIce(conn);
      this.#flush();
      this.#changed();
    };
    conn.on("open", onOpen);
    if (conn.open) onOpen();
    conn.on("data", (data) => {
      if (!opened) return;
      this.node.receive(connId, data, this.clock()).then(() => {
        this.#flush();
      });
    });
    conn.on("close", () => {
      this.conns.delete(connId);
      if (!opened) {
        if (outbound) this.#dialFailed(conn.peer, "closed before open");
        return;
      }
      this.node.closed(connId, this.clock()).then(() => {
        this.#flush();
        this.#changed();
      });
    });
    conn.on("error", (error) => {
      this.log("info", "webrtc", `conn_${error?.type ?? "error"}`, String(error?.message ?? error), conn.peer);
      if (!opened && outbound) this.#dialFailed(conn.peer, String(error?.type ?? "error"));
    });
  }

  // A peer that answered is what the cache is for: save soon, not only every 15 s.
  #persistSoon() {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = null;
      this.persist();
    }, 1_000);
  }

  #opened(action) {
    this.#persistSoon();
    if (this.timeToFirstPeerMs === null) {
      this.timeToFirstPeerMs = Math.round(performance.now() - this.startedAt);
      this.firstPeerAt = performance.timeOrigin + performance.now();
      this.metrics.firstPeer(this.clock());
      this.log("info", "mesh", "first_peer", `first peer after ${this.timeToFirstPeerMs} ms`, action.peerId);
    }
    const caps = this.node.mesh.conns.get(action.connId)?.caps ?? [];
    this.meshSignal.connected(action.connId, action.peerId, caps, this.clock());
    // Through the door to its super-peer: the connection now carries signaling itself.
    if (this.door && this.door.superPeerId === action.peerId) this.door.close("door_done");
    this.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: action.peerId, caps } }));
    this.#changed();
  }

  #deliver({ message, from }) {
    this.received.push({ ...message, from });
    if (this.received.length > 500) this.received.shift();
    this.dispatchEvent(new CustomEvent("message", { detail: { ...message, from } }));
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
    // Chart points also at changes, so steps in the peer count show when they happened.
    if (this.node && !this.sampleTimer) {
      this.sampleTimer = setTimeout(() => {
        this.sampleTimer = null;
        this.#sample();
      }, 250);
    }
  }

  // --- rendezvous rounds ---

  async #maybeRendezvous(now) {
    if (this.rendezvousRunning || !this.schedule.due(now)) return;
    this.rendezvousRunning = true;
    try {
      const ticket = await this.#newTicket(now); // each announce carries a fresh nonce
      this.#useTicket(ticket);
      const want = this.config.mesh.target;
      const round = await runRound({ config: this.config, ticket: ticket.envelope, selfId: this.peerId, want, fetchImpl: this.fetchImpl, clock: this.clock });
      const done = this.clock();
      this.metrics.add("rendezvous_attempts", 1, done);
      if (round.tickets.length > 0) this.metrics.add("rendezvous_successes", 1, done);
      for (const report of round.reports) this.#report(report, done);
      await this.#prepareWithdrawals(round.reports, ticket);
      const state = this.schedule.done({ found: round.tickets.length, connected: this.node.mesh.open().length, retryAfterMs: round.retryAfterMs }, done);
      // A fresh ticket answered with "replay" may not be stored (two first announces racing
      // to create a community): announce again soon with a new ticket.
      if (round.reports.some((r) => r.via === "replay")) {
        this.schedule.nextRoundAt = Math.min(this.schedule.nextRoundAt, done + REPLAY_RETRY_MS + Math.random() * 1_000);
      }
      if (state === "paused")
        this.log(
          "warn",
          "rendezvous",
          "rendezvous_paused",
          `${this.config.rendezvous.pauseAfter} empty rounds: cache and gossip only until ${new Date(this.schedule.pausedUntil).toLocaleTimeString()}`,
        );
      this.lastRound = { at: done, found: round.tickets.length, reports: round.reports.map(({ tickets, ...r }) => ({ ...r, count: tickets.length })) };
      const allFailed = round.reports.length > 0 && round.reports.every((r) => !r.ok);
      this.rendezvousFailStreak = allFailed ? this.rendezvousFailStreak + 1 : 0;
    } catch (error) {
      this.log("error", "rendezvous", "round_failed", String(error?.stack ?? error));
      this.schedule.done({ found: 0, connected: this.node.mesh.open().length }, this.clock());
    } finally {
      this.rendezvousRunning = false;
      this.#wake();
      this.#changed();
    }
  }

  // Signed now, sent on pagehide (where there is no time to sign): one per beacon, for the
  // ticket that beacon stored, so others stop dialing a page that has closed.
  async #prepareWithdrawals(reports, ticket) {
    this.withdrawals ??= new Map();
    const stored = reports.filter((r) => r.source === "beacon" && r.ok && r.via === "announce");
    if (stored.length === 0) return;
    const envelope = JSON.stringify(await makeWithdrawal(this.identity.signer, { peerId: this.peerId, community: this.community, nonce: ticket.nonce }));
    for (const report of stored) this.withdrawals.set(report.url, envelope);
  }

  #sendWithdrawals() {
    for (const [beacon, body] of this.withdrawals ?? []) {
      const url = `${beacon}${beacon.endsWith("/") ? "" : "/"}${encodeURIComponent(this.community)}/withdraw`;
      try {
        if (typeof navigator !== "undefined" && navigator.sendBeacon) navigator.sendBeacon(url, body);
        else this.fetchImpl(url, { method: "POST", body, keepalive: true }).catch(() => {});
      } catch {
        // Leaving anyway: the ticket expires by itself.
      }
    }
    this.withdrawals?.clear();
  }

  #report(report, now) {
    if (report.source === "beacon") this.metrics.beacon(report.url, report.latencyMs, report.ok, now);
    else {
      this.metrics.add("capsule_fetches", 1, now);
      if (!report.ok) this.metrics.add("capsule_failures", 1, now);
    }
    if (report.ok) {
      this.node.addCandidates(report.tickets, report.source, now);
      this.log("info", report.source, `${report.source}_ok`, `${report.url}: ${report.tickets.length} peer(s) in ${report.latencyMs} ms`);
    } else {
      // No capsule yet (a young community) is expected; anything else is worth a warning.
      const level = report.code === "no_capsule" ? "info" : "warn";
      this.log(level, report.source, report.code, `${report.url}: ${report.message} (${report.attempts} attempt(s))`);
    }
  }

  #sample() {
    const now = this.clock();
    this.metrics.syncNode(this.node.stats, now);
    this.metrics.sample(now, this.node.mesh.open().length);
    this.signaling.sweep();
    this.dispatchEvent(new Event("sample"));
  }

  /** Save the peer cache and metric buckets (also on pagehide). */
  async persist() {
    if (!this.node) return;
    const now = this.clock();
    this.metrics.syncNode(this.node.stats, now);
    try {
      await this.store.savePeers(this.community, this.node.book.toRecords());
      const window = this.metrics.takeWindow(); // the hour/day health buckets (healthwindow.js)
      await this.store.saveMetrics([...this.metrics.takeDirty(), ...(window ? [window] : [])], this.metrics.expiredDays(now));
    } catch (error) {
      this.log("warn", "store", "persist_failed", String(error?.message ?? error));
    }
  }

  async #saveSettings() {
    const mesh = this.node.mesh;
    // Other parts keep settings here too; `blocked` (ids) and `paused` (a boolean) are the
    // older forms of `blocks` and `pause`, read once by start().
    const { blocked: _ids, paused: _paused, ...others } = await this.store.getSettings();
    await this.store.putSettings({
      ...others,
      blocks: mesh.blocked.toRecords(),
      allowed: [...mesh.allowed],
      pause: mesh.pause.toRecord(),
      isolated: mesh.isolated,
      approval: mesh.options.approval,
    });
  }

  // A timed pause or block ended in tick(): rendezvous may run again, the store forgets it.
  #controlsExpired() {
    this.#suspendRendezvous();
    this.#saveSettings().catch((error) => this.log("warn", "store", "settings_failed", String(error?.message ?? error)));
    this.#changed();
  }

  // Fully paused or isolated: no rendezvous (paused one way, rounds go on: the other way needs them).
  #suspendRendezvous() {
    const was = this.schedule.suspended;
    this.schedule.suspended = this.node.mesh.paused || this.node.mesh.isolated;
    if (was && !this.schedule.suspended) this.schedule.hurry(this.clock());
  }

  // --- what the page and the person can do ---

  /**
   * Connect to a peer by its id now ("Connect by id", DESIGN section 11): through signaling,
   * or through the mesh when signaling is down. "connected", "dialing", or throws with a code.
   * A peer this page knows no ticket of is first looked up in the DHT ("looking_up", when the
   * DHT has contacts to ask): its peer
   * record proves it is live in this community (and adds it to the peer book), then it is
   * dialed; it is dialed by id all the same when the lookup finds nothing (the server may
   * know it). The outcome is a "connect" event {peerId, how, code}.
   */
  connectTo(peerId) {
    if (typeof peerId !== "string" || !PEER_ID_RE.test(peerId) || peerId === this.peerId) {
      throw Object.assign(new Error("not another peer's id"), { code: "bad_peer_id" });
    }
    if (this.node.mesh.open().some((c) => c.peerId === peerId)) return "connected";
    if (this.node.mesh.blocked.blocks(peerId, "outbound", this.clock())) throw Object.assign(new Error("this peer is blocked"), { code: "blocked" });
    if (this.node.mesh.pause.outbound) throw Object.assign(new Error("outbound connections are paused"), { code: "paused" });
    this.node.mesh.canDial = this.#canDial();
    if (!this.node.mesh.canDial) {
      throw Object.assign(new Error("nothing to dial with: no signaling and no peer that relays signaling"), { code: "cannot_dial" });
    }
    // (A DHT that knows no contact yet has nobody to ask: dialed by id at once.)
    if (this.dht?.core?.table.size > 0 && !this.node.book.entries.get(peerId)?.ticket) {
      this.#connectThroughDht(peerId);
      return "looking_up";
    }
    this.#connectNow(peerId);
    return "dialing";
  }

  #connectNow(peerId) {
    const now = this.clock();
    this.node.book.addHint(peerId, now);
    // A connection with the peer in any state (one it is opening to us, say) is as good as a dial.
    if (!this.node.mesh.dialing.has(peerId) && this.node.mesh.connsOf(peerId).length === 0 && !this.node.mesh.dialNow(peerId, now)) {
      throw Object.assign(new Error("nothing to dial with: no signaling and no peer that relays signaling"), { code: "cannot_dial" });
    }
    this.#flush();
  }

  async #connectThroughDht(peerId) {
    let found = { ok: false, code: "error", ticket: null, hops: null };
    try {
      found = await this.dht.findPeer(peerId);
      if (found.ok) {
        const now = this.clock();
        this.node.addCandidates([await verifyTicket(found.ticket, { now, community: this.community })], "dht", now);
        this.log("info", "dht", "dht_peer_found", `peer record found in ${found.hops} hop(s)`, peerId);
      } else this.log("info", "dht", "dht_peer_not_found", `no peer record (${found.code}): dialing by id`, peerId);
      this.#connectNow(peerId);
      this.dispatchEvent(new CustomEvent("connect", { detail: { peerId, how: "dialing", code: found.ok ? null : found.code } }));
    } catch (error) {
      this.log("info", "dht", error?.code ?? "error", String(error?.message ?? error), peerId);
      this.dispatchEvent(new CustomEvent("connect", { detail: { peerId, how: "failed", code: error?.code ?? "error" } }));
    }
  }

  /**
   * Dial `peerId` for the DHT or a download (beyond the mesh target); false when nothing can dial
   * it. `errand` ({errand: "dht"} or {errand: "content", manifest}) is told to the peer, which
   * takes the connection even at its maximum when it runs a DHT or holds the manifest.
   */
  dial(peerId, errand = null) {
    if (this.node.mesh.blocked.has(peerId)) return false;
    if (this.node.mesh.open().some((c) => c.peerId === peerId) || this.node.mesh.dialing.has(peerId)) return true;
    this.node.mesh.canDial = this.#canDial();
    const ok = this.node.mesh.dialNow(peerId, this.clock(), errand);
    this.#flush();
    return ok;
  }

  /** Close the connection to `peerId` (a DHT connection gone idle). */
  disconnect(peerId, reason) {
    const now = this.clock();
    for (const conn of this.node.mesh.connsOf(peerId)) this.node.mesh.close(conn, reason, now);
    this.#flush();
  }

  /** How each open connection came: "mesh" (signaled through peers) or "server". */
  viaOf(peerId) {
    const conn = this.node?.mesh.open().find((c) => c.peerId === peerId);
    return conn && this.conns.get(conn.id)?.viaMesh ? "mesh" : "server";
  }

  /** host | srflx | prflx | relay: the local candidate type of the pair the connection uses, once known. */
  iceOf(peerId) {
    const conn = this.node?.mesh.open().find((c) => c.peerId === peerId);
    return conn ? (this.conns.get(conn.id)?.iceType ?? null) : null;
  }

  // The selected candidate pair may be reported a moment after the channel opens: ask a few times.
  async #learnIce(conn, tries = 5) {
    try {
      const type = await selectedCandidateType(conn.peerConnection);
      if (type) {
        conn.iceType = type;
        this.#changed();
        return;
      }
    } catch {
      // closed meanwhile
    }
    if (tries > 1 && conn.open) setTimeout(() => this.#learnIce(conn, tries - 1), 1_000);
  }

  /** Open connections (the page hook of DESIGN section 9). */
  connectedPeers() {
    return this.node ? this.node.connectedPeers(this.clock()) : [];
  }

  approvalQueue() {
    return this.node ? this.node.mesh.queue().map((c) => ({ peerId: c.peerId, since: c.openedAt, agent: c.agent })) : [];
  }

  /** online / degraded / offline for #swarm-status, with the reason codes (adapters/reasons.js). */
  status() {
    if (!this.node) return { state: "offline", reason: "starting", reasons: ["starting"], text: "starting", texts: ["starting"], peers: 0 };
    const now = this.clock();
    const open = this.node.mesh.open();
    const reports = this.lastRound?.reports ?? [];
    return pageStatus({
      online: typeof navigator === "undefined" || navigator.onLine !== false,
      signal: this.signaling?.state,
      paused: this.node.mesh.paused,
      pause: { direction: this.node.mesh.pause.direction, until: this.node.mesh.pause.until },
      isolated: this.node.mesh.isolated,
      peers: open.length,
      unresponsive: open.filter((c) => c.health.state(now) !== "ok").length,
      rendezvousFailing: reports.length > 0 && reports.every((r) => !r.ok),
      rendezvousStreak: this.rendezvousFailStreak,
      slowBeacons: [...this.metrics.beaconLatency.values()].filter((ms) => ms !== null && ms > BEACON_SLOW_MS).length,
      blocked: this.node.mesh.blocked.size,
    });
  }

  /** Peers known from the peer book but not connected, with why (adapters/knownpeers.js). */
  knownPeers() {
    if (!this.node) return [];
    return knownPeerRows({ book: this.node.book, mesh: this.node.mesh, now: this.clock(), canDial: this.#canDial() });
  }

  /** The signaling endpoint in use: `{url, state, index, count, openedAt}`. */
  signalingInfo() {
    const s = this.signaling;
    if (!s) return null;
    return { url: s.endpoint.url, state: s.state, index: s.index, count: s.endpoints.length, openedAt: s.openedAt };
  }

  /**
   * Each configured beacon and capsule URL with its last rendezvous report: `state` = `ok`,
   * `slow` (a beacon over BEACON_SLOW_MS), `failing` (with the error code), `empty` (a capsule host
   * with no capsule for this community yet: expected while it is young) or `unknown` (no round yet).
   */
  rendezvousEndpoints() {
    const reports = new Map((this.lastRound?.reports ?? []).map((r) => [`${r.source} ${r.url}`, r]));
    const row = (source, url) => {
      const r = reports.get(`${source} ${url}`);
      if (!r) return { source, url, state: "unknown", latencyMs: null, code: null, at: null };
      const failed = r.code === "no_capsule" ? "empty" : "failing";
      const state = !r.ok ? failed : source === "beacon" && r.latencyMs > BEACON_SLOW_MS ? "slow" : "ok";
      return { source, url, state, latencyMs: r.latencyMs ?? null, code: r.ok ? null : (r.code ?? "error"), at: this.lastRound.at };
    };
    return [...this.config.beacons.map((url) => row("beacon", url)), ...this.config.capsules.map((url) => row("capsule", url))];
  }

  // New connections need signaling (open) and a network (the browser says it has one).
  #canDial() {
    const online = typeof navigator === "undefined" || navigator.onLine !== false;
    return online && (this.signaling?.state === "open" || Boolean(this.meshSignal && this.#meshRelays()));
  }

  // The browser lost its network: its WebRTC connections cannot live on without one (on
  // loopback they would, which would hide the outbox's work), so they are closed now, with
  // a bye, and nothing is dialed until the network is back.
  #networkLost() {
    if (!this.node || this.destroyed) return;
    this.log("warn", "network", "network_offline", "the browser lost its network: connections closed, nothing is dialed until it is back");
    const now = this.clock();
    for (const conn of [...this.node.mesh.conns.values()]) this.node.mesh.close(conn, "network_offline", now);
    this.#flush();
    this.#wake();
    this.#changed();
  }

  // The browser has a network again: signaling and rendezvous now, not at their next retry.
  #networkBack() {
    if (!this.node || this.destroyed) return;
    this.log("info", "network", "network_online", "the browser has a network again: reconnecting");
    this.signaling.retryNow();
    if (!this.schedule.suspended) this.retryRendezvous();
    this.#changed();
  }

  async publish(topic, data) {
    const id = await this.node.publish(topic, data, this.clock());
    this.#flush();
    return id;
  }

  /** Send a wire frame to a connected peer (content frames); false when not connected. */
  send(peerId, frame) {
    const sent = this.node.sendTo(peerId, frame);
    this.#flush();
    return sent;
  }

  /** Send bytes encoded by wire.js (the uploader's chunk frames); false when not connected. */
  sendEncoded(peerId, bytes, t) {
    const sent = this.node.sendEncoded(peerId, bytes, t);
    this.#flush();
    return sent;
  }

  /** The open RTCDataChannel to a peer (the uploader watches its bufferedAmount), or null. */
  channel(peerId) {
    const conn = this.node?.mesh.open().find((c) => c.peerId === peerId);
    return conn ? (this.conns.get(conn.id)?.dataChannel ?? null) : null;
  }

  /** Bad content from a peer (a chunk that does not hash to its id, a forged post). */
  contentViolation(peerId, code, message) {
    this.node.contentViolation(peerId, code, message, this.clock());
    this.#flush();
  }

  /**
   * Block a peer by id, connected or not (docs/browser.md "Pause and blocks"). Throws a
   * ControlError (code bad_peer_id, own_peer_id, bad_direction, bad_reason, bad_deadline).
   * @param {string} peerId
   * @param {{ direction?: "inbound" | "outbound" | "both", reason?: string | null, until?: number | null }} [options]
   */
  async block(peerId, options = {}) {
    const entry = this.node.block(peerId, this.clock(), options);
    const until = entry.until === null ? "" : ` until ${new Date(entry.until).toISOString()}`;
    this.log("info", "mesh", "blocked", `peer blocked (${entry.direction})${until}${entry.reason ? `: ${entry.reason}` : ""}`, entry.peerId);
    this.#flush();
    await this.#saveSettings();
    this.#changed();
    return entry;
  }

  async unblock(peerId) {
    if (this.node.unblock(peerId)) this.log("info", "mesh", "unblocked", "block lifted", peerId);
    await this.#saveSettings();
    this.#wake();
    this.#changed();
  }

  /** The block list as an export file (controls.js BlockList.exportFile). */
  exportBlocks() {
    return this.node.mesh.blocked.exportFile(this.clock());
  }

  /**
   * Merge an export file's blocks into the list: all or nothing (ControlError bad_blocks_file).
   * @param {string} text
   */
  async importBlocks(text) {
    const now = this.clock();
    const entries = parseBlocksFile(text, { now, selfId: this.peerId });
    // What the new blocks refuse applies at once (open connections, dials, the peer book).
    const counts = this.node.mesh.importBlocks(entries, now);
    this.log("info", "mesh", "blocks_imported", `${counts.added} block(s) added, ${counts.updated} updated, ${counts.unchanged} unchanged`);
    this.#flush();
    await this.#saveSettings();
    this.#changed();
    return counts;
  }

  async approve(peerId, { always = false } = {}) {
    this.node.approve(peerId, this.clock(), { always });
    this.#flush();
    await this.#saveSettings();
    this.#changed();
  }

  async deny(peerId) {
    this.node.deny(peerId, this.clock());
    this.#flush();
    this.#changed();
  }

  /** Pause both ways until resumed (true), or resume (false): the Controls card's toggle. */
  async setPaused(paused) {
    if (paused) await this.pause("both");
    else await this.resume();
  }

  /**
   * Pause "inbound", "outbound" or "both" until `until` (ms since the epoch; null: until
   * resumed). Throws a ControlError (bad_direction, bad_deadline).
   * @param {"inbound" | "outbound" | "both"} direction
   * @param {{ until?: number | null }} [options]
   */
  async pause(direction, { until = null } = {}) {
    this.node.setPause(direction, until, this.clock());
    this.#suspendRendezvous();
    const when = until === null ? "until resumed" : `until ${new Date(until).toISOString()}`;
    const what = direction === "both" ? "mesh paused: no traffic" : `${direction} connections paused`;
    this.log("info", "mesh", "paused", `${what}, ${when}`);
    this.#flush();
    await this.#saveSettings();
    this.#wake();
    this.#changed();
  }

  async resume() {
    this.node.setPaused(false, this.clock());
    this.#suspendRendezvous();
    this.schedule.hurry(this.clock());
    this.log("info", "mesh", "resumed", "mesh resumed");
    this.#flush();
    await this.#saveSettings();
    this.#wake();
    this.#changed();
  }

  async setIsolated(isolated) {
    this.node.setIsolated(isolated, this.clock());
    this.#suspendRendezvous();
    this.log("info", "mesh", isolated ? "isolated" : "unisolated", isolated ? "isolated: allowed peers only" : "isolation off");
    this.#flush();
    await this.#saveSettings();
    this.#wake();
    this.#changed();
  }

  async setApproval(mode) {
    this.node.setApproval(mode, this.clock());
    this.#flush();
    await this.#saveSettings();
    this.#changed();
  }

  /**
   * "Always allow" a peer, or stop: allowed peers skip the approval queue, stay and get dialed
   * while isolated, and are let in beyond the mesh maximum (protocol/mesh.js); kept in settings.
   */
  async setAllowed(peerId, allowed) {
    if (typeof peerId !== "string" || !PEER_ID_RE.test(peerId) || peerId === this.peerId) {
      throw Object.assign(new Error("not another peer's id"), { code: "bad_peer_id" });
    }
    if (allowed) this.node.mesh.allowed.add(peerId);
    else this.node.mesh.allowed.delete(peerId);
    this.log("info", "mesh", allowed ? "allowed" : "unallowed", allowed ? "peer always allowed" : "peer no longer always allowed", peerId);
    await this.#saveSettings();
    this.#changed();
  }

  /** Retry now (the status popover): reconnect signaling and run a rendezvous round at once. */
  retryNow() {
    this.signaling?.retryNow();
    if (!this.schedule.suspended) this.retryRendezvous();
    this.#changed();
  }

  /** Run a rendezvous round now (the "retry" button), unless rendezvous is paused. */
  retryRendezvous() {
    this.schedule.pausedUntil = null;
    this.schedule.hurry(this.clock());
    this.#wake();
  }

  /** The page is closing: say bye to every peer and save what is worth keeping. */
  leave() {
    if (!this.node || this.leaving) return;
    this.persist();
    this.leaving = true;
    this.#sendWithdrawals();
    this.node.leave(this.clock());
    this.#flush();
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.tickTimer);
    for (const t of this.timers) clearInterval(t);
    this.turn?.stop();
    this.signaling?.stop();
    this.door?.close("door_done");
  }
}
