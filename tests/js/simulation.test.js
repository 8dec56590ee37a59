// 1,000 peers running the real mesh/PEX/gossip code (SwarmNode) over an in-memory network.
// Each peer starts knowing 3 random others (what a sparse rendezvous would give); peer
// exchange must spread knowledge, and one gossip message must reach nearly everyone.
import assert from "node:assert/strict";
import { test } from "node:test";

import { makeIdentity, Network, T0 } from "./support/network.js";

const PEERS = Number(process.env.SWARM_SIM_PEERS ?? 1000);
const BOOTSTRAP = 3;
const MAX_MESH_ROUNDS = 40;
const MAX_GOSSIP_ROUNDS = 30;

test(`${PEERS} simulated peers: everyone knows 8+ others and gossip reaches 99%`, { timeout: 120_000 }, async () => {
  const started = performance.now();
  const net = new Network({ seed: 42, roundMs: 100 });
  const ids = await Promise.all(Array.from({ length: PEERS }, () => makeIdentity("main", T0)));
  const peers = [];
  for (const identity of ids) peers.push(await net.addPeer({ identity }));
  for (const peer of peers) {
    const known = new Set();
    while (known.size < BOOTSTRAP) {
      const other = peers[Math.floor(net.random() * PEERS)];
      if (other !== peer) known.add(other);
    }
    peer.node.addCandidates(
      [...known].map((p) => p.identity.ticket),
      "beacon",
      net.now,
    );
  }
  const setupMs = performance.now() - started;

  net.start();
  const knowsEnough = () => peers.every((p) => p.node.book.liveCount(net.now) >= 8 && p.node.mesh.open().length > 0);
  const meshed = await net.runUntil(knowsEnough, MAX_MESH_ROUNDS);
  const meshRounds = net.rounds;
  const known = peers.map((p) => p.node.book.liveCount(net.now));
  const degree = peers.map((p) => p.node.mesh.open().length);
  assert.ok(meshed, `after ${MAX_MESH_ROUNDS} rounds some peer knows fewer than 8 others (min ${Math.min(...known)})`);
  // let dialing settle, then measure one message
  await net.runUntil(() => false, 10);

  const framesBefore = net.sentByType.gossip ?? 0;
  const origin = peers[0];
  const id = await origin.node.publish("chat", { text: "hello, 1000 peers" }, net.now);
  origin.delivered.set(id, true);
  net.collect(origin.identity.peerId);
  const gossipStart = net.rounds;
  await net.runUntil(() => peers.every((p) => p.delivered.has(id)) || net.idle, MAX_GOSSIP_ROUNDS);
  const reached = peers.filter((p) => p.delivered.has(id)).length;
  const gossipFrames = (net.sentByType.gossip ?? 0) - framesBefore;
  const gossipRounds = net.rounds - gossipStart;
  const elapsed = performance.now() - started;

  const avg = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  console.log(
    [
      `peers=${PEERS} bootstrap=${BOOTSTRAP} setup=${setupMs.toFixed(0)}ms total=${elapsed.toFixed(0)}ms`,
      `mesh: ${meshRounds} rounds until every peer knew >=8 live peers (min ${Math.min(...known)}, mean ${avg(known).toFixed(1)})`,
      `degree: min ${Math.min(...degree)} mean ${avg(degree).toFixed(2)} max ${Math.max(...degree)}`,
      `gossip: reached ${reached}/${PEERS} (${((100 * reached) / PEERS).toFixed(2)}%) in ${gossipRounds} rounds, ` +
        `${gossipFrames} frames = ${(gossipFrames / PEERS).toFixed(2)} per peer`,
      `all frames: ${net.framesSent} (${(net.framesSent / PEERS).toFixed(1)} per peer), ` +
        `${(net.bytesSent / PEERS / 1024).toFixed(1)} KiB per peer; by type ${JSON.stringify(net.sentByType)}`,
    ].join("\n"),
  );
  assert.ok(reached >= 0.99 * PEERS, `gossip reached only ${reached} of ${PEERS}`);
  assert.ok(gossipFrames / PEERS < 12, "flooding should cost about one frame per mesh edge");

  // Churn: a tenth of the peers leave at once; the rest repair the mesh and still hear everything.
  const leaving = peers.filter(() => net.random() < 0.1);
  for (const p of leaving) net.disconnect(p.identity.peerId);
  const staying = peers.filter((p) => p.online);
  await net.runUntil(() => false, 20);
  const sender = staying[staying.length - 1];
  const id2 = await sender.node.publish("chat", { text: "still here?" }, net.now);
  sender.delivered.set(id2, true);
  net.collect(sender.identity.peerId);
  const churnStart = net.rounds;
  await net.runUntil(() => staying.every((p) => p.delivered.has(id2)) || net.idle, MAX_GOSSIP_ROUNDS);
  const reached2 = staying.filter((p) => p.delivered.has(id2)).length;
  console.log(
    `churn: ${leaving.length} left; gossip reached ${reached2}/${staying.length} ` +
      `(${((100 * reached2) / staying.length).toFixed(2)}%) in ${net.rounds - churnStart} rounds`,
  );
  assert.ok(reached2 >= 0.99 * staying.length, `after churn gossip reached only ${reached2} of ${staying.length}`);
});
