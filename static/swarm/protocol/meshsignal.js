// Signaling through the mesh (docs/protocol.md "Signaling through the mesh"), mirror of
// peers/protocol/meshsignal.py. Two peers that are not connected but share a path of
// connected peers exchange signed swarm/meshsig/v1 messages, body
// {v: 1, kind, from, to, sid, created_at, hops, payload} (kind offer | answer | candidate |
// bye, sid the session, hops the budget the sender grants, payload the SDP or candidate as
// JSON), carried in `signal {hops, msg}` frames whose `hops` is how many more times the frame
// may be forwarded. Neighbours tell each other whom they are connected to (`reach {peers}`),
// so every peer knows its neighbourhood two hops deep; a relay sends a message straight to
// `to` when connected to it, else to a neighbour that reaches it, else along a route learned
// from earlier messages of `to`; only an offer with no known route is flooded (budget - 2
// hops out: two by default), and the answer coming back teaches every relay on the way the route.
//
// MeshSignal is sans-IO: neighbours, frames, local sends and `now` go in; frames to send,
// messages to deliver and drops (a stable code, and whether the neighbour is to blame) come
// out of takeActions().
import { isFileId } from "./chunks.js";
import { b64urlEncode, PEER_ID_RE, peerIdForKey, sha256 } from "./encoding.js";
import { checkEnvelopeSize, sign, signingInput, verify } from "./envelope.js";
import {
  BAD_ENVELOPE,
  BAD_HOPS,
  BAD_RECIPIENT,
  BAD_SIGNAL,
  BAD_SIGNATURE,
  DUPLICATE,
  EXPIRED,
  HOPS_EXHAUSTED,
  NO_ROUTE,
  NOT_YET_VALID,
  PEER_MISMATCH,
  ProtocolError,
  QUEUE_FULL,
  RATE_LIMITED,
  SIGNAL_TOO_LARGE,
  UNEXPECTED_FRAME,
  UNKNOWN_KIND,
} from "./errors.js";
import { GcraBuckets } from "./ratelimit.js";
import { MAX_REACH_PEERS, MAX_SIGNAL_HOPS } from "./wire.js";

export const DOMAIN_MESHSIG = "swarm/meshsig/v1";
export const VERSION = 1;
export const KINDS = Object.freeze(["offer", "answer", "candidate", "bye"]);
export const KIND_OFFER = "offer";
export const CAP_SIGNAL = "signal";
// Default budgets: an offer's sets how far it may be flooded (budget - 2 hops out), so it is
// small; the other kinds are never flooded and follow routes of any length up to the maximum.
export const DEFAULT_HOPS = 4;

/** The budget a sender grants by default: 4 for an offer, 6 for the other kinds. */
export function defaultHops(kind) {
  return kind === KIND_OFFER ? DEFAULT_HOPS : MAX_SIGNAL_HOPS;
}
// Canonical JSON (RFC 8785) of a whole message envelope, in bytes.
export const MAX_SIGNAL_BYTES = 8192;
export const MAX_AGE_MS = 60_000;
export const CLOCK_SKEW_MS = 15_000;
const SESSION_ID_BYTES = 16;
const BODY_KEYS = ["created_at", "from", "hops", "kind", "payload", "sid", "to", "v"];
// Drops that count against the neighbour that sent the frame; every other drop is counted only.
export const VIOLATIONS = new Set([SIGNAL_TOO_LARGE, BAD_ENVELOPE, BAD_SIGNATURE, BAD_SIGNAL, BAD_RECIPIENT, PEER_MISMATCH, BAD_HOPS]);
// Hops left a relay needs: 1 to hand a message to `to`, 2 to pass it to a neighbour that
// reaches `to`, 3 to flood it (its neighbours can then still use their own reach).
export const FLOOD_MIN_HOPS = 3;

