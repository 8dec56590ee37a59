// The page config (rendered by page/views.py as JSON in #swarm-config, docs/configuration.md):
// validated here, relative URLs resolved against the page, defaults filled in.
import { parseTrustedKeys } from "../protocol/capsule.js";
import { PEER_ID_RE } from "../protocol/encoding.js";
import { isValidCommunity } from "../protocol/ticket.js";

export const RENDEZVOUS_DEFAULTS = Object.freeze({
  refreshMs: 60_000, // a round while connected: keeps our ticket listed (ticket TTL 180 s)
  retryMs: 15_000, // a round while short of peers (the beacon allows one announce per 15 s)
  pauseAfter: 3, // consecutive empty rounds before rendezvous pauses
  pauseMs: 120_000, // shorter than a ticket's life, so a lone peer stays findable
  timeoutMs: 8_000,
  retries: 2,
  backoffMs: 1_000,
  ticketTtlMs: 180_000,
});

// Repair by peers in the page (content/repair.js, docs/replication.md "Repair by peers").
export const REPAIR_DEFAULTS = Object.freeze({
  tickMs: 5_000, // how often the page's repair core decides
  announceMs: 60_000, // its `repair` gossip while opted in
  warmupMs: 75_000, // after start, listen before deciding (one announcement and the clock skew)
  workerGraceMs: 180_000, // a backfill run a super-peer saw this recently: the worker is running
  fetchTimeoutMs: 600_000, // a repair fetch not complete by then is dropped (and retried later)
});

export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "ConfigError";
    this.code = "bad_config";
  }
}

