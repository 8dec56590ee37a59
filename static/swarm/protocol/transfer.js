// Fetching one shared file from whoever holds it: the download scheduler, mirror of
// peers/protocol/transfer.py (the two are held together by tests/vectors/transfer.json).
// Sans-IO (like h11): peers' adverts and answers, connection changes and `now` (ms) go in;
// requests to send, penalties, drops, completion and failure come out of takeActions(), and
// tick() is due at nextDeadline(). No IO, no timers, no crypto: the adapter (content/download.js)
// checks each manifest and chunk before telling the transfer what it got. docs/protocol.md
// "Fetching a file" describes the policy.
//
// Phases: "manifest" (ask holders, then any connected peer, one at a time) -> "chunks"
// (pipelined, paced requests to several sources) -> "complete" (back to "chunks" when a chunk
// counted held is lost) | "failed" (only with a give-up timeout). With nobody to ask the
// transfer is waiting (progress().waiting) and resumes by itself when a source appears.

export const TRANSFER_DEFAULTS = Object.freeze({
  perSource: 64, // chunk requests in flight per source
  window: 128, // chunk requests in flight in all
  requestTimeoutMs: 8_000, // an unanswered request goes to another source
  maxTimeouts: 3, // timed-out requests in a row, with nothing heard: source dropped
  manifestTimeoutMs: 5_000,
  manifestRetryMs: 15_000, // a peer asked for the manifest may be asked again after this
  probeAfterMs: 2_000, // no holder answered by then: ask connected peers too
  giveUpAfterMs: null, // waiting this long: failed (null: wait for as long as it takes)
  endgameAfterMs: 1_500, // nothing left to ask: re-ask a request this old of another source
  rate: 450, // requests per second per source: peers accept 500 frames/s per connection
  burst: 900,
  rateWindowMs: 2_000, // throughput shown and used to rank sources
});

const PENDING = 0;
const ASKED = 1;
const HELD = 2;
const HEARTBEAT_MS = 1_000; // rate tokens, endgame, manifest retries, the waiting clock

// Why a source left a transfer, and why a transfer gave up.
export const DROP_TIMEOUT = "timeout";
export const NO_SOURCE = "no_source";
// Why a transfer waits: nobody ever offered the file / every source it had is gone.
export const NO_HOLDER = "no_holder";
export const HOLDERS_GONE = "holders_gone";

/** Bytes per second over a sliding window (older arrivals are forgotten). */
class Meter {
  constructor() {
    this.arrivals = []; // [at, bytes]
    this.head = 0;
    this.bytes = 0;
  }

  add(at, bytes) {
    this.arrivals.push([at, bytes]);
    this.bytes += bytes;
  }

  rate(now, windowMs) {
    while (this.head < this.arrivals.length && now - this.arrivals[this.head][0] > windowMs) this.bytes -= this.arrivals[this.head++][1];
    if (this.head > 1024) {
      this.arrivals = this.arrivals.slice(this.head);
      this.head = 0;
    }
    return (this.bytes * 1000) / windowMs;
  }
}

class Source {
  constructor(peerId, now, burst) {
    this.peerId = peerId;
    this.advertised = null; // chunks it says it holds (null: answered a probe)
    this.inFlight = new Map(); // index -> asked at
    this.late = new Set(); // asked, then timed out or held elsewhere: an answer still counts
    this.missing = new Set(); // indices it said it lacks
    this.heardAt = -1; // its last answer
    this.strikes = 0;
    this.received = 0;
    this.bytes = 0;
    this.tokens = burst;
    this.tokensAt = now;
    this.meter = new Meter();
  }
}

