// The new device's side of a recovery: collect released shares and rebuild the seed
// (docs/protocol.md "Recovery"), mirror of peers/protocol/recovery.py. Sans-IO: the signed
// request, releases and refusals, and `now` go in; progress (have, need, guardians named for
// bad shares) and, once enough shares combine, the seed come out. The share format is not
// known here: the caller passes `combine` (k share texts -> the 32-byte seed; throws
// ProtocolError when they do not combine) and optionally `checkShare` (one share alone).
// Calls must not overlap (the caller queues them).
import * as ed25519 from "./ed25519.js";
import { peerIdForKey } from "./encoding.js";
import {
  BAD_KEY,
  BAD_SHARE,
  COMBINE_FAILED,
  EXPIRED,
  ProtocolError,
  SEED_MISMATCH,
  SET_MISMATCH,
  UNEXPECTED_KIND,
  WRONG_RECIPIENT,
  WRONG_REQUEST,
} from "./errors.js";
import { generateKeyAgreementPair } from "./keywrap.js";
import {
  DEFAULT_REQUEST_LIFETIME_MS,
  KIND_RECOVER_REQ,
  KIND_REFUSE,
  KIND_RELEASE,
  makeRecoverRequest,
  openRelease,
  parseMessage,
  verificationCode,
} from "./shard.js";

const SEED_BYTES = 32;
// New subsets of k shares tried per release received (when some share is bad).
export const MAX_COMBINE_TRIES = 64;

const sameBytes = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

// Subsets of `k` items of `items`, in lexicographic order of positions.
function* combinations(items, k, start = 0, prefix = []) {
  if (prefix.length === k) {
    yield prefix;
    return;
  }
  for (let i = start; i <= items.length - (k - prefix.length); i++) yield* combinations(items, k, i + 1, [...prefix, items[i]]);
}

// Call an injected share function; anything but a ProtocolError becomes one.
async function checked(fn, arg, code) {
  try {
    return await fn(arg);
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw new ProtocolError(code, `${error?.name ?? "Error"}: ${error?.message ?? error}`);
  }
}

export class RecoveryCollector {
  #sets = new Map(); // set id -> { k, n, shares: Map(index -> {guardian, index, text}), tried: Set, blocked, lastAt }
  #bad = new Map(); // guardian -> code
  #refused = [];
  #received = [];
  #code = null;

  /** Use RecoveryCollector.create or .start (the request is verified asynchronously). */
  constructor(request, keyPair, { combine, checkShare = null }) {
    this.request = request; // parsed recover_req: { forPeer, temp, x25519, issuedAt, expiresAt, id, envelope }
    this.keyPair = keyPair;
    this.combine = combine;
    this.checkShare = checkShare;
    this.state = "collecting";
    this.reason = null;
    this.seed = null;
  }

  /** A collector for a signed request and its X25519 pair ({ privateKey, publicKey }). */
  static async create(requestEnvelope, keyPair, { now, combine, checkShare = null }) {
    const request = await parseMessage(requestEnvelope, { now, kind: KIND_RECOVER_REQ });
    if (!sameBytes(keyPair.publicKey, request.x25519)) throw new ProtocolError(BAD_KEY, "the X25519 key is not the request's");
    return new RecoveryCollector(request, keyPair, { combine, checkShare });
  }

  /** Sign a request for `forPeer` as `tempSigner` (an ed25519.js signer) with a fresh X25519 pair. */
  static async start(tempSigner, forPeer, { now, combine, checkShare = null, lifetimeMs = DEFAULT_REQUEST_LIFETIME_MS }) {
    const keyPair = await generateKeyAgreementPair();
    const envelope = await makeRecoverRequest(tempSigner, keyPair.publicKey, { forPeer, issuedAt: now, expiresAt: now + lifetimeMs });
    return RecoveryCollector.create(envelope, keyPair, { now, combine, checkShare });
  }

  /** The verification code to read out to each guardian (computed once, ~0.2 s). */
  async code() {
    this.#code ??= await verificationCode(this.request.id);
    return this.#code;
  }

