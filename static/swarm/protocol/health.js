// Connection health from ping/pong: round-trip time, loss, and idleness
// (degraded after 90 s without a frame from the peer, stale after 180 s -> reconnect).

export const PING_INTERVAL_MS = 15_000;
export const PONG_TIMEOUT_MS = 10_000;
export const DEGRADED_AFTER_MS = 90_000;
export const STALE_AFTER_MS = 180_000;
const RTT_WEIGHT = 0.25; // EWMA, as TCP's smoothed RTT (RFC 6298 uses 1/8; peers are fewer)
const LOSS_WINDOW = 20;
const MAX_OUTSTANDING = 8;

export class Health {
  constructor(now, { pingIntervalMs = PING_INTERVAL_MS, pongTimeoutMs = PONG_TIMEOUT_MS } = {}) {
    this.pingIntervalMs = pingIntervalMs;
    this.pongTimeoutMs = pongTimeoutMs;
    this.lastReceived = now;
    this.nextPingAt = now;
    this.seq = 0;
    this.outstanding = new Map(); // n -> sent at
    this.rtt = null;
    this.lastRtt = null;
    this.minRtt = null; // the path's delay without queues (sizes send buffers)
    this.pingsSent = 0;
    this.pongsReceived = 0;
    this.outcomes = []; // recent pings: true = answered, false = lost
  }

  /** Any frame from the peer proves it is alive. */
  received(now) {
    this.lastReceived = now;
  }

  /** The ping to send now, or null. */
  pingDue(now) {
    this.#expire(now);
    if (now < this.nextPingAt) return null;
    this.nextPingAt = now + this.pingIntervalMs;
    this.seq = (this.seq + 1) >>> 0;
    if (this.outstanding.size >= MAX_OUTSTANDING) this.outstanding.delete(this.outstanding.keys().next().value);
    this.outstanding.set(this.seq, now);
    this.pingsSent += 1;
    return { t: "ping", n: this.seq, ts: now };
  }

  /** A pong for one of our pings: returns the RTT sample, or null for an unknown pong. */
  pong(frame, now) {
    const sentAt = this.outstanding.get(frame.n);
    if (sentAt === undefined || sentAt !== frame.ts) return null;
    this.outstanding.delete(frame.n);
    const sample = Math.max(0, now - sentAt);
    this.lastRtt = sample;
    this.minRtt = this.minRtt === null ? sample : Math.min(this.minRtt, sample);
    this.rtt = this.rtt === null ? sample : this.rtt + RTT_WEIGHT * (sample - this.rtt);
    this.pongsReceived += 1;
    this.#record(true);
    return sample;
  }

  #expire(now) {
    for (const [n, sentAt] of this.outstanding) {
      if (now - sentAt < this.pongTimeoutMs) continue;
      this.outstanding.delete(n);
      this.#record(false);
    }
  }

  #record(answered) {
    this.outcomes.push(answered);
    if (this.outcomes.length > LOSS_WINDOW) this.outcomes.shift();
  }

  /** Fraction of the recent pings that went unanswered (0..1). */
  get loss() {
    if (this.outcomes.length === 0) return 0;
    return this.outcomes.filter((ok) => !ok).length / this.outcomes.length;
  }

  state(now) {
    const idle = now - this.lastReceived;
    if (idle >= STALE_AFTER_MS) return "stale";
    if (idle >= DEGRADED_AFTER_MS) return "degraded";
    return "ok";
  }

  /** When this connection next needs attention (a ping, a pong timeout, an idle threshold). */
  nextDeadline(now) {
    let next = this.nextPingAt;
    for (const sentAt of this.outstanding.values()) next = Math.min(next, sentAt + this.pongTimeoutMs);
    for (const threshold of [DEGRADED_AFTER_MS, STALE_AFTER_MS]) {
      const at = this.lastReceived + threshold;
      if (at > now) next = Math.min(next, at);
    }
    return next;
  }
}
