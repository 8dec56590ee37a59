// The DHT simulated: 1,000 peers over the real core and wire codec (tests/js/support/dht_sim.mjs),
// 30% churn during the run and 10% of peers answering badly. Asserts the bounds of
// docs/benchmarks.md "DHT" (bench/dht_sim.mjs runs the same at 10,000 peers).
import assert from "node:assert/strict";
import { test } from "node:test";

import { simulate } from "./support/dht_sim.mjs";

test("1,000 peers, 30% churn, 10% bad: lookups succeed in few hops", { timeout: 600_000 }, async () => {
  const n = 1000;
  const r = await simulate({ n, lookups: 400, manifests: 100, seed: 7 });
  console.log(JSON.stringify(r));
  assert.equal(r.unfinished, 0);
  assert.ok(r.lookups >= 400);
  assert.ok(r.success >= 0.99, `success ${r.success}`);
  assert.ok(r.medianHops <= Math.log2(n) / 2 + 2, `median hops ${r.medianHops}`);
  assert.ok(r.meanMessages <= 40, `requests per lookup ${r.meanMessages}`);
  assert.ok(r.contactsMax <= 256 * 20);
  assert.ok(r.kibMean < 256, `KiB per peer ${r.kibMean}`);
  assert.ok(r.violations > 0, "the bad peers' forged contacts were caught");
});
