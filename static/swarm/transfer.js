// Fetching one shared file from whoever holds it (sans-IO, like h11): peers' adverts and
// answers, connection changes and `now` (ms) go in; requests to send, penalties, completion
// and failure come out of takeActions(). No IO, no timers, no crypto: the adapter (files.js)
// checks each manifest and chunk before telling the transfer what it got, and calls tick()
// at nextDeadline(). docs/browser.md "Files" describes the policy.
//
// Phases: "manifest" (ask holders, then any connected peer, one at a time) -> "chunks"
// (pipelined requests to several sources) -> "complete" | "failed".

export const TRANSFER_DEFAULTS = Object.freeze({
  perSource: 64, // chunk requests in flight per source (2 MiB: several read batches ahead)
  window: 128, // chunk requests in flight in all
  requestTimeoutMs: 8_000, // an unanswered request goes to another source
  maxTimeouts: 3, // timeouts in a row before a source is dropped from this transfer
  manifestTimeoutMs: 5_000,
  manifestRetryMs: 15_000, // a peer that had no manifest may be asked again after this
  probeAfterMs: 2_000, // no advert by then: ask connected peers for the manifest too
  stallTimeoutMs: 60_000, // no usable source for this long: failed no_source
  endgameAfterMs: 1_500, // nothing left to ask: re-ask a request this old of another source
  rate: 450, // requests per second per source: peers accept 500 frames/s per connection
  burst: 900,
  rateWindowMs: 2_000, // throughput shown and used to rank sources
});

const PENDING = 0;
const ASKED = 1;
const HELD = 2;

// Why a source left a transfer (codes in diagnostics and in progress()).
export const DROP_TIMEOUT = "timeout";
export const NO_SOURCE = "no_source";

class Source {
  constructor(peerId, now, burst) {
    this.peerId = peerId;
    this.advertised = null; // chunks it says it holds (null: answered a probe, count unknown)
    this.inFlight = new Map(); // index -> asked at
    this.missing = new Set(); // indices it said it lacks
    this.received = 0;
    this.bytes = 0;
    this.strikes = 0;
    this.tokens = burst;
    this.tokensAt = now;
    this.arrivals = []; // [at, bytes] within the rate window
  }
}

function rateOf(arrivals, now, windowMs) {
  while (arrivals.length && now - arrivals[0][0] > windowMs) arrivals.shift();
  let bytes = 0;
  for (const [, n] of arrivals) bytes += n;
  return (bytes * 1000) / windowMs;
}

export class Transfer {
  /**
   * manifestId: what is fetched. With `chunkCount` (the manifest is already verified and
   * stored) the transfer starts in the chunks phase and `held` lists indices already stored.
   */
  constructor({ manifestId, now, chunkCount = null, held = [], options = {} }) {
    this.manifestId = manifestId;
    this.options = { ...TRANSFER_DEFAULTS, ...options };
    this.startedAt = now;
    this.phase = "manifest";
    this.actions = [];
    this.sources = new Map(); // peer id -> Source
    this.connected = new Set(); // open peers (manifest probes)
    this.dropped = new Map(); // peer id -> code: not used again by this transfer
    this.tried = new Map(); // peer id -> when it was asked for the manifest
    this.manifestAsk = null; // { peerId, at }
    this.stalledSince = null;
    this.arrivals = [];
    this.served = new Map(); // peer id -> chunks it supplied that we kept (also after it left)
    this.result = null; // { code, message } once failed
    if (chunkCount !== null) this.manifestReady(null, chunkCount, held, now);
  }

  // --- outputs ---

