// What a guardian holds: shares of other peers' seeds and the recovery requests for them
// (docs/protocol.md "Guardian"), mirror of peers/protocol/guardian.py. Sans-IO: signed
// messages and `now` go in; receipts, releases and refusals come out; nextDeadline() says
// when prune() is due; snapshot() is what the page keeps in IndexedDB. Calls must not
// overlap (the caller queues them): each one checks, awaits its crypto, then commits.
import { peerIdForKey } from "./encoding.js";
import { CODE_CONFLICT, EXPIRED, NO_SHARE, OVER_QUOTA, ProtocolError, REVOKED_SET, STALE_SET, UNKNOWN_REQUEST } from "./errors.js";
import { KIND_RECOVER_REQ, KIND_REVOKE, KIND_SHARE, makeReceipt, makeRefuse, makeRelease, openShare, parseMessage, verificationCode } from "./shard.js";

export const GUARDIAN_LIMITS = Object.freeze({
  maxShares: 256,
  maxPerOwner: 4,
  // Owners remembered: those with shares, and those with only revoked sets to refuse.
  maxOwners: 1024,
  maxRevokedPerOwner: 16,
  maxRequests: 32,
  maxRequestsPerOwner: 8,
});
const SNAPSHOT_VERSION = 1;

const byIndex = (a, b) => a.share.index - b.share.index;

export class GuardianStore {
  #owners = new Map(); // owner -> { set, newest, shares: Map(index -> held), revoked: [set ids] }
  #requests = new Map(); // request id -> incoming request

  /** Use GuardianStore.create (the peer id is derived asynchronously). */
  constructor(signer, keyPair, peerId, limits = {}) {
    this.signer = signer;
    this.keyPair = keyPair; // this guardian's X25519 pair: { privateKey: CryptoKey, publicKey: raw }
    this.peerId = peerId;
    this.limits = { ...GUARDIAN_LIMITS, ...limits };
  }

  static async create(signer, keyPair, { limits = {} } = {}) {
    return new GuardianStore(signer, keyPair, await peerIdForKey(signer.publicKey), limits);
  }

  // --- shares ---

  /**
   * Hold a `share` sent to this guardian; resolves { held: { share, heldAt }, receipt }. A newer
   * set (later issued_at) of the owner replaces the one held; an older one, or one revoked, is
   * refused (stale_set, revoked_set).
   */
  async acceptShare(envelope, { now }) {
    const share = await parseMessage(envelope, { now, kind: KIND_SHARE });
    await openShare(share, { keyPair: this.keyPair, peerId: this.peerId });
    let record = this.#owners.get(share.owner);
    const replacing = record === undefined || record.set !== share.set;
    if (record !== undefined) {
      if (record.revoked.includes(share.set)) throw new ProtocolError(REVOKED_SET, "this share set was revoked or replaced");
      if (replacing && share.issuedAt <= record.newest) throw new ProtocolError(STALE_SET, "a newer share set of this owner is known");
    }
    this.#checkQuota(record, share, replacing);
    record = this.#owner(share.owner);
    if (replacing) {
      if (record.set !== null) this.#rememberRevoked(record, record.set);
      record.shares.clear();
      record.set = share.set;
    }
    record.newest = Math.max(record.newest, share.issuedAt);
    const held = { share, heldAt: now };
    record.shares.set(share.index, held);
    return { held, receipt: await makeReceipt(this.signer, share, { heldAt: now }) };
  }

