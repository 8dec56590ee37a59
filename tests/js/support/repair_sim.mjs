// Repair by peers, simulated (docs/replication.md "Repair by peers", figures in
// docs/benchmarks.md "Repair by peers"): 1,000 peers with churn and the server gone. Every
// volunteer (browsers that opted in, with a budget, and three super-peers) runs the real
// RepairCore (static/swarm/protocol/repair.js) on a shared fake clock; what a core learns comes
// as the page would learn it: `have` gossip of holdings (changes coalesced and delayed 5-35 s,
// the full list again every 4 minutes), `repair` announcements every 60 s, departure signals
// for half of the peers that leave (the others just go quiet and their adverts expire).
// Ground truth (who really holds a complete kept copy) is kept beside the cores.
//
// Usage: node tests/js/support/repair_sim.mjs [peers=1000] [minutes=30] [seed=7] [naive=0] [preMinutes=3]
// (naive=1: every eligible volunteer fetches, the baseline for duplicate fetches).
import { pathToFileURL } from "node:url";

import { RepairCore } from "../../../static/swarm/protocol/repair.js";
import { EventQueue, prng } from "./sim.mjs";

const T0 = 1_800_000_000_000;
const STEP_MS = 5_000;
const CORE_TICK_MS = 15_000;
const MB = 1 << 20;
const GROUPS = 8;
const B32 = "abcdefghijklmnopqrstuvwxyz234567";
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Run the simulation; returns the figures. Options: peers, minutes (after the server went),
 * preMinutes (before it went, the worker running), manifests, volunteerShare, leavePerMin,
 * superPeers, seed, naive, target.
 */