const list = (value, name) => {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${name} must be a list`);
  return value;
};

function url(value, base, name) {
  if (typeof value !== "string" || !value) throw new ConfigError(`${name} must be a URL`);
  try {
    return new URL(value, base).href;
  } catch {
    throw new ConfigError(`${name} is not a URL: ${value}`);
  }
}

// "https://host:port/signal/" -> PeerJS options {host, port, path, secure, key}.
export function signalingOptions(href, key) {
  const u = new URL(href);
  const secure = u.protocol === "https:" || u.protocol === "wss:";
  const port = u.port ? Number(u.port) : secure ? 443 : 80;
  return { host: u.hostname, port, path: u.pathname.endsWith("/") ? u.pathname : `${u.pathname}/`, secure, key, url: href };
}

const positive = (value, fallback, name) => {
  if (value === undefined || value === null) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new ConfigError(`${name} must be a positive integer`);
  return value;
};

// TURN credentials (page/turn.py): where fresh ones are and when those in iceServers expire.
function parseTurn(raw, base) {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "object") throw new ConfigError("turn must be an object");
  return { url: url(raw.url, base, "turn.url"), expires: positive(raw.expires, 0, "turn.expires"), ttlS: positive(raw.ttl_s, 3600, "turn.ttl_s") };
}

/** Parse the raw page config; `base` is the page URL (relative URLs point at this server). */
export function parseConfig(raw, base) {
  if (raw === null || typeof raw !== "object") throw new ConfigError("config must be an object");
  if (!isValidCommunity(raw.community)) throw new ConfigError("community name is invalid");
  const community = raw.community;
  const beacons = list(raw.beacons, "beacons").map((b, i) => url(b, base, `beacons[${i}]`));
  const capsules = list(raw.capsules, "capsules").map((c, i) => url(String(c).replaceAll("{community}", community), base, `capsules[${i}]`));
  const capsuleKeys = parseTrustedKeys({ keys: list(raw.capsule_keys, "capsule_keys") });
  const key = typeof raw.signal_key === "string" && raw.signal_key ? raw.signal_key : "peerjs";
  const signaling = list(raw.signaling, "signaling").map((s, i) => signalingOptions(url(s, base, `signaling[${i}]`), key));
  if (signaling.length === 0) throw new ConfigError("at least one signaling endpoint is needed");
  // Super-peers' doors (docs/superpeer.md "The door"): WebSockets for when signaling is gone.
  const doors = list(raw.doors ?? [], "doors").map((d, i) => {
    const href = url(d, base, `doors[${i}]`);
    const scheme = new URL(href).protocol;
    if (scheme !== "ws:" && scheme !== "wss:") throw new ConfigError(`doors[${i}] must be a ws: or wss: URL`);
    return href;
  });
  const seeds = list(raw.seeds, "seeds");
  for (const seed of seeds) if (typeof seed !== "string" || !PEER_ID_RE.test(seed)) throw new ConfigError(`seed ${seed} is not a peer id`);
  const iceServers = list(raw.ice_servers, "ice_servers");
  const policy = raw.ice_transport_policy ?? "all";
  if (policy !== "all" && policy !== "relay") throw new ConfigError("ice_transport_policy must be all or relay");
  const turn = parseTurn(raw.turn, base);
  const mesh = raw.mesh ?? {};
  const target = positive(mesh.target, 6, "mesh.target");
  const max = positive(mesh.max, Math.max(10, target), "mesh.max");
  if (max < target) throw new ConfigError("mesh.max must be at least mesh.target");
  const approval = mesh.approval === "manual" ? "manual" : "auto";
  const r = raw.rendezvous ?? {};
  const rendezvous = {
    refreshMs: positive(r.refresh_ms, RENDEZVOUS_DEFAULTS.refreshMs, "rendezvous.refresh_ms"),
    retryMs: positive(r.retry_ms, RENDEZVOUS_DEFAULTS.retryMs, "rendezvous.retry_ms"),
    pauseAfter: positive(r.pause_after, RENDEZVOUS_DEFAULTS.pauseAfter, "rendezvous.pause_after"),
    pauseMs: positive(r.pause_ms, RENDEZVOUS_DEFAULTS.pauseMs, "rendezvous.pause_ms"),
    timeoutMs: positive(r.timeout_ms, RENDEZVOUS_DEFAULTS.timeoutMs, "rendezvous.timeout_ms"),
    retries: r.retries === 0 ? 0 : positive(r.retries, RENDEZVOUS_DEFAULTS.retries, "rendezvous.retries"),
    backoffMs: positive(r.backoff_ms, RENDEZVOUS_DEFAULTS.backoffMs, "rendezvous.backoff_ms"),
    ticketTtlMs: positive(r.ticket_ttl_ms, RENDEZVOUS_DEFAULTS.ticketTtlMs, "rendezvous.ticket_ttl_ms"),
  };
  // have_gossip: false turns off the flooded `have` adverts (direct ones to connected peers
  // stay; holders beyond them are found through the DHT).
  if (raw.have_gossip !== undefined && typeof raw.have_gossip !== "boolean") throw new ConfigError("have_gossip must be true or false");
  const rp = raw.repair ?? {};
  if (typeof rp !== "object") throw new ConfigError("repair must be an object");
  const repair = {
    tickMs: positive(rp.tick_ms, REPAIR_DEFAULTS.tickMs, "repair.tick_ms"),
    announceMs: positive(rp.announce_ms, REPAIR_DEFAULTS.announceMs, "repair.announce_ms"),
    warmupMs: rp.warmup_ms === 0 ? 0 : positive(rp.warmup_ms, REPAIR_DEFAULTS.warmupMs, "repair.warmup_ms"),
    workerGraceMs: positive(rp.worker_grace_ms, REPAIR_DEFAULTS.workerGraceMs, "repair.worker_grace_ms"),
    fetchTimeoutMs: positive(rp.fetch_timeout_ms, REPAIR_DEFAULTS.fetchTimeoutMs, "repair.fetch_timeout_ms"),
  };
  return {
    community,
    haveGossip: raw.have_gossip !== false,
    beacons,
    capsules,
    capsuleKeys,
    signaling,
    doors,
    seeds,
    iceServers,
    iceTransportPolicy: policy,
    turn,
    mesh: { target, max, approval },
    rendezvous,
    repair,
  };
}
