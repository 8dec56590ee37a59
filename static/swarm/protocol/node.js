// A swarm node without IO (sans-IO, as h11 and aioquic): bytes from peers, connection events,
// user decisions and `now` go in; frames to send, dials, closes, delivered gossip and
// diagnostics events come out of takeActions(). The browser adapter (peer.js) and the
// simulation (tests/js) drive the same code.
import { hex } from "./encoding.js";
import {
  BAD_GOSSIP_ID,
  BAD_SIGNATURE,
  BAD_ENVELOPE,
  BAD_BODY,
  PEER_MISMATCH,
  ProtocolError,
  RATE_LIMITED,
  UNEXPECTED_FRAME,
  UNSUPPORTED_FRAME,
  UNSUPPORTED_VERSION,
  WRONG_COMMUNITY,
} from "./errors.js";
import { checkGossip, DEFAULT_GOSSIP_TTL, GossipLog, makeGossip } from "./gossip.js";
import { Mesh } from "./mesh.js";
import { PeerBook } from "./peerbook.js";
import { PEX_INTERVAL_MS, verifyPexTickets } from "./pex.js";
import { verifyTicket } from "./ticket.js";
import { decodeFrame, encodeFrame, PROTOCOL_VERSION } from "./wire.js";

// More than this many bad frames from one connection within the window: disconnected.
export const MAX_VIOLATIONS = 10;
export const VIOLATION_WINDOW_MS = 60_000;
// Frame rate per connection (token bucket): generous for chunk transfers, fatal for floods.
export const FRAME_RATE_PER_S = 500;
export const FRAME_BURST = 1000;
const PRUNE_EVERY_MS = 30_000;
const PEX_MAX_ASKING = 2;
// A peer's renewed ticket, sent to its neighbours (gossip ttl 0, never relayed): what they hold
// of it stays fresh for their PEX answers with no beacon around (docs/protocol.md "Renewed tickets").
export const TICKET_TOPIC = "ticket";
// Gossip that fails these checks was forwarded by a peer that should have checked it.
const GOSSIP_VIOLATIONS = new Set([BAD_GOSSIP_ID, BAD_SIGNATURE, BAD_ENVELOPE, BAD_BODY, PEER_MISMATCH, WRONG_COMMUNITY]);
// Frames of a download or a DHT request: they keep an errand connection (mesh.js) in use.
const ERRAND_FRAMES = new Set([
  "manifest_req",
  "manifest",
  "chunk_req",
  "chunk",
  "chunk_missing",
  "dht_find_node",
  "dht_find_value",
  "dht_store",
  "dht_nodes",
  "dht_value",
  "dht_stored",
]);
// Frames handed to the content layer (files, post sync, guardians, mail, mesh signaling, DHT) as "frame" actions.
const CONTENT_FRAMES = new Set([...ERRAND_FRAMES, "have", "sync_summary", "sync_entries", "shard_msg", "mail", "signal", "reach"]);

function newStats() {
  return {
    bytesIn: 0,
    bytesOut: 0,
    framesIn: 0,
    framesOut: 0,
    dropped: {}, // code -> count
    dials: 0,
    dialSuccesses: 0,
    inbound: 0,
    gossipDelivered: 0,
    gossipDuplicates: 0,
    gossipRelayed: 0,
    gossipPublished: 0,
    pexRequests: 0,
    pexTickets: 0,
    pexRejected: 0,
    ticketsRenewed: 0, // neighbours' renewed tickets taken (gossip topic `ticket`)
    firstPeerAt: null,
  };
}

