// Repair by peers (docs/replication.md "Repair by peers"), mirror of peers/protocol/repair.py;
// tests/vectors/repair.json holds the shared decisions.
//
// RepairCore is sans-IO with an explicit clock (integer milliseconds): manifests, replica
// adverts (`have` frames and `have` gossip), volunteer announcements (gossip topic `repair`),
// this peer's own budget and its fetches go in; tick() says which manifests to start fetching
// now and which fetches to drop. Every volunteer that holds the same adverts computes the same
// ranking (rendezvous hashing of manifest and volunteer id), so only the `target - replicas`
// best-ranked volunteers fetch a manifest; the set widens by as many again for every
// claimTimeoutMs the manifest stays under target without a new replica, so a chosen volunteer
// that died or failed is replaced. Nothing is decided while a backfill worker is known to be
// running (a super-peer's announcement says when it last saw one) nor during the warm-up
// after start, when this peer has not heard the others yet.
import { DIGEST_ID_RE } from "./chunks.js";
import { PEER_ID_RE } from "./encoding.js";
import { BAD_BODY, BAD_REPAIR, ProtocolError } from "./errors.js";

export const TOPIC_REPAIR = "repair";
const ANNOUNCE_KEYS = ["backfill_at", "slots", "spare"];
export const MAX_SLOTS = 64;
export const MAX_TARGET = 32;
const MAX_CHUNKS = 1 << 24;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export const DEFAULT_TARGET = 3;
export const ANNOUNCE_EVERY_MS = 60_000;
export const VOLUNTEER_TTL_MS = 150_000; // 2.5 announcements: one lost gossip does not drop a volunteer
export const HOLDING_TTL_MS = 600_000; // as gossiped holdings (have_gossip.js)
export const WORKER_GRACE_MS = 180_000; // a backfill run seen this recently: the worker is running
export const CLAIM_TIMEOUT_MS = 120_000; // under target this long without a new replica: widen the set
export const WARMUP_MS = ANNOUNCE_EVERY_MS + 15_000; // hear the others before deciding anything
export const RETRY_MS = 120_000; // after a failed fetch this peer stays out of that manifest's ranking
export const MAX_ACTIVE = 2; // own repair fetches at a time
const SWEEP_MS = 60_000;

const fail = (message) => new ProtocolError(BAD_REPAIR, message);

function int(value, name, low, high) {
  if (!Number.isSafeInteger(value) || value < low || value > high) throw fail(`${name} must be an integer in ${low}..${high}`);
  return value;
}

function peer(value, name = "peer id") {
  if (typeof value !== "string" || !PEER_ID_RE.test(value)) throw fail(`${name} is not a key-bound peer id`);
  return value;
}

function manifestId(value) {
  if (typeof value !== "string" || !DIGEST_ID_RE.test(value)) throw fail("manifest id is not a digest id");
  return value;
}

/**
 * Check a `repair` gossip's `data`: exactly `{spare, slots, backfill_at}` (bad_body).
 * Returns `{spare, slots, backfillAt}`.
 */
export function parseAnnouncement(data) {
  if (
    data === null ||
    typeof data !== "object" ||
    Array.isArray(data) ||
    Object.keys(data).length !== 3 ||
    !ANNOUNCE_KEYS.every((k) => Object.hasOwn(data, k))
  ) {
    throw new ProtocolError(BAD_BODY, "repair gossip is {spare, slots, backfill_at}");
  }
  try {
    return {
      spare: int(data.spare, "spare", 0, MAX_SAFE),
      slots: int(data.slots, "slots", 0, MAX_SLOTS),
      backfillAt: int(data.backfill_at, "backfill_at", 0, MAX_SAFE),
    };
  } catch (error) {
    throw new ProtocolError(BAD_BODY, error.message);
  }
}

/** The `data` of a `repair` gossip. */
export function announcementData({ spare, slots, backfillAt }) {
  return { spare, slots, backfill_at: backfillAt };
}

const utf8 = new TextEncoder();
const SCORE_MEMO = 65_536; // (manifest, peer) scores remembered: ticks rank the same pairs again
const scoreMemo = new Map();

