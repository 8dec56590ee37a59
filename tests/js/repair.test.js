// Repair by peers in the browser's protocol module (static/swarm/protocol/repair.js) against
// tests/vectors/repair.json, which pytest checks for Python (tests/test_repair.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ProtocolError } from "../../static/swarm/protocol/errors.js";
import { announcementData, parseAnnouncement, RepairCore, rendezvousScore, TOPIC_REPAIR } from "../../static/swarm/protocol/repair.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/repair.json", import.meta.url), "utf8"));

function runStep(core, step) {
  switch (step.op) {
    case "set_self":
      return core.setSelf({ optedIn: step.opted_in, spare: step.spare, maxActive: step.max_active });
    case "manifest":
      return core.manifest(step.id, step.chunk_count, step.size, step.target);
    case "advert":
      return core.advert(step.holder, step.id, step.chunks, step.keep, step.now);
    case "announce":
      return core.announcement(step.origin, step.data, step.issued_at, step.now, { superpeer: step.superpeer });
    case "worker_seen":
      return core.workerSeen(step.at);
    case "holder_gone":
      return core.holderGone(step.holder);
    case "fetch_ended":
      return core.fetchEnded(step.id, step.ok, step.now);
    case "tick": {
      const d = core.tick(step.now);
      assert.deepEqual({ fetch: d.fetch, cancel: d.cancel, worker_live: d.workerLive }, step.expect, `tick at ${step.now}`);
      return undefined;
    }
    default:
      throw new Error(`unknown op ${step.op}`);
  }
}

const snapshot = (core) => JSON.stringify(core, (_k, v) => (v instanceof Map ? [...v] : v));

for (const scenario of vectors.scenarios) {
  test(`scenario ${scenario.name}`, () => {
    const core = new RepairCore(scenario.self, scenario.start);
    for (const step of scenario.steps) runStep(core, step);
  });
}

test("bad inputs have their codes and change nothing", () => {
  for (const step of vectors.errors.steps) {
    const core = new RepairCore(vectors.errors.self, vectors.errors.start);
    const before = snapshot(core);
    assert.throws(
      () => runStep(core, step),
      (e) => e instanceof ProtocolError && e.code === step.code,
      `${step.op} ${step.code}`,
    );
    assert.equal(snapshot(core), before);
  }
});

test("rendezvous scores", () => {
  for (const c of vectors.scores) assert.equal(rendezvousScore(c.manifest, c.peer), c.score);
});

test("repair gossip data", () => {
  assert.equal(TOPIC_REPAIR, "repair");
  for (const data of vectors.announcements.valid) assert.deepEqual(announcementData(parseAnnouncement(data)), data);
  for (const c of vectors.announcements.invalid) {
    assert.throws(
      () => parseAnnouncement(c.data),
      (e) => e instanceof ProtocolError && e.code === c.code,
    );
  }
});

test("config is checked", () => {
  assert.throws(
    () => new RepairCore(vectors.errors.self, 0, { claimTimeoutMs: 0 }),
    (e) => e.code === "bad_repair",
  );
});

test("own announcement reserves the fetches in flight", () => {
  const scenario = vectors.scenarios.find((c) => c.name === "spare_is_reserved_by_own_fetches");
  const core = new RepairCore(scenario.self, scenario.start);
  for (const step of scenario.steps) runStep(core, step);
  assert.deepEqual(core.ownAnnouncement(), { spare: 500, slots: 1, backfillAt: 0 });
  core.setSelf({ optedIn: false, spare: 2500, maxActive: 3 });
  assert.deepEqual(announcementData(core.ownAnnouncement()), { spare: 0, slots: 0, backfill_at: 0 });
});
