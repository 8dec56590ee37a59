// A swarm of DHT peers on a fake clock, over the real core (static/swarm/protocol/dht.js) and
// the real wire codec: every frame is encoded and decoded, every ticket and record is signed
// and verified. Used by tests/js/dht_sim.test.js (1,000 peers, asserts the bounds) and
// bench/dht_sim.mjs (10,000 peers, prints the figures of docs/benchmarks.md "DHT").
//
// The run: peers join over `joinMs` (each is told of three live peers, looks itself up and
// publishes its peer record), some publish provider records; then during `runMs` a share
// `churn` of the peers leaves (silently: what is sent to them is lost) and as many new ones
// join (every peer renews its ticket every 150 s), while lookups start at random times from random live honest peers: half for a live
// peer's record (Connect by id), half for a manifest's providers. A share `bad` of the peers
// answer every request badly: forged contacts (peer ids not bound to the signing key), the
// real tickets of the bad peers closest to the target (colluding), no records, forged
// records; they accept stores and keep nothing.
import * as ed25519 from "../../../static/swarm/protocol/ed25519.js";
import { b64urlEncode, peerIdForKey, sha256, utf8 } from "../../../static/swarm/protocol/encoding.js";
import { sign } from "../../../static/swarm/protocol/envelope.js";
import { Dht } from "../../../static/swarm/protocol/dht.js";
import { makeTicket } from "../../../static/swarm/protocol/ticket.js";
import { decodeFrame, encodeFrame } from "../../../static/swarm/protocol/wire.js";
import { EventQueue, prng } from "./sim.mjs";

export const NOW = 1_800_000_000_000;
const COMMUNITY = "main";
const TICK_MS = 250;
const RENEW_MS = 150_000; // a page's ticket lives 180 s; it renews before

const randomPeerId = (random) => {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let id = "p";
  for (let i = 0; i < 32; i++) id += alphabet[Math.floor(random() * 32)];
  return id;
};

/**
 * @param {{ n: number, churn?: number, bad?: number, lookups?: number, manifests?: number,
 *   joinMs?: number, runMs?: number, seed?: number, limits?: object, forge?: boolean,
 *   log?: (line: string) => void }} options (limits: DHT_LIMITS overrides for every peer;
 *   forge false: bad peers answer only with their colluders' real tickets, nothing forged)
 */
