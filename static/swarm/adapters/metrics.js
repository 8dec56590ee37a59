// Per-peer metrics (DESIGN section 8): counters in daily buckets (UTC day), persisted to
// IndexedDB by the adapter, plus short time series for the charts (peers, beacon latency),
// and the rolling hour/day health window (healthwindow.js) fed by the same counts.
import { HealthWindow, WINDOW_KEY } from "./healthwindow.js";

export const COUNTERS = [
  "uptime_ms",
  "bytes_up",
  "bytes_down",
  "frames_up",
  "frames_down",
  "frames_dropped",
  "conn_attempts",
  "conn_successes",
  "conn_inbound",
  "rendezvous_attempts",
  "rendezvous_successes",
  "beacon_announces",
  "beacon_failures",
  "capsule_fetches",
  "capsule_failures",
  "gossip_received",
  "gossip_published",
  "gossip_relayed",
];
export const KEEP_DAYS = 30;
export const SERIES_POINTS = 720; // an hour at one point per 5 s

// Node stats field -> counter it feeds (cumulative values, turned into deltas).
const FROM_NODE = {
  bytesOut: "bytes_up",
  bytesIn: "bytes_down",
  framesOut: "frames_up",
  framesIn: "frames_down",
  dials: "conn_attempts",
  dialSuccesses: "conn_successes",
  inbound: "conn_inbound",
  gossipDelivered: "gossip_received",
  gossipPublished: "gossip_published",
  gossipRelayed: "gossip_relayed",
};

export const dayOf = (now) => new Date(now).toISOString().slice(0, 10);
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

const emptyCounters = () => Object.fromEntries(COUNTERS.map((name) => [name, 0]));

export class Metrics {
  constructor({ now }) {
    this.days = new Map(); // "YYYY-MM-DD" -> counters
    this.dirty = new Set();
    this.lastNode = {};
    this.lastUptimeAt = now;
    this.startedAt = now;
    this.timeToFirstPeerMs = null;
    this.beaconLatency = new Map(); // beacon URL -> last latency (ms)
    this.series = { t: [], peers: [], latency: new Map() }; // latency: url -> values aligned with t
    this.window = new HealthWindow(); // the last hour and day, in 5-minute buckets
  }

  add(name, n = 1, now) {
    if (!COUNTERS.includes(name)) throw new Error(`unknown counter ${name}`);
    const day = dayOf(now);
    let counters = this.days.get(day);
    if (!counters) {
      counters = emptyCounters();
      this.days.set(day, counters);
    }
    counters[name] += n;
    this.dirty.add(day);
    this.window.add(name, n, now);
  }

  today(now) {
    return { ...emptyCounters(), ...this.days.get(dayOf(now)) };
  }

  /** Sum of every kept day. */
  total() {
    const out = emptyCounters();
    for (const counters of this.days.values()) for (const name of COUNTERS) out[name] += counters[name] ?? 0;
    return out;
  }

  /** Fold the node's cumulative stats (and uptime) into today's bucket. */
  syncNode(stats, now) {
    for (const [field, counter] of Object.entries(FROM_NODE)) {
      const delta = (stats[field] ?? 0) - (this.lastNode[field] ?? 0);
      if (delta > 0) this.add(counter, delta, now);
      this.lastNode[field] = stats[field] ?? 0;
    }
    const dropped = Object.values(stats.dropped ?? {}).reduce((s, n) => s + n, 0);
    const droppedDelta = dropped - (this.lastNode.dropped ?? 0);
    if (droppedDelta > 0) this.add("frames_dropped", droppedDelta, now);
    this.lastNode.dropped = dropped;
    if (now > this.lastUptimeAt) this.add("uptime_ms", now - this.lastUptimeAt, now);
    this.lastUptimeAt = now;
  }

  firstPeer(now) {
    this.timeToFirstPeerMs ??= now - this.startedAt;
  }

  beacon(url, latencyMs, ok, now) {
    this.add("beacon_announces", 1, now);
    if (!ok) this.add("beacon_failures", 1, now);
    else this.window.beacon(latencyMs, now);
    this.beaconLatency.set(url, ok ? latencyMs : null);
  }

  /** One chart point: open peers now, each beacon's latest latency (null when it failed). */
  sample(now, peers) {
    const s = this.series;
    s.t.push(Math.floor(now / 1000));
    s.peers.push(peers);
    for (const url of this.beaconLatency.keys()) {
      if (!s.latency.has(url)) s.latency.set(url, new Array(s.t.length - 1).fill(null));
    }
    for (const [url, values] of s.latency) values.push(this.beaconLatency.get(url) ?? null);
    if (s.t.length > SERIES_POINTS) {
      s.t.shift();
      s.peers.shift();
      for (const values of s.latency.values()) values.shift();
    }
  }

  /** Changed day buckets for IndexedDB: [{day, counters}]. */
  takeDirty() {
    const out = [...this.dirty].map((day) => ({ day, counters: { ...this.days.get(day) } }));
    this.dirty.clear();
    return out;
  }

  /** The health window's record for the metrics store, or null when unchanged. */
  takeWindow() {
    return this.window.take();
  }

  load(records, now) {
    const oldest = dayOf(now - KEEP_DAYS * 86_400_000);
    for (const record of records) {
      if (record?.day === WINDOW_KEY) this.window.load(record, now);
    }
    for (const { day, counters } of records) {
      if (typeof day !== "string" || !DAY_RE.test(day) || day < oldest || this.days.has(day)) continue;
      this.days.set(day, { ...emptyCounters(), ...counters });
    }
  }

  expiredDays(now) {
    const oldest = dayOf(now - KEEP_DAYS * 86_400_000);
    return [...this.days.keys()].filter((day) => day < oldest);
  }
}