export class SwarmNode {
  /**
   * @param {{ peerId: string, community: string, signer: object, ticket?: object | null, now?: number, random?: () => number,
   *   options?: { bookCapacity?: number, mesh?: Partial<import("./mesh.js").MeshOptions> } }} args
   */
  constructor({ peerId, community, signer, ticket = null, options = {}, random = Math.random, now = 0 }) {
    this.peerId = peerId;
    this.community = community;
    this.signer = signer;
    this.actions = [];
    this.stats = newStats();
    this.startedAt = now;
    this.book = new PeerBook({ selfId: peerId, random, capacity: options.bookCapacity });
    this.log = new GossipLog();
    this.mesh = new Mesh({ selfId: peerId, book: this.book, emit: (a) => this.#emit(a), options: options.mesh });
    this.mesh.ticket = ticket?.envelope ?? ticket;
    this.nextPruneAt = now + PRUNE_EVERY_MS;
    // topic -> async (data, now) => void, throwing ProtocolError: gossip whose content fails
    // is neither delivered nor relayed (e.g. a post with a forged signature).
    this.gossipChecks = new Map();
  }

  // --- outputs ---

  /** Everything decided since the last call, in order. */
  takeActions() {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  #emit(action) {
    if (action.type !== "send") {
      if (action.type === "opened") this.#countOpen(action);
      if (action.type === "dial") this.stats.dials += 1;
      this.actions.push(action);
      return;
    }
    const bytes = action.bytes ?? encodeFrame(action.frame);
    const conn = this.mesh.conns.get(action.connId);
    if (conn) {
      conn.bytesOut += bytes.length;
      conn.framesOut += 1;
    }
    this.stats.bytesOut += bytes.length;
    this.stats.framesOut += 1;
    this.actions.push({ type: "send", connId: action.connId, bytes, t: action.frame?.t ?? action.t });
  }

  #send(conn, frame) {
    this.#emit({ type: "send", connId: conn.id, frame });
  }

  #event(level, source, code, message, peerId) {
    this.actions.push({ type: "event", level, source, code, message, peerId });
  }

