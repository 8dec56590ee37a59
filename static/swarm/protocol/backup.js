// The owner's side of a backup: the current share set and the state of each guardian
// (docs/protocol.md "Owner"), mirror of peers/protocol/backup.py. Sans-IO: a split (shares
// made elsewhere, e.g. SLIP-39), receipts, "peer seen" and `now` go in; signed share and
// revoke messages to send come out. Each guardian is `sent` (no receipt yet), `held` (receipt
// for the current set) or `revoked` (of the previous set, told to delete its share);
// outgoingFor() is what to send again when a guardian connects.
import { PEER_ID_RE, peerIdForKey } from "./encoding.js";
import { BAD_SHARD, ProtocolError, SET_MISMATCH, STALE_SET, WRONG_RECIPIENT } from "./errors.js";
import {
  checkShareText,
  DEFAULT_SHARE_LIFETIME_MS,
  KIND_RECEIPT,
  MAX_N,
  MAX_SHARE_LIFETIME_MS,
  MIN_K,
  makeRevoke,
  makeShare,
  newSetId,
  parseMessage,
} from "./shard.js";

const SNAPSHOT_VERSION = 1;

export class OwnerGuardians {
  #entries = new Map(); // guardian peer id -> entry (see guardians())

  /** Use OwnerGuardians.create (the peer id is derived asynchronously). */
  constructor(signer, peerId, lifetimeMs) {
    if (!(lifetimeMs > 0 && lifetimeMs <= MAX_SHARE_LIFETIME_MS)) throw new ProtocolError(BAD_SHARD, "a share lives 1 ms to 10 years");
    this.signer = signer;
    this.peerId = peerId;
    this.lifetimeMs = lifetimeMs;
    this.current = null; // { id, k, n, issuedAt, expiresAt }
  }

  static async create(signer, { lifetimeMs = DEFAULT_SHARE_LIFETIME_MS } = {}) {
    return new OwnerGuardians(signer, await peerIdForKey(signer.publicKey), lifetimeMs);
  }

  /**
   * Send a new set: share i + 1 to guardians[i] ({ peerId, x25519: raw key }, or null for a share
   * kept on paper). Guardians of the previous set are told to delete theirs. Resolves the
   * messages to send, [{ to, envelope }]: the shares, then the revocations.
   */
  async split(guardians, shares, k, { now, setId = null }) {
    const n = shares.length;
    if (guardians.length !== n || !(MIN_K <= k && k <= n && n <= MAX_N)) {
      throw new ProtocolError(BAD_SHARD, `need ${MIN_K} <= k <= n <= ${MAX_N}, a share each`);
    }
    const chosen = guardians.filter((g) => g !== null).map((g) => g.peerId);
    if (new Set(chosen).size !== chosen.length || chosen.includes(this.peerId)) {
      throw new ProtocolError(BAD_SHARD, "each guardian holds one share, never the owner");
    }
    if (chosen.some((p) => typeof p !== "string" || !PEER_ID_RE.test(p))) throw new ProtocolError(BAD_SHARD, "a guardian is not a key-bound peer id");
    for (const text of shares) checkShareText(text); // the ones kept on paper too
    const previous = this.current;
    // A guardian takes a set as newer only if it was issued later than the one it holds.
    const issuedAt = previous === null ? now : Math.max(now, previous.issuedAt + 1);
    const next = { id: setId ?? newSetId(), k, n, issuedAt, expiresAt: issuedAt + this.lifetimeMs };
    const out = [];
    const entries = new Map();
    for (let i = 0; i < n; i++) {
      const guardian = guardians[i];
      if (guardian === null) continue;
      const envelope = await makeShare(this.signer, {
        guardian: guardian.peerId,
        guardianKey: guardian.x25519,
        setId: next.id,
        index: i + 1,
        k,
        n,
        share: shares[i],
        issuedAt: next.issuedAt,
        expiresAt: next.expiresAt,
      });
      const old = this.#entries.get(guardian.peerId);
      entries.set(guardian.peerId, {
        peerId: guardian.peerId,
        set: next.id,
        index: i + 1,
        state: "sent",
        sentAt: now,
        expiresAt: next.expiresAt,
        envelope,
        heldAt: null,
        lastSeen: old?.lastSeen ?? null,
      });
      out.push({ to: guardian.peerId, envelope });
    }
    if (previous !== null) {
      const revoke = await makeRevoke(this.signer, { setId: previous.id, issuedAt: next.issuedAt });
      for (const old of this.#entries.values()) {
        if (old.set === previous.id) {
          out.push({ to: old.peerId, envelope: revoke });
          old.state = "revoked";
          old.envelope = revoke;
        }
        // Revoked guardians stay listed (and told again) until their share expires.
        if (old.state === "revoked" && !entries.has(old.peerId)) entries.set(old.peerId, old);
      }
    }
    this.current = next;
    this.#entries = entries;
    return out;
  }