export async function simulate({
  n,
  churn = 0.3,
  bad = 0.1,
  lookups = 1000,
  manifests = 200,
  joinMs = n * 10,
  runMs = 240_000,
  seed = 1,
  limits = {},
  forge = true,
  log = () => {},
}) {
  const random = prng(seed);
  const queue = new EventQueue();
  const peers = []; // {index, peerId, dht, bad, alive, joinedAt}
  const byId = new Map();
  const sim = { now: NOW, frames: 0, bytes: 0, violations: 0, drops: {} };
  const results = [];
  const waiting = new Map(); // `${index} ${lookup}` -> {kind, target, startedAt}
  const badIds = [];
  let made = 0;

  async function makePeer(isBad) {
    const seedBytes = new Uint8Array(32);
    new DataView(seedBytes.buffer).setUint32(0, ++made);
    seedBytes[31] = seed & 0xff;
    const signer = await ed25519.signerFromSeed(seedBytes);
    const peerId = await peerIdForKey(signer.publicKey);
    const ticket = await makeTicket(signer, { peerId, community: COMMUNITY, now: sim.now, ttlMs: 600_000 });
    const dht = await Dht.create({ peerId, community: COMMUNITY, signer, ticket, limits, now: sim.now });
    const peer = { index: peers.length, peerId, signer, dht, bad: isBad, alive: true, joinedAt: sim.now, ticking: false };
    peers.push(peer);
    byId.set(peerId, peer);
    if (isBad) badIds.push(peer);
    return peer;
  }

  const latency = () => 30 + Math.floor(random() * 70);

  function send(from, action) {
    const bytes = encodeFrame(action.frame);
    sim.frames += 1;
    sim.bytes += bytes.length;
    const to = byId.get(action.peerId);
    queue.push(sim.now + latency(), async () => {
      if (!to?.alive || !from.alive) return; // lost: the request times out
      const frame = decodeFrame(bytes);
      if (to.bad && (frame.t === "dht_find_node" || frame.t === "dht_find_value" || frame.t === "dht_store")) {
        send(to, { peerId: from.peerId, frame: await badAnswer(to, frame) });
        return;
      }
      await to.dht.receive(from.peerId, frame, sim.now);
      drain(to);
    });
  }

  // The adversary: forged contacts, the colluding bad peers closest to the target, no records.
  const forgedFor = new Map();
  async function forged(peer) {
    if (!forgedFor.has(peer.peerId)) {
      const list = [];
      for (let i = 0; i < 4; i++) {
        const body = { ...peer.dht.ticket.body, peer_id: randomPeerId(random) };
        list.push(await sign("swarm/ticket/v1", body, peer.signer));
      }
      forgedFor.set(peer.peerId, list);
    }
    return forgedFor.get(peer.peerId);
  }
  async function badAnswer(peer, frame) {
    const base = { id: frame.id, ticket: peer.dht.ticket };
    if (frame.t === "dht_store") return { t: "dht_stored", ...base, codes: frame.records.map(() => "stored") };
    const target = frame.t === "dht_find_node" ? frame.target : frame.key;
    const colluding = badIds
      .filter((p) => p.alive && p !== peer)
      .map((p) => ({ p, d: xorTop(p.dht.id, target) }))
      .sort((a, b) => a.d - b.d)
      .slice(0, 16)
      .map((x) => x.p.dht.ticket);
    if (!forge) {
      // Only real tickets: the colluders, nothing a check can catch.
      if (frame.t === "dht_find_node") return { t: "dht_nodes", ...base, nodes: colluding };
      return { t: "dht_value", ...base, records: [], nodes: colluding };
    }
    const nodes = [...(await forged(peer)), ...colluding].slice(0, 20);
    if (frame.t === "dht_find_node") return { t: "dht_nodes", ...base, nodes };
    return { t: "dht_value", ...base, records: [(await forged(peer))[0]], nodes };
  }

  function drain(peer) {
    for (const action of peer.dht.takeActions()) {
      if (action.type === "send") send(peer, action);
      else if (action.type === "done") {
        const w = waiting.get(`${peer.index} ${action.lookup}`);
        if (w) {
          waiting.delete(`${peer.index} ${action.lookup}`);
          const found = action.ok && (w.kind !== "peer" || action.records.some((r) => r.peerId === w.target));
          results.push({
            kind: w.kind,
            ok: found,
            hops: action.hops,
            messages: action.messages,
            ms: sim.now - w.startedAt,
            code: action.ok && !found ? "wrong_peer" : action.code,
            target: w.target,
          });
        }
      } else {
        sim.drops[action.code] = (sim.drops[action.code] ?? 0) + 1;
        if (action.violation) sim.violations += 1;
      }
    }
    if (!peer.ticking && (peer.dht.requests.size || peer.dht.lookups.size)) schedule(peer);
  }

  function schedule(peer) {
    peer.ticking = true;
    queue.push(sim.now + TICK_MS, async () => {
      peer.ticking = false;
      if (!peer.alive) return;
      await peer.dht.tick(sim.now);
      drain(peer);
    });
  }

  async function join(peer) {
    // A page starts from the tickets rendezvous gave it (beacon, capsules, cache): here three.
    const live = peers.filter((p) => p.alive && p !== peer && p.joinedAt < sim.now);
    for (let i = 0; i < Math.min(3, live.length); i++) await peer.dht.seen(live[Math.floor(random() * live.length)].dht.ticket, sim.now);
    await peer.dht.findNode(peer.dht.id, sim.now);
    drain(peer);
    // The peer record goes out once the self lookup had time to fill the table, then with
    // every new ticket (a page renews its ticket every RENEW_MS): each republish is also a
    // lookup of the peer's own id, which keeps its neighbourhood current.
    const renew = async (first) => {
      if (!peer.alive) return;
      const ticket = first ? peer.dht.ticket : await makeTicket(peer.signer, { peerId: peer.peerId, community: COMMUNITY, now: sim.now, ttlMs: 600_000 });
      await peer.dht.setTicket(ticket, sim.now);
      drain(peer);
      queue.push(sim.now + RENEW_MS, () => renew(false));
    };
    queue.push(sim.now + 5_000 + Math.floor(random() * RENEW_MS), () => renew(true));
  }

  async function run(until) {
    while (queue.size && queue.peek().t <= until) {
      const { t: at, item: fn } = queue.pop();
      sim.now = at;
      await fn();
    }
    sim.now = until;
  }

  // Join phase.
  const started = Date.now();
  const nBad = Math.round(n * bad);
  const order = Array.from({ length: n }, (_, i) => i < nBad);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (let i = 0; i < n; i++) {
    const at = NOW + Math.floor((i * joinMs) / n);
    await run(at);
    const peer = await makePeer(order[i]);
    peer.joinedAt = at;
    await join(peer);
  }
  await run(sim.now + 30_000);
  log(`joined ${n} peers in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // Providers.
  const honest = () => peers.filter((p) => p.alive && !p.bad);
  const manifestIds = [];
  for (let m = 0; m < manifests; m++) {
    const manifest = b64urlEncode(await sha256(utf8.encode(`manifest ${seed} ${m}`)));
    manifestIds.push(manifest);
    const live = honest();
    for (let c = 1 + Math.floor(random() * 3); c > 0; c--) {
      const holder = live[Math.floor(random() * live.length)];
      await holder.dht.provide(manifest, 4, sim.now);
      drain(holder);
    }
    await run(sim.now + 50);
  }
  await run(sim.now + 30_000);
  const framesBefore = sim.frames;

  // Churn and lookups.
  const runStart = sim.now;
  const leaves = Math.round(n * churn);
  for (let i = 0; i < leaves; i++) {
    queue.push(runStart + Math.floor(random() * runMs), async () => {
      const live = peers.filter((p) => p.alive);
      live[Math.floor(random() * live.length)].alive = false;
      const fresh = await makePeer(random() < bad);
      await join(fresh);
    });
  }
  for (let i = 0; i < lookups; i++) {
    queue.push(runStart + Math.floor(random() * runMs), async () => {
      const live = honest();
      const from = live[Math.floor(random() * live.length)];
      let lookup;
      let w;
      if (i % 2 === 0) {
        // A peer that is live and has had 30 s to publish its record.
        const targets = peers.filter((p) => p.alive && p !== from && sim.now - p.joinedAt > 30_000);
        const target = targets[Math.floor(random() * targets.length)];
        lookup = await from.dht.findPeer(target.peerId, sim.now);
        w = { kind: "peer", target: target.peerId, startedAt: sim.now };
      } else {
        const manifest = manifestIds[Math.floor(random() * manifestIds.length)];
        lookup = await from.dht.findProviders(manifest, sim.now);
        w = { kind: "provider", target: manifest, startedAt: sim.now };
      }
      waiting.set(`${from.index} ${lookup}`, w);
      drain(from);
    });
  }
  await run(runStart + runMs + 60_000);

  const alive = honest();
  const memory = alive.map((p) => p.dht.memory());
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)] : null;
  };
  const ok = results.filter((r) => r.ok);
  return {
    n,
    peersMade: peers.length,
    left: leaves,
    badShare: peers.filter((p) => p.bad).length / peers.length,
    lookups: results.length,
    // Lookups whose asking peer left before they ended (its lookups leave with it).
    abandoned: [...waiting.keys()].filter((key) => !peers[Number(key.split(" ")[0])].alive).length,
    unfinished: [...waiting.keys()].filter((key) => peers[Number(key.split(" ")[0])].alive).length,
    success: ok.length / Math.max(1, results.length),
    successPeer: results.filter((r) => r.kind === "peer" && r.ok).length / Math.max(1, results.filter((r) => r.kind === "peer").length),
    successProvider: results.filter((r) => r.kind === "provider" && r.ok).length / Math.max(1, results.filter((r) => r.kind === "provider").length),
    failures: results
      .filter((r) => !r.ok)
      .map((r) => `${r.kind}:${r.code}:${r.kind === "peer" ? (byId.get(r.target)?.alive ? "alive" : "left") + (byId.get(r.target)?.bad ? ",bad" : "") : ""}`),
    medianHops: median(ok.map((r) => r.hops)),
    maxHops: Math.max(...ok.map((r) => r.hops)),
    meanMessages: mean(results.map((r) => r.messages)),
    medianMs: median(ok.map((r) => r.ms)),
    framesPerPeerDuringRun: (sim.frames - framesBefore) / n,
    contactsMean: mean(memory.map((m) => m.contacts)),
    contactsMax: Math.max(...memory.map((m) => m.contacts)),
    recordsMean: mean(memory.map((m) => m.records)),
    kibMean: mean(memory.map((m) => m.bytes)) / 1024,
    violations: sim.violations,
    drops: sim.drops,
    seconds: (Date.now() - started) / 1000,
  };
}

// The top 48 bits of the XOR distance: enough to rank a handful of colluders.
function xorTop(a, b) {
  let d = 0;
  for (let i = 0; i < 6; i++) d = d * 256 + (a[i] ^ b[i]);
  return d;
}
