// Mesh/PEX/gossip at scale: N SwarmNodes (the real browser modules) on the in-memory network
// of tests/js/support/network.js. Prints rounds to a known-peers goal, gossip coverage and
// cost, wall time and memory, and the machine.
// Usage: node bench/mesh_sim.mjs [peers=1000] [bootstrap=3] [seed=42]
import os from "node:os";

import { makeIdentity, Network, T0 } from "../tests/js/support/network.js";

const [peers = 1000, bootstrap = 3, seed = 42] = process.argv.slice(2).map(Number);
const GOAL_KNOWN = 8;

const started = performance.now();
const net = new Network({ seed, roundMs: 100 });
const ids = await Promise.all(Array.from({ length: peers }, () => makeIdentity("main", T0)));
const nodes = [];
for (const identity of ids) nodes.push(await net.addPeer({ identity }));
for (const peer of nodes) {
  const known = new Set();
  while (known.size < Math.min(bootstrap, peers - 1)) {
    const other = nodes[Math.floor(net.random() * peers)];
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
const meshStart = performance.now();
const ok = await net.runUntil(() => nodes.every((p) => p.node.book.liveCount(net.now) >= GOAL_KNOWN && p.node.mesh.open().length > 0), 100);
const meshRounds = net.rounds;
const meshMs = performance.now() - meshStart;
await net.runUntil(() => false, 10);

const before = net.sentByType.gossip ?? 0;
const origin = nodes[0];
const id = await origin.node.publish("chat", { text: "bench" }, net.now);
origin.delivered.set(id, true);
net.collect(origin.identity.peerId);
const g0 = net.rounds;
const gossipStart = performance.now();
await net.runUntil(() => nodes.every((p) => p.delivered.has(id)) || net.idle, 50);
const reached = nodes.filter((p) => p.delivered.has(id)).length;
const gossipFrames = (net.sentByType.gossip ?? 0) - before;
const degree = nodes.map((p) => p.node.mesh.open().length);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

console.log(
  `machine: ${os.hostname()}: ${os.cpus().length} cpus (${os.cpus()[0]?.model}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
);
console.log(`peers ${peers}, bootstrap ${bootstrap} random tickets each, seed ${seed}`);
console.log(`setup (keys + tickets) ${setupMs.toFixed(0)} ms`);
console.log(
  `mesh: ${ok ? "" : "NOT "}every peer knows >= ${GOAL_KNOWN} after ${meshRounds} rounds (${meshMs.toFixed(0)} ms); degree mean ${mean(degree).toFixed(2)} min ${Math.min(...degree)} max ${Math.max(...degree)}`,
);
console.log(
  `gossip: ${reached}/${peers} (${((100 * reached) / peers).toFixed(2)}%) in ${net.rounds - g0} rounds, ${(gossipFrames / peers).toFixed(2)} frames per peer, ${(performance.now() - gossipStart).toFixed(0)} ms`,
);
console.log(
  `traffic: ${(net.framesSent / peers).toFixed(1)} frames and ${(net.bytesSent / peers / 1024).toFixed(1)} KiB per peer; ${JSON.stringify(net.sentByType)}`,
);
console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB`);
