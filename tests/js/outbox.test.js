// The outbox core (static/swarm/content/outbox_core.js) on a fake clock: order, idempotent ids,
// retries, waiting reasons, delivery, expiry, and a tab that went away between send and
// acknowledgement (items read back from storage).
import assert from "node:assert/strict";
import { test } from "node:test";

import { DELIVERED, FAILED, KIND_KEY, KIND_POST, Outbox, SENDING, WAITING } from "../../static/swarm/content/outbox_core.js";

const T0 = Date.UTC(2026, 11, 7);
const RETRY = [1_000, 5_000, 20_000];

function box() {
  return new Outbox({ retryMs: RETRY });
}

test("items come out in the order they were made, and the same id twice is one item", () => {
  const o = box();
  assert.equal(o.add({ id: "b", kind: KIND_POST, label: "first" }, T0).added, true);
  assert.equal(o.add({ id: "a", kind: KIND_KEY, target: "p1" }, T0 + 1).added, true);
  assert.equal(o.add({ id: "c", kind: KIND_POST }, T0 + 2).added, true);
  const again = o.add({ id: "b", kind: KIND_POST, label: "changed" }, T0 + 3);
  assert.equal(again.added, false);
  assert.equal(again.item.label, "first");
  assert.deepEqual(
    o.due(T0 + 3).map((i) => i.id),
    ["b", "a", "c"],
  );
  assert.deepEqual(
    o.list().map((i) => [i.id, i.seq, i.state]),
    [
      ["b", 1, WAITING],
      ["a", 2, WAITING],
      ["c", 3, WAITING],
    ],
  );
});

test("bad items are refused with a code", () => {
  const o = box();
  assert.throws(() => o.add({ id: "", kind: KIND_POST }, T0), { code: "bad_item" });
  assert.throws(() => o.add({ id: "x", kind: "letter" }, T0), { code: "bad_item" });
  assert.equal(o.list().length, 0);
});

test("a sent item is due again after the retry pauses until it is delivered", () => {
  const o = box();
  o.add({ id: "m", kind: KIND_KEY, target: "p1" }, T0);
  o.sending("m", T0, ["s1"]);
  assert.equal(o.get("m").state, SENDING);
  assert.deepEqual(o.due(T0 + 999), []);
  assert.deepEqual(
    o.due(T0 + 1_000).map((i) => i.id),
    ["m"],
  );
  o.sending("m", T0 + 1_000, ["s2"]);
  assert.equal(o.get("m").nextAt, T0 + 6_000);
  assert.deepEqual(o.get("m").via, ["s1", "s2"]);
  o.sending("m", T0 + 6_000);
  o.sending("m", T0 + 26_000);
  assert.equal(o.get("m").nextAt, T0 + 46_000, "the last pause repeats");
  assert.equal(o.get("m").attempts, 4);
  o.delivered("m", T0 + 30_000, "p1");
  assert.equal(o.get("m").state, DELIVERED);
  assert.deepEqual(o.get("m").deliveredTo, ["p1"]);
  assert.deepEqual(o.due(T0 + 100_000), [], "a delivered item is never sent again");
  assert.equal(o.nextDue(), null);
});

test("a waiting item keeps its reason until something wakes it", () => {
  const o = box();
  o.add({ id: "m", kind: KIND_KEY, target: "p1" }, T0);
  o.waiting("m", T0, "no_key", "p1 is away", T0 + 60_000);
  assert.equal(o.get("m").state, WAITING);
  assert.equal(o.get("m").reason, "no_key");
  assert.deepEqual(o.due(T0 + 10_000), []);
  o.wake(T0 + 10_000);
  assert.deepEqual(
    o.due(T0 + 10_000).map((i) => i.id),
    ["m"],
  );
  // Handed to a super-peer earlier: it stays "sending" while no route is open now.
  o.sending("m", T0 + 10_000, ["s1"]);
  o.waiting("m", T0 + 11_000, "no_route");
  assert.equal(o.get("m").state, SENDING);
  assert.equal(o.get("m").reason, "no_route");
  assert.deepEqual(o.due(T0 + 11_000), []);
  o.wake(T0 + 11_000);
  assert.deepEqual(
    o.due(T0 + 11_000).map((i) => i.id),
    ["m"],
    "no way out last time: a new connection makes it due",
  );
  o.sending("m", T0 + 12_000, ["s1"]);
  o.wake(T0 + 12_000);
  assert.deepEqual(o.due(T0 + 12_000), [], "sent and not blocked: it waits for its retry time");
  assert.equal(o.get("m").reason, null);
});

