// Rendezvous (DESIGN section 4): announce to every beacon in parallel (timeout, retries with
// backoff), fall back to signed capsules, merge. RendezvousSchedule is the pure part (when
// the next round runs, when to pause); runRound does the HTTP with an injected fetch.
import { capsuleTickets, verifyCapsule } from "../protocol/capsule.js";
import { ProtocolError } from "../protocol/errors.js";
import { verifyTicket } from "../protocol/ticket.js";

// A beacon answers at most 50 peers (DESIGN section 4); a list far longer is hostile and
// only its head is verified, as the server's federation client does (beacon/federation.py).
export const MAX_BEACON_PEERS = 200;

/** When rounds run: fast while short of peers, slow once connected, paused after empty rounds. */
export class RendezvousSchedule {
  constructor(options, now) {
    this.options = options;
    this.nextRoundAt = now;
    this.emptyRounds = 0;
    this.pausedUntil = null;
    this.rounds = 0;
    this.successes = 0;
    this.suspended = false; // the mesh is paused or isolated: no rendezvous at all
  }

  due(now) {
    return !this.suspended && now >= this.nextRoundAt;
  }

  state(now) {
    if (this.suspended) return "suspended";
    return this.pausedUntil !== null && now < this.pausedUntil ? "paused" : "active";
  }

  /** A round finished: `found` usable peers, `connected` open connections, `retryAfterMs` from a 429. */
  done({ found, connected, retryAfterMs = 0 }, now) {
    this.rounds += 1;
    let wait = connected > 0 ? this.options.refreshMs : this.options.retryMs;
    if (found > 0) {
      this.successes += 1;
      this.emptyRounds = 0;
      this.pausedUntil = null;
    } else if (++this.emptyRounds >= this.options.pauseAfter) {
      this.emptyRounds = 0;
      this.pausedUntil = now + this.options.pauseMs;
      wait = this.options.pauseMs;
    }
    this.nextRoundAt = now + Math.max(wait, retryAfterMs);
    return this.state(now);
  }

  /** Run a round soon (the mesh lost its last peer, or the person pressed "retry"). */
  hurry(now) {
    if (this.state(now) === "paused") return;
    this.nextRoundAt = Math.min(this.nextRoundAt, now);
  }
}

class HttpError extends Error {
  constructor(status, code, message, retryAfterMs = 0) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
    /** @type {number | undefined} how many tries it took (set by withRetries) */
    this.attempts = undefined;
  }
}

// One HTTP exchange with a deadline; network errors, timeouts and 5xx may be retried.
// The deadline covers the body too: fetch resolves once the headers are in, and a server
// that then drips its body would hold the round (and every later one) forever.
async function exchange(fetchImpl, url, init, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const timeout = () => new HttpError(0, "timeout", `no answer in ${timeoutMs} ms`);
  let response;
  let body = null;
  try {
    try {
      response = await fetchImpl(url, { ...init, signal: controller.signal, cache: "no-store" });
    } catch (error) {
      if (controller.signal.aborted) throw timeout();
      throw new HttpError(0, "network", String(error?.message ?? error));
    }
    try {
      body = await response.json();
    } catch {
      if (controller.signal.aborted) throw timeout();
      body = null;
    }
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const code = body?.error?.code ?? `http_${response.status}`;
    const retryAfterMs = Number(response.headers.get("Retry-After") ?? 0) * 1000 || 0;
    throw new HttpError(response.status, code, body?.error?.message ?? `HTTP ${response.status}`, retryAfterMs);
  }
  if (body === null) throw new HttpError(response.status, "bad_json", "response is not JSON");
  return body;
}

const retriable = (error) => error.status === 0 || error.status >= 500;

async function withRetries(fn, { retries, backoffMs, sleep }) {
  for (let attempt = 0; ; attempt++) {
    try {
      return { value: await fn(), attempts: attempt + 1 };
    } catch (error) {
      if (!(error instanceof HttpError) || !retriable(error) || attempt >= retries) {
        error.attempts = attempt + 1;
        throw error;
      }
      await sleep(backoffMs * 2 ** attempt);
    }
  }
}

async function verifyAll(envelopes, { now, community, selfId }) {
  const tickets = [];
  const rejected = {};
  for (const envelope of envelopes) {
    try {
      const t = await verifyTicket(envelope, { now, community });
      if (t.peerId !== selfId) tickets.push(t);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      rejected[error.code] = (rejected[error.code] ?? 0) + 1;
    }
  }
  return { tickets, rejected };
}

