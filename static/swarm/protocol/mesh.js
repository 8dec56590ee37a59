// The mesh: which connections this node keeps. Hello exchange, target size, dialing with
// backoff, duplicate connections, the manual approval queue, blocks, pause and isolation.
// Pure: callers pass `now`; decisions come out as actions through `emit`.
import { BlockList, Pause } from "./controls.js";
import { Health } from "./health.js";
import { PexChannel } from "./pex.js";
import { PROTOCOL_VERSION } from "./wire.js";

/** @type {Readonly<MeshOptions>} */
export const MESH_DEFAULTS = Object.freeze({
  target: 6, // connections the node dials up to
  max: 10, // connections it accepts (inbound beyond this get bye "mesh_full")
  spare: 4, // errand connections it takes beyond max (a download from it, a DHT request)
  errandIdleMs: 30_000, // an errand connection beyond max with no use for this long is closed
  maxDialing: 3,
  dialTimeoutMs: 15_000,
  helloTimeoutMs: 10_000,
  approvalTimeoutMs: 120_000,
  approval: "auto", // or "manual": new peers wait in the approval queue
});
export const DENY_MS = 10 * 60_000;
export const PEER_UNAVAILABLE = "peer_unavailable"; // dialFailed reason: signaling says it is not there
export const LEAVING = "leaving"; // bye reason of a peer going away
const REFUSED_RETRY_MS = 60_000; // after a "mesh_full"/"paused"/... bye
const MISBEHAVING_RETRY_MS = 30 * 60_000;
const STALE_RETRY_MS = 2_000; // reconnect soon after dropping a stale connection

let nextSerial = 0;

export class Connection {
  constructor(id, peerId, outbound, now) {
    this.id = id;
    this.peerId = peerId;
    this.outbound = outbound;
    this.serial = nextSerial++;
    this.state = "hello"; // -> "approval" -> "open"
    this.openedAt = now;
    this.since = null; // when it became open
    this.deadline = null; // hello or approval deadline
    this.ticket = null; // verified ticket from the peer's hello
    this.caps = [];
    this.agent = null;
    this.health = new Health(now);
    this.pex = new PexChannel();
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.framesIn = 0;
    this.framesOut = 0;
    this.violations = [];
    this.tokens = null; // frame rate bucket, set by the node
    this.errand = null; // taken beyond max for this errand (errandOf); null: an ordinary member
    this.usedAt = now; // last frame of a download or DHT request
  }
}

/**
 * @typedef {object} MeshOptions
 * @property {number} target
 * @property {number} max
 * @property {number} spare
 * @property {number} errandIdleMs
 * @property {number} maxDialing
 * @property {number} dialTimeoutMs
 * @property {number} helloTimeoutMs
 * @property {number} approvalTimeoutMs
 * @property {"auto" | "manual"} approval
 */

export class Mesh {
  /** @param {{ selfId: string, book: import("./peerbook.js").PeerBook, emit: (action: object) => void, options?: Partial<MeshOptions> }} args */
  constructor({ selfId, book, emit, options = {} }) {
    this.selfId = selfId;
    this.book = book;
    this.emit = emit;
    this.options = { ...MESH_DEFAULTS, ...options };
    this.conns = new Map(); // conn id -> Connection
    this.dialing = new Map(); // peer id -> deadline
    this.blocked = new BlockList(); // per peer: inbound, outbound or both, maybe until a time
    this.allowed = new Set(); // "always" allowed: never queued, kept when isolated, not held to max
    this.denied = new Map(); // peer id -> until
    this.pause = new Pause(); // inbound, outbound or both, maybe until a time
    this.isolated = false;
    this.canDial = true; // false while the adapter cannot reach signaling (no new dials)
    this.ticket = null; // our own ticket, sent in hello
    this.caps = ["gossip", "pex"];
    this.agent = "swarm-web/1";
    // Whether this node takes an errand beyond its maximum: it holds the manifest, it runs a DHT.
    this.admits = (/** @type {{ errand: string, manifest?: string }} */ _errand) => false;
  }