test("posts count every peer they reached; a delivered item takes more peers", () => {
  const o = box();
  o.add({ id: "h1", kind: KIND_POST }, T0);
  o.delivered("h1", T0 + 1, "pa");
  o.delivered("h1", T0 + 2, "pb");
  o.delivered("h1", T0 + 3, "pa");
  assert.deepEqual(o.get("h1").deliveredTo, ["pa", "pb"]);
  assert.equal(o.get("h1").state, DELIVERED);
});

test("open items past their time fail as expired; delivered ones do not", () => {
  const o = box();
  o.add({ id: "a", kind: KIND_KEY, expiresAt: T0 + 1_000 }, T0);
  o.add({ id: "b", kind: KIND_KEY, expiresAt: T0 + 1_000 }, T0);
  o.delivered("b", T0 + 10, "p1");
  o.add({ id: "c", kind: KIND_KEY, expiresAt: T0 + 5_000 }, T0);
  const expired = o.expire(T0 + 1_000);
  assert.deepEqual(
    expired.map((i) => i.id),
    ["a"],
  );
  assert.equal(o.get("a").state, FAILED);
  assert.equal(o.get("a").reason, "expired");
  assert.equal(o.get("b").state, DELIVERED);
  assert.equal(o.get("c").state, WAITING);
  assert.equal(o.delivered("a", T0 + 2_000, "p1"), null, "a failed item stays failed");
});

test("changes are handed out once for storage, removals too", () => {
  const o = box();
  o.add({ id: "a", kind: KIND_POST }, T0);
  o.add({ id: "b", kind: KIND_POST }, T0);
  assert.deepEqual(
    o
      .takeChanges()
      .put.map((i) => i.id)
      .sort(),
    ["a", "b"],
  );
  assert.deepEqual(o.takeChanges(), { put: [], remove: [] });
  assert.equal(o.remove("a"), false, "an open item cannot be cleared");
  o.delivered("a", T0 + 1, "p");
  assert.equal(o.remove("a"), true);
  assert.deepEqual(o.takeChanges(), { put: [], remove: ["a"] });
});

test("a tab closed between send and acknowledgement: the item is sent again, once, with its id", () => {
  const o = box();
  o.add({ id: "m1", kind: KIND_KEY, target: "p1", payload: { envelope: { body: 1 } } }, T0);
  o.add({ id: "m2", kind: KIND_KEY, target: "p1" }, T0);
  o.sending("m1", T0 + 5, ["s1"]);
  const stored = o.takeChanges().put.map((i) => structuredClone(i));
  // The tab is gone; a new one reads the outbox back.
  const again = box();
  assert.equal(again.load(stored), 2);
  assert.deepEqual(
    again.due(T0 + 10).map((i) => [i.id, i.state, i.attempts]),
    [
      ["m1", SENDING, 1],
      ["m2", WAITING, 0],
    ],
  );
  assert.deepEqual(again.get("m1").payload, { envelope: { body: 1 } }, "the signed message is kept: same id, same bytes");
  assert.equal(again.add({ id: "m1", kind: KIND_KEY }, T0 + 11).added, false);
  const next = again.add({ id: "m3", kind: KIND_POST }, T0 + 12).item;
  assert.equal(next.seq, 3, "new items go after the ones read back");
  // Garbage in storage is skipped, not fatal.
  assert.equal(box().load([null, { id: "x" }, { id: "y", kind: KIND_POST, state: "lost" }]), 0);
});

test("the outbox forgets the oldest finished items beyond its size", () => {
  const o = new Outbox({ retryMs: RETRY, maxItems: 3 });
  o.add({ id: "a", kind: KIND_POST }, T0);
  o.delivered("a", T0, "p");
  o.add({ id: "b", kind: KIND_POST }, T0);
  o.add({ id: "c", kind: KIND_POST }, T0);
  o.add({ id: "d", kind: KIND_POST }, T0);
  assert.deepEqual(
    o.list().map((i) => i.id),
    ["b", "c", "d"],
  );
  o.add({ id: "e", kind: KIND_POST }, T0);
  assert.equal(o.list().length, 4, "open items are never dropped");
});
