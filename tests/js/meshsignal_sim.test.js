// Signaling through the mesh, simulated: N peers in a random mesh (each dials 3 others at random,
// at most 10 connections: average degree 6), reach adverts exchanged, then sessions between
// peers that are not neighbours. Every frame goes through the wire codec and every message is
// signed and verified; links are FIFO and equally fast, the clock is fake. Prints delivery,
// hops and frames per session, and asserts them within the bounds of docs/protocol.md
// "Signaling through the mesh" ("Costs").
import assert from "node:assert/strict";
import { test } from "node:test";

import * as ed25519 from "../../static/swarm/protocol/ed25519.js";
import { peerIdForKey } from "../../static/swarm/protocol/encoding.js";
import { MeshSignal, newSessionId } from "../../static/swarm/protocol/meshsignal.js";
import { decodeFrame, encodeFrame } from "../../static/swarm/protocol/wire.js";
import { prng } from "./support/sim.mjs";

const NOW = 1_800_000_000_000;
const CANDIDATES = 4; // each side trickles this many candidates after its offer or answer

async function buildMesh(n, seed, { dials = 3, maxConns = 10 } = {}) {
  const random = prng(seed);
  const peers = [];
  for (let i = 0; i < n; i++) {
    const seedBytes = new Uint8Array(32);
    new DataView(seedBytes.buffer).setUint32(0, i + 1);
    seedBytes[31] = seed & 0xff;
    const signer = await ed25519.signerFromSeed(seedBytes);
    const peerId = await peerIdForKey(signer.publicKey);
    peers.push({ index: i, peerId, node: new MeshSignal({ peerId, signer, now: NOW }), adj: new Set() });
  }
  for (const p of peers) {
    for (let tries = 0, made = 0; made < dials && tries < 50; tries++) {
      const q = peers[Math.floor(random() * n)];
      if (q === p || p.adj.has(q.index) || p.adj.size >= maxConns || q.adj.size >= maxConns) continue;
      p.adj.add(q.index);
      q.adj.add(p.index);
      p.node.connected(`${p.index}>${q.index}`, q.peerId, ["signal"], NOW);
      q.node.connected(`${q.index}>${p.index}`, p.peerId, ["signal"], NOW);
      made += 1;
    }
  }
  const net = { peers, queue: [], frames: 0, framesByKind: {}, delivered: [], drops: {} };
  await pump(net, NOW);
  for (const p of peers) p.node.tick(NOW + 5000);
  await pump(net, NOW + 5000);
  net.frames = 0;
  net.framesByKind = {};
  return net;
}

// Collect actions into the FIFO of frames in flight, carry them until nothing moves.
async function pump(net, now) {
  const collect = () => {
    for (const p of net.peers) {
      for (const action of p.node.takeActions()) {
        if (action.type === "send") {
          const j = Number(action.connId.split(">")[1]);
          net.queue.push([j, `${j}>${p.index}`, encodeFrame(action.frame)]);
          if (action.frame.t === "signal") {
            net.frames += 1;
            const kind = action.frame.msg.body.kind;
            net.framesByKind[kind] = (net.framesByKind[kind] ?? 0) + 1;
          }
        } else if (action.type === "deliver") net.delivered.push({ at: p.index, message: action.message, traveled: action.traveled });
        else net.drops[action.code] = (net.drops[action.code] ?? 0) + 1;
      }
    }
  };
  collect();
  while (net.queue.length > 0) {
    const [j, connId, bytes] = net.queue.shift();
    await net.peers[j].node.receive(connId, decodeFrame(bytes), now);
    collect();
  }
}

function distances(net, from) {
  const dist = new Map([[from, 0]]);
  const queue = [from];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of net.peers[v].adj) {
      if (!dist.has(w)) {
        dist.set(w, dist.get(v) + 1);
        queue.push(w);
      }
    }
  }
  return dist;
}

// One session: s offers to t; t answers when the offer arrives; both trickle candidates.
async function session(net, s, t, now, retryHops = 0) {
  const S = net.peers[s];
  const T = net.peers[t];
  const sid = newSessionId();
  const framesBefore = net.frames;
  const offerFramesBefore = net.framesByKind.offer ?? 0;
  const mark = net.delivered.length;
  await S.node.send({ to: T.peerId, sid, kind: "offer", payload: { type: "offer", sdp: "v=0\r\n".repeat(100) }, now });
  for (let c = 0; c < CANDIDATES; c++) await S.node.send({ to: T.peerId, sid, kind: "candidate", payload: { candidate: `c${c}` }, now });
  await pump(net, now);
  let offer = net.delivered.slice(mark).find((d) => d.at === t && d.message.sid === sid && d.message.kind === "offer");
  let retried = false;
  if (!offer && retryHops > 0) {
    // Expanding ring: nobody answered within the first budget; offer again with a larger one.
    retried = true;
    await S.node.send({ to: T.peerId, sid, kind: "offer", payload: { type: "offer", sdp: "v=0\r\n".repeat(100) }, now: now + 10, hops: retryHops });
    await pump(net, now + 10);
    offer = net.delivered.slice(mark).find((d) => d.at === t && d.message.sid === sid && d.message.kind === "offer");
  }
  if (offer) {
    await T.node.send({ to: S.peerId, sid, kind: "answer", payload: { type: "answer", sdp: "v=0\r\n".repeat(100) }, now: now + 50 });
    for (let c = 0; c < CANDIDATES; c++) await T.node.send({ to: S.peerId, sid, kind: "candidate", payload: { candidate: `c${c}` }, now: now + 50 });
    await pump(net, now + 50);
  }
  const mine = net.delivered.slice(mark).filter((d) => d.message.sid === sid);
  const atT = mine.filter((d) => d.at === t).length;
  const atS = mine.filter((d) => d.at === s).length;
  return {
    ok: atT === 1 + CANDIDATES && atS === 1 + CANDIDATES,
    retried,
    offerHops: offer?.traveled ?? null,
    frames: net.frames - framesBefore,
    offerFrames: (net.framesByKind.offer ?? 0) - offerFramesBefore,
  };
}

