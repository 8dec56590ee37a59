// Keeping copies for the swarm (docs/replication.md "Browser"): the pure policy (opt-in,
// budget accounting, refusal past the budget, settings parsing) and what FileService
// advertises with it (own files as replicas, downloads as replicas only when kept).
import assert from "node:assert/strict";
import { test } from "node:test";

import { FileService } from "../../static/swarm/content/files.js";
import {
  advertFor,
  checkKeep,
  DEFAULT_BUDGET,
  KEEP_SETTING,
  keepPlan,
  keepSettings,
  keepState,
  parseBudgetMb,
  storedSize,
} from "../../static/swarm/content/keeping.js";
import { checkFrame, decodeFrame, encodeFrame } from "../../static/swarm/protocol/wire.js";

const id = (n) => `${n.toString(36).padStart(42, "x")}A`;
const PEER = `p${"a".repeat(32)}`;
const MB = 1_000_000;

// A complete file record of `mb` megabytes in whole 64 KiB chunks (size + 16 per chunk stored).
function record(n, { role = "download", state = "complete", addedAt = n, size = MB, held = null } = {}) {
  const chunkCount = Math.ceil(size / 65536);
  return { id: id(n), role, state, addedAt, size, chunkCount, held: held ?? (state === "complete" ? chunkCount : 0), envelope: { body: {} }, name: `f${n}` };
}

const codeOf = (fn) => {
  try {
    fn();
  } catch (error) {
    return error.code;
  }
  return null;
};

test("opt-in off (the default): no download is kept, own files always are", () => {
  const settings = keepSettings({});
  assert.deepEqual(settings, { keep: false, budget: DEFAULT_BUDGET });
  const own = record(1, { role: "shared" });
  const down = record(2);
  const plan = keepPlan([own, down], settings);
  assert.equal(plan.kept.size, 0);
  assert.equal(plan.used, 0);
  assert.deepEqual(advertFor(own, plan), { id: own.id, chunks: own.chunkCount });
  assert.deepEqual(advertFor(down, plan), { id: down.id, chunks: down.chunkCount, keep: false });
  assert.equal(keepState(own, plan), "own");
  assert.equal(keepState(down, plan), "cached");
});

test("opt-in on: downloads are kept oldest first within the budget, the rest refused", () => {
  const a = record(1, { addedAt: 30 });
  const b = record(2, { addedAt: 10 });
  const c = record(3, { addedAt: 20 });
  const own = record(4, { role: "shared", size: 50 * MB }); // never counted against the budget
  const fetching = record(5, { state: "fetching", held: 3 });
  const budget = storedSize(b) + storedSize(c) + 1;
  const plan = keepPlan([a, b, c, own, fetching], { keep: true, budget });
  assert.deepEqual([...plan.kept].sort(), [b.id, c.id].sort());
  assert.equal(plan.used, storedSize(b) + storedSize(c));
  assert.equal(storedSize(b), MB + 16 * 16);
  assert.deepEqual([...plan.refused.keys()], [a.id]);
  assert.match(plan.refused.get(a.id), /^not kept for the swarm: it needs 1\.0 MB, 0\.0 MB of the 2\.0 MB budget is free$/);
  assert.equal(keepState(a, plan), "refused");
  assert.deepEqual(advertFor(b, plan), { id: b.id, chunks: b.chunkCount });
  assert.deepEqual(advertFor(a, plan), { id: a.id, chunks: a.chunkCount, keep: false });
  // A download in progress is a partial, not-kept copy until it completes.
  assert.deepEqual(advertFor(fetching, plan), { id: fetching.id, chunks: 3, keep: false });
  assert.equal(advertFor(record(6, { state: "offered", held: 0 }), plan), null);
  // An exact fit is kept; a budget of 0 keeps nothing.
  assert.equal(keepPlan([b], { keep: true, budget: storedSize(b) }).kept.size, 1);
  assert.equal(keepPlan([b], { keep: true, budget: 0 }).refused.size, 1);
  // Deleting a kept file makes room for the one refused (nothing is evicted to make room).
  const after = keepPlan([a, c], { keep: true, budget });
  assert.deepEqual([...after.kept].sort(), [a.id, c.id].sort());
});