  takeActions() {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  get done() {
    return this.phase === "complete" || this.phase === "failed";
  }

  get heldCount() {
    return this.held ?? 0;
  }

  /** When tick() should run next. */
  nextDeadline(now) {
    if (this.done) return Infinity;
    const o = this.options;
    let next = now + 1_000; // rate tokens and the stall clock
    if (this.manifestAsk) next = Math.min(next, this.manifestAsk.at + o.manifestTimeoutMs);
    if (this.phase === "manifest" && now < this.startedAt + o.probeAfterMs) next = Math.min(next, this.startedAt + o.probeAfterMs);
    for (const source of this.sources.values()) {
      for (const at of source.inFlight.values()) next = Math.min(next, at + o.requestTimeoutMs);
      // Out of request tokens: wake when the next one is there.
      if (this.phase === "chunks" && source.tokens < 1) next = Math.min(next, source.tokensAt + ((1 - source.tokens) * 1000) / o.rate);
    }
    if (this.stalledSince !== null) next = Math.min(next, this.stalledSince + o.stallTimeoutMs);
    return Math.max(Math.ceil(next), now + 1);
  }

  /** Is a chunk from this peer at this index one we asked it for? (others are ignored) */
  expects(peerId, index) {
    return this.sources.get(peerId)?.inFlight.has(index) ?? false;
  }

  /** Did we ask this peer for the manifest? */
  awaitsManifestFrom(peerId) {
    return this.manifestAsk?.peerId === peerId;
  }

  needs(index) {
    return this.phase === "chunks" && this.state[index] !== HELD;
  }

  // --- inputs: peers ---

  peerOpened(peerId, now) {
    this.connected.add(peerId);
    this.#step(now);
  }

  peerClosed(peerId, now) {
    this.connected.delete(peerId);
    this.#removeSource(peerId);
    if (this.manifestAsk?.peerId === peerId) this.manifestAsk = null;
    this.#step(now);
  }

  /** A `have` advert: `chunks` verified chunks of this manifest (0 withdraws it). */
  have(peerId, chunks, now) {
    if (this.dropped.has(peerId) || this.done) return;
    if (chunks === 0) {
      this.#removeSource(peerId);
    } else {
      const source = this.sources.get(peerId) ?? this.#addSource(peerId, now);
      source.advertised = chunks;
      source.missing.clear(); // it holds more now
    }
    this.#step(now);
  }

  // --- inputs: the manifest ---

  /** The manifest asked of peerId (null: known already) verified: `chunkCount` chunks. */
  manifestReady(peerId, chunkCount, held, now) {
    if (this.phase !== "manifest") return;
    this.manifestAsk = null;
    this.count = chunkCount;
    this.state = new Uint8Array(chunkCount);
    this.held = 0;
    for (const index of held) {
      if (this.state[index] !== HELD) this.held += 1;
      this.state[index] = HELD;
    }
    this.cursor = 0;
    this.phase = "chunks";
    // Whoever served the manifest probably holds the chunks too.
    if (peerId !== null && !this.sources.has(peerId) && !this.dropped.has(peerId)) this.#addSource(peerId, now);
    this.#step(now);
  }

  /** The peer answered that it does not hold the manifest. */
  manifestAbsent(peerId, now) {
    if (this.manifestAsk?.peerId === peerId) this.manifestAsk = null;
    this.#removeSource(peerId);
    this.#step(now);
  }

  /** The peer sent a manifest that failed verification (fail closed: never used). */
  manifestRejected(peerId, code, message, now) {
    if (this.manifestAsk?.peerId === peerId) this.manifestAsk = null;
    this.#drop(peerId, code, message, true);
    this.#step(now);
  }

  // --- inputs: chunks ---

  /** A chunk we asked for passed its checks and is stored; false if it was not needed. */
  chunkAccepted(peerId, index, bytes, now) {
    const source = this.sources.get(peerId);
    if (source) {
      source.inFlight.delete(index);
      source.received += 1;
      source.bytes += bytes;
      source.strikes = 0;
      source.arrivals.push([now, bytes]);
    }
    if (this.phase !== "chunks" || this.state[index] === HELD) {
      this.#step(now);
      return false;
    }
    this.state[index] = HELD;
    this.held += 1;
    this.arrivals.push([now, bytes]);
    this.served.set(peerId, (this.served.get(peerId) ?? 0) + 1);
    // An endgame duplicate still in flight elsewhere is simply answered later and ignored.
    this.#step(now);
    return true;
  }

  /** A chunk from peerId failed its checks (chunk_mismatch, bad_chunk): ask another holder. */
  chunkRejected(peerId, index, code, message, now) {
    this.sources.get(peerId)?.inFlight.delete(index);
    this.#release(index);
    this.#drop(peerId, code, message, true);
    this.#step(now);
  }

  /** The peer does not hold this chunk after all. */
  chunkMissing(peerId, index, now) {
    const source = this.sources.get(peerId);
    if (!source?.inFlight.has(index)) return;
    source.inFlight.delete(index);
    source.missing.add(index);
    this.#release(index);
    this.#step(now);
  }

  /** A chunk counted as held is not in the store after all (lost): fetch it again. */
  chunkLost(index, now) {
    if (this.phase === "failed" || this.state === undefined || this.state[index] !== HELD) return;
    this.state[index] = PENDING;
    this.held -= 1;
    if (index < this.cursor) this.cursor = index;
    if (this.phase === "complete") this.phase = "chunks";
    this.#step(now);
  }

  /** Timeouts, rate tokens, probes, stalls. */
  tick(now) {
    if (this.done) return;
    const o = this.options;
    if (this.manifestAsk && now - this.manifestAsk.at >= o.manifestTimeoutMs) this.manifestAsk = null;
    for (const source of [...this.sources.values()]) {
      for (const [index, at] of [...source.inFlight]) {
        if (now - at < o.requestTimeoutMs) continue;
        source.inFlight.delete(index);
        source.strikes += 1;
        this.#release(index);
      }
      if (source.strikes >= o.maxTimeouts) this.#drop(source.peerId, DROP_TIMEOUT, `${source.strikes} requests timed out`, false);
    }
    this.#step(now);
  }

  // --- views ---

  progress(now) {
    const o = this.options;
    return {
      phase: this.phase,
      total: this.count ?? null,
      held: this.heldCount,
      rate: rateOf(this.arrivals, now, o.rateWindowMs),
      inFlight: [...this.sources.values()].reduce((n, s) => n + s.inFlight.size, 0),
      sources: [...this.sources.values()].map((s) => ({
        peerId: s.peerId,
        advertised: s.advertised,
        received: s.received,
        bytes: s.bytes,
        inFlight: s.inFlight.size,
        rate: rateOf(s.arrivals, now, o.rateWindowMs),
      })),
      dropped: Object.fromEntries(this.dropped),
      served: Object.fromEntries(this.served),
      result: this.result,
    };
  }

  // --- internals ---

  #addSource(peerId, now) {
    const source = new Source(peerId, now, this.options.burst);
    this.sources.set(peerId, source);
    return source;
  }