async function simulate(n, seed, sessions, retryHops = 0) {
  const net = await buildMesh(n, seed);
  const random = prng(seed * 7 + 1);
  const degrees = net.peers.map((p) => p.adj.size);
  const results = [];
  let now = NOW + 10_000;
  while (results.length < sessions) {
    const s = Math.floor(random() * n);
    const t = Math.floor(random() * n);
    if (s === t || net.peers[s].adj.has(t)) continue;
    const dist = distances(net, s).get(t) ?? Number.POSITIVE_INFINITY;
    results.push({ dist, ...(await session(net, s, t, now, retryHops)) });
    now += 1000;
  }
  const within4 = results.filter((r) => r.dist <= 4);
  const ok = results.filter((r) => r.ok);
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const figures = {
    peers: n,
    meanDegree: Number(mean(degrees).toFixed(2)),
    sessions,
    delivered: ok.length,
    deliveryRate: Number((ok.length / sessions).toFixed(3)),
    within4Hops: within4.length,
    deliveredWithin4: within4.filter((r) => r.ok).length,
    meanShortest: Number(mean(results.map((r) => r.dist).filter(Number.isFinite)).toFixed(2)),
    meanOfferHops: Number(mean(ok.map((r) => r.offerHops)).toFixed(2)),
    maxOfferHops: Math.max(...ok.map((r) => r.offerHops)),
    offerHopsAboveShortest: ok.filter((r) => r.offerHops > r.dist).length,
    meanFramesPerSession: Number(mean(ok.map((r) => r.frames)).toFixed(1)),
    maxFramesPerSession: Math.max(...results.map((r) => r.frames)),
    meanOfferFrames: Number(mean(ok.map((r) => r.offerFrames)).toFixed(1)),
    retried: results.filter((r) => r.retried).length,
    meanOfferFramesRetried: Number(mean(results.filter((r) => r.retried).map((r) => r.offerFrames)).toFixed(1)),
    meanOfferFramesAll: Number(mean(results.map((r) => r.offerFrames)).toFixed(1)),
    drops: net.drops,
  };
  return { figures, results, net };
}

test("200 peers, average degree 6: every session within 4 hops succeeds, by shortest paths, at bounded cost", async () => {
  const { figures, results } = await simulate(200, 1, 150);
  console.log("mesh signaling, 200 peers:", JSON.stringify(figures));
  assert.ok(figures.meanDegree >= 5.5 && figures.meanDegree <= 6.5, "the mesh is what it claims");
  assert.equal(figures.deliveredWithin4, figures.within4Hops, "every pair within the 4-hop budget completes");
  assert.equal(results.filter((r) => r.ok && r.dist > 4).length, 0, "nothing goes beyond the budget");
  assert.ok(figures.deliveryRate >= 0.95, `delivery rate ${figures.deliveryRate} >= 0.95`);
  assert.equal(figures.offerHopsAboveShortest, 0, "offers take a shortest path");
  // A session: 2 + 2*CANDIDATES messages. Unicast parts cost at most 4 frames each; the offer's
  // flood reaches at most the sender's neighbours and their neighbours (<= 10 + 10*9 frames).
  const unicast = (1 + 2 * CANDIDATES) * 4;
  assert.ok(figures.maxFramesPerSession <= unicast + 100 + 4, `at most ${unicast + 104} frames per session`);
  assert.ok(figures.meanOfferFrames <= 45, `offers cost ${figures.meanOfferFrames} frames on average (<= 45)`);
  assert.deepEqual(
    Object.keys(figures.drops).sort(),
    ["duplicate", "no_route"].filter((c) => figures.drops[c]),
  );
});

test("1000 peers, average degree 6: budget 4, then one retry with 5 (expanding ring), never a swarm-wide flood", async () => {
  const { figures } = await simulate(1000, 2, 80, 5);
  console.log("mesh signaling, 1000 peers, retry with 5:", JSON.stringify(figures));
  assert.ok(figures.meanDegree >= 5.5 && figures.meanDegree <= 6.5);
  assert.equal(figures.deliveredWithin4, figures.within4Hops, "every pair within 4 hops completes at the first try");
  assert.ok(figures.retried >= 10, "a good share of the pairs is farther than 4 hops at this size and degree");
  assert.ok(figures.deliveryRate >= 0.95, `delivery rate ${figures.deliveryRate} >= 0.95`);
  assert.equal(figures.offerHopsAboveShortest, 0, "offers take a shortest path");
  assert.ok(figures.meanOfferFramesAll <= 150, `offers cost ${figures.meanOfferFramesAll} frames on average (<= 150)`);
  // A flood with budget 5 reaches three hops out (<= 10 + 90 + 810 frames in theory); at degree 6
  // it stays far below the 1000 peers.
  assert.ok(figures.maxFramesPerSession <= 500, `at most ${figures.maxFramesPerSession} <= 500 frames per session`);
});
