// Supernodes (docs/protocol.md "Supernodes"), mirror of peers/protocol/supernode.py. A peer
// that may serve as a supernode signs an advert (domain swarm/supernode/v1) with its uptime,
// spare upstream bandwidth, healthy connections, its estimate of the swarm's size, whether it
// opted in, whether it is a super-peer and whether it holds a seat, and floods it as gossip
// topic `supernode`. elect() is a pure function of the live adverts held and the day: peers
// holding the same adverts compute the same ranked set.
//
// SupernodeView is sans-IO: adverts, this peer's numbers and `now` go in; the elected set, and
// the advert body this peer should sign and publish now, come out.
import { PEER_ID_RE, peerIdForKey } from "./encoding.js";
import { checkEnvelopeSize, sign, verify } from "./envelope.js";
import {
  ADVERT_TOO_LARGE,
  BAD_ADVERT,
  EXPIRED,
  NOT_YET_VALID,
  PEER_MISMATCH,
  ProtocolError,
  RATE_LIMITED,
  REPLAY,
  TABLE_FULL,
  TTL_TOO_LONG,
  WRONG_COMMUNITY,
} from "./errors.js";
import { CLOCK_SKEW_MS, isValidCommunity } from "./ticket.js";

export const DOMAIN_SUPERNODE = "swarm/supernode/v1";
export const TOPIC_SUPERNODE = "supernode";
export const VERSION = 1;
const BODY_KEYS = ["community", "conns", "elected", "expires_at", "issued_at", "opt_in", "peer_id", "superpeer", "swarm", "up_kbps", "uptime", "v"];
export const MAX_ADVERT_BYTES = 1024; // canonical JSON of the envelope; a real advert is 390-480 bytes
export const ADVERT_TTL_MS = 150_000; // 2.5 republish intervals: one lost advert does not unseat anyone
export const MAX_ADVERT_TTL_MS = 300_000;
export const REPUBLISH_MS = 60_000;
export const MIN_GAP_MS = 5_000; // adverts of one peer at least this far apart (else rate_limited)
export const WARMUP_MS = REPUBLISH_MS + CLOCK_SKEW_MS; // a new view has heard every candidate by then
export const MAX_UPTIME_S = 0xffffffff;
export const MAX_UP_KBPS = 10_000_000;
export const MAX_CONNS = 1024;
export const MAX_SWARM = 10_000_000;
export const MAX_ADVERTS = 256;
// Eligibility of a browser (super-peers need neither).
export const MIN_UPTIME_S = 300;
export const MIN_CONNS = 3;
// Score: integer points, the same in both languages.
const SUPERPEER_POINTS = 1000;
const UPTIME_CAP_S = 6 * 3600; // one point a minute, at most 360
const UP_KBPS_CAP = 10_000; // one point per 50 kbit/s, at most 200
const CONNS_CAP = 32; // ten points a connection, at most 320
// Seats: max(2, ceil(sqrt(n) / 4)), at most 16.
export const MIN_SEATS = 2;
export const MAX_SEATS = 16;
export const CANDIDATE_FACTOR = 2; // peers ranked below 2 x seats advertise; the others stay quiet
// A peer that starts advertising waits 20 ms per point below 1000 (20 s at most) and looks at
// its rank again: at a cold start the best speak first and the rest hear them and stay quiet.
export const STAGGER_MS_PER_POINT = 20;
export const MAX_STAGGER_MS = 20_000;
export const EPOCH_MS = 86_400_000; // the tie-break changes daily

const fail = (message) => new ProtocolError(BAD_ADVERT, message);

function int(body, key, low, high) {
  const value = body[key];
  if (!Number.isSafeInteger(value) || value < low || value > high) throw fail(`${key} must be an integer in ${low}..${high}`);
  return value;
}

/**
 * @typedef {{peerId: string, community: string, issuedAt: number, expiresAt: number, uptime: number,
 *   upKbps: number, conns: number, swarm: number, optIn: boolean, superpeer: boolean, elected: boolean,
 *   envelope: object | null}} Advert
 */