  #removeSource(peerId) {
    const source = this.sources.get(peerId);
    if (!source) return;
    this.sources.delete(peerId);
    for (const index of source.inFlight.keys()) this.#release(index);
  }

  #drop(peerId, code, message, penalize) {
    this.#removeSource(peerId);
    this.dropped.set(peerId, code);
    if (penalize) this.actions.push({ type: "penalize", peerId, code, message });
    else this.actions.push({ type: "dropped", peerId, code, message });
  }

  // An index asked of nobody any more goes back to pending.
  #release(index) {
    if (this.phase !== "chunks" || this.state[index] !== ASKED) return;
    for (const source of this.sources.values()) if (source.inFlight.has(index)) return;
    this.state[index] = PENDING;
    if (index < this.cursor) this.cursor = index;
  }

  #step(now) {
    if (this.done) return;
    if (this.phase === "manifest") this.#askManifest(now);
    if (this.phase === "chunks") {
      if (this.held === this.count) {
        this.phase = "complete";
        this.actions.push({ type: "complete" });
        return;
      }
      this.#fill(now);
    }
    this.#checkStall(now);
  }

  #askManifest(now) {
    if (this.manifestAsk) return;
    const o = this.options;
    const fresh = (id) => !this.dropped.has(id) && (!this.tried.has(id) || now - this.tried.get(id) >= o.manifestRetryMs);
    // Holders that advertised it first; after a while, any connected peer.
    let peerId = [...this.sources.keys()].find(fresh);
    if (!peerId && now - this.startedAt >= o.probeAfterMs) peerId = [...this.connected].sort().find(fresh);
    if (!peerId) return;
    this.tried.set(peerId, now);
    this.manifestAsk = { peerId, at: now };
    this.actions.push({ type: "manifest_req", peerId });
  }

  #refill(source, now) {
    const o = this.options;
    source.tokens = Math.min(o.burst, source.tokens + ((now - source.tokensAt) * o.rate) / 1000);
    source.tokensAt = now;
  }

  #nextPending(source) {
    while (this.cursor < this.count && this.state[this.cursor] !== PENDING) this.cursor += 1;
    for (let i = this.cursor; i < this.count; i++) {
      if (this.state[i] === PENDING && !source.missing.has(i)) return i;
    }
    return -1;
  }

  // Nothing pending: the oldest request asked of one other source only, if old enough.
  #endgameIndex(source, now) {
    let best = -1;
    let bestAt = Infinity;
    for (const other of this.sources.values()) {
      if (other === source) continue;
      for (const [index, at] of other.inFlight) {
        if (at < bestAt && now - at >= this.options.endgameAfterMs && !source.missing.has(index) && !source.inFlight.has(index)) {
          let askedOf = 0;
          for (const s of this.sources.values()) if (s.inFlight.has(index)) askedOf += 1;
          if (askedOf === 1) {
            best = index;
            bestAt = at;
          }
        }
      }
    }
    return best;
  }

  // Fastest first: complete sources before partial ones, then the one expected to answer a
  // new request soonest, (in flight + 1) / throughput. A source not measured yet counts as
  // fast as the best one, so every source gets tried. A slow source also frees its slots
  // less often, so it gets less work.
  #pick(candidates, rates, best) {
    let chosen = null;
    let chosenKey = null;
    for (const s of candidates) {
      const key = [s.advertised !== null && s.advertised >= this.count ? 0 : 1, (s.inFlight.size + 1) / (rates.get(s) || best), s.peerId];
      if (!chosen || key[0] < chosenKey[0] || (key[0] === chosenKey[0] && (key[1] < chosenKey[1] || (key[1] === chosenKey[1] && key[2] < chosenKey[2])))) {
        chosen = s;
        chosenKey = key;
      }
    }
    return chosen;
  }

  #fill(now) {
    const o = this.options;
    let total = 0;
    for (const s of this.sources.values()) total += s.inFlight.size;
    if (total >= o.window) return;
    const rates = new Map([...this.sources.values()].map((s) => [s, rateOf(s.arrivals, now, o.rateWindowMs)]));
    const best = Math.max(1, ...rates.values());
    const candidates = new Set([...this.sources.values()].filter((s) => s.inFlight.size < o.perSource));
    while (total < o.window && candidates.size > 0) {
      const source = this.#pick(candidates, rates, best);
      this.#refill(source, now);
      if (source.tokens < 1) {
        candidates.delete(source);
        continue;
      }
      let index = this.#nextPending(source);
      if (index < 0) index = this.#endgameIndex(source, now);
      if (index < 0) {
        candidates.delete(source);
        continue;
      }
      source.tokens -= 1;
      source.inFlight.set(index, now);
      if (source.inFlight.size >= o.perSource) candidates.delete(source);
      this.state[index] = ASKED;
      total += 1;
      this.actions.push({ type: "chunk_req", peerId: source.peerId, index });
    }
  }

  #checkStall(now) {
    const busy = this.manifestAsk !== null || [...this.sources.values()].some((s) => s.inFlight.size > 0);
    if (busy) {
      this.stalledSince = null;
      return;
    }
    this.stalledSince ??= now;
    if (now - this.stalledSince >= this.options.stallTimeoutMs) {
      this.phase = "failed";
      const seconds = Math.round(this.options.stallTimeoutMs / 1000);
      // Only bad manifests seen: that is the reason (fail closed), not a lack of peers.
      const rejected = [...this.dropped.values()].at(-1);
      this.result =
        this.count === undefined && rejected && rejected !== DROP_TIMEOUT
          ? { code: rejected, message: `every manifest received failed verification (${rejected})` }
          : { code: NO_SOURCE, message: `no peer could serve this file for ${seconds} s` };
      this.actions.push({ type: "failed", ...this.result });
    }
  }
}