  /** Fully paused (both directions): nothing is dialed, accepted or sent. */
  get paused() {
    return this.pause.inbound && this.pause.outbound;
  }

  // --- queries ---

  connsOf(peerId) {
    return [...this.conns.values()].filter((c) => c.peerId === peerId);
  }

  open() {
    return [...this.conns.values()].filter((c) => c.state === "open");
  }

  queue() {
    return [...this.conns.values()].filter((c) => c.state === "approval");
  }

  #refusal(peerId, outbound, now) {
    const direction = outbound ? "outbound" : "inbound";
    if (this.pause.covers(direction)) return "paused";
    if (this.blocked.blocks(peerId, direction, now)) return "blocked";
    if (this.isolated && !this.allowed.has(peerId)) return "isolated";
    if ((this.denied.get(peerId) ?? 0) > now) return "denied";
    // Dials in flight count: once they open, the node must still be within its maximum.
    // A peer always allowed is let in beyond it (the person chose it over the limit).
    if (!outbound && !this.allowed.has(peerId) && this.conns.size + this.dialing.size >= this.options.max) return "mesh_full";
    return null;
  }

  // --- connection lifecycle ---

  /** Connections taken beyond the maximum for an errand and not yet members. */
  errands() {
    let n = 0;
    for (const conn of this.conns.values()) if (conn.errand !== null) n += 1;
    return n;
  }

  /**
   * A DataConnection opened (we dialed it, or the peer did). `errand`: what the dialer said it
   * is for (errandOf), inbound only. Returns the Connection or null.
   */
  opened(connId, peerId, outbound, now, errand = null) {
    if (this.conns.has(connId)) return this.conns.get(connId);
    if (outbound) this.dialing.delete(peerId);
    let refusal = this.#refusal(peerId, outbound, now);
    // A full node still takes a download of what it holds, or a DHT request, within `spare`.
    const asErrand = refusal === "mesh_full" && errand !== null && this.errands() < this.options.spare && this.admits(errand);
    if (asErrand) refusal = null;
    if (refusal) {
      // A fully paused node sends nothing at all, not even the reason; paused one way, it says so.
      if (refusal !== "paused" || !this.paused) this.emit({ type: "send", connId, frame: { t: "bye", reason: refusal } });
      this.emit({ type: "close", connId, reason: refusal });
      this.emit({
        type: "event",
        level: "info",
        source: "mesh",
        code: `refused_${refusal}`,
        peerId,
        message: `refused ${outbound ? "outbound" : "inbound"} connection: ${refusal}`,
      });
      return null;
    }
    const conn = new Connection(connId, peerId, outbound, now);
    conn.deadline = now + this.options.helloTimeoutMs;
    if (asErrand) {
      conn.errand = errand;
      this.emit({ type: "event", level: "info", source: "mesh", code: "errand_taken", peerId, message: `taken beyond the maximum for ${errand.errand}` });
    }
    this.conns.set(connId, conn);
    const hello = { t: "hello", v: PROTOCOL_VERSION, ticket: this.ticket, caps: this.caps, agent: this.agent };
    this.emit({ type: "send", connId, frame: hello });
    return conn;
  }

  /** The peer's hello carried a valid ticket for its PeerJS id. */
  helloVerified(conn, verified, frame, now) {
    conn.ticket = verified;
    conn.caps = frame.caps;
    conn.agent = frame.agent ?? null;
    if (!this.#resolveDuplicates(conn, now)) return;
    if (this.options.approval === "manual" && !this.allowed.has(conn.peerId)) {
      conn.state = "approval";
      conn.deadline = now + this.options.approvalTimeoutMs;
      this.emit({ type: "event", level: "info", source: "mesh", code: "approval_requested", peerId: conn.peerId, message: "peer waits for approval" });
      return;
    }
    this.#makeOpen(conn, now);
  }

  #makeOpen(conn, now) {
    conn.state = "open";
    conn.since = now;
    conn.deadline = null;
    this.book.addTicket(conn.ticket, "hello", now);
    this.book.recordSuccess(conn.peerId, now);
    this.emit({ type: "opened", connId: conn.id, peerId: conn.peerId, outbound: conn.outbound, at: now });
    this.emit({
      type: "event",
      level: "info",
      source: "mesh",
      code: "peer_open",
      peerId: conn.peerId,
      message: `connected (${conn.outbound ? "outbound" : "inbound"})`,
    });
  }

  // Two connections to one peer (both dialed at once, or it came back): keep one, the same
  // one on both sides. A newer ticket means the peer restarted: its connection wins.
  // Otherwise the connection dialed by the smaller peer id wins; same dialer: the newer.
  #resolveDuplicates(conn, now) {
    for (const other of this.connsOf(conn.peerId)) {
      if (other === conn || other.ticket === null) continue;
      const loser = this.#preferred(conn, other) === conn ? other : conn;
      this.close(loser, "duplicate", now);
      if (loser === conn) return false;
    }
    return true;
  }

  #preferred(a, b) {
    const [ta, tb] = [a.ticket, b.ticket];
    if (ta.nonce !== tb.nonce) {
      if (ta.issuedAt !== tb.issuedAt) return ta.issuedAt > tb.issuedAt ? a : b;
      return ta.nonce > tb.nonce ? a : b;
    }
    // biome-ignore lint/complexity/useMathMinMax: peer ids are strings
    const low = this.selfId < a.peerId ? this.selfId : a.peerId;
    const byLow = (c) => (c.outbound ? this.selfId : c.peerId) === low;
    if (byLow(a) !== byLow(b)) return byLow(a) ? a : b;
    return a.serial > b.serial ? a : b;
  }

  /**
   * Say why (bye) and close.
   * @param {Connection} conn
   * @param {string} reason
   * @param {number} now
   * @param {{ level?: string, retryAt?: number }} [opts]
   */
  close(conn, reason, now, { level = "info", retryAt } = {}) {
    if (!this.conns.has(conn.id)) return;
    this.conns.delete(conn.id);
    this.emit({ type: "send", connId: conn.id, frame: { t: "bye", reason } });
    this.emit({ type: "close", connId: conn.id, reason });
    if (retryAt !== undefined) this.book.deferDial(conn.peerId, retryAt);
    this.#closedEvent(conn, reason, now, level);
  }

  /** The transport closed (the peer left, or the network did). */
  closed(connId, now) {
    const conn = this.conns.get(connId);
    if (!conn) return;
    this.conns.delete(connId);
    if (conn.state === "hello" && conn.outbound) this.book.recordFailure(conn.peerId, now);
    this.#closedEvent(conn, "closed", now, "info");
  }

  /** The peer said bye. */
  byeReceived(conn, reason, now) {
    if (!this.conns.has(conn.id)) return;
    this.conns.delete(conn.id);
    this.emit({ type: "close", connId: conn.id, reason: `bye_${reason}` });
    if (["blocked", "denied", "isolated", "misbehaving"].includes(reason)) this.book.deferDial(conn.peerId, now + DENY_MS);
    // Its ticket is stale now; a newer one (the page reloaded) may be dialed at once.
    else if (reason === LEAVING) this.book.recordGone(conn.peerId);
    else if (reason !== "duplicate") this.book.deferDial(conn.peerId, now + REFUSED_RETRY_MS);
    this.#closedEvent(conn, `bye_${reason}`, now, "info");
  }

  #closedEvent(conn, reason, _now, level) {
    if (conn.state === "open") this.emit({ type: "closed", connId: conn.id, peerId: conn.peerId, reason });
    this.emit({ type: "event", level, source: "mesh", code: `peer_${reason}`, peerId: conn.peerId, message: `disconnected: ${reason}` });
  }

  /** Drop a peer that keeps breaking the protocol; it may try again much later. */
  punish(conn, now) {
    this.book.recordFailure(conn.peerId, now, { backoffMs: MISBEHAVING_RETRY_MS });
    this.close(conn, "misbehaving", now, { level: "warn" });
  }

  /** The peer sent a frame of a download or a DHT request on `conn`: it is in use. */
  used(conn, now) {
    conn.usedAt = now;
  }

  dialFailed(peerId, now, reason = "unreachable") {
    // Whoever dialed it (the mesh, the DHT, an errand): signaling says its ticket is stale.
    if (reason === PEER_UNAVAILABLE) this.book.recordGone(peerId);
    if (!this.dialing.delete(peerId)) return;
    this.book.recordFailure(peerId, now);
    this.emit({ type: "event", level: "info", source: "mesh", code: "dial_failed", peerId, message: `could not connect: ${reason}` });
  }

  // --- periodic work: timeouts, stale connections, dialing ---

  tick(now) {
    for (const conn of [...this.conns.values()]) {
      if (conn.deadline !== null && now >= conn.deadline) {
        const reason = conn.state === "hello" ? "hello_timeout" : "approval_timeout";
        if (conn.state === "hello") this.book.recordFailure(conn.peerId, now);
        this.close(conn, reason, now);
      } else if (conn.state === "open" && conn.health.state(now) === "stale") {
        this.close(conn, "stale", now, { level: "warn", retryAt: now + STALE_RETRY_MS });
      } else if (conn.errand !== null && now >= conn.usedAt + this.options.errandIdleMs) {
        // Its errand is done: closed while the node is beyond its maximum, else it stays as a member.
        if (this.conns.size > this.options.max) this.close(conn, "idle", now);
        else conn.errand = null;
      }
    }
    for (const [peerId, deadline] of this.dialing) if (now >= deadline) this.dialFailed(peerId, now, "timeout");
    for (const [peerId, until] of this.denied) if (until <= now) this.denied.delete(peerId);
    this.#expireControls(now);
    this.#dial(now);
  }

  // A timed pause or block whose time has come lifts itself (the adapter saves the settings).
  #expireControls(now) {
    const ended = this.pause.expire(now);
    if (ended) {
      const until = new Date(ended.until).toISOString();
      this.emit({ type: "event", level: "info", source: "mesh", code: "pause_ended", message: `pause (${ended.direction}) ended at ${until}: resumed` });
    }
    for (const entry of this.blocked.expire(now)) {
      this.emit({ type: "event", level: "info", source: "mesh", code: "block_expired", peerId: entry.peerId, message: `block (${entry.direction}) expired` });
    }
  }

  #dial(now) {
    if (this.pause.outbound || !this.canDial) return;
    const need = this.options.target - this.conns.size - this.dialing.size;
    const slots = Math.min(need, this.options.maxDialing - this.dialing.size);
    if (slots <= 0) return;
    const exclude = new Set([this.selfId, ...this.blocked.outboundIds(now), ...this.dialing.keys(), ...this.denied.keys()]);
    for (const conn of this.conns.values()) exclude.add(conn.peerId);
    const allow = this.isolated ? this.allowed : null;
    for (const entry of this.book.dialCandidates(now, { exclude, limit: slots, allow })) {
      this.dialing.set(entry.peerId, now + this.options.dialTimeoutMs);
      this.emit({ type: "dial", peerId: entry.peerId, ticket: entry.ticket, errand: entry.errand ?? null });
    }
  }

  nextDeadline(now) {
    let next = Infinity;
    for (const conn of this.conns.values()) {
      if (conn.deadline !== null) next = Math.min(next, conn.deadline);
      if (conn.state === "open") next = Math.min(next, conn.health.nextDeadline(now));
      if (conn.errand !== null) next = Math.min(next, conn.usedAt + this.options.errandIdleMs);
    }
    for (const deadline of this.dialing.values()) next = Math.min(next, deadline);
    return Math.min(next, this.pause.nextDeadline(), this.blocked.nextDeadline());
  }

  // --- what the person at the keyboard decides ---

  /**
   * Dial `peerId` now, beyond the target (the page's "Connect by id"; the Python mirror has no
   * person at the keyboard). False when it is this peer, blocked outbound, connected or being
   * dialed, or when outbound connections are paused. `errand`: what the dial is for (errandOf),
   * told to the peer so that it takes the connection even when full.
   */
  dialNow(peerId, now, errand = null) {
    if (peerId === this.selfId || this.blocked.blocks(peerId, "outbound", now) || this.dialing.has(peerId) || this.connsOf(peerId).length > 0) return false;
    if (!this.canDial || this.pause.outbound) return false;
    this.dialing.set(peerId, now + this.options.dialTimeoutMs);
    this.emit({ type: "dial", peerId, ticket: null, errand });
    return true;
  }

  approve(peerId, now, { always = false } = {}) {
    if (always) this.allowed.add(peerId);
    for (const conn of this.connsOf(peerId)) if (conn.state === "approval") this.#makeOpen(conn, now);
  }

  deny(peerId, now) {
    this.denied.set(peerId, now + DENY_MS);
    this.book.deferDial(peerId, now + DENY_MS);
    for (const conn of this.connsOf(peerId)) this.close(conn, "denied", now);
  }

  /**
   * Block a peer (controls.js BlockList.add: throws ControlError on a bad id or option).
   * Inbound: its connections to this page are refused and closed; outbound: this page does not
   * dial it (and forgets its address); both: neither, and it is no longer "always" allowed.
   * @param {string} peerId
   * @param {number} now
   * @param {{ direction?: "inbound" | "outbound" | "both", reason?: string | null, until?: number | null }} [options]
   */
  block(peerId, now, options = {}) {
    const entry = this.blocked.add(peerId, { ...options, selfId: this.selfId }, now);
    this.#enforce(entry, now);
    return entry;
  }

  /** Merge blocks read from an export file (controls.js parseBlocksFile) and enforce them. */
  importBlocks(entries, now) {
    const counts = this.blocked.merge(entries, now);
    for (const { peerId } of entries) this.#enforce(this.blocked.get(peerId), now);
    return counts;
  }

  #enforce(entry, now) {
    const { peerId } = entry;
    if (entry.direction === "both") this.allowed.delete(peerId);
    if (entry.direction !== "inbound") {
      this.dialing.delete(peerId);
      this.book.remove(peerId);
    }
    for (const conn of this.connsOf(peerId)) {
      if (this.blocked.blocks(peerId, conn.outbound ? "outbound" : "inbound", now)) this.close(conn, "blocked", now);
    }
  }

  unblock(peerId) {
    return this.blocked.delete(peerId);
  }

  setApproval(mode, now) {
    this.options.approval = mode === "manual" ? "manual" : "auto";
    if (this.options.approval === "auto") for (const conn of this.queue()) this.#makeOpen(conn, now);
  }

  /** Pause both ways until resumed (true), or resume (false). */
  setPaused(paused, now) {
    if (paused) this.setPause("both", null, now);
    else this.pause.resume();
  }

  /**
   * Pause `direction` until `until` (ms since the epoch; null: until resumed), replacing an
   * earlier pause. Open connections of a paused direction close with bye "paused"; then inbound
   * refuses new inbound connections with bye "paused" (fully paused: with no word at all),
   * outbound dials none.
   * @param {"inbound" | "outbound" | "both"} direction
   * @param {number | null} until
   * @param {number} now
   */
  setPause(direction, until, now) {
    this.pause.set(direction, until, now);
    if (this.pause.outbound) this.dialing.clear();
    for (const conn of [...this.conns.values()]) if (this.pause.covers(conn.outbound ? "outbound" : "inbound")) this.close(conn, "paused", now);
  }

  /** The page is going away: tell every peer (bye "leaving") so nobody waits for a timeout. */
  leave(now) {
    this.dialing.clear();
    for (const conn of [...this.conns.values()]) this.close(conn, LEAVING, now);
  }

  /** Isolation: only "always" approved peers stay connected or get dialed. */
  setIsolated(isolated, now) {
    this.isolated = Boolean(isolated);
    if (!this.isolated) return;
    for (const peerId of [...this.dialing.keys()]) if (!this.allowed.has(peerId)) this.dialing.delete(peerId);
    for (const conn of [...this.conns.values()]) if (!this.allowed.has(conn.peerId)) this.close(conn, "isolated", now);
  }
}