export function runRepairSim({
  peers = 1000,
  minutes = 120,
  manifests = 300,
  volunteerShare = 0.35,
  leavePerMin = 10,
  superPeers = 3,
  seed = 7,
  naive = false,
  target = 3,
  preMinutes = 10,
  progress = false,
} = {}) {
  const started = performance.now();
  const random = prng(seed);
  const pick = (arr) => arr[Math.floor(random() * arr.length)];
  const uniform = (lo, hi) => lo + Math.floor(random() * (hi - lo));
  const newPeerId = () => `p${Array.from({ length: 32 }, () => B32[Math.floor(random() * 32)]).join("")}`;
  const newManifestId = () => `${Array.from({ length: 42 }, () => B64[Math.floor(random() * 64)]).join("")}A`;
  const config = naive ? { claimTimeoutMs: 1 } : {};

  const queue = new EventQueue();
  let now = T0 - preMinutes * 60_000; // the worker running, then the server goes at T0
  const serverGoneAt = T0;
  const lastBackfill = T0 - 30_000;
  const endAt = T0 + minutes * 60_000;

  const catalog = []; // {id, size, chunks}
  for (let i = 0; i < manifests; i += 1) {
    const size = uniform(1, 50) * MB;
    catalog.push({ id: newManifestId(), size, chunks: Math.ceil(size / (64 * 1024)) });
  }
  const byId = new Map(catalog.map((m) => [m.id, m]));

  const alive = new Map(); // id -> peer
  const volunteers = new Set(); // live peers that run a core
  const stats = {
    started: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    beyondTarget: 0, // completed while the manifest was already at target (ground truth)
    duringWorker: 0, // fetches started while the worker was still known to run
    maxConcurrent: 0,
    left: 0,
    joined: 0,
    coreTicks: 0,
  };
  const fetching = new Map(); // manifest -> Set(peer id) in flight
  const holders = new Map(); // manifest -> Set(peer id) holding a complete kept copy (truth)

  function truthReplicas(mid) {
    return holders.get(mid)?.size ?? 0;
  }

  // What a peer advertises: Map(mid -> {chunks, keep}).
  function makePeer({ volunteer, superpeer = false, joinedAt }) {
    const id = newPeerId();
    const peer = {
      id,
      volunteer,
      superpeer,
      budget: superpeer ? 50_000 * MB : uniform(200, 2000) * MB,
      used: 0,
      bw: superpeer ? 12 * MB : uniform(1, 8) * MB,
      held: new Map(),
      fetches: new Map(), // mid -> fetch
      core: null,
      group: Math.floor(random() * GROUPS),
    };
    alive.set(id, peer);
    if (volunteer) {
      peer.core = new RepairCore(id, joinedAt, config);
      for (const m of catalog) peer.core.manifest(m.id, m.chunks, m.size);
      peer.core.setSelf({ optedIn: true, spare: peer.budget, maxActive: superpeer ? 4 : 2 });
      volunteers.add(peer);
    }
    return peer;
  }

  // --- adverts by gossip ---
  // A publication reaches the volunteers in GROUPS groups, each after its own delay (one
  // queue event per group, not per recipient: the views differ as much, the run is faster).
  function toAll(lo, hi, exceptId, fn) {
    for (let g = 0; g < GROUPS; g += 1) {
      queue.push(now + uniform(lo, hi), () => {
        for (const v of volunteers) if (v.group === g && v.id !== exceptId) fn(v);
      });
    }
  }
  function deliverAdvert(holderId, mid, chunks, keep) {
    toAll(5_000, 35_000, holderId, (v) => v.core.advert(holderId, mid, chunks, keep, now));
  }
  function setHolding(peer, mid, chunks, keep) {
    const m = byId.get(mid);
    const was = peer.held.get(mid);
    if (chunks === 0) peer.held.delete(mid);
    else peer.held.set(mid, { chunks, keep });
    const wasReplica = was && was.chunks >= m.chunks && was.keep;
    const isReplica = chunks >= m.chunks && keep;
    if (wasReplica && !isReplica) holders.get(mid)?.delete(peer.id);
    if (isReplica && !wasReplica) {
      if (!holders.has(mid)) holders.set(mid, new Set());
      holders.get(mid).add(peer.id);
    }
    if (peer.core) peer.core.advert(peer.id, mid, chunks, keep, now); // its own holdings, at once
    deliverAdvert(peer.id, mid, chunks, keep);
  }
  function refreshAdverts(peer) {
    if (alive.get(peer.id) !== peer) return;
    for (const [mid, h] of peer.held) deliverAdvert(peer.id, mid, h.chunks, h.keep);
    queue.push(now + 240_000, () => refreshAdverts(peer));
  }

  // --- volunteer announcements ---
  function announce(peer) {
    if (alive.get(peer.id) !== peer) return;
    const own = peer.core.ownAnnouncement(peer.superpeer ? Math.min(now - 30_000, lastBackfill) : 0);
    const data = { spare: own.spare, slots: own.slots, backfill_at: own.backfillAt };
    const issued = now;
    toAll(1_000, 10_000, peer.id, (v) => v.core.announcement(peer.id, data, issued, now, { superpeer: peer.superpeer }));
    queue.push(now + 60_000, () => announce(peer));
  }

  // --- fetches ---
  function startFetch(peer, mid) {
    const m = byId.get(mid);
    stats.started += 1;
    if (peer.core.workerLive(now)) stats.duringWorker += 1;
    const set = fetching.get(mid) ?? new Set();
    set.add(peer.id);
    fetching.set(mid, set);
    stats.maxConcurrent = Math.max(stats.maxConcurrent, set.size);
    const fetch = { mid, done: false };
    peer.fetches.set(mid, fetch);
    setHolding(peer, mid, 1, false); // partial copy, advertised like a download in progress
    queue.push(now + 2_000 + Math.ceil((m.size / peer.bw) * 1000), () => endFetch(peer, fetch));
  }
  function stopFetch(peer, fetch) {
    fetch.done = true;
    peer.fetches.delete(fetch.mid);
    fetching.get(fetch.mid)?.delete(peer.id);
  }
  function endFetch(peer, fetch) {
    if (fetch.done || alive.get(peer.id) !== peer) return;
    stopFetch(peer, fetch);
    const m = byId.get(fetch.mid);
    const source = [...(holders.get(m.id) ?? [])].some((id) => id !== peer.id);
    if (!source || peer.used + m.size > peer.budget) {
      stats.failed += 1;
      setHolding(peer, m.id, 0, false);
      peer.core.fetchEnded(m.id, false, now);
      return;
    }
    stats.completed += 1;
    if (truthReplicas(m.id) >= target) stats.beyondTarget += 1;
    peer.used += m.size;
    peer.core.setSelf({ optedIn: true, spare: peer.budget - peer.used, maxActive: peer.superpeer ? 4 : 2 });
    peer.core.fetchEnded(m.id, true, now);
    setHolding(peer, m.id, m.chunks, true);
  }
  function coreTick(peer) {
    if (alive.get(peer.id) !== peer) return;
    stats.coreTicks += 1;
    const d = peer.core.tick(now);
    for (const mid of d.cancel) {
      const fetch = peer.fetches.get(mid);
      if (!fetch) continue;
      stopFetch(peer, fetch);
      stats.cancelled += 1;
      setHolding(peer, mid, 0, false);
    }
    for (const mid of d.fetch) startFetch(peer, mid);
    queue.push(now + CORE_TICK_MS, () => coreTick(peer));
  }

  function join(volunteer, superpeer = false) {
    const peer = makePeer({ volunteer, superpeer, joinedAt: now });
    // A newcomer hears the full lists of its first connections: what is advertised now.
    if (peer.core) {
      for (const other of alive.values()) {
        if (other === peer) continue;
        for (const [mid, h] of other.held) peer.core.advert(other.id, mid, h.chunks, h.keep, now);
      }
      queue.push(now + uniform(0, 60_000), () => announce(peer));
      queue.push(now + uniform(0, CORE_TICK_MS), () => coreTick(peer));
    }
    queue.push(now + uniform(0, 240_000), () => refreshAdverts(peer));
    return peer;
  }
  function leave(peer) {
    alive.delete(peer.id);
    volunteers.delete(peer);
    for (const mid of peer.held.keys()) holders.get(mid)?.delete(peer.id);
    for (const fetch of [...peer.fetches.values()]) stopFetch(peer, fetch);
    stats.left += 1;
    if (random() < 0.5) {
      // a departure signal (signaling LEAVE, a closed connection) reaches the others
      toAll(1_000, 10_000, null, (v) => v.core.holderGone(peer.id));
    }
  }

  // --- the swarm before the server goes ---
  const supers = [];
  for (let i = 0; i < superPeers; i += 1) supers.push(makePeer({ volunteer: true, superpeer: true, joinedAt: now }));
  const browsers = [];
  for (let i = supers.length; i < peers; i += 1) browsers.push(makePeer({ volunteer: random() < volunteerShare, joinedAt: now }));
  // Each file: its sharer's own copy and two kept copies (what the backfill made), at target.
  for (const m of catalog) {
    const sharer = pick(browsers);
    sharer.held.set(m.id, { chunks: m.chunks, keep: true });
    const chosen = new Set([sharer]);
    while (chosen.size < target) {
      const v = random() < 0.2 ? pick(supers) : pick(browsers);
      if (!v.volunteer || chosen.has(v) || v.used + m.size > v.budget) continue;
      v.used += m.size;
      v.held.set(m.id, { chunks: m.chunks, keep: true });
      chosen.add(v);
    }
    holders.set(m.id, new Set([...chosen].map((p) => p.id)));
  }
  for (const p of alive.values()) {
    if (!p.core) continue;
    p.core.setSelf({ optedIn: true, spare: p.budget - p.used, maxActive: p.superpeer ? 4 : 2 });
    for (const other of alive.values()) for (const [mid, h] of other.held) p.core.advert(other.id, mid, h.chunks, h.keep, now);
    p.core.workerSeen(now); // the worker ran all along
    queue.push(now + uniform(0, 60_000), () => announce(p));
    queue.push(now + uniform(0, CORE_TICK_MS), () => coreTick(p));
  }
  for (const p of alive.values()) queue.push(now + uniform(0, 240_000), () => refreshAdverts(p));
  // While the server runs, super-peers keep saying they saw the backfill (every announcement).
  // Its last run was at T0 - 30 s; the server goes at T0.

  // --- churn and measurement ---
  const samples = { manifestMinutes: 0, atTarget: 0, lostNow: 0 };
  const underSince = new Map(); // mid -> when truth fell below target
  const repairTimes = [];
  let nextChurn = serverGoneAt + 60_000;
  let nextSample = serverGoneAt + 60_000;
  while (now < endAt) {
    const stepEnd = now + STEP_MS;
    while (queue.peek() && queue.peek().t <= stepEnd) {
      const e = queue.pop();
      now = Math.max(now, e.t);
      e.item();
    }
    now = stepEnd;
    if (now >= nextChurn) {
      nextChurn += 60_000;
      const candidates = [...alive.values()].filter((p) => !p.superpeer);
      for (let i = 0; i < leavePerMin; i += 1) {
        const gone = pick(candidates);
        if (alive.get(gone.id) === gone) leave(gone);
      }
      for (let i = 0; i < leavePerMin; i += 1) join(random() < volunteerShare);
      stats.joined += leavePerMin;
    }
    // truth: under-target episodes
    for (const m of catalog) {
      const r = truthReplicas(m.id);
      if (r < target && !underSince.has(m.id)) underSince.set(m.id, now);
      if (r >= target && underSince.has(m.id)) {
        if (now > serverGoneAt + 180_000) repairTimes.push(now - underSince.get(m.id));
        underSince.delete(m.id);
      }
    }
    if (now >= nextSample) {
      nextSample += 60_000;
      if (progress) process.stderr.write(`${Math.round((now - T0) / 60_000)} min, ${Math.round(performance.now() - started) / 1000} s\n`);
      for (const m of catalog) {
        const r = truthReplicas(m.id);
        if (r === 0) continue; // lost: nothing can repair it
        samples.manifestMinutes += 1;
        if (r >= target) samples.atTarget += 1;
      }
    }
  }
  let lost = 0;
  let atTargetEnd = 0;
  for (const m of catalog) {
    // every complete copy in this simulation is kept: no replica left means no copy left
    if (truthReplicas(m.id) === 0) lost += 1;
    else if (truthReplicas(m.id) >= target) atTargetEnd += 1;
  }
  repairTimes.sort((a, b) => a - b);
  const q = (f) => (repairTimes.length ? repairTimes[Math.min(repairTimes.length - 1, Math.floor(f * repairTimes.length))] : 0);
  return {
    peers,
    minutes,
    manifests,
    naive,
    volunteersAtEnd: volunteers.size,
    left: stats.left,
    joined: stats.joined,
    atTargetShare: samples.atTarget / Math.max(1, samples.manifestMinutes),
    atTargetEnd,
    lost,
    repairs: repairTimes.length,
    repairMedianS: q(0.5) / 1000,
    repairP95S: q(0.95) / 1000,
    repairMaxS: (repairTimes.at(-1) ?? 0) / 1000,
    fetchesStarted: stats.started,
    fetchesCompleted: stats.completed,
    fetchesFailed: stats.failed,
    fetchesCancelled: stats.cancelled,
    completedBeyondTarget: stats.beyondTarget,
    duplicateShare: (stats.beyondTarget + stats.cancelled) / Math.max(1, stats.started),
    maxConcurrentPerManifest: stats.maxConcurrent,
    fetchesDuringWorker: stats.duringWorker,
    coreTicks: stats.coreTicks,
    wallS: (performance.now() - started) / 1000,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [peers = 1000, minutes = 30, seed = 7, naive = 0, preMinutes = 3] = process.argv.slice(2).map(Number);
  console.log(JSON.stringify(runRepairSim({ peers, minutes, seed, naive: naive === 1, preMinutes, progress: true }), null, 2));
}
