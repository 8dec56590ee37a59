// The path of a dial (static/swarm/protocol/dialpath.js) against tests/vectors/dialpath.json,
// which pytest checks for Python (tests/test_dialpath.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { DialPaths } from "../../static/swarm/protocol/dialpath.js";
import { ProtocolError } from "../../static/swarm/protocol/errors.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/dialpath.json", import.meta.url), "utf8"));

const config = (c) => ({ minSamples: c.min_samples, marginPct: c.margin_pct, exploreEvery: c.explore_every, failMs: c.fail_ms });
const defined = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

function run(paths, step) {
  if (step.op === "choose") {
    assert.equal(paths.choose({ serverUp: step.server_up, routeKnown: step.route_known }), step.expect, JSON.stringify(step));
  } else if (step.op === "record") {
    paths.record(step.path, step.ms);
  } else if (step.op === "figures") {
    for (const path of ["server", "mesh"]) {
      const f = paths.figures[path];
      assert.deepEqual({ samples: f.samples, failures: f.failures, avg_ms: f.avgMs, chosen: f.chosen }, step.expect[path], path);
    }
    assert.equal(paths.routed, step.expect.routed);
    assert.equal(paths.faster(), step.expect.faster);
  } else {
    throw new Error(`unknown op ${step.op}`);
  }
}

for (const scenario of vectors.scenarios) {
  test(`scenario ${scenario.name}`, () => {
    const paths = new DialPaths(defined(config(scenario.config)));
    for (const step of scenario.steps) run(paths, step);
  });
}

test("bad records have their codes and change nothing", () => {
  for (const step of vectors.errors) {
    const paths = new DialPaths();
    paths.record("server", 50);
    const before = JSON.stringify(paths);
    assert.throws(
      () => paths.record(step.path, step.ms),
      (e) => e instanceof ProtocolError && e.code === step.code,
      `${step.path} ${step.ms}`,
    );
    assert.equal(JSON.stringify(paths), before);
  }
});

test("data for status", () => {
  const paths = new DialPaths();
  paths.record("mesh", null);
  assert.deepEqual(paths.data().mesh, { samples: 1, failures: 1, avg_ms: 20000, chosen: 0 });
  assert.equal(paths.data().faster, "server");
});