/** Limits of one peer; rates are GCRA token buckets in integers (one token every *IntervalMs, *Burst saved up). */
export const SIGNAL_LIMITS = Object.freeze({
  connIntervalMs: 50, // signal frames per connection: 20/s, bursts of 200; beyond: rate_limited, a violation
  connBurst: 200,
  originIntervalMs: 200, // messages per origin: 5/s, bursts of 50; beyond: rate_limited, counted only
  originBurst: 50,
  floodIntervalMs: 5_000, // flooded offers per origin: one per 5 s, bursts of 5
  floodBurst: 5,
  reachIntervalMs: 5_000, // reach adverts sent per connection: one per 5 s at most
  reachInIntervalMs: 4_000, // reach adverts taken per connection, bursts of 3; beyond: a violation
  reachInBurst: 3,
  routeTtlMs: 120_000,
  maxRoutes: 1024,
  maxSeen: 20_000,
  maxBuckets: 4096,
  discoveryMs: 10_000, // a sender waits this long for a route after flooding an offer
  maxPending: 64,
  maxPendingPeers: 32,
  pruneEveryMs: 30_000,
});

const fail = (message) => new ProtocolError(BAD_SIGNAL, message);

/** A fresh session id: 16 random bytes in canonical unpadded base64url (22 characters). */
export function newSessionId() {
  return b64urlEncode(crypto.getRandomValues(new Uint8Array(SESSION_ID_BYTES)));
}

