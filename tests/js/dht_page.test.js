// The page's DHT adapter, its pure parts (static/swarm/adapters/dht.js): the courier that
// holds requests for peers being dialed, and the choice of what to provide.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DhtCourier, MAX_PROVIDED, providedSet } from "../../static/swarm/adapters/dht.js";
import { parseConfig } from "../../static/swarm/adapters/config.js";

const frame = (id) => ({ t: "dht_find_node", id });

test("a frame for a connected peer is sent; an answer for a peer gone is dropped", () => {
  const c = new DhtCourier();
  assert.equal(c.route("pA", frame(1), { connected: true, answer: false, now: 0 }), "send");
  assert.equal(c.route("pA", frame(2), { connected: false, answer: true, now: 0 }), "drop");
  assert.equal(c.queued.size, 0);
});

test("requests for a peer not connected wait for one dial and go out in order when it opens", () => {
  const c = new DhtCourier();
  assert.equal(c.route("pA", frame(1), { connected: false, answer: false, now: 0 }), "dial");
  assert.equal(c.route("pA", frame(2), { connected: false, answer: false, now: 10 }), "queued", "one dial per peer");
  assert.deepEqual(
    c.opened("pA", 100).map((f) => f.id),
    [1, 2],
  );
  assert.deepEqual(c.opened("pA", 100), [], "sent once");
  assert.deepEqual(c.idle(100 + 59_999), [], "a DHT connection is not idle before a minute");
  assert.equal(c.route("pA", frame(3), { connected: true, answer: false, now: 30_000 }), "send");
  assert.deepEqual(c.idle(89_999), []);
  assert.deepEqual(c.idle(90_000), ["pA"], "idle a minute after its last use");
  c.closed("pA");
  assert.deepEqual(c.idle(200_000), []);
});

test("a connection that opened without waiting frames is not the DHT's to close", () => {
  const c = new DhtCourier();
  assert.deepEqual(c.opened("pB", 0), []);
  assert.deepEqual(c.idle(1e9), []);
});

test("dials are bounded; queued peers get the freed slots; frames wait at most waitMs", () => {
  const c = new DhtCourier({ maxDials: 2, waitMs: 5_000 });
  assert.equal(c.route("p1", frame(1), { connected: false, answer: false, now: 0 }), "dial");
  assert.equal(c.route("p2", frame(2), { connected: false, answer: false, now: 0 }), "dial");
  assert.equal(c.route("p3", frame(3), { connected: false, answer: false, now: 1_000 }), "queued");
  assert.equal(c.failed("p1"), true, "a failed dial had frames waiting");
  assert.equal(c.failed("p1"), false);
  let swept = c.sweep(2_000);
  assert.deepEqual(swept, { expired: [], dial: ["p3"] });
  swept = c.sweep(5_000);
  assert.deepEqual(swept.expired, ["p2"], "p2's dial took the whole request timeout");
  swept = c.sweep(6_000);
  assert.deepEqual(swept.expired, ["p3"]);
  assert.equal(c.queued.size, 0);
  assert.equal(c.dialing.size, 0);
});

test("a peer's queue is bounded", () => {
  const c = new DhtCourier({ maxQueued: 2 });
  c.route("p1", frame(1), { connected: false, answer: false, now: 0 });
  c.route("p1", frame(2), { connected: false, answer: false, now: 0 });
  assert.equal(c.route("p1", frame(3), { connected: false, answer: false, now: 0 }), "drop");
});

test("what is provided: manifests with chunks, most first, at most the per-publisher bound", () => {
  const entries = [
    { id: "b", chunks: 3 },
    { id: "a", chunks: 3 },
    { id: "c", chunks: 0 },
    { id: "d", chunks: 9, keep: false },
  ];
  assert.deepEqual(
    [...providedSet(entries)],
    [
      ["d", 9],
      ["a", 3],
      ["b", 3],
    ],
  );
  const many = Array.from({ length: 100 }, (_, i) => ({ id: `m${String(i).padStart(3, "0")}`, chunks: 1 + i }));
  const chosen = providedSet(many);
  assert.equal(chosen.size, MAX_PROVIDED);
  assert.equal(MAX_PROVIDED, 64);
  assert.ok(chosen.has("m099") && !chosen.has("m000"));
});

test("the page config switches have gossip off, and only with a boolean", () => {
  const base = { community: "main", signaling: ["/signal/"] };
  assert.equal(parseConfig(base, "http://x/").haveGossip, true);
  assert.equal(parseConfig({ ...base, have_gossip: false }, "http://x/").haveGossip, false);
  assert.throws(() => parseConfig({ ...base, have_gossip: "no" }, "http://x/"), { code: "bad_config" });
});
