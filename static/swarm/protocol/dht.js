// A Kademlia DHT over the swarm's connections (docs/protocol.md "DHT"), mirror of
// peers/protocol/dht.py (with dht_records.py and dht_table.py): ids, k-buckets, signed records, iterative lookups.
//
// - Node id = SHA-256 of the ASCII peer id (32 bytes): computable from a peer id alone (what
//   "Connect by id" knows) and bound to the key through the peer id. Distance is XOR read as a
//   256-bit big-endian integer; the bucket of a contact is the index of the highest bit of its
//   distance from this node (0..255).
// - A contact is a peer's presence ticket (swarm/ticket/v1): it proves the peer id and the
//   community. As a contact a ticket stays usable up to 1 h after issued_at (its signature does
//   not expire); as a peer record ("where is peer X") it must be live.
// - A provider record (swarm/provide/v1) says "peer X holds manifest M"; its key is the
//   manifest id's 32 bytes.
// - Lookups are iterative with parallelism alpha; every returned contact is verified before it
//   is asked, every returned record before it is used.
//
// Dht is sans-IO: frames from peers, the adapter's reports and `now` go in; frames to send to a
// peer ({type: "send", peerId, ticket, frame}: the adapter sends on an open connection, else
// dials the peer through the signaling server or the mesh), finished lookups ({type: "done"})
// and drops ({type: "drop", code, violation}) come out of takeActions(). Inputs that verify
// signatures are async: feed the frames of one peer in order.
import canonicalize from "canonicalize";

import { DIGEST_ID_RE } from "./chunks.js";
import { b64urlDecode, PEER_ID_RE, sha256, utf8 } from "./encoding.js";
import { sign, verify } from "./envelope.js";
import {
  BAD_BODY,
  BAD_ENVELOPE,
  BAD_SIGNATURE,
  EXPIRED,
  NOT_CLOSE,
  NOT_FOUND,
  NOT_YET_VALID,
  PEER_MISMATCH,
  ProtocolError,
  RATE_LIMITED,
  RECORD_TOO_LARGE,
  REPLAY,
  STORE_FULL,
  TIMEOUT,
  TTL_TOO_LONG,
  UNEXPECTED_FRAME,
  UNREACHABLE,
  WRONG_COMMUNITY,
  WRONG_KEY,
} from "./errors.js";
import { GcraBuckets } from "./ratelimit.js";
import { CLOCK_SKEW_MS, checkLifetime, isValidCommunity, verifyTicket } from "./ticket.js";
import { MAX_CHUNKS_PER_MANIFEST, MAX_DHT_NODES, MAX_DHT_RECORDS, MAX_UINT32 } from "./wire.js";

export const DOMAIN_PROVIDE = "swarm/provide/v1";
export const CAP_DHT = "dht";
export const ID_BYTES = 32;
export const KIND_PEER = "peer";
export const KIND_PROVIDER = "provider";
export const KIND_NODE = "node"; // a lookup for the contacts closest to an id (no record)
// Canonical JSON (RFC 8785) of a record or contact, in bytes: the beacon's announce limit.
export const MAX_RECORD_BYTES = 4096;
export const PROVIDE_TTL_MS = 1_800_000; // default lifetime of a provider record: 30 min ...
export const MAX_PROVIDE_TTL_MS = 3_600_000; // ... at most 1 h
export const CONTACT_MAX_AGE_MS = 3_600_000; // a ticket is a usable contact up to 1 h after issued_at
// A contact is handed out only while it has this long left, so it still verifies on arrival.
export const CONTACT_MARGIN_MS = 60_000;
export const STORED = "stored";
const PROVIDE_FIELDS = ["chunks", "community", "expires_at", "issued_at", "manifest", "peer_id"];
// Faults in what a neighbour sent that an honest peer never sends (it checks what it passes on):
// they count against it like a bad frame. Time faults (expired, not_yet_valid) do not.
export const VIOLATIONS = new Set([
  BAD_ENVELOPE,
  BAD_SIGNATURE,
  BAD_BODY,
  PEER_MISMATCH,
  WRONG_COMMUNITY,
  RECORD_TOO_LARGE,
  WRONG_KEY,
  UNEXPECTED_FRAME,
  RATE_LIMITED,
]);

/** Limits of one peer; rates are GCRA buckets per peer in integers (one token every *IntervalMs, *Burst saved up). */
export const DHT_LIMITS = Object.freeze({
  k: 20, // contacts per bucket and per answer
  alpha: 3, // requests in flight per lookup
  replicas: 20, // nodes a record is stored at (the closest that answered)
  valueWindow: 40, // a value lookup whose k closest gave no record asks on, up to the closest this many
  paths: 3, // disjoint paths of a value lookup (S/Kademlia): a contact belongs to the path that found it
  spare: 8, // replacement contacts kept per full bucket
  maxFailures: 2, // failed requests in a row before a contact is dropped
  requestTimeoutMs: 5_000, // includes dialing a contact not connected
  lookupTimeoutMs: 30_000,
  maxLookups: 32, // lookups running at once
  maxCandidates: 200, // contacts a lookup keeps (the closest)
  requestIntervalMs: 100, // requests taken per peer: 10/s, bursts of 50; beyond: rate_limited (a violation)
  requestBurst: 50,
  storeIntervalMs: 1_000, // dht_store frames taken per peer: 1/s, bursts of 10
  storeBurst: 10,
  maxRecords: 4096, // records held for others, in all
  maxPerPublisher: 64, // ... per publisher (the record's signer)
  maxPerKey: 20, // provider records per manifest
  maxRateKeys: 4096,
  republishMs: 900_000, // provider records are signed and stored again this often
  pruneEveryMs: 30_000,
});