// Lexicographic order of two keys of equal length.
function before(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
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
    this.dropped = new Map(); // peer id -> code (timeouts may come back)
    this.tried = new Map(); // peer id -> when it was asked for the manifest
    this.manifestAsk = null; // { peerId, at }
    this.hadSource = false;
    this.waiting = null; // { reason, since }
    this.served = new Map(); // peer id -> chunks it supplied that we kept (also after it left)
    this.result = null; // { code, message } once failed
    this.count = 0;
    this.state = new Uint8Array(0);
    this.held = 0;
    this.cursor = 0;
    this.meter = new Meter();
    if (chunkCount !== null) this.manifestReady(null, chunkCount, held, now);
    else this.#step(now);
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
    return this.held;
  }

  /** When tick() is due (Infinity: nothing left to time). */
  nextDeadline(now) {
    if (this.done) return Infinity;
    const o = this.options;
    let next = now + HEARTBEAT_MS;
    if (this.manifestAsk) next = Math.min(next, this.manifestAsk.at + o.manifestTimeoutMs);
    if (now < this.startedAt + o.probeAfterMs) next = Math.min(next, this.startedAt + o.probeAfterMs);
    for (const source of this.sources.values()) {
      for (const at of source.inFlight.values()) next = Math.min(next, at + o.requestTimeoutMs);
      if (this.phase === "chunks" && source.tokens < 1) next = Math.min(next, source.tokensAt + ((1 - source.tokens) * 1000) / o.rate);
    }
    if (this.waiting && o.giveUpAfterMs !== null) next = Math.min(next, this.waiting.since + o.giveUpAfterMs);
    return Math.max(Math.ceil(next), now + 1);
  }

  /** Is a chunk from this peer at this index one we asked it for? (others are ignored) */
  expects(peerId, index) {
    const source = this.sources.get(peerId);
    return source !== undefined && (source.inFlight.has(index) || source.late.has(index));
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

  /** Gone: its requests go back at once; if it opens again it may be asked anew. */
  peerClosed(peerId, now) {
    this.connected.delete(peerId);
    this.tried.delete(peerId);
    this.#removeSource(peerId);
    if (this.awaitsManifestFrom(peerId)) this.manifestAsk = null;
    this.#step(now);
  }

  /** A `have` advert: `chunks` chunks of this file held (0 withdraws it). */
  have(peerId, chunks, now) {
    if (this.phase === "failed" || this.#penalized(peerId)) return;
    if (chunks <= 0) {
      this.#removeSource(peerId);
    } else {
      this.dropped.delete(peerId); // a source dropped for timeouts is back
      const source = this.sources.get(peerId) ?? this.#addSource(peerId, now);
      source.advertised = chunks;
      source.missing.clear(); // it holds more now
    }
    this.#step(now);
  }

  // --- inputs: the manifest ---

  /**
   * The manifest (asked of peerId; null: known already) verified: `chunkCount` chunks, `held`
   * stored already. Later, a peer answering a probe becomes a source.
   */
  manifestReady(peerId, chunkCount, held, now) {
    if (peerId !== null && this.awaitsManifestFrom(peerId)) this.manifestAsk = null;
    if (this.phase === "manifest") {
      this.count = chunkCount;
      this.state = new Uint8Array(chunkCount);
      for (const index of held) {
        if (index >= 0 && index < chunkCount && this.state[index] !== HELD) {
          this.state[index] = HELD;
          this.held += 1;
        }
      }
      this.phase = "chunks";
    }
    if (peerId !== null && !this.sources.has(peerId) && !this.#penalized(peerId)) {
      this.dropped.delete(peerId);
      this.#addSource(peerId, now); // whoever has the manifest probably has chunks
    }
    this.#step(now);
  }

  /** The peer answered that it does not hold the manifest. */
  manifestAbsent(peerId, now) {
    if (this.awaitsManifestFrom(peerId)) this.manifestAsk = null;
    if (this.phase === "manifest") this.#removeSource(peerId);
    this.#step(now);
  }

  /** The peer sent a manifest that failed verification (fail closed: never used). */
  manifestRejected(peerId, code, message, now) {
    if (this.awaitsManifestFrom(peerId)) this.manifestAsk = null;
    this.#drop(peerId, { type: "penalize", peerId, code, message });
    this.#step(now);
  }

  // --- inputs: chunks ---

  /**
   * A chunk we asked for passed its checks; false if it was not needed (not asked of this
   * peer, or held already), true if it counts: the adapter stores it.
   */
  chunkAccepted(peerId, index, bytes, now) {
    const source = this.#answered(peerId, index, now);
    if (!source) return false;
    source.received += 1;
    source.bytes += bytes;
    source.meter.add(now, bytes);
    if ((this.phase !== "chunks" && this.phase !== "complete") || this.state[index] === HELD) {
      this.#step(now);
      return false;
    }
    this.state[index] = HELD;
    this.held += 1;
    this.meter.add(now, bytes);
    this.served.set(peerId, (this.served.get(peerId) ?? 0) + 1);
    for (const other of this.sources.values()) {
      // Endgame duplicates: their answers are ignored.
      if (other.inFlight.delete(index)) other.late.add(index);
    }
    this.#step(now);
    return true;
  }

  /** A chunk from peerId failed its checks (chunk_mismatch, bad_chunk): ask another holder. */
  chunkRejected(peerId, index, code, message, now) {
    if (!this.#answered(peerId, index, now)) return;
    this.#release(index);
    this.#drop(peerId, { type: "penalize", peerId, code, message });
    this.#step(now);
  }

  /** The peer does not hold this chunk after all (until its next advert). */
  chunkMissing(peerId, index, now) {
    const source = this.#answered(peerId, index, now);
    if (!source) return;
    source.missing.add(index);
    this.#release(index);
    this.#step(now);
  }

  /** A chunk counted held is not in the store after all: fetch it again. */
  chunkLost(index, now) {
    if ((this.phase !== "chunks" && this.phase !== "complete") || !(index >= 0 && index < this.count)) return;
    if (this.state[index] !== HELD) return;
    this.state[index] = PENDING;
    this.held -= 1;
    this.cursor = Math.min(this.cursor, index);
    this.phase = "chunks";
    this.#step(now);
  }

  /** Timeouts, rate tokens, probes, the waiting clock. */
  tick(now) {
    if (this.done) return;
    const o = this.options;
    if (this.manifestAsk && now - this.manifestAsk.at >= o.manifestTimeoutMs) this.manifestAsk = null;
    for (const source of [...this.sources.values()]) {
      for (const [index, at] of [...source.inFlight]) {
        if (now - at < o.requestTimeoutMs) continue;
        source.inFlight.delete(index);
        source.late.add(index);
        if (source.heardAt <= at) source.strikes += 1; // nothing heard from it since it was asked
        this.#release(index);
      }
      if (source.strikes >= o.maxTimeouts) {
        const message = `${source.strikes} requests timed out`;
        this.#drop(source.peerId, { type: "dropped", peerId: source.peerId, code: DROP_TIMEOUT, message });
      }
    }
    this.#step(now);
  }

  // --- views ---

  progress(now) {
    const o = this.options;
    return {
      phase: this.phase,
      total: this.phase === "manifest" ? null : this.count,
      held: this.held,
      rate: this.meter.rate(now, o.rateWindowMs),
      inFlight: this.#inFlight(),
      waiting: this.waiting && { ...this.waiting },
      sources: [...this.sources.values()].map((s) => ({
        peerId: s.peerId,
        advertised: s.advertised,
        received: s.received,
        bytes: s.bytes,
        inFlight: s.inFlight.size,
        rate: s.meter.rate(now, o.rateWindowMs),
      })),
      dropped: Object.fromEntries(this.dropped),
      served: Object.fromEntries(this.served),
      result: this.result,
    };
  }

  // --- internals ---

  #inFlight() {
    let n = 0;
    for (const s of this.sources.values()) n += s.inFlight.size;
    return n;
  }

  #penalized(peerId) {
    const code = this.dropped.get(peerId);
    return code !== undefined && code !== DROP_TIMEOUT;
  }

  #addSource(peerId, now) {
    const source = new Source(peerId, now, this.options.burst);
    this.sources.set(peerId, source);
    this.hadSource = true;
    return source;
  }

  #removeSource(peerId) {
    const source = this.sources.get(peerId);
    if (!source) return;
    this.sources.delete(peerId);
    for (const index of source.inFlight.keys()) this.#release(index);
  }

  #drop(peerId, action) {
    this.#removeSource(peerId);
    this.dropped.set(peerId, action.code);
    this.actions.push(action);
  }

  // The source if it was asked for `index` (the request is then answered).
  #answered(peerId, index, now) {
    const source = this.sources.get(peerId);
    if (!source || !(source.inFlight.has(index) || source.late.has(index))) return null;
    source.inFlight.delete(index);
    source.late.delete(index);
    source.heardAt = now;
    source.strikes = 0;
    return source;
  }

  // An index asked of nobody any more goes back to pending.
  #release(index) {
    if (this.phase !== "chunks" || this.state[index] !== ASKED) return;
    for (const source of this.sources.values()) if (source.inFlight.has(index)) return;
    this.state[index] = PENDING;
    this.cursor = Math.min(this.cursor, index);
  }

  #step(now) {
    if (this.done) return;
    if (this.phase === "chunks") {
      if (this.held === this.count) {
        this.phase = "complete";
        this.waiting = null;
        this.actions.push({ type: "complete" });
        return;
      }
      this.#fill(now);
    }
    const usable = this.phase === "chunks" && this.#usableSource();
    if (!usable) this.#askManifest(now);
    // Probing peers that never offered the file is still waiting for a holder.
    const askingHolder = this.manifestAsk !== null && this.sources.has(this.manifestAsk.peerId);
    this.#checkWaiting(usable || askingHolder, now);
  }

  // Some source is busy, or could be asked for something pending (now or soon).
  #usableSource() {
    if (this.#inFlight() > 0) return true;
    const lacking = [...this.sources.values()].map((s) => s.missing);
    for (let index = this.cursor; index < this.count; index++) {
      if (this.state[index] === PENDING && lacking.some((m) => !m.has(index))) return true;
    }
    return false;
  }

  #askManifest(now) {
    if (this.manifestAsk) return;
    const o = this.options;
    const fresh = (id) => {
      if (this.#penalized(id) || (this.sources.has(id) && this.phase === "chunks")) return false;
      return !this.tried.has(id) || now - this.tried.get(id) >= o.manifestRetryMs;
    };
    let peerId;
    if (this.phase === "manifest") {
      // Holders first, the most complete one first.
      const holders = [...this.sources.values()].sort(
        (a, b) => (b.advertised ?? 0) - (a.advertised ?? 0) || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0),
      );
      peerId = holders.find((s) => fresh(s.peerId))?.peerId;
    }
    if (peerId === undefined && now - this.startedAt >= o.probeAfterMs) peerId = [...this.connected].sort().find(fresh);
    if (peerId === undefined) return;
    this.tried.set(peerId, now);
    this.manifestAsk = { peerId, at: now };
    this.actions.push({ type: "manifest_req", peerId });
  }

  #checkWaiting(busy, now) {
    if (busy) {
      this.waiting = null;
      return;
    }
    this.waiting ??= { reason: this.hadSource ? HOLDERS_GONE : NO_HOLDER, since: now };
    const giveUp = this.options.giveUpAfterMs;
    if (giveUp === null || now - this.waiting.since < giveUp) return;
    const codes = [...this.dropped.values()];
    if (this.phase === "manifest" && codes.length) {
      // Only bad manifests seen: that is the reason (fail closed), not a lack of peers.
      const code = codes.at(-1);
      this.result = { code, message: `every manifest received failed verification (${code})` };
    } else {
      this.result = { code: NO_SOURCE, message: `no peer could serve this file for ${Math.floor(giveUp / 1000)} s` };
    }
    this.phase = "failed";
    this.actions.push({ type: "failed", ...this.result });
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
        if (at >= bestAt || now - at < this.options.endgameAfterMs) continue;
        if (source.missing.has(index) || source.inFlight.has(index)) continue;
        let askedOf = 0;
        for (const s of this.sources.values()) if (s.inFlight.has(index)) askedOf += 1;
        if (askedOf === 1) {
          best = index;
          bestAt = at;
        }
      }
    }
    return best;
  }

  // Fastest first: complete sources before partial ones, answering ones before one whose
  // requests timed out, then the one expected to answer a new request soonest, (in flight +
  // 1) / throughput. A source not measured yet counts as fast as the best one, so every
  // source gets tried. A slow source also frees its slots less often, so it gets less work.
  #pick(candidates, rates, best) {
    let chosen = null;
    let chosenKey = null;
    for (const s of candidates) {
      const key = [s.advertised !== null && s.advertised >= this.count ? 0 : 1, s.strikes, (s.inFlight.size + 1) / (rates.get(s.peerId) || best), s.peerId];
      if (!chosen || before(key, chosenKey)) {
        chosen = s;
        chosenKey = key;
      }
    }
    return chosen;
  }

  #fill(now) {
    const o = this.options;
    let total = this.#inFlight();
    if (total >= o.window) return;
    const rates = new Map([...this.sources.values()].map((s) => [s.peerId, s.meter.rate(now, o.rateWindowMs)]));
    const best = Math.max(1, ...rates.values());
    const candidates = [...this.sources.values()].filter((s) => s.inFlight.size < o.perSource);
    const drop = (s) => candidates.splice(candidates.indexOf(s), 1);
    while (total < o.window && candidates.length > 0) {
      const source = this.#pick(candidates, rates, best);
      this.#refill(source, now);
      let index = source.tokens >= 1 ? this.#nextPending(source) : -1;
      if (index < 0 && source.tokens >= 1) index = this.#endgameIndex(source, now);
      if (index < 0) {
        drop(source);
        continue;
      }
      source.tokens -= 1;
      source.inFlight.set(index, now);
      source.late.delete(index);
      if (source.inFlight.size >= o.perSource) drop(source);
      this.state[index] = ASKED;
      total += 1;
      this.actions.push({ type: "chunk_req", peerId: source.peerId, index });
    }
  }
}