function isMap(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A message's id: unpadded base64url SHA-256 of its signing input ("swarm/meshsig/v1\n" + JCS(body)). */
export async function signalId(body) {
  if (!isMap(body)) throw new ProtocolError(BAD_ENVELOPE, "body must be a JSON object");
  return b64urlEncode(await sha256(signingInput(DOMAIN_MESHSIG, body)));
}

/** bad_envelope for a value that is no canonical JSON object, signal_too_large beyond MAX_SIGNAL_BYTES. */
export function checkSize(envelope) {
  return checkEnvelopeSize(envelope, MAX_SIGNAL_BYTES, SIGNAL_TOO_LARGE, "a signal message");
}

/** The body's fields, in order: v, kind (unknown_kind), the exact fields, from, to (bad_recipient), sid, created_at, hops. */
export function checkBody(body) {
  if (body.v !== VERSION) throw fail("v must be 1");
  const kind = body.kind;
  if (typeof kind !== "string") throw fail("kind must be a string");
  if (!KINDS.includes(kind)) throw new ProtocolError(UNKNOWN_KIND, "kind must be offer, answer, candidate or bye");
  const keys = Object.keys(body).sort();
  if (keys.length !== BODY_KEYS.length || keys.some((k, i) => k !== BODY_KEYS[i])) throw fail(`fields must be ${BODY_KEYS.join(",")}`);
  if (typeof body.from !== "string" || !PEER_ID_RE.test(body.from)) throw fail("from is not a key-bound peer id");
  if (typeof body.to !== "string" || !PEER_ID_RE.test(body.to)) throw new ProtocolError(BAD_RECIPIENT, "to is not a key-bound peer id");
  if (body.to === body.from) throw new ProtocolError(BAD_RECIPIENT, "a message to its own sender");
  if (!isFileId(body.sid)) throw fail("sid must be 16 bytes in canonical base64url");
  const created = body.created_at;
  if (!Number.isSafeInteger(created) || created < 0 || created > Number.MAX_SAFE_INTEGER - MAX_AGE_MS) throw fail("created_at must be an integer (ms)");
  if (!Number.isSafeInteger(body.hops) || body.hops < 1 || body.hops > MAX_SIGNAL_HOPS) throw fail(`hops must be 1 to ${MAX_SIGNAL_HOPS}`);
}

/**
 * Sign one message as the sender (`signer`). Throws ProtocolError for what receivers would
 * refuse (bad_signal, unknown_kind, bad_recipient, signal_too_large; a payload that is no JSON
 * value bad_signal).
 */
export async function makeSignal(signer, { to, sid, kind, payload, createdAt, hops = defaultHops(kind) }) {
  const body = { v: VERSION, kind, from: await peerIdForKey(signer.publicKey), to, sid, created_at: createdAt, hops, payload };
  checkBody(body);
  let envelope;
  try {
    envelope = await sign(DOMAIN_MESHSIG, body, signer);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    throw fail(`payload is not a JSON value: ${error.message}`);
  }
  return checkSize(envelope);
}

/**
 * Verify one swarm/meshsig/v1 message at `now`. In order: size (bad_envelope,
 * signal_too_large), envelope and signature (bad_envelope, bad_signature), body (checkBody),
 * signer (peer_mismatch), times (not_yet_valid more than 15 s ahead, expired 60 s after
 * created_at). Resolves {id, kind, from, to, sid, createdAt, hops, payload, envelope}.
 */
export async function parseSignal(envelope, { now }) {
  checkSize(envelope);
  const { body, peerId } = await verify(envelope, DOMAIN_MESHSIG);
  checkBody(body);
  if (body.from !== peerId) throw new ProtocolError(PEER_MISMATCH, "from is not the signer's peer id");
  if (body.created_at > now + CLOCK_SKEW_MS) throw new ProtocolError(NOT_YET_VALID, "the message is dated in the future");
  if (now >= body.created_at + MAX_AGE_MS) throw new ProtocolError(EXPIRED, "the message is older than 60 s");
  return {
    id: await signalId(body),
    kind: body.kind,
    from: body.from,
    to: body.to,
    sid: body.sid,
    createdAt: body.created_at,
    hops: body.hops,
    payload: body.payload,
    envelope,
  };
}

function newStats() {
  return { delivered: 0, sent: 0, relayed: 0, flooded: 0, reachSent: 0, dropped: {} };
}

/**
 * Mesh signaling of one peer. Actions: {type: "send", connId, frame} (a signal or reach frame
 * for encodeFrame), {type: "deliver", message, connId, traveled}, {type: "drop", code,
 * violation, connId (null for a local send), reason, id}.
 */
export class MeshSignal {
  /** @param {{ peerId: string, signer: object, limits?: Partial<typeof SIGNAL_LIMITS>, now?: number }} args */
  constructor({ peerId, signer, limits = {}, now = 0 }) {
    this.peerId = peerId;
    this.signer = signer;
    this.limits = { ...SIGNAL_LIMITS, ...limits };
    const lim = this.limits;
    this.neighbours = new Map(); // conn id -> {connId, peerId, signal, reach: Set, reachSentAt, reachDirty}
    this.routes = new Map(); // peer id -> {connId, dist, until}
    this.seen = new Map(); // message id -> forget at
    this.pending = new Map(); // peer id -> [{to, hops, envelope, id, until}]
    this.discovering = new Map(); // peer id -> {until, id}: an offer was flooded, its answer is awaited
    this.connBuckets = new GcraBuckets(lim.connIntervalMs, lim.connBurst, lim.maxBuckets);
    this.reachBuckets = new GcraBuckets(lim.reachInIntervalMs, lim.reachInBurst, lim.maxBuckets);
    this.originBuckets = new GcraBuckets(lim.originIntervalMs, lim.originBurst, lim.maxBuckets);
    this.floodBuckets = new GcraBuckets(lim.floodIntervalMs, lim.floodBurst, lim.maxBuckets);
    this.nextPruneAt = now + lim.pruneEveryMs;
    this.stats = newStats();
    this.actions = [];
  }

  /** Everything decided since the last call, in order. */
  takeActions() {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  // --- neighbours ---

  /** A connection opened (after hello); only those listing `signal` carry frames. */
  connected(connId, peerId, caps, now) {
    const signal = [...caps].includes(CAP_SIGNAL);
    this.neighbours.set(connId, { connId, peerId, signal, reach: new Set(), reachSentAt: null, reachDirty: false });
    if (!signal) return;
    for (const other of this.#signalNeighbours()) other.reachDirty = true;
    this.#sendReachDue(now);
    this.#flush(peerId, now);
  }

  disconnected(connId, now) {
    const gone = this.neighbours.get(connId);
    if (!gone) return;
    this.neighbours.delete(connId);
    for (const [peerId, route] of this.routes) if (route.connId === connId) this.routes.delete(peerId);
    this.connBuckets.tat.delete(connId);
    this.reachBuckets.tat.delete(connId);
    if (!gone.signal) return;
    for (const other of this.#signalNeighbours()) other.reachDirty = true;
    this.#sendReachDue(now);
  }

  #signalNeighbours() {
    return [...this.neighbours.values()].filter((n) => n.signal);
  }

  #reachFor(to) {
    const peers = [];
    for (const n of this.#signalNeighbours()) if (n.peerId !== to.peerId && !peers.includes(n.peerId)) peers.push(n.peerId);
    return { t: "reach", peers: peers.slice(0, MAX_REACH_PEERS) };
  }

  #sendReachDue(now) {
    const interval = this.limits.reachIntervalMs;
    for (const n of this.#signalNeighbours()) {
      const due = n.reachSentAt === null || now >= n.reachSentAt + interval;
      if (due && (n.reachDirty || n.reachSentAt === null)) {
        n.reachSentAt = now;
        n.reachDirty = false;
        this.stats.reachSent += 1;
        this.actions.push({ type: "send", connId: n.connId, frame: this.#reachFor(n) });
      }
    }
  }

  // --- inputs ---

  /**
   * A decoded signal or reach frame from an open connection. Async for the signature check:
   * feed the frames of one connection in order (await each).
   */
  async receive(connId, frame, now) {
    const n = this.neighbours.get(connId);
    if (!n) {
      this.#drop(UNEXPECTED_FRAME, connId, "frame from an unknown connection");
      return;
    }
    if (frame.t === "reach") this.#onReach(n, frame, now);
    else await this.#onSignal(n, frame, now);
  }

  #onReach(n, frame, now) {
    if (!this.reachBuckets.take(n.connId, now)) {
      this.#drop(RATE_LIMITED, n.connId, "reach adverts too often", null, true);
      return;
    }
    n.reach = new Set(frame.peers.filter((p) => p !== this.peerId));
    for (const to of [...this.pending.keys()]) if (n.reach.has(to)) this.#flush(to, now);
  }

  async #onSignal(n, frame, now) {
    const connId = n.connId;
    if (!this.connBuckets.take(connId, now)) {
      this.#drop(RATE_LIMITED, connId, "too many signal frames", null, true);
      return;
    }
    let id;
    try {
      id = await signalId(checkSize(frame.msg).body);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#drop(error.code, connId, error.message);
      return;
    }
    if (this.seen.has(id)) {
      this.#drop(DUPLICATE, connId, "seen before", id);
      return;
    }
    let message;
    try {
      message = await parseSignal(frame.msg, { now });
      if (frame.hops >= message.hops) throw new ProtocolError(BAD_HOPS, "more hops left than the sender granted");
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#drop(error.code, connId, error.message, id);
      return;
    }
    // Another copy may have been taken while this one's signature was checked.
    if (this.seen.has(id)) {
      this.#drop(DUPLICATE, connId, "seen before", id);
      return;
    }
    if (message.from === this.peerId) {
      this.#drop(DUPLICATE, connId, "a message of this peer came back", id);
      return;
    }
    if (!this.originBuckets.take(message.from, now)) {
      this.#drop(RATE_LIMITED, connId, "too many messages from this origin", id);
      return;
    }
    this.#remember(id, message.createdAt);
    const traveled = message.hops - frame.hops;
    this.#learn(message.from, connId, traveled, now);
    if (message.to === this.peerId) {
      this.stats.delivered += 1;
      this.actions.push({ type: "deliver", message, connId, traveled });
      return;
    }
    this.#forward(message, id, frame.hops, connId, now);
  }

  /**
   * Sign a message of this peer and send it on its way; resolves its id. Throws ProtocolError
   * for a message receivers would refuse; what happens next (sent, flooded, held until a route
   * is known, or dropped with no_route, rate_limited or queue_full) comes out as actions.
   */
  async send({ to, sid, kind, payload, now, hops = defaultHops(kind) }) {
    const envelope = await makeSignal(this.signer, { to, sid, kind, payload, createdAt: now, hops });
    const id = await signalId(envelope.body);
    this.#remember(id, now);
    if (!this.originBuckets.take(this.peerId, now)) {
      this.#drop(RATE_LIMITED, null, "this peer sends too fast", id);
      return id;
    }
    this.stats.sent += 1;
    const route = this.#route(to, hops, null, now);
    if (route !== null) {
      this.#sendSignal(route, hops - 1, envelope);
      return id;
    }
    if (kind === KIND_OFFER && hops >= FLOOD_MIN_HOPS) {
      if (!this.floodBuckets.take(this.peerId, now)) this.#drop(RATE_LIMITED, null, "this peer floods offers too often", id);
      else if (this.#flood(this.peerId, envelope, hops - 1, null)) this.discovering.set(to, { until: now + this.limits.discoveryMs, id });
      else this.#drop(NO_ROUTE, null, "no neighbour takes signal frames", id);
      return id;
    }
    if ((this.discovering.get(to)?.until ?? 0) > now) {
      const queue = this.pending.get(to);
      if (!queue && this.pending.size >= this.limits.maxPendingPeers) this.#drop(QUEUE_FULL, null, "too many peers wait for a route", id);
      else if (queue && queue.length >= this.limits.maxPending) this.#drop(QUEUE_FULL, null, "too many messages wait for this peer", id);
      else {
        const item = { to, hops, envelope, id, until: this.discovering.get(to).until };
        if (queue) queue.push(item);
        else this.pending.set(to, [item]);
      }
      return id;
    }
    this.#drop(NO_ROUTE, null, "no route to the peer", id);
    return id;
  }

  // --- routing ---

  /** Whether an offer to `to` would follow a known route (a neighbour, a neighbour's `reach`, a learned route) rather than a flood. */
  hasRoute(to, now) {
    return this.#route(to, defaultHops(KIND_OFFER), null, now) !== null;
  }

  // The connection to send a message for `to` on, with `hops` forwards left here (a sender: its
  // budget); null when no known route fits.
  #route(to, hops, exclude, now) {
    if (hops < 1) return null;
    for (const n of this.neighbours.values()) if (n.signal && n.peerId === to && n.connId !== exclude) return n.connId;
    let learned = this.routes.get(to) ?? null;
    if (learned && (learned.until <= now || learned.connId === exclude || !this.neighbours.has(learned.connId) || learned.dist > hops)) learned = null;
    if (learned && learned.dist <= 2) return learned.connId;
    if (hops >= 2) {
      for (const n of this.neighbours.values()) if (n.signal && n.connId !== exclude && n.reach.has(to)) return n.connId;
    }
    return learned ? learned.connId : null;
  }

  #forward(message, id, hops, fromConn, now) {
    if (hops < 1) {
      this.#drop(HOPS_EXHAUSTED, fromConn, "no hops left", id);
      return;
    }
    const route = this.#route(message.to, hops, fromConn, now);
    if (route !== null) {
      this.stats.relayed += 1;
      this.#sendSignal(route, hops - 1, message.envelope);
      return;
    }
    if (message.kind !== KIND_OFFER || hops < FLOOD_MIN_HOPS) {
      this.#drop(NO_ROUTE, fromConn, "no route to the peer within the hops left", id);
      return;
    }
    if (!this.floodBuckets.take(message.from, now)) {
      this.#drop(RATE_LIMITED, fromConn, "too many flooded offers", id);
      return;
    }
    if (!this.#flood(message.from, message.envelope, hops - 1, fromConn)) this.#drop(NO_ROUTE, fromConn, "no other neighbour takes signal frames", id);
  }

  // Send to every neighbour taking signal frames but the one it came from and its origin.
  #flood(origin, envelope, hops, exclude) {
    const targets = this.#signalNeighbours().filter((n) => n.connId !== exclude && n.peerId !== origin);
    if (targets.length === 0) return false;
    this.stats.flooded += 1;
    const frame = { t: "signal", hops, msg: envelope };
    for (const n of targets) {
      if (exclude !== null) this.stats.relayed += 1;
      this.actions.push({ type: "send", connId: n.connId, frame });
    }
    return true;
  }

  #sendSignal(connId, hops, envelope) {
    this.actions.push({ type: "send", connId, frame: { t: "signal", hops, msg: envelope } });
  }

  // A message of `peerId` came on `connId` after `dist` hops: the way back.
  #learn(peerId, connId, dist, now) {
    this.routes.delete(peerId);
    this.routes.set(peerId, { connId, dist, until: now + this.limits.routeTtlMs });
    while (this.routes.size > this.limits.maxRoutes) this.routes.delete(this.routes.keys().next().value);
    if (this.pending.has(peerId)) this.#flush(peerId, now);
  }

  // Send what waits for `to` once a route is known.
  #flush(to, now) {
    const queue = this.pending.get(to);
    if (!queue) return;
    const keep = [];
    for (const item of queue) {
      const route = this.#route(to, item.hops, null, now);
      if (route === null) keep.push(item);
      else this.#sendSignal(route, item.hops - 1, item.envelope);
    }
    if (keep.length > 0) this.pending.set(to, keep);
    else {
      this.pending.delete(to);
      this.discovering.delete(to);
    }
  }

  #remember(id, createdAt) {
    this.seen.set(id, createdAt + MAX_AGE_MS + CLOCK_SKEW_MS);
    while (this.seen.size > this.limits.maxSeen) this.seen.delete(this.seen.keys().next().value);
  }

  #drop(code, connId, reason, id = null, violation = null) {
    const blame = (violation ?? VIOLATIONS.has(code)) && connId !== null;
    this.stats.dropped[code] = (this.stats.dropped[code] ?? 0) + 1;
    this.actions.push({ type: "drop", code, violation: blame, connId, reason, id });
  }

  // --- time ---

  /** Overdue waits (no_route), reach adverts due, pruning. */
  tick(now) {
    for (const [to, queue] of [...this.pending]) {
      for (const item of queue) if (item.until <= now) this.#drop(NO_ROUTE, null, "no route found in time", item.id);
      const keep = queue.filter((item) => item.until > now);
      if (keep.length > 0) this.pending.set(to, keep);
      else this.pending.delete(to);
    }
    for (const [to, { until, id }] of [...this.discovering]) {
      if (until > now) continue;
      this.discovering.delete(to);
      // Nothing came back: the sender may offer again with a larger budget.
      if (this.#route(to, MAX_SIGNAL_HOPS, null, now) === null) this.#drop(NO_ROUTE, null, "the offer was not answered in time", id);
    }
    this.#sendReachDue(now);
    if (now >= this.nextPruneAt) {
      this.nextPruneAt = now + this.limits.pruneEveryMs;
      for (const [id, at] of this.seen) if (at <= now) this.seen.delete(id);
      for (const [peerId, route] of this.routes) if (route.until <= now) this.routes.delete(peerId);
      for (const buckets of [this.connBuckets, this.reachBuckets, this.originBuckets, this.floodBuckets]) buckets.prune(now);
    }
  }

  /** When tick() should run next (ms). */
  nextDeadline(now) {
    let deadline = this.nextPruneAt;
    for (const queue of this.pending.values()) for (const item of queue) deadline = Math.min(deadline, item.until);
    // An offer still unanswered then is dropped no_route (the sender's cue to retry).
    for (const { until } of this.discovering.values()) deadline = Math.min(deadline, until);
    for (const n of this.#signalNeighbours())
      if (n.reachDirty && n.reachSentAt !== null) deadline = Math.min(deadline, n.reachSentAt + this.limits.reachIntervalMs);
    return Math.max(deadline, now);
  }
}