/**
 * The rank key of `peerId` for `manifestId` (lower ranks first; ties by peer id): FNV-1a 32
 * of `manifestId + "/" + peerId` through the MurmurHash3 finaliser. Load spreading, not a
 * security property (peer ids are bound to keys: a good rank costs key grinding).
 */
export function rendezvousScore(manifestIdText, peerId) {
  const key = `${manifestIdText}/${peerId}`;
  const known = scoreMemo.get(key);
  if (known !== undefined) return known;
  let h = 0x811c9dc5;
  for (const byte of utf8.encode(key)) h = Math.imul(h ^ byte, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  if (scoreMemo.size >= SCORE_MEMO) scoreMemo.clear();
  scoreMemo.set(key, h >>> 0);
  return h >>> 0;
}

const byRank = (mid) => {
  const scores = new Map();
  const score = (p) => {
    let s = scores.get(p);
    if (s === undefined) {
      s = rendezvousScore(mid, p);
      scores.set(p, s);
    }
    return s;
  };
  return (a, b) => score(a) - score(b) || (a < b ? -1 : a > b ? 1 : 0);
};

export const DEFAULT_CONFIG = Object.freeze({
  defaultTarget: DEFAULT_TARGET,
  volunteerTtlMs: VOLUNTEER_TTL_MS,
  holdingTtlMs: HOLDING_TTL_MS,
  workerGraceMs: WORKER_GRACE_MS,
  claimTimeoutMs: CLAIM_TIMEOUT_MS,
  warmupMs: WARMUP_MS,
  retryMs: RETRY_MS,
});

export class RepairCore {
  /** `selfId`: this peer; `now`: start time (the warm-up counts from it); `config`: DEFAULT_CONFIG overrides. */
  constructor(selfId, now, config = {}) {
    this.selfId = peer(selfId, "self id");
    this.config = { ...DEFAULT_CONFIG, ...config };
    int(this.config.defaultTarget, "defaultTarget", 0, MAX_TARGET);
    for (const name of ["volunteerTtlMs", "holdingTtlMs", "workerGraceMs", "claimTimeoutMs", "retryMs"]) int(this.config[name], name, 1, MAX_SAFE);
    int(this.config.warmupMs, "warmupMs", 0, MAX_SAFE);
    this.startedAt = int(now, "now", 0, MAX_SAFE);
    this.optedIn = false;
    this.spare = 0;
    this.maxActive = 0;
    this.manifests = new Map(); // id -> {chunkCount, size, target}
    this.holdings = new Map(); // id -> Map(holder -> {chunks, keep, expiresAt})
    this.volunteers = new Map(); // peer -> {spare, slots, expiresAt}
    this.workerSeenAt = null;
    this.active = new Map(); // own fetches: manifest -> started at
    this.retryAt = new Map();
    this.episodes = new Map(); // manifest -> {replicas, since}
    this.nextSweep = 0;
  }

  // --- inputs ---

  /** This peer's opt-in, free keep budget in bytes (own fetches not yet subtracted), slots. */
  setSelf({ optedIn, spare, maxActive = MAX_ACTIVE }) {
    if (typeof optedIn !== "boolean") throw fail("optedIn must be a boolean");
    this.spare = int(spare, "spare", 0, MAX_SAFE);
    this.maxActive = int(maxActive, "maxActive", 0, MAX_SLOTS);
    this.optedIn = optedIn;
  }

  /** A manifest this peer knows (verified); the same id again updates its facts. */
  manifest(id, chunkCount, size, target = null) {
    const mid = manifestId(id);
    int(chunkCount, "chunk_count", 1, MAX_CHUNKS);
    int(size, "size", 0, MAX_SAFE);
    if (target !== null) int(target, "target", 0, MAX_TARGET);
    this.manifests.set(mid, { chunkCount, size, target });
  }

  forget(id) {
    const mid = manifestId(id);
    this.manifests.delete(mid);
    this.holdings.delete(mid);
    this.retryAt.delete(mid);
    this.episodes.delete(mid);
  }

  /** A replica advert (`have` entry) of `holder`, heard at `now`; 0 chunks withdraws. */
  advert(holder, id, chunks, keep, now) {
    peer(holder, "holder");
    const mid = manifestId(id);
    int(chunks, "chunks", 0, MAX_CHUNKS);
    if (typeof keep !== "boolean") throw fail("keep must be a boolean");
    int(now, "now", 0, MAX_SAFE);
    let held = this.holdings.get(mid);
    if (chunks === 0) {
      if (held?.delete(holder) && held.size === 0) this.holdings.delete(mid);
      return;
    }
    if (held === undefined) {
      held = new Map();
      this.holdings.set(mid, held);
    }
    held.set(holder, { chunks, keep, expiresAt: now + this.config.holdingTtlMs });
  }

  /** `holder` left (its connection closed for good, signaling said so). */
  holderGone(holder) {
    peer(holder, "holder");
    for (const [mid, held] of [...this.holdings]) {
      if (held.delete(holder) && held.size === 0) this.holdings.delete(mid);
    }
    this.volunteers.delete(holder);
  }

  /** A `repair` gossip of `origin`; a super-peer's `backfill_at` is worker evidence. */
  announcement(origin, data, issuedAt, now, { superpeer = false } = {}) {
    peer(origin, "origin");
    const ann = parseAnnouncement(data);
    const at = Math.min(int(issuedAt, "issued_at", 0, MAX_SAFE), int(now, "now", 0, MAX_SAFE));
    if (origin !== this.selfId) this.volunteers.set(origin, { spare: ann.spare, slots: ann.slots, expiresAt: at + this.config.volunteerTtlMs });
    if (superpeer && ann.backfillAt > 0) this.workerSeen(Math.min(ann.backfillAt, now));
    return ann;
  }

  /** Evidence that a backfill worker ran at `at` (a run row, a fetch job, a statement). */
  workerSeen(at) {
    int(at, "at", 0, MAX_SAFE);
    if (this.workerSeenAt === null || at > this.workerSeenAt) this.workerSeenAt = at;
  }

  /** An own repair fetch ended; a failure keeps this peer out of that ranking a while. */
  fetchEnded(id, ok, now) {
    const mid = manifestId(id);
    this.active.delete(mid);
    if (!ok) this.retryAt.set(mid, now + this.config.retryMs);
  }

  // --- queries ---

  workerLive(now) {
    return this.workerSeenAt !== null && now - this.workerSeenAt < this.config.workerGraceMs;
  }

  /** What this peer publishes as `repair` gossip (every ANNOUNCE_EVERY_MS): {spare, slots, backfillAt}. */
  ownAnnouncement(backfillAt = 0) {
    const slots = this.optedIn ? Math.max(0, this.maxActive - this.active.size) : 0;
    return { spare: this.optedIn ? this.#ownSpare() : 0, slots, backfillAt };
  }

  #ownSpare() {
    let reserved = 0;
    for (const mid of this.active.keys()) reserved += this.manifests.get(mid)?.size ?? 0;
    return Math.max(0, this.spare - reserved);
  }

  #target(info) {
    return info.target === null ? this.config.defaultTarget : info.target;
  }

  /** Replicas, target, complete sources, the ranked candidates and the chosen ones now. */
  view(id, now) {
    const mid = manifestId(id);
    const info = this.manifests.get(mid);
    if (!info) throw fail("unknown manifest");
    const counts = this.#counts(mid, info, now);
    const candidates = this.#candidates(mid, info, counts.held, counts.complete, now);
    const chosen = candidates.slice(0, this.#window(mid, counts.replicas, counts.target, now));
    return { replicas: counts.replicas, target: counts.target, sources: counts.sources, candidates, chosen };
  }

  #counts(mid, info, now) {
    const held = this.holdings.get(mid);
    const complete = new Set();
    let replicas = 0;
    let partial = false;
    for (const [peerId, h] of held ?? []) {
      if (h.expiresAt <= now) continue;
      if (h.chunks >= info.chunkCount) {
        complete.add(peerId);
        if (h.keep) replicas += 1;
      } else partial = true;
    }
    const sources = complete.size - (complete.has(this.selfId) ? 1 : 0);
    return { held, complete, partial, replicas, sources, target: this.#target(info) };
  }

  // Volunteers that may fetch `mid`, best ranked first.
  #candidates(mid, info, held, complete, now) {
    const candidates = [];
    for (const [peerId, vol] of this.volunteers) {
      if (vol.expiresAt <= now || complete.has(peerId)) continue;
      const h = held?.get(peerId);
      const fetching = h !== undefined && h.expiresAt > now; // a partial copy: it is at it, keep its rank
      if (fetching || (vol.slots > 0 && vol.spare >= info.size)) candidates.push(peerId);
    }
    if (this.#selfEligible(mid, info, now) && !complete.has(this.selfId)) candidates.push(this.selfId);
    return candidates.sort(byRank(mid));
  }

  #window(mid, replicas, target, now) {
    const episode = this.episodes.get(mid);
    const rounds = episode ? Math.floor((now - episode.since) / this.config.claimTimeoutMs) : 0;
    return Math.max(0, target - replicas) * (1 + rounds);
  }

  #selfEligible(mid, info, now) {
    if (!this.optedIn) return false;
    if (this.active.has(mid)) return true;
    if ((this.retryAt.get(mid) ?? -1) > now) return false;
    return this.active.size < this.maxActive && this.#ownSpare() >= info.size;
  }

  // --- the decision ---

  /** Expire what is stale, then decide: {fetch: [ids to start now], cancel: [own fetches to drop], workerLive}. */
  tick(now) {
    int(now, "now", 0, MAX_SAFE);
    this.#expire(now);
    const live = this.workerLive(now);
    if (live || now - this.startedAt < this.config.warmupMs) {
      this.episodes.clear();
      return { fetch: [], cancel: [], workerLive: live };
    }
    const cancel = [];
    const wanted = [];
    for (const [mid, info] of this.manifests) {
      const counts = this.#counts(mid, info, now);
      if (counts.replicas >= counts.target) {
        this.episodes.delete(mid);
        if (this.active.has(mid)) cancel.push(mid);
        continue;
      }
      if (counts.sources === 0) {
        // nothing complete to copy from (lost, or only partial copies)
        this.episodes.delete(mid);
        continue;
      }
      const episode = this.episodes.get(mid);
      if (!episode || episode.replicas !== counts.replicas) this.episodes.set(mid, { replicas: counts.replicas, since: now });
      if (this.active.has(mid) || counts.complete.has(this.selfId) || !this.#selfEligible(mid, info, now)) continue;
      // Self is chosen when fewer than `window` candidates rank before it.
      const window = this.#window(mid, counts.replicas, counts.target, now);
      const mine = rendezvousScore(mid, this.selfId);
      let before = 0;
      for (const [peerId, vol] of this.volunteers) {
        if (before >= window) break;
        if (vol.expiresAt <= now || counts.complete.has(peerId)) continue;
        const h = counts.held?.get(peerId);
        const fetching = h !== undefined && h.expiresAt > now;
        if (!fetching && !(vol.slots > 0 && vol.spare >= info.size)) continue;
        const score = rendezvousScore(mid, peerId);
        if (score < mine || (score === mine && peerId < this.selfId)) before += 1;
      }
      if (before < window) wanted.push([counts.replicas, mine, mid]);
    }
    cancel.sort();
    for (const mid of cancel) this.active.delete(mid);
    wanted.sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0));
    const fetch = [];
    for (const [, , mid] of wanted) {
      const info = this.manifests.get(mid);
      if (this.active.size >= this.maxActive || this.#ownSpare() < info.size) continue;
      this.active.set(mid, now);
      fetch.push(mid);
    }
    return { fetch, cancel, workerLive: false };
  }

  // Every read checks expiresAt; this only frees the memory, once a minute.
  #expire(now) {
    if (now < this.nextSweep) return;
    this.nextSweep = now + SWEEP_MS;
    // (deleting the entry being visited is safe in a Map's for-of)
    for (const [mid, held] of this.holdings) {
      for (const [holder, h] of held) if (h.expiresAt <= now) held.delete(holder);
      if (held.size === 0) this.holdings.delete(mid);
    }
    for (const [peerId, v] of this.volunteers) if (v.expiresAt <= now) this.volunteers.delete(peerId);
    for (const [mid, t] of this.retryAt) if (t <= now) this.retryAt.delete(mid);
  }
}