  /** A guardian's `receipt`: its entry becomes `held`. */
  async receive(envelope, { now }) {
    const receipt = await parseMessage(envelope, { now, kind: KIND_RECEIPT });
    if (receipt.owner !== this.peerId) throw new ProtocolError(WRONG_RECIPIENT, "this receipt is for another owner");
    if (this.current === null || receipt.set !== this.current.id) {
      throw new ProtocolError(STALE_SET, "a receipt for a set that is not the current one");
    }
    const entry = this.#entries.get(receipt.guardian);
    if (entry === undefined || entry.set !== receipt.set || entry.index !== receipt.index) {
      throw new ProtocolError(SET_MISMATCH, "this guardian was not sent that share");
    }
    entry.state = "held";
    entry.heldAt = Math.max(entry.heldAt ?? 0, receipt.heldAt);
    entry.lastSeen = now;
    return entry;
  }

  /** The guardian is connected now (its row's "last seen"). */
  seen(peerId, now) {
    const entry = this.#entries.get(peerId);
    if (entry !== undefined) entry.lastSeen = now;
  }

  /** What to send a guardian that just connected: its share until held, the revocation while its old share may exist. */
  outgoingFor(peerId) {
    const entry = this.#entries.get(peerId);
    return entry === undefined || entry.state === "held" ? [] : [entry.envelope];
  }

  /** The current set's guardians by index, then the revoked ones: { peerId, set, index, state, sentAt, expiresAt, envelope, heldAt, lastSeen }. */
  guardians() {
    const rank = (e) => (e.state === "revoked" ? 1 : 0);
    return [...this.#entries.values()].sort((a, b) => rank(a) - rank(b) || a.index - b.index);
  }

  /** Forget entries whose share has expired; when the current set expires, no backup is left. */
  prune(now) {
    for (const [peerId, entry] of this.#entries) if (now >= entry.expiresAt) this.#entries.delete(peerId);
    if (this.current !== null && now >= this.current.expiresAt) this.current = null;
  }

  nextDeadline() {
    const times = [...this.#entries.values()].map((e) => e.expiresAt);
    return times.length ? Math.min(...times) : null;
  }

  snapshot() {
    const c = this.current;
    return {
      v: SNAPSHOT_VERSION,
      current: c === null ? null : { id: c.id, k: c.k, n: c.n, issued_at: c.issuedAt, expires_at: c.expiresAt },
      guardians: [...this.#entries.values()].map((e) => ({
        peer_id: e.peerId,
        set: e.set,
        index: e.index,
        state: e.state,
        sent_at: e.sentAt,
        expires_at: e.expiresAt,
        envelope: e.envelope,
        held_at: e.heldAt,
        last_seen: e.lastSeen,
      })),
    };
  }

  /** From snapshot() (this peer's own storage). */
  static async restore(signer, snapshot, { lifetimeMs = DEFAULT_SHARE_LIFETIME_MS } = {}) {
    const owner = await OwnerGuardians.create(signer, { lifetimeMs });
    const c = snapshot.current;
    if (c) owner.current = { id: c.id, k: c.k, n: c.n, issuedAt: c.issued_at, expiresAt: c.expires_at };
    for (const e of snapshot.guardians ?? []) {
      owner.#entries.set(e.peer_id, {
        peerId: e.peer_id,
        set: e.set,
        index: e.index,
        state: e.state,
        sentAt: e.sent_at,
        expiresAt: e.expires_at,
        envelope: e.envelope,
        heldAt: e.held_at,
        lastSeen: e.last_seen,
      });
    }
    return owner;
  }
}