/** The body's fields (bad_advert); times are checked by parseAdvert. Returns the Advert (no envelope). */
export function checkBody(body) {
  const keys = Object.keys(body).sort();
  if (keys.length !== BODY_KEYS.length || keys.some((k, i) => k !== BODY_KEYS[i])) throw fail(`fields must be ${BODY_KEYS.join(",")}`);
  if (body.v !== VERSION) throw fail("v must be 1");
  if (typeof body.peer_id !== "string" || !PEER_ID_RE.test(body.peer_id)) throw fail("peer_id is not a key-bound peer id");
  if (!isValidCommunity(body.community)) throw fail("community name is invalid");
  const issuedAt = int(body, "issued_at", 0, Number.MAX_SAFE_INTEGER - MAX_ADVERT_TTL_MS);
  const expiresAt = int(body, "expires_at", issuedAt + 1, Number.MAX_SAFE_INTEGER);
  for (const key of ["opt_in", "superpeer", "elected"]) if (typeof body[key] !== "boolean") throw fail(`${key} must be a boolean`);
  if ((body.superpeer || body.elected) && !body.opt_in) throw fail("a super-peer or a supernode is opted in");
  return {
    peerId: body.peer_id,
    community: body.community,
    issuedAt,
    expiresAt,
    uptime: int(body, "uptime", 0, MAX_UPTIME_S),
    upKbps: int(body, "up_kbps", 0, MAX_UP_KBPS),
    conns: int(body, "conns", 0, MAX_CONNS),
    swarm: int(body, "swarm", 1, MAX_SWARM),
    optIn: body.opt_in,
    superpeer: body.superpeer,
    elected: body.elected,
    envelope: null,
  };
}

/** The signed body of an advert. */
export function advertBody(a) {
  return {
    v: VERSION,
    peer_id: a.peerId,
    community: a.community,
    issued_at: a.issuedAt,
    expires_at: a.expiresAt,
    uptime: a.uptime,
    up_kbps: a.upKbps,
    conns: a.conns,
    swarm: a.swarm,
    opt_in: a.optIn,
    superpeer: a.superpeer,
    elected: a.elected,
  };
}

function checkSize(envelope) {
  return checkEnvelopeSize(envelope, MAX_ADVERT_BYTES, ADVERT_TOO_LARGE, "an advert");
}

/**
 * Sign an advert body (as advertDue gives it). Throws what a receiver would: bad_advert,
 * peer_mismatch, ttl_too_long.
 */
export async function signAdvert(signer, body) {
  const advert = checkBody(body);
  if (advert.peerId !== (await peerIdForKey(signer.publicKey))) throw new ProtocolError(PEER_MISMATCH, "peer_id is not the signer's");
  if (advert.expiresAt - advert.issuedAt > MAX_ADVERT_TTL_MS) throw new ProtocolError(TTL_TOO_LONG, "an advert lives at most 300 s");
  return checkSize(await sign(DOMAIN_SUPERNODE, body, signer));
}

/**
 * Verify one advert at `now` for `community`. In order: size (bad_envelope, advert_too_large),
 * envelope and signature (bad_envelope, bad_signature), body (bad_advert), signer
 * (peer_mismatch), wrong_community, ttl_too_long, not_yet_valid (more than 15 s ahead), expired.
 * Resolves the Advert.
 */
export async function parseAdvert(envelope, { now, community }) {
  checkSize(envelope);
  const { body, peerId } = await verify(envelope, DOMAIN_SUPERNODE);
  const advert = checkBody(body);
  if (advert.peerId !== peerId) throw new ProtocolError(PEER_MISMATCH, "peer_id is not the signer's");
  if (advert.community !== community) throw new ProtocolError(WRONG_COMMUNITY, "the advert is for another community");
  if (advert.expiresAt - advert.issuedAt > MAX_ADVERT_TTL_MS) throw new ProtocolError(TTL_TOO_LONG, "an advert lives at most 300 s");
  if (advert.issuedAt > now + CLOCK_SKEW_MS) throw new ProtocolError(NOT_YET_VALID, "the advert is dated in the future");
  if (now >= advert.expiresAt) throw new ProtocolError(EXPIRED, "the advert has expired");
  advert.envelope = envelope;
  return advert;
}

