// What the person at the keyboard decided about connections: the pause (inbound, outbound or
// both, until a deadline or until resumed) and the block list (per peer id: a direction, an
// optional reason and expiry). Pure: callers pass `now` (ms since the epoch); deadlines are
// absolute times, so they hold across a reload. docs/browser.md "Pause and blocks".
import { PEER_ID_RE } from "./encoding.js";

/** @typedef {"inbound" | "outbound" | "both"} Direction */
export const DIRECTIONS = Object.freeze(["both", "inbound", "outbound"]);

// Stable error codes (the UI shows them, the tests match on them).
export const BAD_PEER_ID = "bad_peer_id";
export const OWN_PEER_ID = "own_peer_id";
export const BAD_DIRECTION = "bad_direction";
export const BAD_REASON = "bad_reason";
export const BAD_DEADLINE = "bad_deadline";
export const BAD_BLOCKS_FILE = "bad_blocks_file";
export const TOO_MANY_BLOCKS = "too_many_blocks";

export const MAX_REASON_CHARS = 200;
export const MAX_BLOCKS = 10_000;
export const MAX_BLOCKS_FILE_CHARS = 2_000_000;
export const BLOCKS_FORMAT = "swarm-blocks";
export const BLOCKS_VERSION = 1;
// The shortest timed pause or block (a custom duration in minutes may be as small as this).
export const MIN_DURATION_MS = 6_000;

export class ControlError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ControlError";
    this.code = code;
  }
}

const fail = (code, message) => {
  throw new ControlError(code, message);
};

function checkDirection(direction) {
  if (!DIRECTIONS.includes(direction)) fail(BAD_DIRECTION, `direction must be one of ${DIRECTIONS.join(", ")}`);
  return /** @type {Direction} */ (direction);
}

/** A deadline: null (none) or a whole number of ms since the epoch, after `now`. */
function checkUntil(until, now) {
  if (until === null || until === undefined) return null;
  if (!Number.isSafeInteger(until) || until <= now) fail(BAD_DEADLINE, "the end time must be a time in the future");
  return until;
}

/**
 * A deadline `minutes` from now (a duration the person chose), or null for "until I say".
 * @param {number | null} minutes
 * @param {number} now
 */
export function deadlineAfter(minutes, now) {
  if (minutes === null || minutes === undefined) return null;
  if (typeof minutes !== "number" || !Number.isFinite(minutes) || minutes * 60_000 < MIN_DURATION_MS || minutes > 366 * 24 * 60) {
    fail(BAD_DEADLINE, `a duration is ${MIN_DURATION_MS / 60_000} minutes to a year`);
  }
  return Math.round(now + minutes * 60_000);
}

/** A peer id someone typed or a file holds: trimmed, checked; `selfId` may not be blocked. */
export function checkPeerId(peerId, selfId = null) {
  const id = typeof peerId === "string" ? peerId.trim() : "";
  if (!PEER_ID_RE.test(id)) fail(BAD_PEER_ID, "not a peer id (p followed by 32 characters a-z, 2-7)");
  if (id === selfId) fail(OWN_PEER_ID, "this is this page's own peer id");
  return id;
}

function checkReason(reason) {
  if (reason === null || reason === undefined) return null;
  if (typeof reason !== "string") fail(BAD_REASON, "a reason is text");
  const text = reason.trim();
  if (text.length > MAX_REASON_CHARS) fail(BAD_REASON, `a reason is at most ${MAX_REASON_CHARS} characters`);
  return text || null;
}

// --- pause ---

/** The pause: which directions are paused and until when (null: until resumed). */
export class Pause {
  constructor() {
    this.inbound = false;
    this.outbound = false;
    /** @type {number | null} */
    this.until = null;
  }

  /** "both" | "inbound" | "outbound", or null when nothing is paused. */
  get direction() {
    if (this.inbound && this.outbound) return "both";
    if (this.inbound) return "inbound";
    if (this.outbound) return "outbound";
    return null;
  }

  get active() {
    return this.inbound || this.outbound;
  }

  /** Whether connections of `direction` ("inbound" | "outbound") are paused. */
  covers(direction) {
    return direction === "inbound" ? this.inbound : this.outbound;
  }

  /**
   * Pause `direction` until `until` (null: until resumed). Replaces the previous pause.
   * @param {Direction} direction
   * @param {number | null} until
   * @param {number} now
   */
  set(direction, until, now) {
    checkDirection(direction);
    const deadline = checkUntil(until, now);
    this.inbound = direction !== "outbound";
    this.outbound = direction !== "inbound";
    this.until = deadline;
  }

  resume() {
    this.inbound = false;
    this.outbound = false;
    this.until = null;
  }

  /** The deadline has come: resume and return what was paused; null when nothing ends now. */
  expire(now) {
    if (!this.active || this.until === null || now < this.until) return null;
    const ended = { direction: this.direction, until: this.until };
    this.resume();
    return ended;
  }