  /** Apply an owner's `revoke`: its set is deleted and refused from now on; resolves how many shares went. */
  async revoke(envelope, { now }) {
    const revoke = await parseMessage(envelope, { now, kind: KIND_REVOKE });
    const record = this.#owner(revoke.owner);
    let deleted = 0;
    if (record.set === revoke.set) {
      deleted = record.shares.size;
      record.shares.clear();
      record.set = null;
      for (const [id, r] of this.#requests) if (r.forPeer === revoke.owner) this.#requests.delete(id);
    }
    this.#rememberRevoked(record, revoke.set);
    return deleted;
  }

  /** Fresh receipts for every share held of `owner` (sent when the owner connects). */
  async receiptsFor(owner, { now }) {
    const record = this.#owners.get(owner);
    const held = record ? [...record.shares.values()].sort(byIndex) : [];
    return Promise.all(held.map((h) => makeReceipt(this.signer, h.share, { heldAt: now })));
  }

  held() {
    return [...this.#owners.values()].flatMap((r) => [...r.shares.values()].sort(byIndex));
  }

  // --- recovery requests ---

  /**
   * Take a `recover_req`; null when no share of its owner is held (not an error: requests are
   * flooded to everyone). A request seen before comes back as it stands, with its `answer` to
   * send again. Computing the code takes about 0.2 s.
   */
  async request(envelope, { now }) {
    const request = await parseMessage(envelope, { now, kind: KIND_RECOVER_REQ });
    if (this.#requests.has(request.id)) return this.#requests.get(request.id);
    if (!(this.#owners.get(request.forPeer)?.shares.size > 0)) return null;
    const code = await verificationCode(request.id);
    if (this.#requests.has(request.id)) return this.#requests.get(request.id);
    const same = [...this.#requests.values()].filter((r) => r.forPeer === request.forPeer);
    const incoming = { id: request.id, forPeer: request.forPeer, request, code, receivedAt: now, state: "pending", conflict: false, answer: [] };
    for (const other of same) {
      if (other.code === code) other.conflict = incoming.conflict = true; // one was ground to show the other's code
    }
    this.#makeRoom(same);
    this.#requests.set(request.id, incoming);
    return incoming;
  }

  /** The person approved: one `release` per share held of the request's owner. */
  async approve(requestId, { now }) {
    const incoming = this.#answerable(requestId, now, "approved");
    if (incoming.state === "approved") return [...incoming.answer];
    if (incoming.conflict) throw new ProtocolError(CODE_CONFLICT, "two requests for this owner show the same code");
    const record = this.#owners.get(incoming.forPeer);
    if (!(record?.shares.size > 0)) throw new ProtocolError(NO_SHARE, "no share of this owner is held any more");
    const releases = [];
    for (const { share } of [...record.shares.values()].sort(byIndex)) {
      const text = await openShare(share, { keyPair: this.keyPair, peerId: this.peerId });
      releases.push(await makeRelease(this.signer, incoming.request, { setId: share.set, index: share.index, k: share.k, n: share.n, share: text }));
    }
    if (incoming.state !== "pending") return [...incoming.answer];
    incoming.state = "approved";
    incoming.answer = releases;
    return releases;
  }

  /** The person refused: a signed `refuse` for the temporary identity. */
  async refuse(requestId, { now }) {
    const incoming = this.#answerable(requestId, now, "refused");
    if (incoming.state === "refused") return incoming.answer[0];
    const refusal = await makeRefuse(this.signer, incoming.request);
    if (incoming.state !== "pending") return incoming.answer[0];
    incoming.state = "refused";
    incoming.answer = [refusal];
    return refusal;
  }

  requests() {
    return [...this.#requests.values()];
  }

  // --- time ---

  /** Forget expired shares and requests. */
  prune(now) {
    for (const record of this.#owners.values()) {
      for (const [index, held] of record.shares) if (now >= held.share.expiresAt) record.shares.delete(index);
      if (record.shares.size === 0) record.set = null;
    }
    for (const [id, incoming] of this.#requests) if (now >= incoming.request.expiresAt) this.#requests.delete(id);
  }

  /** When prune() has something to do next (null: nothing held). */
  nextDeadline() {
    const times = [...this.held().map((h) => h.share.expiresAt), ...this.requests().map((r) => r.request.expiresAt)];
    return times.length ? Math.min(...times) : null;
  }

  // --- persistence ---

  /** Everything held, as JSON (the envelopes as received, sealed to this guardian). */
  snapshot() {
    return {
      v: SNAPSHOT_VERSION,
      owners: [...this.#owners].map(([owner, r]) => ({ owner, newest: r.newest, revoked: [...r.revoked] })),
      shares: this.held().map((h) => ({ envelope: h.share.envelope, held_at: h.heldAt })),
      requests: this.requests().map((r) => ({
        envelope: r.request.envelope,
        code: r.code,
        received_at: r.receivedAt,
        state: r.state,
        conflict: r.conflict,
        answer: [...r.answer],
      })),
    };
  }

  /** A store from snapshot() (this peer's own storage); expired items are dropped. */
  static async restore(signer, keyPair, snapshot, { now, limits = {} }) {
    const store = await GuardianStore.create(signer, keyPair, { limits });
    for (const item of snapshot.owners ?? []) {
      const record = store.#owner(item.owner);
      record.newest = item.newest;
      record.revoked = [...item.revoked];
    }
    for (const item of snapshot.shares ?? []) {
      const share = await parseOrNull(item.envelope, now, KIND_SHARE);
      if (share === null) continue;
      const record = store.#owner(share.owner);
      record.set = share.set;
      record.shares.set(share.index, { share, heldAt: item.held_at });
    }
    for (const item of snapshot.requests ?? []) {
      const request = await parseOrNull(item.envelope, now, KIND_RECOVER_REQ);
      if (request === null) continue;
      store.#requests.set(request.id, {
        id: request.id,
        forPeer: request.forPeer,
        request,
        code: item.code,
        receivedAt: item.received_at,
        state: item.state,
        conflict: item.conflict,
        answer: [...item.answer],
      });
    }
    return store;
  }

  // --- internals ---

  #owner(owner) {
    const record = this.#owners.get(owner) ?? { set: null, newest: -1, shares: new Map(), revoked: [] };
    this.#owners.delete(owner);
    this.#owners.set(owner, record); // most recently used last
    if (this.#owners.size > this.limits.maxOwners) {
      for (const [other, r] of this.#owners) {
        if (r.shares.size === 0 && other !== owner) {
          this.#owners.delete(other);
          break;
        }
      }
    }
    return record;
  }

  #checkQuota(record, share, replacing) {
    const mine = record === undefined || replacing ? new Map() : record.shares;
    if (mine.size + (mine.has(share.index) ? 0 : 1) > this.limits.maxPerOwner) {
      throw new ProtocolError(OVER_QUOTA, "this guardian holds no more shares of this owner");
    }
    let total = 0;
    for (const r of this.#owners.values()) total += r.shares.size;
    const freed = record !== undefined && replacing ? record.shares.size : 0;
    const added = replacing || !mine.has(share.index) ? 1 : 0;
    if (total - freed + added > this.limits.maxShares) throw new ProtocolError(OVER_QUOTA, "this guardian holds no more shares");
    const crowded = this.#owners.size >= this.limits.maxOwners;
    if (record === undefined && crowded && [...this.#owners.values()].every((r) => r.shares.size > 0)) {
      throw new ProtocolError(OVER_QUOTA, "this guardian holds shares of too many owners");
    }
  }

  #rememberRevoked(record, setId) {
    if (record.revoked.includes(setId)) return;
    record.revoked.push(setId);
    record.revoked.splice(0, Math.max(0, record.revoked.length - this.limits.maxRevokedPerOwner));
  }

  // Newest requests win (answered ones go first, then the oldest pending), so that a flood of
  // requests cannot lock the real one out until they expire.
  #makeRoom(same) {
    const evict = (items) => {
      let victim = null;
      for (const r of items) {
        const rank = [r.state === "pending" ? 1 : 0, r.receivedAt];
        if (victim === null || rank[0] < victim.rank[0] || (rank[0] === victim.rank[0] && rank[1] < victim.rank[1])) victim = { r, rank };
      }
      this.#requests.delete(victim.r.id);
    };
    if (same.length >= this.limits.maxRequestsPerOwner) evict(same);
    if (this.#requests.size >= this.limits.maxRequests) evict(this.#requests.values());
  }

  // The request to answer with `decision`: pending, or answered that way already.
  #answerable(requestId, now, decision) {
    const incoming = this.#requests.get(requestId);
    if (incoming === undefined) throw new ProtocolError(UNKNOWN_REQUEST, "no such recovery request");
    if (now >= incoming.request.expiresAt) {
      this.#requests.delete(requestId);
      throw new ProtocolError(EXPIRED, "the recovery request has expired");
    }
    if (incoming.state !== "pending" && incoming.state !== decision) {
      throw new ProtocolError(UNKNOWN_REQUEST, `the request was ${incoming.state} already`);
    }
    return incoming;
  }
}

async function parseOrNull(envelope, now, kind) {
  try {
    return await parseMessage(envelope, { now, kind });
  } catch (error) {
    if (error instanceof ProtocolError) return null;
    throw error;
  }
}