// The beacon refused this announce but the peer list is still worth having: "replay" (our
// ticket is stored: the browser resent the POST on a new connection, or a retry crossed a
// slow answer) or "rate_limited" (our previous ticket is stored, or our address is busy).
const STORED_ANYWAY = new Set(["replay", "rate_limited"]);

/** POST our ticket to one beacon; resolves a report {url, ok, latencyMs, tickets, code, ...}. */
export async function announce(beacon, ticket, { community, selfId, fetchImpl, options, sleep, clock }) {
  const base = `${beacon}${beacon.endsWith("/") ? "" : "/"}${community}`;
  const started = clock();
  const retry = { retries: options.retries, backoffMs: options.backoffMs, sleep };
  const post = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(ticket) };
  try {
    let result;
    try {
      result = await withRetries(() => exchange(fetchImpl, `${base}/announce`, post, options.timeoutMs), retry);
    } catch (error) {
      if (!(error instanceof HttpError) || !STORED_ANYWAY.has(error.code)) throw error;
      result = await withRetries(() => exchange(fetchImpl, `${base}/peers`, { method: "GET" }, options.timeoutMs), retry);
      result.attempts += error.attempts;
      result.via = error.code;
    }
    const { value: body, attempts } = result;
    const listed = Array.isArray(body?.peers) ? body.peers.slice(0, MAX_BEACON_PEERS) : [];
    const { tickets, rejected } = await verifyAll(listed, { now: clock(), community, selfId });
    return { source: "beacon", url: beacon, ok: true, attempts, latencyMs: clock() - started, tickets, rejected, via: result.via ?? "announce" };
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    return {
      source: "beacon",
      url: beacon,
      ok: false,
      attempts: error.attempts,
      latencyMs: clock() - started,
      tickets: [],
      code: error.code,
      message: error.message,
      retryAfterMs: error.retryAfterMs,
    };
  }
}

/** GET one capsule and verify it against the pinned keys; its live tickets are the result. */
export async function fetchCapsule(url, { community, selfId, trusted, fetchImpl, options, sleep, clock }) {
  const started = clock();
  try {
    const { value: envelope, attempts } = await withRetries(() => exchange(fetchImpl, url, { method: "GET" }, options.timeoutMs), {
      retries: options.retries,
      backoffMs: options.backoffMs,
      sleep,
    });
    const capsule = await verifyCapsule(envelope, { trusted, now: clock(), community });
    const { tickets } = await capsuleTickets(capsule, { now: clock() });
    return { source: "capsule", url, ok: true, attempts, latencyMs: clock() - started, tickets: tickets.filter((t) => t.peerId !== selfId) };
  } catch (error) {
    if (error instanceof HttpError || error instanceof ProtocolError) {
      return {
        source: "capsule",
        url,
        ok: false,
        attempts: /** @type {{ attempts?: number }} */ (error).attempts ?? 1,
        latencyMs: clock() - started,
        tickets: [],
        code: error.code,
        message: error.message,
      };
    }
    throw error;
  }
}

/** Newest ticket per peer. */
export function mergeTickets(reports) {
  const best = new Map();
  for (const report of reports) {
    for (const t of report.tickets) {
      const current = best.get(t.peerId);
      if (!current || t.issuedAt > current.issuedAt) best.set(t.peerId, t);
    }
  }
  return [...best.values()];
}

/**
 * One rendezvous round: every beacon in parallel; the capsules when the beacons gave fewer
 * than `want` peers (or all failed). Resolves {tickets, reports, retryAfterMs}.
 */
export async function runRound({ config, ticket, selfId, want, fetchImpl = fetch, sleep = defaultSleep, clock = Date.now }) {
  const ctx = { community: config.community, selfId, fetchImpl, options: config.rendezvous, sleep, clock };
  const reports = await Promise.all(config.beacons.map((b) => announce(b, ticket, ctx)));
  if (mergeTickets(reports).length < want && config.capsules.length > 0) {
    const capsuleReports = await Promise.all(config.capsules.map((u) => fetchCapsule(u, { ...ctx, trusted: config.capsuleKeys })));
    reports.push(...capsuleReports);
  }
  const retryAfterMs = Math.max(0, ...reports.map((r) => r.retryAfterMs ?? 0));
  return { tickets: mergeTickets(reports), reports, retryAfterMs };
}

function defaultSleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