  #countOpen(action) {
    if (action.outbound) this.stats.dialSuccesses += 1;
    else this.stats.inbound += 1;
    this.stats.firstPeerAt ??= action.at;
  }

  // --- inputs ---

  /** Our current ticket (refreshed by rendezvous before it expires). */
  setTicket(verified) {
    this.mesh.ticket = verified.envelope ?? verified;
  }

  /** Verified tickets from rendezvous (beacons, capsules, cache). */
  addCandidates(verifiedTickets, source, now) {
    for (const t of verifiedTickets) if (!this.mesh.blocked.blocks(t.peerId, "outbound", now)) this.book.addTicket(t, source, now);
  }

  addSeeds(peerIds, now) {
    for (const id of peerIds) this.book.addSeed(id, now);
  }

  /** Peers a share link names as holders: dialed before anyone else (peerbook.js addHint). */
  addHints(peerIds, now, errand = null) {
    for (const id of peerIds) this.book.addHint(id, now, errand);
  }

  /** A DataConnection opened; `errand`: what the peer that dialed it said it is for (mesh.js errandOf). */
  opened(connId, remotePeerId, outbound, now, errand = null) {
    this.mesh.opened(connId, remotePeerId, outbound, now, errand);
  }

  /** The transport closed; frames that arrived before the close are handled first. */
  closed(connId, now) {
    const conn = this.mesh.conns.get(connId);
    if (!conn) return Promise.resolve();
    conn.inbox = (conn.inbox ?? Promise.resolve()).then(() => this.mesh.closed(connId, now));
    return conn.inbox;
  }

  dialFailed(peerId, now, reason) {
    this.mesh.dialFailed(peerId, now, reason);
  }

  /**
   * Bytes from a connection. Async only for signature checks; frames of one connection are
   * handled strictly in arrival order (a pex_req right behind a hello waits for the hello).
   */
  receive(connId, data, now) {
    const conn = this.mesh.conns.get(connId);
    if (!conn) return Promise.resolve();
    conn.inbox = (conn.inbox ?? Promise.resolve())
      .then(() => this.#receive(conn, data, now))
      .catch((error) => this.#event("error", "node", "internal_error", String(error?.stack ?? error), conn.peerId));
    return conn.inbox;
  }

  async #receive(conn, data, now) {
    if (this.mesh.conns.get(conn.id) !== conn) return;
    const size = data?.byteLength ?? data?.length ?? 0;
    conn.bytesIn += size;
    conn.framesIn += 1;
    this.stats.bytesIn += size;
    this.stats.framesIn += 1;
    conn.health.received(now);
    if (!this.#takeToken(conn, now)) {
      this.#violation(conn, RATE_LIMITED, "too many frames", now);
      return;
    }
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      // Reserved frame types (dht_*, sync_*, shard_*) belong to later versions: counted,
      // not held against the sender (docs/protocol.md "Decoding errors").
      if (error.code === UNSUPPORTED_FRAME) this.#drop(error.code);
      else this.#violation(conn, error.code, error.message, now);
      return;
    }
    if (frame.t === "bye") {
      this.mesh.byeReceived(conn, frame.reason, now);
      return;
    }
    if (frame.t === "hello") {
      await this.#onHello(conn, frame, now);
      return;
    }
    if (conn.state === "hello") {
      // Nothing before hello: a peer that skips it is not speaking this protocol.
      this.#drop(UNEXPECTED_FRAME);
      this.mesh.close(conn, UNEXPECTED_FRAME, now, { level: "warn" });
      return;
    }
    if (frame.t === "ping") {
      this.#send(conn, { t: "pong", n: frame.n, ts: frame.ts });
      return;
    }
    if (frame.t === "pong") {
      conn.health.pong(frame, now);
      return;
    }
    if (conn.state !== "open") {
      this.#drop("awaiting_approval");
      return;
    }
    if (frame.t === "pex_req") this.#onPexRequest(conn, frame, now);
    else if (frame.t === "pex") await this.#onPex(conn, frame, now);
    else if (frame.t === "gossip") await this.#onGossip(conn, frame, now);
    else if (CONTENT_FRAMES.has(frame.t)) {
      if (ERRAND_FRAMES.has(frame.t)) this.mesh.used(conn, now);
      this.actions.push({ type: "frame", connId: conn.id, peerId: conn.peerId, frame });
    }
  }

  #takeToken(conn, now) {
    conn.tokens ??= { level: FRAME_BURST, at: now };
    const bucket = conn.tokens;
    bucket.level = Math.min(FRAME_BURST, bucket.level + ((now - bucket.at) * FRAME_RATE_PER_S) / 1000);
    bucket.at = now;
    if (bucket.level < 1) return false;
    bucket.level -= 1;
    return true;
  }

  #drop(code) {
    this.stats.dropped[code] = (this.stats.dropped[code] ?? 0) + 1;
  }

  // A dropped frame that counts against the peer; too many in a minute and it is disconnected.
  #violation(conn, code, message, now) {
    this.#drop(code);
    conn.violations = conn.violations.filter((at) => now - at < VIOLATION_WINDOW_MS);
    conn.violations.push(now);
    this.#event("warn", "wire", code, message, conn.peerId);
    if (conn.violations.length > MAX_VIOLATIONS && this.mesh.conns.has(conn.id)) this.mesh.punish(conn, now);
  }

  async #onHello(conn, frame, now) {
    if (conn.state !== "hello") {
      this.#violation(conn, UNEXPECTED_FRAME, "second hello", now);
      return;
    }
    if (frame.v !== PROTOCOL_VERSION) {
      this.mesh.close(conn, UNSUPPORTED_VERSION, now, { level: "warn" });
      return;
    }
    let verified;
    try {
      verified = await verifyTicket(frame.ticket, { now, community: this.community });
      if (verified.peerId !== conn.peerId) {
        throw new ProtocolError(PEER_MISMATCH, "hello ticket is not for the connection's peer id");
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#drop(error.code);
      this.book.recordFailure(conn.peerId, now);
      this.mesh.close(conn, error.code, now, { level: "warn" });
      return;
    }
    if (this.mesh.conns.get(conn.id) !== conn || conn.state !== "hello") return;
    this.mesh.helloVerified(conn, verified, frame, now);
  }

  #onPexRequest(conn, frame, now) {
    if (this.mesh.isolated) return; // an isolated node does not hand out who it knows
    try {
      this.#send(conn, conn.pex.answer(frame, now, this.book, { exclude: new Set([conn.peerId]) }));
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#violation(conn, error.code, error.message, now);
    }
  }

  async #onPex(conn, frame, now) {
    try {
      conn.pex.accept();
    } catch (error) {
      this.#violation(conn, error.code, error.message, now);
      return;
    }
    const { accepted, rejected } = await verifyPexTickets(frame.peers, { now, community: this.community, book: this.book });
    for (const verified of accepted) {
      if (!this.mesh.blocked.blocks(verified.peerId, "outbound", now)) this.book.addTicket(verified, "pex", now);
    }
    this.stats.pexTickets += accepted.length;
    this.stats.pexRejected += rejected.length;
    for (const r of rejected) this.#drop(`pex_${r.code}`);
  }

  async #onGossip(conn, frame, now) {
    const idHex = hex(frame.id);
    if (this.log.has(idHex)) {
      this.stats.gossipDuplicates += 1;
      return;
    }
    let message;
    try {
      message = await checkGossip(frame, { now, community: this.community });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      if (GOSSIP_VIOLATIONS.has(error.code)) this.#violation(conn, error.code, error.message, now);
      else this.#drop(`gossip_${error.code}`); // too old or early: clocks differ, not malice
      return;
    }
    if (this.log.has(idHex)) {
      this.stats.gossipDuplicates += 1;
      return;
    }
    if (message.topic === TICKET_TOPIC) {
      this.log.add(idHex, message.issuedAt);
      await this.#takeTicket(message, now);
      return; // a neighbour's: taken, neither delivered nor relayed
    }
    const contentCheck = this.gossipChecks.get(message.topic);
    if (contentCheck) {
      try {
        await contentCheck(message.data, now);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        // Seen (a copy from another peer is not checked again), but never passed on. Not a
        // violation: peers that do not check this topic relay it in good faith.
        this.log.add(idHex, message.issuedAt);
        this.#drop(`gossip_${message.topic}_${error.code}`);
        this.#event("warn", "gossip", error.code, `${message.topic} from ${message.origin} dropped: ${error.message}`, conn.peerId);
        return;
      }
      if (this.log.has(idHex)) {
        this.stats.gossipDuplicates += 1;
        return;
      }
    }
    this.log.add(idHex, message.issuedAt);
    this.stats.gossipDelivered += 1;
    this.actions.push({ type: "deliver", message, from: conn.peerId });
    const relay = GossipLog.relayFrame(frame);
    if (relay) this.#flood(relay, conn);
  }

  #flood(frame, except = null) {
    const bytes = encodeFrame(frame);
    for (const conn of this.mesh.open()) {
      if (conn === except || !conn.caps.includes("gossip")) continue;
      this.#emit({ type: "send", connId: conn.id, bytes, t: "gossip" });
      if (except) this.stats.gossipRelayed += 1;
    }
  }

  /**
   * Send a frame to an open peer (the content layer's way out; its frames come back as
   * "frame" actions). Throws WireError for a frame receivers would refuse; false when the
   * peer is not connected.
   */
  sendTo(peerId, frame) {
    const conn = this.mesh.open().find((c) => c.peerId === peerId);
    if (!conn) return false;
    this.#emit({ type: "send", connId: conn.id, bytes: encodeFrame(frame), t: frame.t });
    return true;
  }

  /** sendTo for a frame already encoded by wire.js (encodeChunkFrame); false when not connected. */
  sendEncoded(peerId, bytes, t) {
    const conn = this.mesh.open().find((c) => c.peerId === peerId);
    if (!conn) return false;
    this.#emit({ type: "send", connId: conn.id, bytes, t });
    return true;
  }

  // A renewed ticket by gossip: its signer's own, then merged (the newest wins).
  async #takeTicket(message, now) {
    let ticket;
    try {
      ticket = await verifyTicket(message.data, { now, community: this.community });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#drop(`gossip_ticket_${error.code}`);
      return;
    }
    if (ticket.peerId !== message.origin) {
      this.#drop(`gossip_ticket_${PEER_MISMATCH}`);
      return;
    }
    if (this.mesh.blocked.blocks(ticket.peerId, "outbound", now)) return;
    if (this.book.addTicket(ticket, "hello", now) === "added") this.stats.ticketsRenewed += 1;
  }

  /**
   * A new ticket of this node: in hellos from now on, and sent to the open connections (gossip
   * `ticket`, ttl 0). Resolves the gossip id, or null with nobody to tell.
   */
  async renewTicket(verified, now) {
    this.setTicket(verified);
    if (!this.mesh.open().some((c) => c.caps.includes("gossip"))) return null;
    return this.publish(TICKET_TOPIC, verified.envelope ?? verified, now, { ttl: 0 });
  }

  /** Count bad content (e.g. chunk_mismatch) against an open peer, like a bad frame. */
  contentViolation(peerId, code, message, now) {
    const conn = this.mesh.open().find((c) => c.peerId === peerId);
    if (conn) this.#violation(conn, code, message, now);
  }

  /** Sign and flood a message; resolves its id (hex). */
  async publish(topic, data, now, { ttl = DEFAULT_GOSSIP_TTL } = {}) {
    const frame = await makeGossip(this.signer, { origin: this.peerId, community: this.community, topic, data, now, ttl });
    const idHex = hex(frame.id);
    this.log.add(idHex, now);
    this.stats.gossipPublished += 1;
    this.#flood(frame);
    return idHex;
  }

  /** Periodic work: timeouts, pings, stale peers, peer exchange, dialing, pruning. */
  tick(now) {
    this.mesh.tick(now);
    const live = this.book.liveCount(now);
    const open = this.mesh.open();
    let asking = open.filter((c) => c.pex.awaiting && now - c.pex.lastAskedAt < PEX_INTERVAL_MS).length;
    for (const conn of open) {
      const ping = conn.health.pingDue(now);
      if (ping) this.#send(conn, ping);
      // One question at a time is enough: an answer usually fills the book.
      if (asking < PEX_MAX_ASKING && !this.mesh.isolated && conn.caps.includes("pex") && conn.pex.shouldAsk(now, live)) {
        asking += 1;
        this.stats.pexRequests += 1;
        this.#send(conn, conn.pex.request(now));
      }
    }
    if (now >= this.nextPruneAt) {
      this.nextPruneAt = now + PRUNE_EVERY_MS;
      this.log.prune(now);
      this.book.prune(now);
    }
  }

  /** When tick() should run next (ms); callers may tick earlier. */
  nextDeadline(now) {
    return Math.min(this.mesh.nextDeadline(now), this.nextPruneAt);
  }

  // --- decisions from the UI ---

  /** Mesh.block: options { direction, reason, until }; returns the block. */
  block(peerId, now, options) {
    return this.mesh.block(peerId, now, options);
  }

  unblock(peerId) {
    return this.mesh.unblock(peerId);
  }

  approve(peerId, now, options) {
    this.mesh.approve(peerId, now, options);
  }

  deny(peerId, now) {
    this.mesh.deny(peerId, now);
  }

  setPaused(paused, now) {
    this.mesh.setPaused(paused, now);
  }

  /** Mesh.setPause: "inbound" | "outbound" | "both", until a time (ms) or null. */
  setPause(direction, until, now) {
    this.mesh.setPause(direction, until, now);
  }

  leave(now) {
    this.mesh.leave(now);
  }

  setIsolated(isolated, now) {
    this.mesh.setIsolated(isolated, now);
  }

  setApproval(mode, now) {
    this.mesh.setApproval(mode, now);
  }

  // --- views ---

  /** Open connections with what the UI shows. */
  connectedPeers(now) {
    return this.mesh.open().map((c) => ({
      peerId: c.peerId,
      connId: c.id,
      outbound: c.outbound,
      since: c.since,
      rtt: c.health.rtt,
      loss: c.health.loss,
      health: c.health.state(now),
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      caps: c.caps,
      agent: c.agent,
    }));
  }

  /** online / degraded (with the reason) / offline, as the mesh sees it. */
  status(now) {
    const open = this.mesh.open();
    if (this.mesh.paused) return { state: "offline", reason: "paused", peers: 0 };
    if (open.length === 0) return { state: "offline", reason: "no peers connected", peers: 0 };
    const idle = open.filter((c) => c.health.state(now) !== "ok").length;
    if (idle > 0) return { state: "degraded", reason: `${idle} peer(s) not responding`, peers: open.length };
    if (this.mesh.isolated) return { state: "degraded", reason: "isolated: allowed peers only", peers: open.length };
    return { state: "online", reason: null, peers: open.length };
  }
}
