// Node health over the last hour and the last day (the page's "Health" figures), pure: the
// counters that matter for health in 5-minute buckets over a rolling 24 hours, so an hour
// is the newest 12 buckets and a day all 288. `now` is always passed in.

export const BUCKET_MS = 5 * 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const BUCKETS = DAY_MS / BUCKET_MS;
// The record saved with the daily metric buckets (adapters/store.js "metrics", keyed by `day`).
export const WINDOW_KEY = "window";

export const WINDOW_COUNTERS = [
  "uptime_ms",
  "conn_attempts",
  "conn_successes",
  "rendezvous_attempts",
  "rendezvous_successes",
  "beacon_ok",
  "beacon_latency_ms", // sum over the announces that succeeded (beacon_ok of them)
];

/** @returns {Record<string, number>} */
const empty = (start) => ({ start, ...Object.fromEntries(WINDOW_COUNTERS.map((name) => [name, 0])) });
const ratio = (part, whole) => (whole > 0 ? Math.min(1, part / whole) : null);

export class HealthWindow {
  constructor() {
    /** @type {Map<number, Record<string, number>>} bucket start (ms) -> counters */
    this.buckets = new Map();
    this.dirty = false;
  }

  /** Count `n` of a WINDOW_COUNTERS name at `now`; other names are ignored (not health). */
  add(name, n, now) {
    if (!WINDOW_COUNTERS.includes(name) || !(n > 0)) return;
    const start = Math.floor(now / BUCKET_MS) * BUCKET_MS;
    let bucket = this.buckets.get(start);
    if (!bucket) {
      bucket = empty(start);
      this.buckets.set(start, bucket);
      this.#forget(now);
    }
    bucket[name] += n;
    this.dirty = true;
  }

  /** A beacon announce that succeeded in `latencyMs` (failures count only as rendezvous). */
  beacon(latencyMs, now) {
    this.add("beacon_ok", 1, now);
    this.add("beacon_latency_ms", Math.max(1, Math.round(latencyMs)), now);
  }

  /** Sums over the buckets that end after `now - spanMs`, with the ratios people read. */
  stats(now, spanMs) {
    const from = now - spanMs;
    const sum = empty(0);
    for (const bucket of this.buckets.values()) {
      if (bucket.start + BUCKET_MS <= from || bucket.start > now) continue;
      for (const name of WINDOW_COUNTERS) sum[name] += bucket[name];
    }
    return {
      spanMs,
      uptimeMs: Math.min(sum.uptime_ms, spanMs),
      uptimeRatio: ratio(sum.uptime_ms, spanMs),
      connAttempts: sum.conn_attempts,
      connSuccesses: sum.conn_successes,
      connRatio: ratio(sum.conn_successes, sum.conn_attempts),
      rendezvousAttempts: sum.rendezvous_attempts,
      rendezvousSuccesses: sum.rendezvous_successes,
      rendezvousRatio: ratio(sum.rendezvous_successes, sum.rendezvous_attempts),
      beaconLatencyMs: sum.beacon_ok > 0 ? Math.round(sum.beacon_latency_ms / sum.beacon_ok) : null,
    };
  }

  hour(now) {
    return this.stats(now, HOUR_MS);
  }

  day(now) {
    return this.stats(now, DAY_MS);
  }

  /** The record to save, or null when nothing changed since the last one. */
  take() {
    if (!this.dirty) return null;
    this.dirty = false;
    return { day: WINDOW_KEY, buckets: [...this.buckets.values()].map((b) => ({ ...b })) };
  }

  /** Buckets read back from storage: kept when well-formed and within the day. */
  load(record, now) {
    for (const raw of Array.isArray(record?.buckets) ? record.buckets : []) {
      const start = raw?.start;
      if (!Number.isSafeInteger(start) || start % BUCKET_MS !== 0 || start <= now - DAY_MS || start > now) continue;
      if (this.buckets.has(start)) continue;
      const bucket = empty(start);
      for (const name of WINDOW_COUNTERS) {
        const value = raw[name];
        if (Number.isFinite(value) && value >= 0) bucket[name] = value;
      }
      this.buckets.set(start, bucket);
    }
  }

  #forget(now) {
    for (const start of this.buckets.keys()) if (start <= now - DAY_MS) this.buckets.delete(start);
  }
}
