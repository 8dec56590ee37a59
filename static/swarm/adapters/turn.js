// Short-lived TURN credentials (page/turn.py, docs/operations.md "TURN"): the page config
// carries some; fresh ones are fetched from the server before they expire and written into the
// RTCConfiguration that every new connection is made with (PeerJS's and MeshConnection's share
// one object). Connections already open keep their relay allocation.

export const REFRESH_AT = 0.8; // refresh once this part of the lifetime has passed
export const MIN_DELAY_MS = 5_000;
export const RETRY_MS = 30_000;

/** Milliseconds until the credentials expiring at `expiresS` (unix s) should be refreshed. */
export function refreshDelayMs(expiresS, ttlS, nowMs) {
  const refreshAtMs = (expiresS - ttlS * (1 - REFRESH_AT)) * 1000;
  return Math.max(MIN_DELAY_MS, refreshAtMs - nowMs);
}

/** The JSON of GET /turn/credentials, checked: {iceServers, expires} or an Error with a code. */
export function parseCredentials(body) {
  const bad = (message) => Object.assign(new Error(message), { code: "bad_turn_answer" });
  if (body === null || typeof body !== "object") throw bad("not an object");
  if (!Array.isArray(body.ice_servers) || !body.ice_servers.every((s) => s && typeof s === "object")) throw bad("ice_servers is not a list");
  if (!Number.isSafeInteger(body.expires) || body.expires <= 0) throw bad("expires is not a time");
  return { iceServers: body.ice_servers, expires: body.expires };
}

export class TurnRefresher {
  /**
   * @param {{ turn: {url: string, expires: number, ttlS: number}, rtc: {iceServers: object[]}, peerId: string,
   *           fetchImpl?: typeof fetch, clock?: () => number, log?: (level: string, code: string, message: string) => void,
   *           setTimer?: (fn: () => void, ms: number) => any, clearTimer?: (t: any) => void }} args
   */
  constructor({
    turn,
    rtc,
    peerId,
    fetchImpl = (i, o) => fetch(i, o),
    clock = Date.now,
    log = () => {},
    setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (t) => clearTimeout(t),
  }) {
    this.turn = turn;
    this.rtc = rtc;
    this.peerId = peerId;
    this.fetchImpl = fetchImpl;
    this.clock = clock;
    this.log = log;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.expires = turn.expires;
    this.timer = null;
    this.stopped = false;
    this.failures = 0;
  }

  /** True when the credentials in use are past their expiry (TURN would refuse them). */
  get expired() {
    return this.clock() >= this.expires * 1000;
  }

  start() {
    this.#schedule(refreshDelayMs(this.expires, this.turn.ttlS, this.clock()));
    return this;
  }

  #schedule(ms) {
    if (this.stopped) return;
    this.clearTimer(this.timer);
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.refresh();
    }, ms);
  }

  /** Fetch fresh credentials now; on failure retry after RETRY_MS (or the server's Retry-After). */
  async refresh() {
    const url = new URL(this.turn.url);
    url.searchParams.set("peer", this.peerId);
    let retryMs = RETRY_MS;
    try {
      const response = await this.fetchImpl(url.href, { cache: "no-store", credentials: "same-origin" });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        const after = Number(response.headers.get("Retry-After"));
        if (after > 0) retryMs = after * 1000;
        throw Object.assign(new Error(body?.message ?? `HTTP ${response.status}`), { code: body?.error ?? `http_${response.status}` });
      }
      const fresh = parseCredentials(body);
      this.rtc.iceServers = fresh.iceServers;
      this.expires = fresh.expires;
      this.failures = 0;
      this.log("info", "turn_refreshed", `TURN credentials valid until ${new Date(fresh.expires * 1000).toISOString()}`);
      this.#schedule(refreshDelayMs(this.expires, this.turn.ttlS, this.clock()));
      return true;
    } catch (error) {
      this.failures += 1;
      const code = error?.code ?? "network";
      this.log("warn", "turn_refresh_failed", `${code}: ${String(error?.message ?? error)}`);
      if (this.expired) this.log("warn", "turn_expired", "TURN credentials expired: relayed connections cannot be made until a refresh succeeds");
      this.#schedule(retryMs);
      return false;
    }
  }

  stop() {
    this.stopped = true;
    this.clearTimer(this.timer);
    this.timer = null;
  }
}

/**
 * Log why ICE gathering through a STUN/TURN server failed (RTCPeerConnection "icecandidateerror"):
 * 401 is refused credentials (wrong secret or expired), anything else an unreachable or failing server.
 */
export function watchIceErrors(pc, log) {
  if (!pc || typeof pc.addEventListener !== "function") return;
  const seen = new Set();
  pc.addEventListener("icecandidateerror", (e) => {
    const event = /** @type {any} */ (e);
    const key = `${event.url}|${event.errorCode}`;
    if (seen.has(key)) return;
    seen.add(key);
    const turn = String(event.url ?? "").startsWith("turn");
    const code = event.errorCode === 401 ? (turn ? "turn_auth_failed" : "ice_auth_failed") : turn ? "turn_error" : "ice_server_error";
    log("warn", code, `${event.url ?? "?"}: ${event.errorCode} ${event.errorText ?? ""}`.trim());
  });
}

/**
 * The type of the local candidate of the pair a connection uses (host | srflx | prflx | relay),
 * from getStats; null while no pair is selected.
 */
export async function selectedCandidateType(pc) {
  if (!pc || typeof pc.getStats !== "function") return null;
  const stats = await pc.getStats();
  let pairId = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  if (!pairId) {
    stats.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pairId ??= s.id;
    });
  }
  const pair = pairId ? stats.get(pairId) : null;
  const local = pair ? stats.get(pair.localCandidateId) : null;
  return local?.candidateType ?? null;
}
