// The download scheduler (static/swarm/protocol/transfer.js) against the shared vectors in
// tests/vectors/transfer.json (tests/test_transfer_vectors.py checks transfer.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Transfer } from "../../static/swarm/protocol/transfer.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/transfer.json", import.meta.url), "utf8"));

const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function asVector(a) {
  if (a.type === "manifest_req") return [a.type, a.peerId];
  if (a.type === "chunk_req") return [a.type, a.peerId, a.index];
  if (a.type === "penalize" || a.type === "dropped") return [a.type, a.peerId, a.code, a.message];
  if (a.type === "complete") return [a.type];
  if (a.type === "failed") return [a.type, a.code, a.message];
  throw new Error(`unknown action ${a.type}`);
}

function stateOf(t, at) {
  const deadline = t.nextDeadline(at);
  const p = t.progress(at);
  return {
    phase: t.phase,
    held: t.heldCount,
    in_flight: Object.fromEntries([...t.sources.values()].map((s) => [s.peerId, [...s.inFlight.keys()].sort((x, y) => x - y)])),
    waiting: p.waiting ? [p.waiting.reason, p.waiting.since] : null,
    deadline: deadline === Infinity ? null : deadline,
  };
}

for (const c of vectors.cases) {
  test(`transfer vector: ${c.name}`, () => {
    const [first] = c.steps;
    assert.equal(first.event[0], "start");
    const options = Object.fromEntries(Object.entries(c.options).map(([k, v]) => [camel(k), v]));
    const t = new Transfer({ manifestId: "m", now: first.at, chunkCount: first.event[1], held: first.event[2], options });
    c.steps.forEach((step, number) => {
      let returned = null;
      if (number > 0) {
        const [name, ...args] = step.event;
        returned = t[camel(name)](...args, step.at);
      }
      const where = `step ${number} ${JSON.stringify(step.event)}`;
      assert.deepEqual(t.takeActions().map(asVector), step.actions, where);
      const actual = { ...stateOf(t, step.at), returns: returned ?? null };
      const expected = step.state ?? {};
      assert.deepEqual(Object.fromEntries(Object.keys(expected).map((k) => [k, actual[k]])), expected, where);
    });
  });
}