test("settings: stored values are read defensively, UI values checked with stable codes", () => {
  assert.deepEqual(keepSettings({ [KEEP_SETTING]: { keep: true, budget: 5 * MB } }), { keep: true, budget: 5 * MB });
  for (const bad of [null, 3, { keep: "yes", budget: -1 }, { keep: 1, budget: 1.5 }, { budget: 1e20 }]) {
    assert.deepEqual(keepSettings({ [KEEP_SETTING]: bad }), { keep: false, budget: DEFAULT_BUDGET }, JSON.stringify(bad));
  }
  assert.equal(parseBudgetMb("500"), 500 * MB);
  assert.equal(parseBudgetMb(" 2.5 "), 2_500_000);
  assert.equal(parseBudgetMb("0"), 0);
  for (const bad of ["", "-1", "abc", "1e9", "1,5", "12345678901", "1.1234567", null])
    assert.equal(
      codeOf(() => parseBudgetMb(bad)),
      "bad_budget",
      String(bad),
    );
  assert.equal(
    codeOf(() => checkKeep({ keep: "on", budget: 1 })),
    "bad_keep",
  );
  assert.equal(
    codeOf(() => checkKeep({ keep: true, budget: -1 })),
    "bad_budget",
  );
  assert.equal(
    codeOf(() => checkKeep({ keep: true, budget: 0.5 })),
    "bad_budget",
  );
});

test("the have frame carries keep: false only for copies not kept; keep must be a boolean", () => {
  const frame = {
    t: "have",
    manifests: [
      { id: id(1), chunks: 4 },
      { id: id(2), chunks: 4, keep: false },
    ],
  };
  assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
  const explicit = decodeFrame(encodeFrame({ t: "have", manifests: [{ id: id(1), chunks: 4, keep: true }] }));
  assert.deepEqual(explicit.manifests, [{ id: id(1), chunks: 4 }]);
  assert.throws(() => checkFrame({ t: "have", manifests: [{ id: id(1), chunks: 4, keep: "no" }] }), /keep must be a boolean/);
  assert.throws(() => checkFrame({ t: "have", manifests: [{ id: id(1), chunks: 4, kept: false }] }), /unknown field/);
});

class FakePeer extends EventTarget {
  constructor(settings = {}) {
    super();
    this.sent = [];
    this.saved = settings;
    this.store = {
      getSettings: async () => structuredClone(this.saved),
      putSettings: async (s) => {
        this.saved = structuredClone(s);
      },
    };
  }
  log() {}
  send(peerId, frame) {
    this.sent.push({ peerId, frame });
    return true;
  }
  connectedPeers() {
    return [{ peerId: PEER }];
  }
  opened() {
    this.dispatchEvent(new CustomEvent("peer-open", { detail: { peerId: PEER } }));
  }
  adverts() {
    const out = new Map();
    for (const { frame } of this.sent) if (frame.t === "have") for (const m of frame.manifests) out.set(m.id, m);
    this.sent = [];
    return out;
  }
}

test("FileService advertises downloads as replicas only when kept, and re-advertises on changes", async () => {
  const own = record(1, { role: "shared" });
  const older = record(2, { addedAt: 10 });
  const newer = record(3, { addedAt: 20 });
  const store = { listFiles: async () => [own, older, newer], deleteFile: async () => {} };
  const peer = new FakePeer({ other: 1 });
  const files = await new FileService({ peer, store, origin: "http://127.0.0.1" }).start(await peer.store.getSettings());
  peer.opened();
  let adverts = peer.adverts();
  assert.equal(adverts.get(own.id).keep, undefined);
  assert.equal(adverts.get(older.id).keep, false);
  assert.equal(adverts.get(newer.id).keep, false);

  // Opt in with room for one: the older download becomes a replica, the newer is refused.
  await files.setKeeping({ keep: true, budget: storedSize(older) });
  assert.deepEqual(peer.saved, { other: 1, [KEEP_SETTING]: { keep: true, budget: storedSize(older) } });
  adverts = peer.adverts();
  assert.deepEqual([...adverts.keys()], [older.id]);
  assert.equal(adverts.get(older.id).keep, undefined);
  assert.equal(files.keepStateOf(newer.id).state, "refused");
  assert.match(files.keepStateOf(newer.id).message, /not kept for the swarm/);

  // Deleting the kept one withdraws it and makes room for the newer one.
  await files.remove(older.id);
  adverts = peer.adverts();
  assert.equal(adverts.get(older.id).chunks, 0);
  assert.deepEqual(adverts.get(newer.id), { id: newer.id, chunks: newer.chunkCount });

  // Opting out: the kept download goes back to a cached copy; the own file is unaffected.
  await files.setKeeping({ keep: false });
  adverts = peer.adverts();
  assert.deepEqual([...adverts.values()], [{ id: newer.id, chunks: newer.chunkCount, keep: false }]);
  await assert.rejects(files.setKeeping({ budget: -5 }), (e) => e.code === "bad_budget");
  assert.equal(files.keeping.budget, storedSize(older));

  // The settings survive a restart.
  const again = await new FileService({ peer, store, origin: "http://127.0.0.1" }).start(await peer.store.getSettings());
  assert.deepEqual(again.keeping, { keep: false, budget: storedSize(older) });
});