// --- ids ---

const toBig = (bytes) => {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
};

const toBytes = (n) => {
  const out = new Uint8Array(ID_BYTES);
  let v = n;
  for (let i = ID_BYTES - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
};

const bitLength = (n) => (n === 0n ? 0 : n.toString(2).length);

/** SHA-256 of the ASCII peer id: the node's 256-bit id and the key of its peer record. */
export async function nodeId(peerId) {
  if (typeof peerId !== "string" || !PEER_ID_RE.test(peerId)) throw new ProtocolError(BAD_BODY, "not a key-bound peer id");
  return sha256(utf8.encode(peerId));
}

/** The key of a manifest's provider records: the 32 bytes of its id. */
export function providerKey(manifestId) {
  if (typeof manifestId !== "string" || !DIGEST_ID_RE.test(manifestId)) throw new ProtocolError(BAD_BODY, "not a manifest id");
  return b64urlDecode(manifestId, "manifest", BAD_BODY);
}

/** XOR distance of two ids, as 32 bytes (big-endian). */
export function distance(a, b) {
  return toBytes(toBig(a) ^ toBig(b));
}

/** The bucket of `other` seen from `own`: the highest set bit of their distance (255 for the farther half), -1 for the same id. */
export function bucketIndex(own, other) {
  return bitLength(toBig(own) ^ toBig(other)) - 1;
}

// --- records and contacts ---

const isMap = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** bad_envelope for a value that is no canonical JSON object, record_too_large beyond MAX_RECORD_BYTES. */
export function checkSize(envelope) {
  if (!isMap(envelope)) throw new ProtocolError(BAD_ENVELOPE, "a record must be a JSON object");
  let text;
  try {
    text = canonicalize(envelope);
  } catch {
    throw new ProtocolError(BAD_ENVELOPE, "the record is not canonical JSON");
  }
  if (typeof text !== "string") throw new ProtocolError(BAD_ENVELOPE, "the record is not canonical JSON");
  const size = utf8.encode(text).length;
  if (size > MAX_RECORD_BYTES) throw new ProtocolError(RECORD_TOO_LARGE, `a record is at most ${MAX_RECORD_BYTES} B, not ${size}`);
  return envelope;
}

async function contactOf(peerId, ticket, issuedAt, expiresAt) {
  const id = await nodeId(peerId);
  return { peerId, id, n: toBig(id), ticket, issuedAt, expiresAt, failures: 0 };
}

/**
 * A presence ticket as a contact: size, then the ticket's checks for `community` except that a
 * ticket expired as presence stays usable until issued_at + 1 h. Resolves
 * {peerId, id, n, ticket, issuedAt, expiresAt, failures}.
 */
export async function verifyContact(envelope, { now, community }) {
  checkSize(envelope);
  let peerId;
  let issuedAt;
  let expiresAt;
  try {
    const t = await verifyTicket(envelope, { now, community });
    [peerId, issuedAt, expiresAt] = [t.peerId, t.issuedAt, t.expiresAt];
  } catch (error) {
    if (!(error instanceof ProtocolError) || error.code !== EXPIRED) throw error;
    const body = envelope.body; // every other check passed: the fields are sound
    [peerId, issuedAt, expiresAt] = [body.peer_id, body.issued_at, body.expires_at];
  }
  if (now >= issuedAt + CONTACT_MAX_AGE_MS) throw new ProtocolError(EXPIRED, "a contact's ticket is older than 1 h");
  return contactOf(peerId, envelope, issuedAt, expiresAt);
}

function checkProvideBody(body) {
  const keys = Object.keys(body).sort();
  if (keys.length !== PROVIDE_FIELDS.length || keys.some((k, i) => k !== PROVIDE_FIELDS[i])) {
    throw new ProtocolError(BAD_BODY, `a provider record has exactly ${PROVIDE_FIELDS.join(",")}`);
  }
  if (typeof body.peer_id !== "string" || !PEER_ID_RE.test(body.peer_id)) throw new ProtocolError(BAD_BODY, "peer_id is not a key-bound peer id");
  if (!isValidCommunity(body.community)) throw new ProtocolError(BAD_BODY, "community name is invalid");
  if (typeof body.manifest !== "string" || !DIGEST_ID_RE.test(body.manifest)) throw new ProtocolError(BAD_BODY, "manifest is not a manifest id");
  if (!Number.isSafeInteger(body.chunks) || body.chunks < 0 || body.chunks > MAX_CHUNKS_PER_MANIFEST) {
    throw new ProtocolError(BAD_BODY, `chunks must be 0..${MAX_CHUNKS_PER_MANIFEST}`);
  }
  for (const name of ["issued_at", "expires_at"]) {
    if (!Number.isSafeInteger(body[name]) || body[name] < 0) throw new ProtocolError(BAD_BODY, `${name} must be a non-negative integer (ms)`);
  }
  if (body.expires_at <= body.issued_at) throw new ProtocolError(BAD_BODY, "expires_at must be after issued_at");
}

/** Sign "this peer holds `chunks` verified chunks of `manifest`" (swarm/provide/v1). */
export async function makeProviderRecord(signer, { peerId, community, manifest, chunks, now, ttlMs = PROVIDE_TTL_MS }) {
  const body = { peer_id: peerId, community, manifest, chunks, issued_at: now, expires_at: now + ttlMs };
  checkProvideBody(body);
  return checkSize(await sign(DOMAIN_PROVIDE, body, signer));
}

/**
 * Check a record before it is stored or used. In order: size (bad_envelope, record_too_large),
 * envelope and signature (bad_envelope, bad_signature), body (bad_body), signer (peer_mismatch),
 * community (wrong_community), times (ttl_too_long, not_yet_valid, expired). A peer record is a
 * live ticket. Resolves {kind, key, peerId, issuedAt, expiresAt, envelope, manifest, chunks}.
 */
export async function verifyRecord(kind, envelope, { now, community }) {
  checkSize(envelope);
  if (kind === KIND_PEER) {
    const t = await verifyTicket(envelope, { now, community });
    return { kind, key: await nodeId(t.peerId), peerId: t.peerId, issuedAt: t.issuedAt, expiresAt: t.expiresAt, envelope, manifest: null, chunks: null };
  }
  if (kind !== KIND_PROVIDER) throw new ProtocolError(BAD_BODY, `no record kind ${kind}`);
  const { body, peerId } = await verify(envelope, DOMAIN_PROVIDE);
  checkProvideBody(body);
  if (peerId !== body.peer_id) throw new ProtocolError(PEER_MISMATCH, "peer_id is not bound to the signing key");
  if (body.community !== community) throw new ProtocolError(WRONG_COMMUNITY, "the record is for another community");
  checkLifetime("provider record", body.issued_at, body.expires_at, { now, maxTtlMs: MAX_PROVIDE_TTL_MS, skewMs: CLOCK_SKEW_MS });
  return {
    kind,
    key: providerKey(body.manifest),
    peerId,
    issuedAt: body.issued_at,
    expiresAt: body.expires_at,
    envelope,
    manifest: body.manifest,
    chunks: body.chunks,
  };
}

const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const byDist = (a, b) => (a.dist < b.dist ? -1 : a.dist > b.dist ? 1 : 0);

// --- routing table ---

/** 256 k-buckets by bucketIndex, each least recently seen first, with a replacement list of at most `spare` contacts per bucket (newest last). */
export class RoutingTable {
  constructor(own, { k, spare }) {
    this.own = own;
    this.ownN = toBig(own);
    this.k = k;
    this.spareMax = spare;
    this.buckets = new Map();
    this.spares = new Map();
    this.byPeer = new Map();
  }

  get size() {
    return this.byPeer.size;
  }

  get(peerId) {
    return this.byPeer.get(peerId);
  }

  #index(contact) {
    return bitLength(this.ownN ^ contact.n) - 1;
  }

  /**
   * `contact` answered or asked: it moves to the tail of its bucket (its ticket kept when newer).
   * A full bucket keeps it as a spare and returns its least recently seen contact, whose
   * liveness the caller checks (null: nothing to check).
   */
  heard(contact) {
    const index = this.#index(contact);
    if (index < 0) return null;
    if (!this.buckets.has(index)) this.buckets.set(index, []);
    const bucket = this.buckets.get(index);
    const known = this.byPeer.get(contact.peerId);
    if (known) {
      bucket.splice(bucket.indexOf(known), 1);
      if (contact.issuedAt > known.issuedAt) Object.assign(known, { ticket: contact.ticket, issuedAt: contact.issuedAt, expiresAt: contact.expiresAt });
      known.failures = 0;
      bucket.push(known);
      return null;
    }
    if (bucket.length < this.k) {
      contact.failures = 0;
      bucket.push(contact);
      this.byPeer.set(contact.peerId, contact);
      return null;
    }
    if (!this.spares.has(index)) this.spares.set(index, []);
    const spares = this.spares.get(index);
    const at = spares.findIndex((c) => c.peerId === contact.peerId);
    if (at >= 0) spares.splice(at, 1);
    spares.push(contact);
    if (spares.length > this.spareMax) spares.splice(0, spares.length - this.spareMax);
    return bucket[0];
  }

  /** A request to `peerId` failed; true when it was dropped from the table. */
  failed(peerId, maxFailures) {
    const contact = this.byPeer.get(peerId);
    if (!contact) return false;
    contact.failures += 1;
    if (contact.failures < maxFailures && !this.spares.get(this.#index(contact))?.length) return false;
    this.remove(peerId);
    return true;
  }

  /** Drop a contact; the newest spare of its bucket takes its place. */
  remove(peerId) {
    const contact = this.byPeer.get(peerId);
    if (!contact) return;
    this.byPeer.delete(peerId);
    const index = this.#index(contact);
    const bucket = this.buckets.get(index);
    bucket.splice(bucket.indexOf(contact), 1);
    const spare = this.spares.get(index)?.pop();
    if (spare) {
      spare.failures = 0;
      bucket.push(spare);
      this.byPeer.set(spare.peerId, spare);
    }
  }

  /**
   * The `n` contacts closest to `target` (a BigInt), nearest first, passing `keep`. Contacts of
   * the bucket `target` falls in are closest, then those of nearer buckets, then the farther
   * buckets in order: so only the buckets needed are sorted.
   */
  closest(target, n, keep = () => true) {
    const b = bitLength(this.ownN ^ target) - 1;
    const out = [];
    const take = (contacts) => {
      const ranked = contacts.filter(keep).map((c) => ({ c, dist: c.n ^ target }));
      ranked.sort(byDist);
      for (const r of ranked) if (out.length < n) out.push(r.c);
    };
    if (b >= 0) take(this.buckets.get(b) ?? []);
    if (out.length < n) {
      const nearer = [];
      for (const [i, bucket] of this.buckets) if (i < b) nearer.push(...bucket);
      take(nearer);
    }
    for (let i = b + 1; i < 256 && out.length < n; i++) take(this.buckets.get(i) ?? []);
    return out;
  }

  /** How many contacts are closer to `key` (a BigInt) than this node (counted up to `limit`). */
  closerThanSelf(key, limit) {
    const own = this.ownN ^ key;
    let count = 0;
    for (const c of this.byPeer.values()) {
      if ((c.n ^ key) < own && ++count >= limit) break;
    }
    return count;
  }
}

// --- record store ---

const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * Records held for others: one peer record per peer, provider records per manifest and
 * publisher. Bounded in all, per publisher and per key; when full, a record closer to this node
 * than the farthest held replaces it.
 */
export class RecordStore {
  constructor(own, limits) {
    this.ownN = toBig(own);
    this.limits = limits;
    this.records = new Map(); // `${kind} ${keyHex} ${publisher}` -> record
    this.perKey = new Map(); // provider records per key (hex)
    this.perPublisher = new Map();
  }

  get size() {
    return this.records.size;
  }

  /** "stored", or why not: replay (an as new or newer one is held), store_full (in all, for this publisher or this key). */
  put(record) {
    const keyHex = hexOf(record.key);
    const slot = `${record.kind} ${keyHex} ${record.peerId}`;
    const held = this.records.get(slot);
    if (held) {
      if (held.issuedAt >= record.issuedAt) return REPLAY;
      this.records.set(slot, record);
      return STORED;
    }
    const lim = this.limits;
    if ((this.perPublisher.get(record.peerId) ?? 0) >= lim.maxPerPublisher) return STORE_FULL;
    if (record.kind === KIND_PROVIDER && (this.perKey.get(keyHex) ?? 0) >= lim.maxPerKey) {
      let oldest = null;
      for (const r of this.records.values()) {
        if (r.kind === KIND_PROVIDER && sameBytes(r.key, record.key) && (oldest === null || r.issuedAt < oldest.issuedAt)) oldest = r;
      }
      if (oldest.issuedAt >= record.issuedAt) return STORE_FULL;
      this.#remove(oldest);
    }
    if (this.records.size >= lim.maxRecords) {
      let farthest = null;
      let far = -1n;
      for (const r of this.records.values()) {
        const d = this.ownN ^ toBig(r.key);
        if (d > far) [farthest, far] = [r, d];
      }
      if (far <= (this.ownN ^ toBig(record.key))) return STORE_FULL;
      this.#remove(farthest);
    }
    this.records.set(slot, record);
    this.perPublisher.set(record.peerId, (this.perPublisher.get(record.peerId) ?? 0) + 1);
    if (record.kind === KIND_PROVIDER) this.perKey.set(keyHex, (this.perKey.get(keyHex) ?? 0) + 1);
    return STORED;
  }

  #remove(record) {
    const keyHex = hexOf(record.key);
    this.records.delete(`${record.kind} ${keyHex} ${record.peerId}`);
    const left = this.perPublisher.get(record.peerId) - 1;
    if (left) this.perPublisher.set(record.peerId, left);
    else this.perPublisher.delete(record.peerId);
    if (record.kind === KIND_PROVIDER) {
      const n = this.perKey.get(keyHex) - 1;
      if (n) this.perKey.set(keyHex, n);
      else this.perKey.delete(keyHex);
    }
  }

  /** Live records of `kind` for `key`, newest first (at most 20). */
  get(kind, key, now) {
    const found = [];
    for (const r of this.records.values()) if (r.kind === kind && now < r.expiresAt && sameBytes(r.key, key)) found.push(r);
    found.sort((a, b) => b.issuedAt - a.issuedAt || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
    return found.slice(0, MAX_DHT_RECORDS);
  }

  prune(now) {
    for (const r of [...this.records.values()]) if (now >= r.expiresAt) this.#remove(r);
  }
}

const copyContact = (c) => ({ ...c, failures: 0 });

// The same JSON value (key order aside): a remembered signature covers only what it signed.
function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
}

// Contact tickets whose signature verified, per process (a page runs one Dht; a simulation
// running many checks each signature once): `${community} ${sig}` -> contact.
export const VERIFIED_CACHE = 20_000;
const VERIFIED = new Map();

function remember(key, entry) {
  VERIFIED.set(key, entry);
  while (VERIFIED.size > VERIFIED_CACHE) VERIFIED.delete(VERIFIED.keys().next().value);
}

/** The DHT of one peer; see the header and docs/protocol.md "DHT". Build it with Dht.create(). */
export class Dht {
  /** @param {{ peerId: string, id: Uint8Array, community: string, signer: any, ticket: object, limits?: object, now?: number }} options */
  constructor({ peerId, id, community, signer, ticket, limits = {}, now = 0 }) {
    this.peerId = peerId;
    this.id = id;
    this.n = toBig(id);
    this.community = community;
    this.signer = signer;
    this.ticket = ticket;
    this.limits = { ...DHT_LIMITS, ...limits };
    const lim = this.limits;
    this.table = new RoutingTable(id, { k: lim.k, spare: lim.spare });
    this.store = new RecordStore(id, lim);
    this.requests = new Map(); // `${peerId} ${id}` -> request
    this.lookups = new Map();
    this.probing = new Set();
    this.published = new Map();
    this.requestBuckets = new GcraBuckets(lim.requestIntervalMs, lim.requestBurst, lim.maxRateKeys);
    this.storeBuckets = new GcraBuckets(lim.storeIntervalMs, lim.storeBurst, lim.maxRateKeys);
    this.nextRequest = 1;
    this.nextLookup = 1;
    this.nextPruneAt = now + lim.pruneEveryMs;
    this.stats = { requestsIn: 0, requestsOut: 0, answersIn: 0, timeouts: 0, stored: 0, lookups: 0, dropped: {} };
    this.actions = [];
  }

  /** @param {{ peerId: string, community: string, signer: any, ticket: object, limits?: object, now?: number }} options */
  static async create(options) {
    return new Dht({ ...options, id: await nodeId(options.peerId) });
  }

  /** Everything decided since the last call, in order. */
  takeActions() {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  // --- inputs from the adapter ---

  /** This peer's new presence ticket: sent in its frames and stored as its peer record at the `replicas` nodes closest to its id. */
  async setTicket(ticket, now) {
    this.ticket = ticket;
    return this.#start(KIND_NODE, this.id, now, { kind: KIND_PEER, records: [ticket] });
  }

  /** A DHT peer the adapter met (a connection's hello listed `dht`): into the table. Resolves whether it was taken. */
  async seen(ticket, now) {
    let contact;
    try {
      contact = await this.#contact(ticket, now);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#drop(error.code, null, error.message);
      return false;
    }
    if (contact.peerId === this.peerId) return false;
    this.#heard(contact, now);
    return true;
  }

  /** The adapter could not reach `peerId`: its requests fail now. */
  unreachable(peerId, now) {
    for (const [key, request] of [...this.requests]) if (request.peerId === peerId) this.#fail(key, UNREACHABLE, now);
  }

  // --- lookups ---

  /** Look up the contacts closest to `target` (32 bytes); resolves the lookup id. */
  async findNode(target, now) {
    return this.#start(KIND_NODE, target, now);
  }

  /** Look up `peerId`'s live presence ticket (its peer record). */
  async findPeer(peerId, now) {
    return this.#start(KIND_PEER, await nodeId(peerId), now);
  }

  /** Look up provider records of `manifest`. */
  async findProviders(manifest, now) {
    return this.#start(KIND_PROVIDER, providerKey(manifest), now);
  }

  /** Sign a provider record for `manifest` and store it at the closest nodes; signed and stored again every republishMs until unprovide(). */
  async provide(manifest, chunks, now) {
    this.published.set(manifest, { manifest, chunks, nextAt: now + this.limits.republishMs });
    const record = await makeProviderRecord(this.signer, { peerId: this.peerId, community: this.community, manifest, chunks, now });
    return this.#start(KIND_NODE, providerKey(manifest), now, { kind: KIND_PROVIDER, records: [record] });
  }

  /** Stop republishing (the records held elsewhere expire on their own). */
  unprovide(manifest) {
    this.published.delete(manifest);
  }

  async #start(kind, target, now, store = null) {
    const lim = this.limits;
    const t = toBig(target);
    const lookup = {
      id: this.nextLookup++,
      kind,
      target,
      t,
      deadline: now + lim.lookupTimeoutMs,
      candidates: new Map(),
      inFlight: 0,
      // A value lookup runs `paths` disjoint paths: each contact is asked on behalf of the path
      // that first heard of it, so colluders that capture one path cannot steer the others.
      paths: kind === KIND_NODE ? 1 : Math.max(1, lim.paths),
      flying: [],
      messages: 0,
      records: [],
      hops: null,
      store,
    };
    this.stats.lookups += 1;
    if (this.lookups.size >= lim.maxLookups) {
      this.#finish(lookup, RATE_LIMITED, now);
      return lookup.id;
    }
    this.lookups.set(lookup.id, lookup);
    lookup.flying = new Array(lookup.paths).fill(0);
    // The closest contacts are dealt to the paths in turn (the closest of each path first).
    for (const [i, contact] of this.table.closest(t, lim.k).entries()) {
      lookup.candidates.set(contact.peerId, { contact, dist: contact.n ^ t, depth: 1, state: "new", path: i % lookup.paths });
    }
    if (store !== null && kind === KIND_NODE) await this.#storeLocally(store, now);
    this.#step(lookup, now);
    return lookup.id;
  }

  // A publisher among the closest nodes of its own key keeps its record too.
  async #storeLocally(store, now) {
    for (const envelope of store.records) {
      const record = await verifyRecord(store.kind, envelope, { now, community: this.community });
      if (this.table.closerThanSelf(toBig(record.key), this.limits.replicas) < this.limits.replicas) this.store.put(record);
    }
  }

  // Ask the closest contacts not yet asked, alpha at a time; finish when the k closest still
  // standing (not failed, not caught lying) have all answered or failed. A value lookup whose
  // k closest were all asked without a record asks on, up to the valueWindow closest. A value
  // lookup does so on each of its disjoint paths, alpha requests in flight on each.
  #step(lookup, now) {
    if (!this.lookups.has(lookup.id)) return;
    const lim = this.limits;
    for (let path = 0; path < lookup.paths; path++) this.#stepPath(lookup, path, lim.alpha, now);
    if (lookup.inFlight === 0) this.#finish(lookup, lookup.kind !== KIND_NODE ? NOT_FOUND : null, now);
  }

  #stepPath(lookup, path, alpha, now) {
    const lim = this.limits;
    const ranked = [...lookup.candidates.values()].filter((c) => c.path === path && c.state !== "failed" && c.state !== "bad");
    ranked.sort(byDist);
    let window = lim.k;
    if (lookup.kind !== KIND_NODE && ranked.slice(0, lim.k).every((c) => c.state !== "new")) window = Math.max(lim.k, lim.valueWindow);
    for (const candidate of ranked.slice(0, window)) {
      if (lookup.flying[path] >= alpha) break;
      if (candidate.state === "new") {
        candidate.state = "asked";
        lookup.inFlight += 1;
        lookup.flying[path] += 1;
        lookup.messages += 1;
        const id = this.#newRequest(candidate.contact.peerId, lookup.id, now);
        const frame =
          lookup.kind === KIND_NODE
            ? { t: "dht_find_node", id, ticket: this.ticket, target: lookup.target }
            : { t: "dht_find_value", id, ticket: this.ticket, kind: lookup.kind, key: lookup.target };
        this.actions.push({ type: "send", peerId: candidate.contact.peerId, ticket: candidate.contact.ticket, frame });
      }
    }
  }

  #newRequest(peerId, lookup, now, probe = false) {
    const id = this.nextRequest;
    this.nextRequest = id >= MAX_UINT32 ? 1 : id + 1;
    this.requests.set(`${peerId} ${id}`, { peerId, lookup, deadline: now + this.limits.requestTimeoutMs, probe });
    this.stats.requestsOut += 1;
    return id;
  }

  #finish(lookup, code, now) {
    this.lookups.delete(lookup.id);
    const answered = [...lookup.candidates.values()].filter((c) => c.state === "answered");
    answered.sort(byDist);
    const closest = answered.slice(0, this.limits.k);
    const ok = lookup.kind === KIND_NODE ? closest.length > 0 : lookup.records.length > 0;
    const why = ok ? null : lookup.kind === KIND_NODE ? (code ?? NOT_FOUND) : code;
    this.actions.push({
      type: "done",
      lookup: lookup.id,
      kind: lookup.kind,
      target: lookup.target,
      ok,
      code: why,
      records: lookup.records,
      contacts: closest.map((c) => c.contact.ticket),
      hops: lookup.hops,
      messages: lookup.messages,
    });
    if (lookup.store !== null) {
      for (const c of closest.slice(0, this.limits.replicas)) {
        const id = this.#newRequest(c.contact.peerId, null, now);
        const frame = { t: "dht_store", id, ticket: this.ticket, kind: lookup.store.kind, records: lookup.store.records };
        this.actions.push({ type: "send", peerId: c.contact.peerId, ticket: c.contact.ticket, frame });
      }
    }
  }

  // --- frames ---

  /** A dht_* frame from `peerId` (the connection's verified peer id). */
  async receive(peerId, frame, now) {
    let sender;
    try {
      sender = await this.#contact(frame.ticket, now);
      if (sender.peerId !== peerId) throw new ProtocolError(PEER_MISMATCH, "the frame's ticket is not the sender's");
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#drop(error.code, peerId, `sender ticket: ${error.message}`);
      return;
    }
    if (frame.t === "dht_find_node" || frame.t === "dht_find_value" || frame.t === "dht_store") {
      await this.#onRequest(sender, frame, now);
      return;
    }
    const key = `${peerId} ${frame.id}`;
    const request = this.requests.get(key);
    if (!request) {
      this.#drop(UNEXPECTED_FRAME, peerId, "an answer to no request");
      return;
    }
    this.requests.delete(key);
    this.stats.answersIn += 1;
    this.#heard(sender, now);
    this.probing.delete(peerId);
    if (request.lookup === null) {
      if (frame.t === "dht_stored") this.stats.stored += frame.codes.filter((c) => c === STORED).length;
      return;
    }
    const lookup = this.lookups.get(request.lookup);
    if (!lookup) return;
    lookup.inFlight -= 1;
    const candidate = lookup.candidates.get(peerId);
    let depth = 1;
    let path = 0;
    if (candidate) {
      candidate.state = "answered";
      depth = candidate.depth;
      path = candidate.path;
      lookup.flying[path] -= 1;
    }
    const expected = lookup.kind === KIND_NODE ? "dht_nodes" : "dht_value";
    let violations = 0;
    if (frame.t !== expected) {
      this.#drop(UNEXPECTED_FRAME, peerId, `${frame.t} answers a ${lookup.kind} lookup`);
      violations += 1;
    } else {
      if (frame.t === "dht_value") violations += await this.#takeRecords(lookup, frame.records, peerId, depth, now);
      violations += await this.#takeNodes(lookup, frame.nodes, peerId, depth, path, now);
    }
    if (violations > 0) {
      // An answer an honest peer never sends: the peer leaves the table, and this lookup
      // neither counts it among the closest nor stores at it.
      if (candidate) candidate.state = "bad";
      this.table.remove(peerId);
    }
    if (!this.lookups.has(lookup.id)) return; // ended while the answer was checked
    if (lookup.records.length > 0) this.#finish(lookup, null, now);
    else this.#step(lookup, now);
  }

  // Both resolve how many of the answer's records or contacts were violations.
  async #takeRecords(lookup, envelopes, peerId, depth, now) {
    let violations = 0;
    for (const envelope of envelopes) {
      let record;
      try {
        record = await verifyRecord(lookup.kind, envelope, { now, community: this.community });
        if (!sameBytes(record.key, lookup.target)) throw new ProtocolError(WRONG_KEY, "a record for another key");
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.#drop(error.code, peerId, `record: ${error.message}`);
        if (VIOLATIONS.has(error.code)) violations += 1;
        continue;
      }
      if (lookup.records.every((r) => r.peerId !== record.peerId)) {
        lookup.records.push(record);
        lookup.hops ??= depth;
      }
    }
    return violations;
  }

  async #takeNodes(lookup, envelopes, peerId, depth, path, now) {
    let violations = 0;
    for (const envelope of envelopes) {
      let contact;
      try {
        contact = await this.#contact(envelope, now);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.#drop(error.code, peerId, `contact: ${error.message}`);
        if (VIOLATIONS.has(error.code)) violations += 1;
        continue;
      }
      if (contact.peerId === this.peerId || lookup.candidates.has(contact.peerId)) continue;
      lookup.candidates.set(contact.peerId, { contact, dist: contact.n ^ lookup.t, depth: depth + 1, state: "new", path });
    }
    if (lookup.candidates.size > this.limits.maxCandidates) {
      // Contacts asked or answered stay (their requests are outstanding or done).
      const all = [...lookup.candidates.values()];
      const fixed = all.filter((c) => c.state !== "new");
      const fresh = all.filter((c) => c.state === "new").sort(byDist);
      const room = Math.max(0, this.limits.maxCandidates - fixed.length);
      lookup.candidates = new Map([...fixed, ...fresh.slice(0, room)].map((c) => [c.contact.peerId, c]));
    }
    return violations;
  }

  async #onRequest(sender, frame, now) {
    const peerId = sender.peerId;
    if (!this.requestBuckets.take(peerId, now)) {
      this.#drop(RATE_LIMITED, peerId, "too many DHT requests");
      return;
    }
    if (frame.t === "dht_store" && !this.storeBuckets.take(peerId, now)) {
      this.#drop(RATE_LIMITED, peerId, "too many DHT stores");
      return;
    }
    this.stats.requestsIn += 1;
    this.#heard(sender, now);
    let answer;
    if (frame.t === "dht_find_node") {
      answer = { t: "dht_nodes", id: frame.id, ticket: this.ticket, nodes: this.#nodes(toBig(frame.target), peerId, now) };
    } else if (frame.t === "dht_find_value") {
      const records = this.#records(frame.kind, frame.key, now);
      const nodes = records.length ? [] : this.#nodes(toBig(frame.key), peerId, now);
      answer = { t: "dht_value", id: frame.id, ticket: this.ticket, records, nodes };
    } else {
      const codes = [];
      for (const envelope of frame.records) codes.push(await this.#storeOne(frame.kind, envelope, peerId, now));
      answer = { t: "dht_stored", id: frame.id, ticket: this.ticket, codes };
    }
    this.actions.push({ type: "send", peerId, ticket: null, frame: answer });
  }

  #nodes(target, exclude, now) {
    const usable = now + CONTACT_MARGIN_MS - CONTACT_MAX_AGE_MS;
    const keep = (c) => c.peerId !== exclude && c.issuedAt > usable;
    return this.table.closest(target, Math.min(this.limits.k, MAX_DHT_NODES), keep).map((c) => c.ticket);
  }

  #records(kind, key, now) {
    if (kind === KIND_PEER) {
      if (sameBytes(key, this.id)) return [this.ticket];
      const held = this.store.get(KIND_PEER, key, now);
      if (held.length) return [held[0].envelope];
      const [contact] = this.table.closest(toBig(key), 1);
      if (contact && sameBytes(contact.id, key) && now < contact.expiresAt) return [contact.ticket];
      return [];
    }
    return this.store.get(KIND_PROVIDER, key, now).map((r) => r.envelope);
  }

  async #storeOne(kind, envelope, peerId, now) {
    let record;
    try {
      record = await verifyRecord(kind, envelope, { now, community: this.community });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#drop(error.code, peerId, `stored record: ${error.message}`);
      return error.code;
    }
    if (this.table.closerThanSelf(toBig(record.key), this.limits.k) >= this.limits.k) {
      this.#drop(NOT_CLOSE, null, "this node is not among the closest to the key");
      return NOT_CLOSE;
    }
    const code = this.store.put(record);
    if (code !== STORED) this.#drop(code, null, "not stored");
    return code;
  }

  // --- contacts ---

  // A verified contact; signatures already checked are remembered (per process, by community
  // and sig), and so are tickets refused for a fault that time does not change (a forged one
  // sent again is refused without checking it again).
  async #contact(ticket, now) {
    const key = isMap(ticket) && typeof ticket.sig === "string" ? `${this.community} ${ticket.sig}` : null;
    const known = key === null ? undefined : VERIFIED.get(key);
    if (known && sameJson(known.ticket, ticket)) {
      if (known.refused) throw new ProtocolError(known.refused, "refused before");
      if (now >= known.issuedAt + CONTACT_MAX_AGE_MS) throw new ProtocolError(EXPIRED, "a contact's ticket is older than 1 h");
      return copyContact(known);
    }
    let contact;
    try {
      contact = await verifyContact(ticket, { now, community: this.community });
    } catch (error) {
      if (key !== null && error instanceof ProtocolError && error.code !== EXPIRED && error.code !== NOT_YET_VALID && error.code !== TTL_TOO_LONG) {
        remember(key, { ticket, refused: error.code });
      }
      throw error;
    }
    if (key !== null) remember(key, contact);
    return copyContact(contact);
  }

  #heard(contact, now) {
    if (contact.peerId === this.peerId) return;
    const oldest = this.table.heard(contact);
    if (oldest && !this.probing.has(oldest.peerId)) {
      // A full bucket: is its least recently seen contact still there?
      this.probing.add(oldest.peerId);
      const id = this.#newRequest(oldest.peerId, null, now, true);
      this.actions.push({
        type: "send",
        peerId: oldest.peerId,
        ticket: oldest.ticket,
        frame: { t: "dht_find_node", id, ticket: this.ticket, target: this.id },
      });
    }
  }

  #fail(key, code, now) {
    const request = this.requests.get(key);
    if (!request) return;
    this.requests.delete(key);
    this.stats.timeouts += 1;
    this.#drop(code, null, `no answer from ${request.peerId}`);
    if (request.probe) {
      this.probing.delete(request.peerId);
      this.table.remove(request.peerId); // a spare takes its place
    } else this.table.failed(request.peerId, this.limits.maxFailures);
    const lookup = request.lookup === null ? undefined : this.lookups.get(request.lookup);
    if (!lookup) return;
    lookup.inFlight -= 1;
    const candidate = lookup.candidates.get(request.peerId);
    if (candidate) {
      candidate.state = "failed";
      lookup.flying[candidate.path] -= 1;
    }
    this.#step(lookup, now);
  }

  #drop(code, peerId, reason) {
    this.stats.dropped[code] = (this.stats.dropped[code] ?? 0) + 1;
    this.actions.push({ type: "drop", code, violation: VIOLATIONS.has(code) && peerId !== null, peerId, reason });
  }

  // --- time ---

  /** Request timeouts, lookup deadlines, republishing, pruning. */
  async tick(now) {
    for (const [key, request] of [...this.requests]) if (request.deadline <= now) this.#fail(key, TIMEOUT, now);
    for (const lookup of [...this.lookups.values()]) if (lookup.deadline <= now) this.#finish(lookup, TIMEOUT, now);
    for (const item of [...this.published.values()]) if (item.nextAt <= now) await this.provide(item.manifest, item.chunks, now);
    if (now >= this.nextPruneAt) {
      this.nextPruneAt = now + this.limits.pruneEveryMs;
      this.store.prune(now);
      this.requestBuckets.prune(now);
      this.storeBuckets.prune(now);
      for (const c of [...this.table.byPeer.values()]) if (c.issuedAt <= now - CONTACT_MAX_AGE_MS) this.table.remove(c.peerId);
    }
  }

  /** When tick() should run next (ms). */
  nextDeadline(now) {
    let deadline = this.nextPruneAt;
    for (const r of this.requests.values()) deadline = Math.min(deadline, r.deadline);
    for (const l of this.lookups.values()) deadline = Math.min(deadline, l.deadline);
    for (const p of this.published.values()) deadline = Math.min(deadline, p.nextAt);
    return Math.max(deadline, now);
  }

  /** What this peer holds: contacts, records, and their tickets' bytes (canonical JSON). */
  memory() {
    let bytes = 0;
    for (const c of this.table.byPeer.values()) bytes += utf8.encode(canonicalize(c.ticket)).length;
    for (const r of this.store.records.values()) bytes += utf8.encode(canonicalize(r.envelope)).length;
    return { contacts: this.table.size, records: this.store.size, bytes };
  }
}