  /** The releases and refusals taken so far (to store; feed them again to restore). */
  received() {
    return [...this.#received];
  }

  /**
   * One `release` or `refuse` from a guardian; resolves { kind, guardian, code }: a "share"
   * counted, a "duplicate", a guardian "refused", a guardian named "bad" (its share failed
   * `code`), or "dropped" (not for this request, or not verifiable: nobody is named).
   */
  async receive(envelope, { now }) {
    if (this.state !== "collecting") return { kind: "dropped", guardian: null, code: this.state };
    let message;
    try {
      message = await parseMessage(envelope, { now });
      if (message.kind !== KIND_RELEASE && message.kind !== KIND_REFUSE) {
        throw new ProtocolError(UNEXPECTED_KIND, "only releases and refusals answer requests");
      }
      if (message.temp !== this.request.temp) throw new ProtocolError(WRONG_RECIPIENT, "this answer is for another identity");
      if (message.request !== this.request.id || message.forPeer !== this.request.forPeer) {
        throw new ProtocolError(WRONG_REQUEST, "this answer is for another request");
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return { kind: "dropped", guardian: null, code: error.code };
    }
    const guardian = message.guardian;
    if (this.#bad.has(guardian)) return { kind: "dropped", guardian, code: this.#bad.get(guardian) };
    if (message.kind === KIND_REFUSE) {
      if (!this.#refused.includes(guardian)) {
        this.#refused.push(guardian);
        this.#received.push(message.envelope);
      }
      return { kind: "refused", guardian, code: null };
    }
    let outcome;
    try {
      outcome = await this.#take(message, now);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#bad.set(guardian, error.code);
      return { kind: "bad", guardian, code: error.code };
    }
    if (outcome.kind === "share") {
      this.#received.push(message.envelope);
      await this.#try(this.#sets.get(message.set));
    }
    return outcome;
  }

  /** A request past its expiry gets no more answers: the recovery failed. */
  tick(now) {
    if (this.state === "collecting" && now >= this.request.expiresAt) {
      this.state = "failed";
      this.reason = EXPIRED;
    }
  }

  /** For #recovery[data-state][data-have][data-need]: { state, have, need, set, bad, refused, reason }. */
  progress() {
    let bestId = null;
    let best = null;
    for (const [setId, group] of this.#sets) {
      const ratio = group.shares.size / group.k;
      const bestRatio = best === null ? -1 : best.shares.size / best.k;
      if (best === null || ratio > bestRatio || (ratio === bestRatio && group.lastAt > best.lastAt)) {
        bestId = setId;
        best = group;
      }
    }
    return {
      state: this.state,
      have: best === null ? 0 : best.shares.size,
      need: best === null ? null : best.k,
      set: bestId,
      bad: Object.fromEntries(this.#bad),
      refused: [...this.#refused],
      reason: this.state === "collecting" ? (best?.blocked ?? null) : this.reason,
    };
  }

  async #take(release, now) {
    const text = await openRelease(release, { keyPair: this.keyPair });
    if (this.checkShare !== null) await checked(this.checkShare, text, BAD_SHARE);
    if (!this.#sets.has(release.set))
      this.#sets.set(release.set, { k: release.k, n: release.n, shares: new Map(), tried: new Set(), blocked: null, lastAt: 0 });
    const group = this.#sets.get(release.set);
    if (group.k !== release.k || group.n !== release.n) throw new ProtocolError(SET_MISMATCH, "k and n differ from the set's other shares");
    const held = group.shares.get(release.index);
    if (held !== undefined) {
      if (held.text === text) return { kind: "duplicate", guardian: release.guardian, code: null };
      throw new ProtocolError(SET_MISMATCH, "another share was released at this index");
    }
    group.shares.set(release.index, { guardian: release.guardian, index: release.index, text });
    group.lastAt = now;
    return { kind: "share", guardian: release.guardian, code: null };
  }

  async #try(group) {
    if (group.shares.size < group.k) return;
    const shares = [...group.shares.values()];
    let tries = 0;
    for (const combo of combinations(shares, group.k)) {
      const key = combo
        .map((g) => g.index)
        .sort((a, b) => a - b)
        .join(",");
      if (group.tried.has(key)) continue;
      if (tries === MAX_COMBINE_TRIES) return;
      tries += 1;
      group.tried.add(key);
      try {
        await this.#combine(combo);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        group.blocked = error.code;
        continue;
      }
      await this.#nameTheRest(
        combo,
        shares.filter((g) => !combo.includes(g)),
      );
      return;
    }
  }

  async #combine(combo) {
    const seed = await checked(
      this.combine,
      combo.map((g) => g.text),
      COMBINE_FAILED,
    );
    if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES || (await peerForSeed(seed)) !== this.request.forPeer) {
      throw new ProtocolError(SEED_MISMATCH, "the shares give another identity");
    }
    this.seed = seed;
    this.state = "recovered";
    this.reason = null;
    return seed;
  }

  // A share outside the winning subset is bad if it cannot stand in for a winner.
  async #nameTheRest(winners, others) {
    for (const other of others) {
      let result;
      try {
        result = await checked(this.combine, [...winners.slice(0, -1).map((g) => g.text), other.text], COMBINE_FAILED);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.#bad.set(other.guardian, error.code);
        continue;
      }
      if (!(result instanceof Uint8Array) || !sameBytes(result, this.seed)) this.#bad.set(other.guardian, SEED_MISMATCH);
    }
  }
}

async function peerForSeed(seed) {
  const signer = await ed25519.signerFromSeed(seed);
  return peerIdForKey(signer.publicKey);
}