  nextDeadline() {
    return this.active && this.until !== null ? this.until : Infinity;
  }

  /** What the settings store keeps; null when nothing is paused. */
  toRecord() {
    return this.active ? { direction: this.direction, until: this.until } : null;
  }

  /**
   * From the settings store: `record` ({direction, until}) or the older `paused` boolean.
   * A deadline that passed while the page was closed means not paused (`expired` says so).
   */
  static fromSettings({ pause = null, paused = false } = {}, now) {
    const p = new Pause();
    let expired = null;
    if (pause && typeof pause === "object" && DIRECTIONS.includes(pause.direction)) {
      const until = Number.isSafeInteger(pause.until) ? pause.until : null;
      if (until !== null && until <= now) expired = { direction: pause.direction, until };
      else {
        p.inbound = pause.direction !== "outbound";
        p.outbound = pause.direction !== "inbound";
        p.until = until;
      }
    } else if (paused === true) {
      p.inbound = true;
      p.outbound = true;
    }
    return { pause: p, expired };
  }
}

// --- blocks ---

/**
 * @typedef {object} Block
 * @property {string} peerId
 * @property {Direction} direction
 * @property {string | null} reason
 * @property {number | null} until  ms since the epoch; null: until lifted
 * @property {number} since
 */

/**
 * Blocked peer ids with a direction (inbound: it may not connect to this page; outbound: this
 * page does not dial it; both), an optional reason and an optional expiry. Iterating gives
 * the peer ids, `has` and `size` as a Set of them (what the page used before).
 */
export class BlockList {
  constructor() {
    /** @type {Map<string, Block>} */
    this.entries = new Map();
  }

  get size() {
    return this.entries.size;
  }

  [Symbol.iterator]() {
    return this.entries.keys();
  }

  /** Blocked in some direction (expired entries go at the next `expire`). */
  has(peerId) {
    return this.entries.has(peerId);
  }

  get(peerId) {
    return this.entries.get(peerId) ?? null;
  }

  /** Whether connections of `direction` ("inbound" | "outbound") with `peerId` are refused at `now`. */
  blocks(peerId, direction, now) {
    const entry = this.entries.get(peerId);
    if (!entry || (entry.until !== null && now >= entry.until)) return false;
    return entry.direction === "both" || entry.direction === direction;
  }

  /** Peer ids this page does not dial at `now`. */
  outboundIds(now) {
    return [...this.entries.values()].filter((e) => this.blocks(e.peerId, "outbound", now)).map((e) => e.peerId);
  }

  /**
   * Block `peerId` (replaces an earlier block of it). Throws ControlError with a stable code.
   * @param {string} peerId
   * @param {{ direction?: Direction, reason?: string | null, until?: number | null, selfId?: string | null }} options
   * @param {number} now
   * @returns {Block}
   */
  add(peerId, { direction = "both", reason = null, until = null, selfId = null } = {}, now) {
    const entry = {
      peerId: checkPeerId(peerId, selfId),
      direction: checkDirection(direction),
      reason: checkReason(reason),
      until: checkUntil(until, now),
      since: now,
    };
    if (!this.entries.has(entry.peerId) && this.entries.size >= MAX_BLOCKS) fail(TOO_MANY_BLOCKS, `at most ${MAX_BLOCKS} blocks`);
    this.entries.set(entry.peerId, entry);
    return entry;
  }

  /** Lift the block of `peerId`; false when it had none. */
  delete(peerId) {
    return this.entries.delete(peerId);
  }

  /** Lift the blocks whose time has come; returns them. */
  expire(now) {
    const lifted = [];
    for (const entry of this.entries.values()) {
      if (entry.until !== null && now >= entry.until) lifted.push(entry);
    }
    for (const entry of lifted) this.entries.delete(entry.peerId);
    return lifted;
  }

  nextDeadline() {
    let next = Infinity;
    for (const entry of this.entries.values()) if (entry.until !== null) next = Math.min(next, entry.until);
    return next;
  }

  /** Oldest first. */
  list() {
    return [...this.entries.values()].sort((a, b) => a.since - b.since || (a.peerId < b.peerId ? -1 : 1)).map((e) => ({ ...e }));
  }

  // --- the settings store ---

  toRecords() {
    return this.list();
  }

  /**
   * From the settings store: block records, and the older `blocked` list of peer ids (both
   * directions, no expiry). Records that do not check out or have expired are left out.
   */
  static fromSettings({ blocks = [], blocked = [] } = {}, now) {
    const list = new BlockList();
    for (const id of Array.isArray(blocked) ? blocked : []) {
      try {
        list.add(id, {}, now);
      } catch {
        // a malformed id in an old store: dropped
      }
    }
    for (const record of Array.isArray(blocks) ? blocks : []) {
      try {
        list.#restore(readEntry(record, now), now);
      } catch {
        // expired or malformed: dropped
      }
    }
    return list;
  }

