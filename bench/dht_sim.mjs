// The DHT simulated at scale over the real core (static/swarm/protocol/dht.js) and wire codec:
// prints the figures of docs/benchmarks.md "DHT". The same run at 1,000 peers is the test
// tests/js/dht_sim.test.js, which asserts the bounds.
// Usage: node --max-old-space-size=8192 bench/dht_sim.mjs [peers=10000] [lookups=2000] [seed=1]
import os from "node:os";

import { simulate } from "../tests/js/support/dht_sim.mjs";

// Environment: DHT_LIMITS='{"replicas": 8}' overrides limits of every peer; DHT_FORGE=0 makes the
// bad peers answer only with real tickets (their colluders), nothing a check catches.
const [n = 10_000, lookups = 2000, seed = 1] = process.argv.slice(2).map(Number);
const limits = JSON.parse(process.env.DHT_LIMITS ?? "{}");
const forge = process.env.DHT_FORGE !== "0";
console.log(`machine: ${os.cpus().length} cpus (${os.cpus()[0]?.model.trim()}), node ${process.version}`);
console.log(
  `peers ${n}, churn 30% during the run, 10% bad peers${forge ? "" : " (forging nothing)"}, ${lookups} lookups, seed ${seed}, limits ${JSON.stringify(limits)}`,
);
const r = await simulate({ n, lookups, manifests: Math.max(50, Math.round(n / 20)), seed, limits, forge, log: (line) => console.log(line) });
const pct = (x) => `${(100 * x).toFixed(2)}%`;
console.log(`peers made ${r.peersMade} (left ${r.left}, bad ${pct(r.badShare)})`);
console.log(`lookups ${r.lookups} (unfinished ${r.unfinished}): success ${pct(r.success)} (peer ${pct(r.successPeer)}, provider ${pct(r.successProvider)})`);
console.log(`hops median ${r.medianHops}, max ${r.maxHops} (bound log2(n)/2 + 2 = ${(Math.log2(n) / 2 + 2).toFixed(1)})`);
console.log(`requests per lookup (mean) ${r.meanMessages.toFixed(1)}; time to the record (median) ${r.medianMs} ms`);
console.log(`frames per peer during the run (all traffic: joins, publishing, lookups, checks) ${r.framesPerPeerDuringRun.toFixed(1)}`);
console.log(
  `per honest peer: ${r.contactsMean.toFixed(1)} contacts (max ${r.contactsMax}), ${r.recordsMean.toFixed(1)} records, ${r.kibMean.toFixed(1)} KiB of tickets and records`,
);
console.log(`violations seen ${r.violations}; drops ${JSON.stringify(r.drops)}`);
console.log(`failures ${JSON.stringify(r.failures)}`);
console.log(`wall time ${r.seconds.toFixed(0)} s`);
