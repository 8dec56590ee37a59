// The peers this node knows about: verified tickets (newest per peer wins), seeds, and the
// success/failure history that ranks them for dialing. Pure: `now` is always passed in.

export const DEFAULT_CAPACITY = 256;
const DAY_MS = 86_400_000;
const RECENCY_HALF_LIFE_MS = DAY_MS;
const BACKOFF_BASE_MS = 5_000;
const BACKOFF_MAX_MS = 10 * 60_000;
// A cached peer with no success for this long is forgotten.
const FORGET_AFTER_MS = 14 * DAY_MS;

const HINT_BONUS = 3; // above any live, proven peer: the link says it holds the file
const SOURCE_RANK = { hello: 4, pex: 3, beacon: 3, capsule: 2, seed: 2, cache: 1 };

function newEntry(peerId, now, source) {
  return {
    peerId,
    ticket: null,
    issuedAt: 0,
    expiresAt: 0,
    nonce: null,
    signal: [],
    caps: [],
    source,
    seed: false,
    firstSeen: now,
    lastSeen: now,
    successes: 0,
    failures: 0,
    consecutiveFailures: 0,
    lastSuccess: 0,
    lastFailure: 0,
    nextDialAt: 0,
    // issuedAt of the ticket held when signaling said the peer is not there: not dialed (nor
    // passed on in PEX) again until a newer ticket of it arrives or it connects to us.
    goneAtIssued: null,
    hint: false,
    errand: null, // what a hint is dialed for (mesh.js errandOf): a download of its manifest
  };
}

// Signaling said the entry's peer was not there while it held a ticket at least as new.
const goneFor = (entry, issuedAt) => entry.goneAtIssued !== null && entry.goneAtIssued !== undefined && issuedAt <= entry.goneAtIssued;
const isGone = (entry) => goneFor(entry, entry.issuedAt);

export class PeerBook {
  /** @param {{ selfId?: string, capacity?: number, random?: () => number }} [args] */
  constructor({ selfId, capacity = DEFAULT_CAPACITY, random = Math.random } = {}) {
    this.selfId = selfId;
    this.capacity = capacity;
    this.random = random;
    this.entries = new Map();
  }

  get size() {
    return this.entries.size;
  }

  get(peerId) {
    return this.entries.get(peerId);
  }

  has(peerId) {
    return this.entries.has(peerId);
  }

  // True when `envelope` is exactly the ticket already stored (no need to verify it again).
  hasTicket(envelope) {
    const peerId = envelope?.body?.peer_id;
    const entry = typeof peerId === "string" ? this.entries.get(peerId) : undefined;
    return Boolean(
      entry?.ticket &&
        entry.ticket.sig === envelope.sig &&
        entry.ticket.pk === envelope.pk &&
        entry.nonce === envelope.body.nonce &&
        entry.issuedAt === envelope.body.issued_at,
    );
  }

  /** Merge a verified ticket (ticket.js verifyTicket result); the newest issued_at wins. */
  addTicket(verified, source, now) {
    if (verified.peerId === this.selfId) return "self";
    let entry = this.entries.get(verified.peerId);
    if (!entry) {
      entry = newEntry(verified.peerId, now, source);
      this.entries.set(verified.peerId, entry);
    } else if (entry.issuedAt >= verified.issuedAt) {
      entry.lastSeen = Math.max(entry.lastSeen, now);
      return "stale";
    }
    Object.assign(entry, {
      ticket: verified.envelope,
      issuedAt: verified.issuedAt,
      expiresAt: verified.expiresAt,
      nonce: verified.nonce,
      signal: verified.signal,
      caps: verified.caps,
      lastSeen: now,
    });
    if ((SOURCE_RANK[source] ?? 0) >= (SOURCE_RANK[entry.source] ?? 0)) entry.source = source;
    this.#evict(now);
    return "added";
  }

  /** A configured seed: dialed by id, its ticket comes with its hello. */
  addSeed(peerId, now) {
    if (peerId === this.selfId) return;
    let entry = this.entries.get(peerId);
    if (!entry) {
      entry = newEntry(peerId, now, "seed");
      this.entries.set(peerId, entry);
    }
    entry.seed = true;
  }

  /** A peer a share link names as a holder: dialed first (by id, like a seed) in this session. */
  addHint(peerId, now, errand = null) {
    if (peerId === this.selfId) return;
    let entry = this.entries.get(peerId);
    if (!entry) {
      entry = newEntry(peerId, now, "hint");
      this.entries.set(peerId, entry);
    }
    entry.hint = true;
    if (errand) entry.errand = errand;
  }

  remove(peerId) {
    this.entries.delete(peerId);
  }

  recordSuccess(peerId, now) {
    const entry = this.entries.get(peerId);
    if (!entry) return;
    entry.successes += 1;
    entry.consecutiveFailures = 0;
    entry.lastSuccess = now;
    entry.lastSeen = now;
    entry.nextDialAt = 0;
    entry.goneAtIssued = null;
  }