  #restore(entry, now) {
    this.add(entry.peerId, entry, now);
    this.entries.get(entry.peerId).since = entry.since ?? now;
  }

  // --- export and import ---

  /** The export file's content (docs/browser.md "Pause and blocks"). */
  exportFile(now) {
    return {
      format: BLOCKS_FORMAT,
      version: BLOCKS_VERSION,
      exported_at: now,
      blocks: this.list().map((e) => ({ peer_id: e.peerId, direction: e.direction, reason: e.reason, until: e.until, since: e.since })),
    };
  }

  /**
   * Merge blocks read by `parseBlocksFile`: a peer not blocked yet is added; one blocked
   * already keeps its entry, widened to both directions when the two differ, with the later
   * expiry (none beats any) and its reason (or the imported one when it had none).
   * @param {Block[]} imported
   * @returns {{ added: number, updated: number, unchanged: number }}
   */
  merge(imported, now) {
    const counts = { added: 0, updated: 0, unchanged: 0 };
    if (this.size + imported.filter((e) => !this.entries.has(e.peerId)).length > MAX_BLOCKS) {
      fail(BAD_BLOCKS_FILE, `at most ${MAX_BLOCKS} blocks in all`);
    }
    for (const entry of imported) {
      const mine = this.entries.get(entry.peerId);
      if (!mine) {
        this.entries.set(entry.peerId, { ...entry, since: entry.since ?? now });
        counts.added += 1;
        continue;
      }
      const merged = {
        ...mine,
        direction: mine.direction === entry.direction ? mine.direction : "both",
        until: mine.until === null || entry.until === null ? null : Math.max(mine.until, entry.until),
        reason: mine.reason ?? entry.reason,
      };
      const same = merged.direction === mine.direction && merged.until === mine.until && merged.reason === mine.reason;
      this.entries.set(entry.peerId, merged);
      counts[same ? "unchanged" : "updated"] += 1;
    }
    return counts;
  }
}

// One entry of the store or of an export file (peer_id or peerId), checked.
function readEntry(record, now, selfId = null) {
  if (!record || typeof record !== "object" || Array.isArray(record)) fail(BAD_BLOCKS_FILE, "a block is an object");
  const peerId = checkPeerId(record.peer_id ?? record.peerId, selfId);
  const direction = checkDirection(record.direction ?? "both");
  const reason = checkReason(record.reason);
  const until = record.until ?? null;
  if (until !== null && !Number.isSafeInteger(until)) fail(BAD_DEADLINE, "until is ms since the epoch or null");
  const since = record.since ?? null;
  if (since !== null && !Number.isSafeInteger(since)) fail(BAD_BLOCKS_FILE, "since is ms since the epoch or null");
  return { peerId, direction, reason, until, since: since ?? now };
}

/**
 * Read an export file's text. All or nothing: any fault throws ControlError
 * `bad_blocks_file` naming the first fault (and the entry's index); nothing is half-read.
 * Entries that expired already are left out; a peer listed twice is an error.
 * @param {string} text
 * @param {{ now: number, selfId?: string | null }} options
 * @returns {Block[]}
 */
export function parseBlocksFile(text, { now, selfId = null }) {
  if (typeof text !== "string" || text.length > MAX_BLOCKS_FILE_CHARS) fail(BAD_BLOCKS_FILE, "not a block list export (too large)");
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    fail(BAD_BLOCKS_FILE, "not a block list export (not JSON)");
  }
  if (!data || typeof data !== "object" || data.format !== BLOCKS_FORMAT) fail(BAD_BLOCKS_FILE, `not a block list export (format is not "${BLOCKS_FORMAT}")`);
  if (data.version !== BLOCKS_VERSION) fail(BAD_BLOCKS_FILE, `unsupported block list version ${JSON.stringify(data.version)}`);
  if (!Array.isArray(data.blocks)) fail(BAD_BLOCKS_FILE, "blocks must be a list");
  if (data.blocks.length > MAX_BLOCKS) fail(BAD_BLOCKS_FILE, `at most ${MAX_BLOCKS} blocks`);
  const seen = new Set();
  const entries = [];
  data.blocks.forEach((record, i) => {
    let entry;
    try {
      entry = readEntry(record, now, selfId);
    } catch (error) {
      fail(BAD_BLOCKS_FILE, `block ${i}: ${error.code}: ${error.message}`);
    }
    if (seen.has(entry.peerId)) fail(BAD_BLOCKS_FILE, `block ${i}: ${entry.peerId} is listed twice`);
    seen.add(entry.peerId);
    if (entry.until === null || entry.until > now) entries.push(entry);
  });
  return entries;
}
