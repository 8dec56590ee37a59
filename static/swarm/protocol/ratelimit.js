// GCRA token buckets by key, in integers, mirror of peers/protocol/ratelimit.py. A key may
// take a token when its theoretical arrival time (`tat`) is at most (burst - 1) * interval
// ahead of now; beyond maxKeys the least recently used key is forgotten. The mesh signaling
// and the DHT hold their limits with it, the same way in both languages.

export class GcraBuckets {
  constructor(intervalMs, burst, maxKeys) {
    this.interval = intervalMs;
    this.tolerance = (burst - 1) * intervalMs;
    this.maxKeys = maxKeys;
    this.tat = new Map();
  }

  take(key, now) {
    const tat = Math.max(this.tat.get(key) ?? now, now);
    if (tat - now > this.tolerance) return false;
    this.tat.delete(key);
    this.tat.set(key, tat + this.interval);
    while (this.tat.size > this.maxKeys) this.tat.delete(this.tat.keys().next().value);
    return true;
  }

  prune(now) {
    for (const [key, tat] of this.tat) if (tat <= now) this.tat.delete(key);
  }
}
