// Repair by peers, simulated (tests/js/support/repair_sim.mjs): 1,000 peers, churn of 10 peers
// a minute (half without a departure signal), the server gone. Shorter than the benchmark run
// (docs/benchmarks.md "Repair by peers"); asserts that the volunteers keep every manifest that
// still has a copy at target most of the time, lose none, start nothing while the worker is
// known to run, and rarely fetch what someone else is already fetching, where the naive rule
// (every eligible volunteer fetches) duplicates many fetches.
import assert from "node:assert/strict";
import { test } from "node:test";

import { runRepairSim } from "./support/repair_sim.mjs";

const OPTIONS = { peers: 1000, minutes: 8, preMinutes: 2, manifests: 200, seed: 11 };

test("1,000 peers with churn: repair by peers keeps manifests at target without the server", { timeout: 600_000 }, () => {
  const run = runRepairSim(OPTIONS);
  console.log(JSON.stringify(run));
  assert.equal(run.lost, 0);
  assert.equal(run.fetchesDuringWorker, 0);
  assert.ok(run.fetchesStarted >= 10 && run.repairs >= 10, `repairs happened (${run.fetchesStarted})`);
  assert.ok(run.atTargetShare >= 0.85, `at target ${run.atTargetShare}`);
  assert.ok(run.duplicateShare <= 0.15, `duplicates ${run.duplicateShare}`);

  const naive = runRepairSim({ ...OPTIONS, naive: true });
  console.log(JSON.stringify(naive));
  assert.ok(naive.duplicateShare > 2 * run.duplicateShare, `naive duplicates ${naive.duplicateShare}`);
  assert.ok(naive.maxConcurrentPerManifest > run.maxConcurrentPerManifest);
});