// --- the rule ---

/** Integer points: super-peer 1000, uptime (a point a minute, 6 h at most), spare bandwidth (a point per 50 kbit/s, 10 Mbit/s at most), connections (10 each, 32 at most). */
export function score(a) {
  return (
    (a.superpeer ? SUPERPEER_POINTS : 0) +
    Math.floor(Math.min(a.uptime, UPTIME_CAP_S) / 60) +
    Math.floor(Math.min(a.upKbps, UP_KBPS_CAP) / 50) +
    Math.min(a.conns, CONNS_CAP) * 10
  );
}

/** The score with the hysteresis bonus: a seat holder counts a quarter more. */
export function effective(a) {
  const points = score(a);
  return a.elected ? points + Math.floor(points / 4) : points;
}

/** Opted in and, unless a super-peer, up 5 minutes with 3 healthy connections. */
export function eligible(a) {
  if (!a.optIn) return false;
  return a.superpeer || (a.uptime >= MIN_UPTIME_S && a.conns >= MIN_CONNS);
}

/** How long a new candidate with `points` waits before its first advert (ms). */
export function stagger(points) {
  return Math.min(MAX_STAGGER_MS, Math.max(0, SUPERPEER_POINTS - points) * STAGGER_MS_PER_POINT);
}

/** max(2, ceil(sqrt(n) / 4)), at most 16, in integers. */
export function seats(n) {
  let k = 1;
  while (16 * k * k < n && k < MAX_SEATS) k += 1;
  return Math.max(MIN_SEATS, k);
}