  /** Signaling answered that the peer is not connected: its current ticket is stale. */
  recordGone(peerId) {
    const entry = this.entries.get(peerId);
    if (entry && !entry.seed) entry.goneAtIssued = entry.issuedAt;
  }

  /** True when a ticket of `peerId` issued at `issuedAt` is no newer than the one signaling said was not there. */
  staleSince(peerId, issuedAt) {
    const entry = this.entries.get(peerId);
    return entry !== undefined && goneFor(entry, issuedAt);
  }

  /**
   * A failed dial or a dropped peer: exponential backoff before it is dialed again.
   * @param {string} peerId
   * @param {number} now
   * @param {{ backoffMs?: number }} [opts]
   */
  recordFailure(peerId, now, { backoffMs } = {}) {
    const entry = this.entries.get(peerId);
    if (!entry) return;
    entry.failures += 1;
    entry.consecutiveFailures += 1;
    entry.lastFailure = now;
    const exp = BACKOFF_BASE_MS * 2 ** Math.min(entry.consecutiveFailures - 1, 10);
    entry.nextDialAt = now + (backoffMs ?? Math.min(BACKOFF_MAX_MS, exp));
  }

  /** Hold off dialing without counting a failure (mesh full, duplicate, paused...). */
  deferDial(peerId, until) {
    const entry = this.entries.get(peerId);
    if (entry) entry.nextDialAt = Math.max(entry.nextDialAt, until);
  }

  isLive(entry, now) {
    return entry.ticket !== null && now < entry.expiresAt;
  }

  score(entry, now) {
    const reliability = (entry.successes + 1) / (entry.successes + entry.failures + 2);
    const last = Math.max(entry.lastSuccess, entry.lastSeen);
    const recency = 2 ** (-Math.max(0, now - last) / RECENCY_HALF_LIFE_MS);
    const live = this.isLive(entry, now) ? 1 : 0;
    return reliability * (0.5 + recency) + live + (entry.seed ? 0.5 : 0) + (entry.hint ? HINT_BONUS : 0);
  }

  /** Peers worth dialing now, best first. */
  dialCandidates(now, { exclude = new Set(), limit = Infinity, allow = null } = {}) {
    const out = [];
    for (const entry of this.entries.values()) {
      if (exclude.has(entry.peerId) || entry.nextDialAt > now || isGone(entry)) continue;
      if (allow && !allow.has(entry.peerId)) continue;
      // A stale ticket is still worth a try for a peer that worked before (returning visitor).
      if (!this.isLive(entry, now) && !entry.seed && !entry.hint && entry.successes === 0) continue;
      out.push([this.score(entry, now) + this.random() * 0.25, entry]);
    }
    out.sort((a, b) => b[0] - a[0]);
    return out.slice(0, limit).map(([, entry]) => entry);
  }

  /** Live tickets for peer exchange: a random sample, so knowledge spreads evenly. */
  sampleTickets(now, { exclude = new Set(), limit = 16 } = {}) {
    const live = [];
    for (const entry of this.entries.values()) {
      if (this.isLive(entry, now) && !exclude.has(entry.peerId) && !isGone(entry)) live.push(entry.ticket);
    }
    for (let i = live.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [live[i], live[j]] = [live[j], live[i]];
    }
    return live.slice(0, limit);
  }

  liveCount(now, exclude = new Set()) {
    let n = 0;
    for (const entry of this.entries.values()) {
      if (this.isLive(entry, now) && !exclude.has(entry.peerId)) n += 1;
    }
    return n;
  }

  /** Drop what is no longer useful and keep at most `capacity` entries (lowest score out). */
  prune(now) {
    for (const [peerId, entry] of this.entries) {
      if (entry.seed || this.isLive(entry, now)) continue;
      const lastGood = entry.lastSuccess || 0;
      if (entry.successes === 0 || now - lastGood > FORGET_AFTER_MS) this.entries.delete(peerId);
    }
    this.#evict(now);
  }

  #evict(now) {
    if (this.entries.size <= this.capacity) return;
    const ranked = [...this.entries.values()].filter((e) => !e.seed).sort((a, b) => this.score(a, now) - this.score(b, now));
    for (const entry of ranked.slice(0, this.entries.size - this.capacity)) this.entries.delete(entry.peerId);
  }

  /** Records for the IndexedDB cache: peers that answered at least once. */
  toRecords() {
    return [...this.entries.values()].filter((e) => e.successes > 0).map((e) => ({ ...e, hint: false, errand: null }));
  }

  loadRecords(records, now) {
    for (const record of records) {
      if (typeof record?.peerId !== "string" || record.peerId === this.selfId) continue;
      if (this.entries.has(record.peerId)) continue;
      this.entries.set(record.peerId, { ...newEntry(record.peerId, now, "cache"), ...record, source: "cache", nextDialAt: 0 });
    }
    this.#evict(now);
  }
}