/** FNV-1a (32 bits) of "<epoch>:<peerId>": equal scores are ordered anew each day. */
export function tiebreak(peerId, epoch) {
  const text = `${epoch}:${peerId}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

// Sort keys, [effective, tiebreak, peerId, advert], kept per advert object for its epoch.
const sortKeys = new WeakMap();

function keyed(a, epoch) {
  let k = sortKeys.get(a);
  if (k === undefined || k.epoch !== epoch) {
    k = { epoch, key: [effective(a), tiebreak(a.peerId, epoch), a.peerId, a] };
    sortKeys.set(a, k);
  }
  return k.key;
}

function compareKeyed(x, y) {
  if (x[0] !== y[0]) return y[0] - x[0];
  if (x[1] !== y[1]) return x[1] - y[1];
  return x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0;
}

function compare(a, b, epoch) {
  return compareKeyed(keyed(a, epoch), keyed(b, epoch));
}

function seatsFor(live) {
  if (live.length === 0) return seats(0);
  const sizes = live.map((a) => a.swarm).sort((x, y) => x - y);
  return seats(Math.max(live.length, sizes[Math.floor((sizes.length - 1) / 2)]));
}

/**
 * The seats and the eligible live adverts, best first. The swarm's size is the lower median of
 * the live adverts' estimates (one liar moves it by one place), at least their number.
 */
export function ranking(adverts, now) {
  const live = [...adverts].filter((a) => a.expiresAt > now);
  const epoch = Math.floor(now / EPOCH_MS);
  const order = live
    .filter(eligible)
    .map((a) => keyed(a, epoch))
    .sort(compareKeyed)
    .map((k) => k[3]);
  return { seats: seatsFor(live), order };
}

/** Where `advert` would rank among `others` (live, eligible), and the seats with it among them. */
function place(advert, others, now) {
  const live = [advert, ...[...others].filter((a) => a.expiresAt > now)];
  const epoch = Math.floor(now / EPOCH_MS);
  const mine = keyed(advert, epoch);
  let position = 0;
  for (const a of live) if (a !== advert && eligible(a) && compareKeyed(keyed(a, epoch), mine) < 0) position += 1;
  return { seats: seatsFor(live), position };
}

/** The supernodes, best first: the first `seats` eligible live adverts. */
export function elect(adverts, now) {
  const { seats: k, order } = ranking(adverts, now);
  return order.slice(0, k).map((a) => a.peerId);
}

// --- the view ---

/** The adverts one peer holds, the election over them and when to publish its own. */
export class SupernodeView {
  constructor({
    community,
    now,
    selfId = null,
    maxAdverts = MAX_ADVERTS,
    ttlMs = ADVERT_TTL_MS,
    republishMs = REPUBLISH_MS,
    minGapMs = MIN_GAP_MS,
    warmupMs = WARMUP_MS,
  }) {
    this.community = community;
    this.selfId = selfId;
    this.maxAdverts = maxAdverts;
    this.ttlMs = ttlMs;
    this.republishMs = republishMs;
    this.minGapMs = minGapMs;
    this.warmAt = now + warmupMs;
    /** @type {Map<string, Advert>} */
    this.held = new Map();
    this.local = null; // {uptime, upKbps, conns, swarm, optIn, superpeer}
    /** @type {Advert | null} */
    this.published = null;
    this.speakAt = null; // a new candidate's first advert, once it has waited
    this.version = 0;
    this.cache = null;
  }

  // --- adverts in ---

  /**
   * Parse and take one advert (the node's check for topic `supernode`: an advert this throws
   * for is neither delivered nor relayed). Resolves the Advert.
   */
  async accept(envelope, now) {
    const advert = await parseAdvert(envelope, { now, community: this.community });
    this.receive(advert, now);
    return advert;
  }

  /**
   * Take a parsed advert: the newest per peer. Throws wrong_community, expired, replay (not
   * newer than the one held), rate_limited (less than 5 s newer), table_full (the table is full
   * of adverts that rank higher).
   */
  receive(advert, now) {
    if (advert.community !== this.community) throw new ProtocolError(WRONG_COMMUNITY, "the advert is for another community");
    if (advert.expiresAt <= now) throw new ProtocolError(EXPIRED, "the advert has expired");
    const known = this.held.get(advert.peerId);
    if (known) {
      if (advert.issuedAt <= known.issuedAt) throw new ProtocolError(REPLAY, "an advert as new or newer is held");
      if (advert.issuedAt < known.issuedAt + this.minGapMs) throw new ProtocolError(RATE_LIMITED, "adverts of one peer are 5 s apart at least");
    } else if (this.held.size >= this.maxAdverts) {
      this.prune(now);
      if (this.held.size >= this.maxAdverts) {
        const epoch = Math.floor(now / EPOCH_MS);
        // Ineligible adverts rank below every eligible one, then the order of the election.
        const cmp = (a, b) => Number(eligible(b)) - Number(eligible(a)) || compare(a, b, epoch);
        let worst = null;
        for (const a of this.held.values()) if (worst === null || cmp(a, worst) > 0) worst = a;
        if (cmp(advert, worst) >= 0) throw new ProtocolError(TABLE_FULL, "the table is full of better adverts");
        this.held.delete(worst.peerId);
      }
    }
    this.held.delete(advert.peerId);
    this.held.set(advert.peerId, advert);
    this.version += 1;
  }

  /** Forget expired adverts. */
  prune(now) {
    let gone = false;
    for (const [peerId, a] of this.held) {
      if (a.expiresAt <= now) {
        this.held.delete(peerId);
        gone = true;
      }
    }
    if (gone) this.version += 1;
  }

  /** The live signed adverts held (to hand to a peer that joins). */
  adverts(now) {
    return [...this.held.values()].filter((a) => a.expiresAt > now && a.envelope).map((a) => a.envelope);
  }

  // --- the election ---

  /** The supernodes, best first (cached until an advert changes or expires). */
  elected(now) {
    const epoch = Math.floor(now / EPOCH_MS);
    const c = this.cache;
    if (c && c.version === this.version && c.epoch === epoch && now < c.validUntil) return c.result;
    this.prune(now);
    let validUntil = Number.MAX_SAFE_INTEGER;
    for (const a of this.held.values()) if (a.expiresAt > now) validUntil = Math.min(validUntil, a.expiresAt);
    const result = elect(this.held.values(), now);
    this.cache = { version: this.version, epoch, validUntil, result };
    return result;
  }

  isSupernode(peerId, now) {
    return this.elected(now).includes(peerId);
  }

  // --- this peer's advert ---

  /** This peer's current numbers {uptime, upKbps, conns, swarm, optIn = true, superpeer = false} (call advertDue after). */
  setLocal({ uptime, upKbps, conns, swarm, optIn = true, superpeer = false }) {
    this.local = { uptime, upKbps, conns, swarm, optIn, superpeer };
  }

  /**
   * The body to sign (signAdvert), flood and receive now, or null.
   *
   * A peer advertises while it is eligible and ranks below twice the seats (with its current
   * numbers), or holds a seat: the first time after stagger(), then every 60 s, and at once (5 s
   * apart at most) when it takes or gives up a seat, becomes eligible, or its score falls by a
   * quarter. A peer that stops being a candidate says so once; one merely outranked falls silent
   * and its advert expires.
   */
  advertDue(now) {
    const { local, selfId } = this;
    if (local === null || selfId === null) return null;
    if (this.published !== null && now < this.published.issuedAt + this.minGapMs) return null;
    const draft = {
      peerId: selfId,
      community: this.community,
      issuedAt: now,
      expiresAt: now + this.ttlMs,
      uptime: Math.min(local.uptime, MAX_UPTIME_S),
      upKbps: Math.min(local.upKbps, MAX_UP_KBPS),
      conns: Math.min(local.conns, MAX_CONNS),
      swarm: Math.max(1, Math.min(local.swarm, MAX_SWARM)),
      optIn: local.optIn || local.superpeer,
      superpeer: local.superpeer,
      elected: false,
      envelope: null,
    };
    const fit = eligible(draft);
    const claim = fit && now >= this.warmAt && this.elected(now).includes(selfId);
    draft.elected = claim;
    let advertise = claim;
    if (fit && !claim) {
      const others = [...this.held.values()].filter((a) => a.peerId !== selfId);
      const { seats: k, position } = place(draft, others, now);
      advertise = position < CANDIDATE_FACTOR * k;
    }
    let prev = this.published;
    if (prev !== null && prev.expiresAt <= now) prev = null;
    const starting = advertise && !claim && (prev === null || !eligible(prev));
    if (!starting) this.speakAt = null;
    else if (this.speakAt === null) this.speakAt = now + stagger(score(draft));
    let due;
    if (starting && this.speakAt !== null && now < this.speakAt) {
      due = false;
    } else if (advertise) {
      due = prev === null || now >= prev.issuedAt + this.republishMs || prev.elected !== claim || !eligible(prev) || score(draft) * 4 < score(prev) * 3;
    } else {
      due = prev !== null && (prev.elected || (eligible(prev) && !fit));
    }
    if (!due) return null;
    this.published = draft;
    this.speakAt = null;
    return advertBody(draft);
  }

  /** When to call advertDue again if nothing else happens. */
  nextDeadline(now) {
    let deadline = now + this.republishMs;
    for (const a of this.held.values()) if (a.expiresAt > now) deadline = Math.min(deadline, a.expiresAt);
    for (const at of [this.warmAt, this.speakAt]) if (at !== null && at > now) deadline = Math.min(deadline, at);
    if (this.published !== null) {
      for (const at of [this.published.issuedAt + this.minGapMs, this.published.issuedAt + this.republishMs]) {
        if (at > now) deadline = Math.min(deadline, at);
      }
    }
    return deadline;
  }
}
